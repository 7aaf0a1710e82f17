"""The one way nestviz writes a file: whole or not at all.

Data goes to a uniquely named temporary file in the destination folder (two concurrent runs
never share one), is flushed and fsynced, and is renamed over the destination. A failure at
any point removes the temporary file and leaves an older destination as it was.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content into; it replaces ``path`` when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{fit_name(path.name, 14)}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs should be readable like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


NAME_MAX = 255  # bytes in one file name, on most file systems


def fit_name(name: str, suffix_bytes: int) -> str:
    """``name``, or if ``name`` plus ``suffix_bytes`` more would pass :data:`NAME_MAX`, its start and ``~`` and 8 hex
    digits of its hash (the same name always gives the same result; two names that share their start do not)."""
    raw = os.fsencode(name)
    if len(raw) + suffix_bytes <= NAME_MAX:
        return name
    start = os.fsdecode(raw[:max(1, NAME_MAX - suffix_bytes - 9)])
    while start and 0xDC80 <= ord(start[-1]) <= 0xDCFF:  # a character cut in two: drop its first bytes
        start = start[:-1]
    return start + "~" + hashlib.sha1(raw).hexdigest()[:8]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically (a lone surrogate, from a file name that is not UTF-8,
    is written as its ``\\udcXX`` escape)."""
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` says that the disk (or the user's quota on it) is full."""
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_text(folder: str | os.PathLike[str]) -> str:
    """'OUT: no space left on the disk mounted at /mnt/x': one line naming the folder and its disk."""
    mount = Path(os.path.abspath(folder))
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    return f"{folder}: no space left on the disk mounted at {mount}"


def check_writable(out_dir: str | os.PathLike[str]) -> None:
    """Prove that the folder ``out_dir`` can be made and written, creating nothing: a probe file is written (and
    removed) in it or, if it does not exist yet, in its nearest existing parent. OSError (with its reason) if not;
    NotADirectoryError if ``out_dir`` or a parent is a file."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} is a file, not a folder")
    base = out_dir
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise NotADirectoryError(f"{base} is a file, not a folder")
    probe = base / f".nestviz-write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()


__all__ = ["atomic_writer", "atomic_write_bytes", "atomic_write_text", "check_writable", "fit_name", "is_disk_full",
           "disk_full_text"]
