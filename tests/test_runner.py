"""Folder mode end to end: mirrored outputs, exact manifest, resume without model work, shards,
interruption by SIGINT, and a gallery that only links files that exist."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nestviz.cli.app import app
from nestviz.defaults import THRESHOLD, CAM_KIND, GRADCAT_SCORE
from nestviz.methods.cam import localize
from nestviz.model.layers import PatchEmbed
from .helpers import manifest, write_image


runner = CliRunner()


def build_tree(root: Path) -> dict[str, str]:
    """A messy input tree; returns {relative path: expected status}."""
    expected = {}
    for rel, seed in (("a/cat.jpg", 1), ("b/cat.jpg", 2), ("b/deep/er/dog.png", 3), ("top.webp", 4)):
        write_image(root / rel, (40 + seed * 4, 36), seed=seed)
        expected[rel] = "ok"
    (root / "a" / "corrupt.jpg").write_bytes((root / "a" / "cat.jpg").read_bytes()[:150])
    (root / "a" / "empty.png").write_bytes(b"")
    (root / "b" / "notes.jpg").write_text("this is text, not a JPEG")
    expected.update({"a/corrupt.jpg": "error", "a/empty.png": "error", "b/notes.jpg": "error"})
    (root / "b" / "readme.txt").write_text("ignored: not an image")
    (root / ".hidden.jpg").write_bytes((root / "a" / "cat.jpg").read_bytes())
    os.symlink(root, root / "b" / "loop")  # a symlink loop back to the root
    return expected


def invoke(*args: object):  # noqa: ANN201
    return runner.invoke(app, [str(a) for a in args])


def test_folder_end_to_end_and_resume(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    expected = build_tree(src)
    result = invoke("annotate", src, "--weights", tiny_weights, "--out", out, "-k", "2", "-q")
    assert result.exit_code == 3, result.output

    records = manifest(out)
    by_rel = {str(Path(r["image"]).relative_to(src)): r for r in records}
    assert set(by_rel) == set(expected)  # each input exactly once; hidden file, txt and loop skipped
    assert len(records) == len(expected)
    for rel, status in expected.items():
        assert by_rel[rel]["status"] == status
    for rel in ("a/corrupt.jpg", "a/empty.png", "b/notes.jpg"):
        assert by_rel[rel]["error"].startswith(str(src / rel) + ": ")
    # mirrored tree: the two cat.jpg do not collide
    assert (out / "a" / "cat.annotate-gradcat.k2.jpg").exists() and (out / "b" / "cat.annotate-gradcat.k2.jpg").exists()
    assert (out / "b" / "deep" / "er" / "dog.annotate-cam.k2.jpg").exists()
    for rel, rec in by_rel.items():
        if rec["status"] == "ok":
            assert len(rec["outputs"]) == 2 and all((out / o).exists() for o in rec["outputs"])
            assert (out / rec["thumbnail"]).exists() and rec["thumbnail"].endswith(".thumb.jpg")
            assert [p["rank"] for p in rec["predictions"]] == [1, 2]
    assert not list(out.rglob("*.tmp"))

    # resume: nothing left to do, so no forward pass at all
    calls = []
    original = PatchEmbed.forward  # every forward pass, predict or explain, starts here
    monkeypatch.setattr(PatchEmbed, "forward", lambda self, x: calls.append(1) or original(self, x))
    again = invoke("annotate", src, "--weights", tiny_weights, "--out", out, "-k", "2", "-q")
    assert again.exit_code == 3  # the bad files are retried and fail again
    assert calls == []  # ... but they fail before any model work
    ok_records = [r for r in manifest(out) if r["status"] == "ok"]
    assert len(ok_records) == 4  # finished images were not redone

    # changing an option that affects outputs redoes the images
    calls.clear()
    redo = invoke("annotate", src, "--weights", tiny_weights, "--out", out, "-k", "1", "-q")
    assert redo.exit_code == 3 and calls

    # a deleted figure is redone on the next run
    (out / "a" / "cat.annotate-cam.k1.jpg").unlink()
    calls.clear()
    invoke("annotate", src, "--weights", tiny_weights, "--out", out, "-k", "1", "-q")
    assert (out / "a" / "cat.annotate-cam.k1.jpg").exists() and len(calls) == 2  # the pass, the removal check


def test_gallery_links_only_existing_files(tiny_weights: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    build_tree(src)
    invoke("explain", src, "--weights", tiny_weights, "--out", out, "-q")
    html = (out / "index.html").read_text()
    data = json.loads((out / "gallery-data.js").read_text().split(" = ", 1)[1].rstrip().rstrip(";"))
    links = [it["thumb"] for it in data["items"] if it["thumb"]]
    assert len(links) == 4, "every explained image has its thumbnail"
    for link in links:
        assert not link.startswith(("http:", "https:", "//")), link
        assert (out / link).exists(), link
    assert "notes.jpg" in html  # failures listed


def test_shards_partition_the_inputs(tiny_weights: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    expected = build_tree(src)
    seen: list[str] = []
    for i in range(3):
        result = invoke("explain", src, "--weights", tiny_weights, "--out", out, "--no-render", "-q", "--shard", f"{i}/3")
        assert result.exit_code in (0, 3)
    parts = sorted(out.glob("manifest*.jsonl"))
    assert len(parts) == 3
    for part in parts:
        seen += [json.loads(line)["image"] for line in part.read_text().splitlines() if line.strip()]
    assert sorted(seen) == sorted(str(src / rel) for rel in expected)  # every input once, in exactly one shard


def test_sigint_leaves_no_partial_files_and_rerun_completes(tiny_weights: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    n = 40
    for i in range(n):
        write_image(src / f"d{i % 4}" / f"im{i:03d}.png", (64, 48), seed=i)
    cmd = [sys.executable, "-m", "nestviz", "explain", str(src), "--weights", str(tiny_weights), "--out", str(out),
           "-q", "--batch-size", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.rglob("*.gradcat.jpg")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]
    records = manifest(out)  # every line parses
    done = {r["image"] for r in records if r["status"] == "ok"}
    assert 0 < len(done) < n, (err, [p.name for p in out.rglob("*")])
    for r in records:
        assert all((out / o).exists() for o in r["outputs"])
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    final = {r["image"] for r in manifest(out) if r["status"] == "ok"}
    assert len(final) == n
    assert len([r for r in manifest(out) if r["status"] == "ok"]) == n  # nothing done twice


def gallery_items(out: Path) -> list[dict]:
    return json.loads((out / "gallery-data.js").read_text().split(" = ", 1)[1].rstrip().rstrip(";"))["items"]


def test_records_carry_command_thumbnail_true_label_and_cam_maps(tiny_weights: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    write_image(src / "Green Thing" / "g.png", (64, 40), seed=1)  # a class folder: the true label
    write_image(src / "misc" / "m.png", (40, 64), seed=2)
    assert invoke("annotate", src, "--weights", tiny_weights, "--out", out, "-k", "2", "--fit", "pad", "-q").exit_code == 0
    recs = {Path(r["image"]).name: r for r in manifest(out)}
    g, m = recs["g.png"], recs["m.png"]
    assert g["command"] == m["command"] == "annotate"
    assert g["options"] == {"top_k": 2, "classes": None, "fit": "pad", "threshold": THRESHOLD, "cam_kind": CAM_KIND,
                            "gradcat_score": GRADCAT_SCORE, "format": "jpg", "render": True, "save_maps": False,
                            "tree": False, "full_size": False}
    assert g["true_label"] == "green thing" and "true_label" not in m
    assert g["thumbnail"] == "Green Thing/g.thumb.jpg" and (out / g["thumbnail"]).stat().st_size > 0
    for pred in g["predictions"]:
        assert np.shape(pred["cam_map"]) == (2, 2)  # the raw top-level map, each value a float32 in its fewest digits
        assert all(repr(v) == str(np.float32(v)) for row in pred["cam_map"] for v in row)
        x0, y0, x1, y1 = pred["cam_region"]  # pad: the square reaches past the 64x40 image
        assert (x0, x1) == (0, 64) and y0 < 0 and y1 > 40
        assert (pred["cam_size"], pred["cam_cmap"], pred["threshold"]) == (32, "inferno", THRESHOLD)
        # what the record carries redraws its box: the map as recorded, at the recorded size and threshold
        (b0, b1, b2, b3), _ = localize(np.asarray(pred["cam_map"], np.float32), pred["cam_size"], pred["threshold"])
        s = (x1 - x0) / pred["cam_size"]
        redrawn = [x0 + b0 * s, max(0.0, y0 + b1 * s), x0 + b2 * s, min(40.0, y0 + b3 * s)]
        assert max(abs(a - b) for a, b in zip(redrawn, pred["box"])) < 0.02, (redrawn, pred["box"])
    items = {it["name"]: it for it in gallery_items(out)}
    assert items["g.png"]["true"] == "green thing" and items["g.png"]["thumb"].endswith("g.thumb.jpg")


def test_commands_sharing_out_coexist_and_alternating_redoes_nothing(tiny_weights: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    for i in range(3):
        write_image(src / f"im{i}.png", (48, 40), seed=i)
    base = ("--weights", tiny_weights, "--out", out, "-q")
    calls = []
    original = PatchEmbed.forward
    monkeypatch.setattr(PatchEmbed, "forward", lambda self, x: calls.append(1) or original(self, x))
    for command in ("explain", "cam", "explain", "cam", "annotate"):
        assert invoke(command, src, *base).exit_code == 0
    assert len(calls) == 6  # explain, cam, annotate once each, with its removal check: alternating redid nothing
    assert invoke("explain", src, "-k", "2", *base).exit_code == 0  # other options: new names, the old stay
    names = sorted(p.name for p in out.iterdir() if p.name.startswith("im0."))
    assert names == ["im0.annotate-cam.jpg", "im0.annotate-gradcat.jpg", "im0.cam.jpg", "im0.gradcat.jpg",
                     "im0.gradcat.k2.jpg", "im0.thumb.jpg"]
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 9  # compacted: one current record per (image, command)
    current = {(Path(r["image"]).name, r["command"]): r for r in manifest(out)}
    assert current[("im0.png", "explain")]["options"]["top_k"] == 2
    assert current[("im0.png", "explain")]["earlier_outputs"] == ["im0.gradcat.jpg"]
    [item] = [it for it in gallery_items(out) if it["name"] == "im0.png"]
    assert item["commands"] == ["annotate", "cam", "explain"]
    details = (out / "gallery-details.js").read_text()
    for name in names[:-1]:  # the gallery links every figure in the folder
        assert name in details, name


def test_a_folder_input_skips_nestviz_output_folders(tiny_weights: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    write_image(src / "a.png", seed=1)
    assert invoke("explain", src, "--weights", tiny_weights, "--out", src / "explained", "-q").exit_code == 0
    result = runner.invoke(app, ["predict", str(src), "--weights", str(tiny_weights), "--json"])
    assert [Path(json.loads(x)["image"]).name for x in result.stdout.splitlines()] == ["a.png"]


def _counting_load_rgb():  # noqa: ANN202
    """images.load_rgb that also writes the path it decodes to $NESTVIZ_TEST_DECODES."""
    import nestviz.images as images

    real = images.load_rgb

    def load_rgb(path, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        with open(os.environ["NESTVIZ_TEST_DECODES"], "a", encoding="utf-8") as f:
            f.write(f"{path}\n")
        return real(path, *a, **k)

    return load_rgb


def count_decodes_in_this_process() -> None:
    """A figure worker's init (spawned, so it imports this): its decodes are counted too."""
    import nestviz.images as images

    images.load_rgb = _counting_load_rgb()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_folder_run_decodes_each_image_once(tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch,
                                              workers: int) -> None:
    """Issue 18: the figures were drawn from a second decode of the file; now from the model's own."""
    import nestviz
    import nestviz.api
    import nestviz.images
    from nestviz.batch.discover import discover
    from nestviz.batch.outputs import RunOptions
    from nestviz.batch.runner import run_folder

    log = tmp_path / "decodes.txt"
    monkeypatch.setenv("NESTVIZ_TEST_DECODES", str(log))
    counting = _counting_load_rgb()
    monkeypatch.setattr(nestviz.api, "load_rgb", counting)  # the model's decode
    monkeypatch.setattr(nestviz.images, "load_rgb", counting)  # a figure drawn in this process
    for n in range(3):
        write_image(tmp_path / "in" / f"i{n}.png", (40 + 4 * n, 36), seed=n)
    items, _ = discover([tmp_path / "in"])
    opts = RunOptions("annotate", tmp_path / "out", top_k=2, fmt="png", render_workers=workers)
    summary = run_folder(items, opts, lambda: nestviz.load(tiny_weights, device="cpu"), "w",
                         worker_init=count_decodes_in_this_process)
    assert summary.done == 3
    assert sorted(log.read_text().splitlines()) == sorted(str(i.path) for i in items)  # once each, in all processes
    assert len(list((tmp_path / "out").rglob("*.png"))) == 6  # and both figures of each were drawn


def test_a_folder_run_reads_the_weights_once(tiny_weights: Path, images: list[Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights file is hashed (the records' key) and loaded from the same bytes: one open, none after."""
    import builtins
    import io

    opened: list[str] = []
    real_open = io.open

    def counting_open(file, *args, **kwargs):  # noqa: ANN001, ANN202
        if isinstance(file, (str, os.PathLike)) and os.path.realpath(file) == os.path.realpath(tiny_weights):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    result = invoke("annotate", images[0].parent, "--weights", tiny_weights, "--out", tmp_path / "out", "-q",
                    "--no-render")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in manifest(tmp_path / "out")] == ["ok"] * len(images)  # the model was loaded
    assert len(opened) == 1, opened
