"""The one atomic writer: whole files or none, unique temporary names, durable."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from nestviz import _files
from nestviz._files import atomic_write_bytes, atomic_write_text, atomic_writer


def test_writes_whole_files_readable_by_all(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.bin"
    atomic_write_bytes(path, b"data")
    atomic_write_text(tmp_path / "t.txt", "h\u00e9")
    assert path.read_bytes() == b"data" and (tmp_path / "t.txt").read_text(encoding="utf-8") == "h\u00e9"
    assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.bin"]


def test_a_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(path) as f:
        f.write(b"half")
        raise RuntimeError("boom")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_data_is_fsynced_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = []
    monkeypatch.setattr(_files.os, "fsync", lambda fd: events.append("fsync"))
    replace = os.replace
    monkeypatch.setattr(_files.os, "replace", lambda a, b: events.append("replace") or replace(a, b))
    atomic_write_bytes(tmp_path / "x", b"1")
    assert events == ["fsync", "replace"]


def test_concurrent_writers_never_share_a_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.bin"
    names = set()
    barrier = threading.Barrier(8)

    def write(i: int) -> None:
        with atomic_writer(path) as f:
            names.add(f.name)
            barrier.wait()  # all eight temporary files exist at once
            f.write(bytes([i]) * 1000)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(names) == 8
    data = path.read_bytes()
    assert len(data) == 1000 and len(set(data)) == 1  # one writer's whole content
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]
