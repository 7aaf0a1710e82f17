"""Folder mode: explain / cam / annotate many images into an output tree, robustly and resumably.

Decoding runs in background threads (``prepared_batches`` of the model object it is handed),
the model runs batched, figures are rendered in a process pool, and every finished image is
appended to OUT/manifest.jsonl. Outputs are written atomically; a re-run skips finished images;
a KeyboardInterrupt (the CLI turns SIGTERM into one) stops cleanly and the next run resumes.
Bad inputs are recorded and the batch goes on. This module installs no signal handlers.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from .._files import check_writable, disk_full_text, is_disk_full
from ..defaults import EXPLAIN_FIT, Variants
from ..results.records import ImageResult, error_json
from .discover import InputItem
from .gallery import merge_predictions, write_gallery
from .outputs import RunOptions, dumps, planned_outputs, public_json, render_outputs, save_maps
from .manifest import ManifestWriter, is_done, load_done, merge_records, options_key, record_id


class Explainer(Protocol):
    """What folder mode needs of the model: ``nestviz.api.Nestviz`` is one."""

    variants: Variants  # what it explains with: the run's options name the same object

    def prepared_batches(self, images: Any, batch_size: int = 16, *, fit: str = EXPLAIN_FIT, keep: bool = False) -> Any: ...

    def run(self, batch: Any, mode: str = "predict", **kw: Any) -> list[ImageResult]: ...

    def label_for_folder(self, folder: str) -> str | None: ...


@dataclass
class RunSummary:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)
    disk_full: str | None = None  # the run stopped: OUT's disk is full (this says which)

    @property
    def images_per_s(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"done": self.done, "failed": self.failed, "skipped": self.skipped,
                "seconds": round(self.seconds, 2), "images_per_s": round(self.images_per_s, 2),
                "interrupted": self.interrupted}


def run_folder(items: list[InputItem], opts: RunOptions, load_model: Callable[[], Explainer], weights_id: str, *,
               on_record: Callable[[dict[str, Any]], None] | None = None,
               progress: Callable[[int, int], None] | None = None,
               worker_init: Callable[[], None] | None = None) -> RunSummary:
    """Process ``items`` into ``opts.out_dir``; ``load_model`` is called only if there is work to do.

    ``on_record`` receives each finished record (for --json); ``progress(done, total)`` ticks;
    ``worker_init`` runs first in each figure-drawing process (the CLI makes them ignore Ctrl-C).
    """
    return _FolderRun(items, opts, weights_id, on_record, progress).run(load_model, worker_init)


SEND_PIXELS = 16_000_000  # a decoded picture up to this size goes to the figure worker; a larger one is read there


def sent_picture(result: ImageResult) -> Any:
    """The decoded picture a figure worker draws from, or None (the worker reads the file): bounded in size, so
    the figures in flight hold at most (batch + 2 x workers) pictures of 48 MB."""
    picture = getattr(result, "picture", None)
    return picture if picture is not None and picture.width * picture.height <= SEND_PIXELS else None


class _FolderRun:
    """One folder run's state: the manifest, the figures being drawn, the counts."""

    def __init__(self, items: list[InputItem], opts: RunOptions, weights_id: str,
                 on_record: Callable[[dict[str, Any]], None] | None,
                 progress: Callable[[int, int], None] | None) -> None:
        self.items, self.opts, self.on_record, self.progress = items, opts, on_record, progress
        self.key = options_key(opts.key_fields(weights_id))
        self.summary = RunSummary()
        self.inflight: deque[tuple[Future, dict[str, Any]]] = deque()
        self.thumbs: dict[str, frozenset] = {}  # image -> the other commands' records its thumbnail was drawn with

    def run(self, load_model: Callable[[], Explainer], worker_init: Callable[[], None] | None) -> RunSummary:
        t0 = time.perf_counter()
        todo = self.skip_finished()
        model = load_model() if todo else None  # a setup error here leaves OUT as it was (or absent)
        if model is not None and model.variants != self.opts.variants:  # the records' keys and names say the run's
            raise ValueError(f"the run's variants are {self.opts.variants}, the model was loaded with {model.variants}")
        try:
            self.writer = ManifestWriter(self.opts.out_dir, self.opts.shard)
        except OSError as e:
            self.stop_for_full_disk(e)
            return self.summary
        pool: ProcessPoolExecutor | None = None
        try:
            if model is not None:
                if self.opts.render and len(todo) > 2 and self.opts.render_workers > 0:
                    pool = ProcessPoolExecutor(self.opts.render_workers, mp_context=multiprocessing.get_context("spawn"),
                                               initializer=start_worker, initargs=(os.getpid(), worker_init))
                self.process(todo, model, pool)
            self.drain(0)
        except KeyboardInterrupt:
            self.summary.interrupted = True
            self.recover()
        except OSError as e:
            self.stop_for_full_disk(e)
            self.recover()
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            self.writer.close()
        self.summary.seconds = time.perf_counter() - t0
        records = merge_records(self.opts.out_dir)
        self.redraw_stale_thumbnails(records)
        commands = sorted({r["command"] for r in records if isinstance(r.get("command"), str)} | {self.opts.mode})
        try:
            write_gallery(self.opts.out_dir, records, title="nestviz " + ", ".join(commands),
                          summary=self.summary.to_dict())
        except OSError as e:
            self.stop_for_full_disk(e)
        return self.summary

    def redraw_stale_thumbnails(self, records: list[dict[str, Any]]) -> None:
        """Another command that wrote OUT while this one ran: the thumbnails drawn before its records came lack its
        marks. Draw those again from every command's current record (the last run to end leaves all complete)."""
        current: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            if r.get("status") == "ok":
                current.setdefault(r["image"], []).append(r)
        for image, drawn_with in self.thumbs.items():
            recs = current.get(image, [])
            own = next((r for r in recs if r.get("command") == self.opts.mode and r.get("key") == self.key), None)
            others = [r for r in recs if r.get("command") != self.opts.mode]
            if own is None or not isinstance(own.get("thumbnail"), str) or _versions(others) == drawn_with:
                continue
            try:
                render_outputs(image, None, {"thumb": str(self.opts.out_dir / own["thumbnail"])}, self.opts.fmt, None,
                               self.thumb_record(own, others))
            except Exception:  # noqa: BLE001, S110 - the thumbnail stays as it was drawn: a picture, not a result
                pass

    def stop_for_full_disk(self, e: OSError) -> None:
        """Record that OUT's disk is full (the run stops; what was written stays valid); other errors go on up."""
        if not is_disk_full(e):
            raise e
        self.summary.disk_full = self.summary.disk_full or disk_full_text(self.opts.out_dir)

    def skip_finished(self) -> list[InputItem]:
        """The items still to do; those an earlier run of this command finished with the same options are
        counted as skipped (records of other commands stand beside them, untouched)."""
        self.before = load_done(self.opts.out_dir)
        self.by_image: dict[str, list[dict[str, Any]]] = {}
        for (image, command), rec in self.before.items():
            if command != self.opts.mode and rec.get("status") == "ok":
                self.by_image.setdefault(image, []).append(rec)
        todo = []
        for item in self.items:
            rec = self.before.get((str(item.path), self.opts.mode))
            if rec is not None and not self.opts.overwrite and is_done(rec, self.key, self.opts.out_dir):
                self.summary.skipped += 1
                if self.on_record:
                    self.on_record({**rec, "status": "skipped"})
            else:
                todo.append(item)
        if self.progress:
            self.progress(self.summary.skipped, len(self.items))
        return todo

    def process(self, todo: list[InputItem], model: Explainer, pool: ProcessPoolExecutor | None) -> None:
        """Run the model over ``todo`` batch by batch; each result's figures go to the pool (or are drawn here)."""
        opts = self.opts
        by_name = {str(i.path): i for i in todo}
        labels = _FolderLabels(model)
        # figures are drawn from the picture decoded for the model: each image is decoded once
        for batch in model.prepared_batches([str(i.path) for i in todo], opts.batch_size, fit=opts.fit,
                                            keep=opts.render):
            for r in model.run(batch, opts.mode, top_k=opts.top_k, classes=opts.classes, threshold=opts.threshold,
                                 check_evidence=True):
                if r.error is not None:
                    self.finish({**r.to_json(), "command": opts.mode, "status": "error", "key": self.key})
                    continue
                item = by_name[r.image]
                r.true_label = labels.of(item)
                files = planned_outputs(item, opts)
                rel = {k: str(p.relative_to(opts.out_dir)) for k, p in files.items()}
                r.outputs = [v for k, v in rel.items() if k != "thumb"]
                record = self.record(r, rel.get("thumb"))
                if "thumb" in files:
                    self.thumbs[r.image] = _versions(self.by_image.get(r.image, []))
                figs = {k: str(p) for k, p in files.items() if k != "maps"}
                args = (str(item.path), r, figs, opts.fmt, opts.figure_options(), self.thumb_record(record),
                        sent_picture(r))
                try:
                    if "maps" in files:
                        save_maps(r, files["maps"])
                    if figs and pool is None:
                        render_outputs(*args)
                except Exception as e:  # noqa: BLE001 - that image's error; a full disk stops the run (run())
                    record = self.failed(record, e, "writing its outputs failed")
                if not figs or pool is None or record["status"] == "error":
                    self.finish(record)
                else:
                    self.inflight.append((pool.submit(render_outputs, *args), record))
                    self.drain(opts.batch_size + 2 * opts.render_workers)  # a batch's figures queue while the next runs

    def record(self, r: ImageResult, thumbnail: str | None) -> dict[str, Any]:
        """The manifest record of a finished image: its JSON with the CAM maps, the command and its options,
        the thumbnail, the true label when known, and the files an earlier record of this command made
        with other options that are still there (``earlier_outputs``: they coexist, and the gallery shows them)."""
        rec = {**r.to_json(maps=True), "command": self.opts.mode, "options": self.opts.options(), "status": "ok",
               "key": self.key}
        if thumbnail:
            rec["thumbnail"] = thumbnail
        if r.true_label:
            rec["true_label"] = r.true_label
        old = self.before.get(record_id(rec)) or {}
        kept = [o for o in (old.get("outputs") or []) + (old.get("earlier_outputs") or [])
                if isinstance(o, str) and o not in r.outputs and (self.opts.out_dir / o).is_file()]
        if kept:
            rec["earlier_outputs"] = list(dict.fromkeys(kept))
        return rec

    def thumb_record(self, record: dict[str, Any], others: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """What the image's thumbnail shows: its predictions merged over every command's current record
        (the GradCAT path of explain, the CAM box of cam), this one's first."""
        others = self.by_image.get(record["image"], []) if others is None else others
        return {"width": record["width"], "height": record["height"],
                "predictions": merge_predictions([record, *others])}

    def finish(self, record: dict[str, Any]) -> None:
        """Record one finished image: manifest line, counts, --json, progress."""
        self.writer.write(record)
        if record["status"] == "ok":
            self.summary.done += 1
        else:
            self.summary.failed += 1
            error = str(record.get("error", ""))
            self.summary.failures.append(error if error.startswith(record["image"]) else f"{record['image']}: {error}")
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
            except Exception as e:  # noqa: BLE001 - a figure that failed to render is that image's error
                record = self.failed(record, e, "rendering failed")
            self.inflight.popleft()
            self.finish(record)

    def failed(self, record: dict[str, Any], e: Exception, what: str) -> dict[str, Any]:
        """The error record of an image whose outputs could not be written; a full disk is no image's error: it
        stops the run (re-raised). The text names OUT's files as the run does (no absolute path of this machine)."""
        if is_disk_full(e):
            raise e
        text = " ".join(str(e).split())
        out = str(self.opts.out_dir)
        for absolute in dict.fromkeys((os.path.abspath(out), os.path.realpath(out))):
            text = text.replace(absolute + os.sep, "" if out == "." else out.rstrip(os.sep) + os.sep)
        return {**error_json(record["image"], f"{record['image']}: {what}: {text}"), "command": self.opts.mode,
                "status": "error", "key": self.key}

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


def _versions(records: list[dict[str, Any]]) -> frozenset:
    """Which records (command, time) a thumbnail was drawn with."""
    return frozenset((r.get("command"), r.get("time")) for r in records)


def start_worker(parent: int, init: Callable[[], None] | None = None) -> None:
    """First thing in each figure worker: end with the main process, even one killed with SIGKILL (Linux: the kernel
    kills the worker; elsewhere a thread watches the parent), then ``init``."""
    try:
        import ctypes

        watched = ctypes.CDLL(None, use_errno=True).prctl(1, 9) == 0  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        watched = False
    if os.getppid() != parent:  # it died before that
        os._exit(1)
    if not watched:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="nestviz-parent-watch").start()
    if init is not None:
        init()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


class _FolderLabels:
    """True labels from class folders (``val/n01440764/x.JPEG`` -> tench), asked of the model once per folder."""

    def __init__(self, model: Explainer) -> None:
        self.model, self.known = model, {}

    def of(self, item: InputItem) -> str | None:
        folder = item.rel.parent.name or item.root.name
        if folder not in self.known:
            self.known[folder] = self.model.label_for_folder(folder) if folder else None
        return self.known[folder]


__all__ = ["Explainer", "RunOptions", "RunSummary", "run_folder", "check_writable", "planned_outputs", "dumps",
           "public_json", "render_outputs"]
