"""Folder mode: explain / cam / annotate many images into an output tree, robustly and resumably.

Decoding runs in background threads (``Nestviz.prepared_batches``), the model runs batched,
figures are rendered in a process pool, and every finished image is appended to
OUT/manifest.jsonl. Outputs are written atomically; a re-run skips finished images;
SIGINT/SIGTERM stop cleanly (exit 130) and the next run resumes. Bad inputs are recorded
and the batch goes on.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .discover import InputItem, output_stem
from .gallery import write_gallery
from .manifest import ManifestWriter, is_done, load_done, merge_records, options_key
from .results import ImageResult, error_json
from .weights import atomic_write_bytes

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
    render_workers: int = 1
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
    from .figures import write_figure
    from .images import load_rgb

    image = load_rgb(image_path)
    for kind, path in files.items():  # "gradcat" and / or "cam"
        write_figure(kind, image, result, path, fmt)


def save_maps(result: ImageResult, path: Path) -> None:
    """Raw CAMs of the explained classes as one (k, h, w) float32 .npy, written atomically."""
    buf = io.BytesIO()
    np.save(buf, np.stack([p.cam.raw for p in result.predictions]).astype(np.float32))
    atomic_write_bytes(path, buf.getvalue())


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_folder(items: list[InputItem], opts: RunOptions, load_model: Callable[[], Any], weights_id: str, *,
               on_record: Callable[[dict[str, Any]], None] | None = None,
               progress: Callable[[int, int], None] | None = None) -> RunSummary:
    """Process ``items`` into ``opts.out_dir``; ``load_model`` is called only if there is work to do.

    ``on_record`` receives each finished record (for --json); ``progress(done, total)`` ticks.
    """
    t0 = time.perf_counter()
    summary = RunSummary()
    key = options_key(opts.key_fields(weights_id))
    done_before = {} if opts.overwrite else load_done(opts.out_dir)
    todo: list[InputItem] = []
    for item in items:
        rec = done_before.get(str(item.path))
        if rec is not None and is_done(rec, key, opts.out_dir):
            summary.skipped += 1
            if on_record:
                on_record({**_public(rec), "status": "skipped"})
        else:
            todo.append(item)
    if progress:
        progress(summary.skipped, len(items))

    writer = ManifestWriter(opts.out_dir, opts.shard)
    pool: ProcessPoolExecutor | None = None
    inflight: deque[tuple[Future, dict[str, Any]]] = deque()
    old_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise KeyboardInterrupt

    def finish(record: dict[str, Any]) -> None:
        writer.write(record)
        if record["status"] == "ok":
            summary.done += 1
        else:
            summary.failed += 1
            summary.failures.append(f"{record['image']}: {record.get('error', '')}")
        if on_record:
            on_record(record)
        if progress:
            progress(summary.done + summary.failed + summary.skipped, len(items))

    def drain(limit: int) -> None:
        while len(inflight) > limit:
            fut, record = inflight[0]  # popped only once finished: an interrupt here keeps it for the handler
            try:
                fut.result()
            except Exception as e:  # a figure that failed to render is that image's error
                record = {**error_json(record["image"], f"rendering failed: {e}"), "status": "error", "key": key}
            inflight.popleft()
            finish(record)

    try:
        if threading_main():
            signal.signal(signal.SIGTERM, on_term)
        if todo:
            nv = load_model()
            if opts.render and len(todo) > 2 and opts.render_workers > 0:
                ctx = multiprocessing.get_context("spawn")
                pool = ProcessPoolExecutor(opts.render_workers, mp_context=ctx, initializer=_ignore_sigint)
            by_name = {str(i.path): i for i in todo}
            for batch in nv.prepared_batches([str(i.path) for i in todo], opts.batch_size):
                for r in nv.run(batch, opts.mode, top_k=opts.top_k, classes=opts.classes, threshold=opts.threshold):
                    if not isinstance(r, ImageResult):
                        finish({**error_json(r.name, r.error or "unreadable"), "status": "error", "key": key})
                        continue
                    item = by_name[r.image]
                    files = planned_outputs(item, opts)
                    r.outputs = [str(p.relative_to(opts.out_dir)) for p in files.values()]
                    if "maps" in files:
                        save_maps(r, files["maps"])
                    record = {**r.to_json(), "status": "ok", "key": key}
                    figs = {k: str(p) for k, p in files.items() if k != "maps"}
                    if not figs:
                        finish(record)
                    elif pool is None:
                        render_outputs(str(item.path), r, figs, opts.fmt)
                        finish(record)
                    else:
                        inflight.append((pool.submit(render_outputs, str(item.path), r, figs, opts.fmt), record))
                        drain(opts.batch_size + 2 * opts.render_workers)  # a batch's figures queue while the next batch runs
        drain(0)
    except KeyboardInterrupt:
        summary.interrupted = True
        for fut, _ in inflight:
            fut.cancel()
        for fut, record in inflight:  # let figures already being drawn land, atomically
            if not fut.cancelled():
                try:
                    fut.result()
                    finish(record)
                except BaseException:  # noqa: BLE001 - interrupted anyway
                    pass
        inflight.clear()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        writer.close()
        if threading_main():
            signal.signal(signal.SIGTERM, old_term)
    summary.seconds = time.perf_counter() - t0
    write_gallery(opts.out_dir, merge_records(opts.out_dir), title=f"nestviz {opts.mode}", summary=summary.to_dict())
    return summary


def threading_main() -> bool:
    """Signal handlers can only be installed from the main thread."""
    return threading.current_thread() is threading.main_thread()


def _public(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in ("key", "time")}


def dumps(record: dict[str, Any]) -> str:
    """One JSON Lines line."""
    return json.dumps(record, ensure_ascii=False)


__all__ = ["RunOptions", "RunSummary", "run_folder", "check_writable", "planned_outputs", "dumps"]
