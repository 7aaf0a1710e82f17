"""OUT/manifest.jsonl: one JSON line per finished image and command, appended as it finishes, read back to resume.

A record is the ``--json`` object of an image (``image``, ``width``, ``height``, ``predictions``,
``outputs``; ``outputs`` relative to OUT) plus ``command`` (explain, cam, annotate), ``options``
(those that made its outputs), ``status`` ("ok" | "error"), ``error`` for failures, ``key``
(``options_key`` of the weights and output options) and ``time`` (added by the writer, seconds
since the epoch). Shard I of N writes ``manifest.part-I-of-N.jsonl``. Each line is flushed and
fsynced, so a killed process leaves at most one torn last line, which readers skip and the next
writer closes with a newline.

The current record of an (image, command) is its latest; several commands' records of one image
stand side by side. When a run ends, its manifest file is compacted to the current records
(atomically, under a lock: a run still writing the same file keeps it from being compacted until
it ends, and then compacts it itself).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from .._files import atomic_write_bytes, is_disk_full
from .._text import json_text

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock, compaction goes ahead
    fcntl = None  # type: ignore[assignment]

MANIFEST = "manifest.jsonl"
PART = re.compile(r"manifest\.part-(\d+)-of-(\d+)\.jsonl")


def manifest_path(out_dir: Path, shard: tuple[int, int] | None = None) -> Path:
    """The manifest file of a run, or of shard ``(I, N)`` of one."""
    return out_dir / (MANIFEST if shard is None else f"manifest.part-{shard[0]}-of-{shard[1]}.jsonl")


def options_key(fields: dict[str, Any]) -> str:
    """A stable digest of everything that changes an image's outputs (weights identity, options)."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ManifestWriter:
    """Appends records to a run's manifest, one durable line each."""

    def __init__(self, out_dir: Path, shard: tuple[int, int] | None = None, fsync: bool = True):
        self.path = manifest_path(Path(out_dir), shard)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._file = _open_shared(self.path)
        try:
            if self._file.tell() > 0 and not _ends_with_newline(self.path):
                self._file.write(b"\n")  # end a line torn by a crash, so it does not swallow the next record
        except OSError:
            self._file.close()
            raise

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` (plus the current ``time``) as one line and push it to disk."""
        line = memoryview((json_text({**record, "time": round(time.time(), 3)}) + "\n").encode())  # any name
        fd = self._file.fileno()
        start = os.fstat(fd).st_size
        try:
            while line:  # unbuffered: a short write (a full disk) is seen here, not at close
                line = line[self._file.write(line):]
            if self.fsync:
                os.fsync(fd)
        except OSError:
            if os.fstat(fd).st_size > start:
                os.ftruncate(fd, start)  # no torn line: the file stays as it was before this record
            raise

    def close(self) -> None:
        """Compact the file unless another run still writes it (that run compacts it when it ends), then close it."""
        try:
            if fcntl is not None:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            compact(self.path)
        except BlockingIOError:
            pass
        except OSError as e:  # no room to compact: the appended lines stand, valid
            if not is_disk_full(e):
                raise
        finally:
            self._file.close()

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_shared(path: Path):  # noqa: ANN202 - a binary file
    """``path`` opened to append, with a shared lock on the file that is ``path`` now (a compaction that
    replaced it while we waited means opening the new one)."""
    while True:
        f = open(path, "ab", buffering=0)  # noqa: SIM115 - held open for the run, closed by ManifestWriter.close()
        if fcntl is None:
            return f
        fcntl.flock(f, fcntl.LOCK_SH)
        try:
            if os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
                return f
        except FileNotFoundError:
            pass
        f.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def manifest_parts(out_dir: Path) -> list[Path]:
    """The manifest files in ``out_dir``: the unsharded one first, then parts by N and I."""
    parts = []
    for p in Path(out_dir).glob("manifest*.jsonl"):
        m = PART.fullmatch(p.name)
        if p.name == MANIFEST:
            parts.append(((0, 0), p))
        elif m:
            parts.append(((int(m[2]), int(m[1])), p))
    return [p for _, p in sorted(parts)]


def read_records(path: Path) -> list[dict[str, Any]]:
    """The valid records of one manifest file in order; torn or foreign lines are skipped."""
    records = []
    for line in Path(path).read_bytes().split(b"\n"):
        try:
            rec = json.loads(line)
        except ValueError:  # includes bad UTF-8 and the empty string
            continue
        if isinstance(rec, dict) and isinstance(rec.get("image"), str):
            records.append(rec)
    return records


def record_id(rec: dict[str, Any]) -> tuple[str, str]:
    """What a record is the current one of: (image, command); "" for records older than commands in records."""
    command = rec.get("command")
    return rec["image"], command if isinstance(command, str) else ""


def _latest(parts: list[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """The latest record per :func:`record_id` in ``parts``: the largest ``time``, then the later part and line.
    "skipped" records are ignored: they only say that an earlier record still stands."""
    return _current([(part_no, line_no, rec) for part_no, part in enumerate(parts)
                     for line_no, rec in enumerate(read_records(part))])


def _current(records: list) -> dict[tuple[str, str], dict[str, Any]]:  # noqa: ANN001
    """The latest of ``records`` (dicts in file order, or (part, line, dict)) per :func:`record_id`."""
    latest: dict[tuple[str, str], tuple[tuple[float, int, int], dict[str, Any]]] = {}
    for n, item in enumerate(records):
        part_no, line_no, rec = item if isinstance(item, tuple) else (0, n, item)
        if rec.get("status") == "skipped":
            continue
        t = rec.get("time")
        order = (float(t) if isinstance(t, (int, float)) else float("-inf"), part_no, line_no)
        old = latest.get(record_id(rec))
        if old is None or order >= old[0]:
            latest[record_id(rec)] = (order, rec)
    return {rid: rec for rid, (_, rec) in latest.items()}


def load_done(out_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The current record of each (image, command) across all manifest parts in ``out_dir`` (for resume).
    Use :func:`is_done` to decide whether it still stands."""
    return _latest(manifest_parts(out_dir))


def compact(path: Path) -> None:
    """Rewrite one manifest file with only its current records, in their order (atomically)."""
    if not path.is_file():
        return
    records = read_records(path)
    keep = {id(r) for r in _current(records).values()}
    records = [r for r in records if id(r) in keep]
    atomic_write_bytes(path, b"".join(json_text(r).encode() + b"\n" for r in records))


def is_done(record: dict[str, Any] | None, key: str, out_dir: Path) -> bool:
    """An image needs no work when its current record is ok, has ``key``, and all its files exist."""
    if not record or record.get("status") != "ok" or record.get("key") != key:
        return False
    outputs = record.get("outputs")
    files = (outputs if isinstance(outputs, list) else [None]) + (
        [record["thumbnail"]] if "thumbnail" in record else [])
    return all(isinstance(o, str) and (Path(out_dir) / o).is_file() for o in files)


def merge_records(out_dir: Path) -> list[dict[str, Any]]:
    """The current record of each (image, command) across all parts, sorted by image and command (for the gallery)."""
    return [rec for _, rec in sorted(load_done(out_dir).items())]


__all__ = ["ManifestWriter", "record_id", "compact", "options_key", "manifest_path", "manifest_parts", "read_records", "load_done",
           "is_done", "merge_records"]
