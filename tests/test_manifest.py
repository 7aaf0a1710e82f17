"""The manifest: durable JSON lines, torn lines survived, resume decisions, merging shard parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nestviz.batch import manifest as manifest_module
from nestviz.batch.manifest import (ManifestWriter, is_done, load_done, manifest_parts, manifest_path, merge_records,
                              options_key, read_records)


def ok(image: str, key: str = "k1", outputs: list[str] | None = None, label: str = "cat") -> dict:
    return {"image": image, "width": 40, "height": 30, "status": "ok", "key": key, "outputs": outputs or [],
            "predictions": [{"rank": 1, "class_index": 0, "label": label, "probability": 0.75}]}


def error(image: str, key: str = "k1") -> dict:
    return {"image": image, "error": f"{image}: not an image Pillow can read", "status": "error", "key": key}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A controllable time.time for the writer: set ``clock[0]``."""
    now = [1000.0]
    monkeypatch.setattr(manifest_module.time, "time", lambda: now[0])
    return now


def test_options_key_is_stable_and_sensitive() -> None:
    a = {"weights": "sha:abc", "mode": "cam", "top_k": 4, "classes": None, "threshold": 0.2}
    b = dict(reversed(list(a.items())))
    assert options_key(a) == options_key(b) and len(options_key(a)) == 16
    assert options_key(a) != options_key({**a, "top_k": 3})
    assert options_key(a) != options_key({**a, "weights": "sha:abd"})
    assert options_key({**a, "classes": [1, 2]}) != options_key({**a, "classes": [2, 1]})


def test_manifest_names() -> None:
    out = Path("OUT")
    assert manifest_path(out) == out / "manifest.jsonl"
    assert manifest_path(out, (2, 5)) == out / "manifest.part-2-of-5.jsonl"


def test_round_trip_one_line_per_record(tmp_path: Path, clock: list[float]) -> None:
    records = [ok("src/a.jpg", label='odd "label"\nwith a newline'), error("src/b.jpg"), ok("src/ü c.png")]
    with ManifestWriter(tmp_path) as w:
        for r in records:
            w.write(r)
            clock[0] += 1
    lines = (tmp_path / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [{**r, "time": 1000.0 + n} for n, r in enumerate(records)]
    assert load_done(tmp_path) == {(r["image"], ""): {**r, "time": 1000.0 + n} for n, r in enumerate(records)}
    assert [r["image"] for r in merge_records(tmp_path)] == ["src/a.jpg", "src/b.jpg", "src/ü c.png"]


def test_torn_last_line_is_skipped_and_does_not_corrupt_appends(tmp_path: Path, clock: list[float]) -> None:
    with ManifestWriter(tmp_path) as w:
        w.write(ok("a.jpg"))
    path = tmp_path / "manifest.jsonl"
    with open(path, "ab") as f:  # a crash in the middle of a record, inside a UTF-8 sequence
        f.write(json.dumps(ok("torn.jpg"), ensure_ascii=False).encode()[:30] + "é".encode()[:1])
    assert [r["image"] for r in read_records(path)] == ["a.jpg"]
    clock[0] += 1
    with ManifestWriter(tmp_path) as w:
        w.write(ok("b.jpg"))
    assert [r["image"] for r in read_records(path)] == ["a.jpg", "b.jpg"]
    assert path.read_bytes().endswith(b"\n")
    assert set(load_done(tmp_path)) == {("a.jpg", ""), ("b.jpg", "")}


def test_an_empty_or_clean_file_gets_no_extra_line(tmp_path: Path) -> None:
    for _ in range(2):
        with ManifestWriter(tmp_path) as w:
            w.write(ok("a.jpg"))
    assert (tmp_path / "manifest.jsonl").read_bytes().count(b"\n") == 1  # compacted: one current record
    assert b"\n\n" not in (tmp_path / "manifest.jsonl").read_bytes()


def test_later_lines_win_and_skipped_records_do_not_hide_results(tmp_path: Path, clock: list[float]) -> None:
    with ManifestWriter(tmp_path) as w:
        w.write(ok("a.jpg", key="k1"))
        w.write(error("b.jpg"))
        w.write(ok("a.jpg", key="k2"))  # same clock: the later line still wins
        clock[0] += 1
        w.write(ok("b.jpg"))
        w.write({**ok("b.jpg", key="old"), "status": "skipped"})
    done = load_done(tmp_path)
    assert done[("a.jpg", "")]["key"] == "k2"
    assert done[("b.jpg", "")]["status"] == "ok" and done[("b.jpg", "")]["key"] == "k1"


def test_is_done_needs_ok_same_key_and_every_output(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "cat.gradcat.png").write_bytes(b"png")
    (tmp_path / "a" / "cat.cam.png").write_bytes(b"png")
    rec = ok("src/a/cat.jpg", outputs=["a/cat.gradcat.png", "a/cat.cam.png"])
    assert is_done(rec, "k1", tmp_path)
    assert not is_done(rec, "k2", tmp_path)  # options or weights changed
    assert not is_done({**rec, "status": "error"}, "k1", tmp_path)
    assert not is_done(None, "k1", tmp_path)
    (tmp_path / "a" / "cat.cam.png").unlink()
    assert not is_done(rec, "k1", tmp_path)  # a deleted figure is redone
    assert is_done(ok("src/x.jpg", outputs=[]), "k1", tmp_path)  # --no-render: nothing to check


def test_resume_reads_the_latest_record_across_shard_parts(tmp_path: Path, clock: list[float]) -> None:
    with ManifestWriter(tmp_path, (1, 2)) as w:
        w.write(error("a.jpg"))
        w.write(ok("b.jpg"))
    clock[0] += 5
    with ManifestWriter(tmp_path, (0, 2)) as w:
        w.write(ok("c.jpg"))
    clock[0] += 5
    with ManifestWriter(tmp_path) as w:  # a later unsharded run redoes a.jpg
        w.write(ok("a.jpg", key="k9"))
    clock[0] -= 20  # an older record written last to a part that sorts after the others still loses
    with ManifestWriter(tmp_path, (1, 3)) as w:
        w.write(error("c.jpg"))
    (tmp_path / "manifest-notes.jsonl").write_text(json.dumps(error("c.jpg")) + "\n")  # not a manifest part
    assert [p.name for p in manifest_parts(tmp_path)] == [
        "manifest.jsonl", "manifest.part-0-of-2.jsonl", "manifest.part-1-of-2.jsonl", "manifest.part-1-of-3.jsonl"]
    merged = merge_records(tmp_path)
    assert [(r["image"], r["status"], r["key"]) for r in merged] == [
        ("a.jpg", "ok", "k9"), ("b.jpg", "ok", "k1"), ("c.jpg", "ok", "k1")]
    assert load_done(tmp_path) == {(r["image"], ""): r for r in merged}


def test_foreign_lines_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text('[1, 2]\n"text"\n{"no_image": 1}\n{"image": 3}\n\n' + json.dumps(ok("a.jpg")) + "\n")
    assert [r["image"] for r in read_records(path)] == ["a.jpg"]
    assert load_done(tmp_path / "missing") == {} and merge_records(tmp_path / "missing") == []


def test_one_current_record_per_image_and_command_compacted_on_close(tmp_path: Path, clock: list[float]) -> None:
    """Commands sharing OUT keep their records side by side; the file keeps only the current ones."""
    with ManifestWriter(tmp_path) as w:
        for n in range(3):
            w.write({**ok("a.jpg", key=f"e{n}"), "command": "explain"})
            clock[0] += 1
        w.write({**ok("a.jpg", key="c"), "command": "cam"})
        w.write({**ok("b.jpg"), "command": "explain", "status": "skipped"})
    done = load_done(tmp_path)
    assert {k: r["key"] for k, r in done.items()} == {("a.jpg", "explain"): "e2", ("a.jpg", "cam"): "c"}
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert [(json.loads(x)["command"], json.loads(x)["key"]) for x in lines] == [("explain", "e2"), ("cam", "c")]
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.jsonl"]  # no temporary or lock file left


def test_a_run_still_writing_keeps_the_file_from_being_compacted(tmp_path: Path) -> None:
    first = ManifestWriter(tmp_path)
    with ManifestWriter(tmp_path) as second:  # another run into the same OUT, ending first
        second.write({**ok("a.jpg", key="old"), "command": "cam"})
        second.write({**ok("a.jpg", key="new"), "command": "cam"})
    assert len(read_records(tmp_path / "manifest.jsonl")) == 2  # not compacted under the running one
    first.write({**ok("b.jpg"), "command": "cam"})
    first.close()  # the last one out compacts, and nothing it wrote is lost
    assert [(r["image"], r["key"]) for r in read_records(tmp_path / "manifest.jsonl")] == [("a.jpg", "new"),
                                                                                           ("b.jpg", "k1")]
