"""Folder mode: explain / cam / annotate many images into an output tree, robustly and resumably.

Decoding runs in background threads (``prepared_batches`` of the model object it is handed),
the model runs batched, figures are rendered in a process pool, and every finished image is
appended to OUT/manifest.jsonl. Outputs are written atomically; a re-run skips finished images;
a KeyboardInterrupt (the CLI turns SIGTERM into one) stops cleanly and the next run resumes.
Bad inputs are recorded and the batch goes on. This module installs no signal handlers.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from .._files import atomic_write_bytes
from ..results import ImageResult, error_json
from .discover import InputItem, output_stem
from .gallery import write_gallery
from .manifest import ManifestWriter, is_done, load_done, merge_records, options_key


class Explainer(Protocol):
    """What folder mode needs of the model: ``nestviz.api.Nestviz`` is one."""

    def prepared_batches(self, images: Any, batch_size: int = 16) -> Any: ...

    def run(self, batch: Any, mode: str = "predict", **kw: Any) -> list[ImageResult]: ...


FIGURES = {"explain": ("gradcat",), "cam": ("cam",), "annotate": ("gradcat", "cam")}


@dataclass
class RunOptions:
    """What to compute and write for each image."""

    mode: str  # explain | cam | annotate
    out_dir: Path
    top_k: int = 4
    classes: list[int] | None = None
    threshold: float = 0.2
    fmt: str = "png"
    render: bool = True
    save_maps: bool = False
    overwrite: bool = False
    batch_size: int = 16
    render_workers: int = 1  # processes drawing figures (0: draw in this process)
    shard: tuple[int, int] | None = None
    multi_root: bool = False  # inputs came from several roots: prefix outputs with the root's name

    def key_fields(self, weights_id: str) -> dict[str, Any]:
        """Everything that changes an image's outputs: a change means the image is redone."""
        return {"weights": weights_id, "mode": self.mode, "top_k": self.top_k, "classes": self.classes,
                "threshold": self.threshold, "fmt": self.fmt, "render": self.render, "save_maps": self.save_maps}


@dataclass
class RunSummary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"done": self.done, "failed": self.failed, "skipped": self.skipped,
                "seconds": round(self.seconds, 2), "images_per_s": round(self.images_per_s, 2),
                "interrupted": self.interrupted}


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` and prove a file can be written there; OSError (with its reason) if not."""
    out_dir.mkdir(parents=True, exist_ok=True)
    probe = out_dir / f".nestviz-write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


def planned_outputs(item: InputItem, opts: RunOptions) -> dict[str, Path]:
    """Figure and map files one image produces: {"gradcat": path, "cam": path, "maps": path}."""
    stem = output_stem(item, opts.out_dir, opts.multi_root)
    files: dict[str, Path] = {}
    if opts.render:
        for kind in FIGURES[opts.mode]:
            files[kind] = stem.with_name(f"{stem.name}.{kind}.{opts.fmt}")
    if opts.save_maps and opts.mode in ("cam", "annotate"):
        files["maps"] = stem.with_name(f"{stem.name}.cam.npy")
    return files


def render_outputs(image_path: str, result: ImageResult, files: dict[str, str], fmt: str) -> None:
    """Draw and save one image's figures (runs in a worker process)."""
    from ..draw import write_figure
    from ..images import load_rgb

    image = load_rgb(image_path)
    for kind, path in files.items():  # "gradcat" and / or "cam"
        write_figure(kind, image, result, path, fmt)


def save_maps(result: ImageResult, path: Path) -> None:
    """Raw CAMs of the explained classes as one (k, h, w) float32 .npy, written atomically."""
    buf = io.BytesIO()
    np.save(buf, np.stack([p.cam.raw for p in result.predictions]).astype(np.float32))
    atomic_write_bytes(path, buf.getvalue())


def run_folder(items: list[InputItem], opts: RunOptions, load_model: Callable[[], Explainer], weights_id: str, *,
               on_record: Callable[[dict[str, Any]], None] | None = None,
               progress: Callable[[int, int], None] | None = None,
               worker_init: Callable[[], None] | None = None) -> RunSummary:
    """Process ``items`` into ``opts.out_dir``; ``load_model`` is called only if there is work to do.

    ``on_record`` receives each finished record (for --json); ``progress(done, total)`` ticks;
    ``worker_init`` runs first in each figure-drawing process (the CLI makes them ignore Ctrl-C).
    """
    return _FolderRun(items, opts, weights_id, on_record, progress).run(load_model, worker_init)


class _FolderRun:
    """One folder run's state: the manifest, the figures being drawn, the counts."""

    def __init__(self, items: list[InputItem], opts: RunOptions, weights_id: str,
                 on_record: Callable[[dict[str, Any]], None] | None,
                 progress: Callable[[int, int], None] | None) -> None:
        self.items, self.opts, self.on_record, self.progress = items, opts, on_record, progress
        self.key = options_key(opts.key_fields(weights_id))
        self.summary = RunSummary()
        self.inflight: deque[tuple[Future, dict[str, Any]]] = deque()

    def run(self, load_model: Callable[[], Explainer], worker_init: Callable[[], None] | None) -> RunSummary:
        t0 = time.perf_counter()
        todo = self.skip_finished()
        self.writer = ManifestWriter(self.opts.out_dir, self.opts.shard)
        pool: ProcessPoolExecutor | None = None
        try:
            if todo:
                model = load_model()
                if self.opts.render and len(todo) > 2 and self.opts.render_workers > 0:
                    pool = ProcessPoolExecutor(self.opts.render_workers, mp_context=multiprocessing.get_context("spawn"),
                                               initializer=worker_init)
                self.process(todo, model, pool)
            self.drain(0)
        except KeyboardInterrupt:
            self.summary.interrupted = True
            self.recover()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            self.writer.close()
        self.summary.seconds = time.perf_counter() - t0
        write_gallery(self.opts.out_dir, merge_records(self.opts.out_dir), title=f"nestviz {self.opts.mode}",
                      summary=self.summary.to_dict())
        return self.summary

    def skip_finished(self) -> list[InputItem]:
        """The items still to do; those an earlier run finished with the same options are counted as skipped."""
        done_before = {} if self.opts.overwrite else load_done(self.opts.out_dir)
        todo = []
        for item in self.items:
            rec = done_before.get(str(item.path))
            if rec is not None and is_done(rec, self.key, self.opts.out_dir):
                self.summary.skipped += 1
                if self.on_record:
                    self.on_record({**_public(rec), "status": "skipped"})
            else:
                todo.append(item)
        if self.progress:
            self.progress(self.summary.skipped, len(self.items))
        return todo

    def process(self, todo: list[InputItem], model: Explainer, pool: ProcessPoolExecutor | None) -> None:
        """Run the model over ``todo`` batch by batch; each result's figures go to the pool (or are drawn here)."""
        opts = self.opts
        by_name = {str(i.path): i for i in todo}
        for batch in model.prepared_batches([str(i.path) for i in todo], opts.batch_size):
            for r in model.run(batch, opts.mode, top_k=opts.top_k, classes=opts.classes, threshold=opts.threshold):
                if r.error is not None:
                    self.finish({**r.to_json(), "status": "error", "key": self.key})
                    continue
                item = by_name[r.image]
                files = planned_outputs(item, opts)
                r.outputs = [str(p.relative_to(opts.out_dir)) for p in files.values()]
                if "maps" in files:
                    save_maps(r, files["maps"])
                record = {**r.to_json(), "status": "ok", "key": self.key}
                figs = {k: str(p) for k, p in files.items() if k != "maps"}
                if figs and pool is None:
                    render_outputs(str(item.path), r, figs, opts.fmt)
                if not figs or pool is None:
                    self.finish(record)
                else:
                    self.inflight.append((pool.submit(render_outputs, str(item.path), r, figs, opts.fmt), record))
                    self.drain(opts.batch_size + 2 * opts.render_workers)  # a batch's figures queue while the next runs

    def finish(self, record: dict[str, Any]) -> None:
        """Record one finished image: manifest line, counts, --json, progress."""
        self.writer.write(record)
        if record["status"] == "ok":
            self.summary.done += 1
        else:
            self.summary.failed += 1
            self.summary.failures.append(f"{record['image']}: {record.get('error', '')}")
        if self.on_record:
            self.on_record(record)
        if self.progress:
            s = self.summary
            self.progress(s.done + s.failed + s.skipped, len(self.items))

    def drain(self, limit: int) -> None:
        """Wait for the oldest figures until at most ``limit`` images are being drawn."""
        while len(self.inflight) > limit:
            fut, record = self.inflight[0]  # popped only once finished: an interrupt here keeps it for recover()
            try:
                fut.result()
            except Exception as e:  # a figure that failed to render is that image's error
                record = {**error_json(record["image"], f"rendering failed: {e}"), "status": "error", "key": self.key}
            self.inflight.popleft()
            self.finish(record)

    def recover(self) -> None:
        """After an interrupt: cancel the figures not started, let those being drawn land (atomically)."""
        for fut, _ in self.inflight:
            fut.cancel()
        for fut, record in self.inflight:
            if not fut.cancelled():
                try:
                    fut.result()
                    self.finish(record)
                except BaseException:  # noqa: BLE001 - interrupted anyway
                    pass
        self.inflight.clear()


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in ("key", "time")}


def dumps(record: dict[str, Any]) -> str:
    """One JSON Lines line."""
    return json.dumps(record, ensure_ascii=False)


__all__ = ["Explainer", "RunOptions", "RunSummary", "run_folder", "check_writable", "planned_outputs", "dumps"]
