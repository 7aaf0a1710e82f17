"""``nestviz strategies DIR`` end to end: a real folder run of a tiny NesT, synthetic runs, bad input, the contract."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from nestviz.cli.app import app
from nestviz.strategies.flags import FLAGS
from nestviz.strategies.page import FLAG_TEXT

from .strategies_synth import planted_records, write_run
from .helpers import REPO, write_image

runner = CliRunner()
CONTRACT = {"label", "class_index", "images", "strategies"}
STRATEGY = {"id", "share", "images", "wrong", "flags", "montage"}


def invoke(*args: object):  # noqa: ANN201
    return runner.invoke(app, [str(a) for a in args])


def files(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def test_a_folder_run_records_evidence_and_strategies_group_it(tiny_weights: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    for i in range(9):
        write_image(src / ("red thing" if i % 2 else "blue thing") / f"im{i}.png", (40 + i, 36), seed=i)
    result = invoke("cam", src, "--weights", tiny_weights, "--out", out, "-q", "--json")
    assert result.exit_code == 0, result.output
    assert all("evidence" not in json.loads(line) for line in result.stdout.splitlines())  # --json: the contract
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert all(set(r["evidence"]) == {"class_index", "cells", "grid", "box", "extent", "leaf", "top", "removal"}
               for r in records)
    assert all(r["evidence"]["class_index"] == r["predictions"][0]["class_index"] for r in records)
    result = invoke("strategies", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report == json.loads((out / "strategies.json").read_text())
    assert sum(c["images"] for c in report["classes"]) == 9
    for c in report["classes"]:
        assert CONTRACT <= set(c) and c["images"] == sum(len(s["images"]) for s in c["strategies"])
        for s in c["strategies"]:
            assert STRATEGY <= set(s) and (out / s["montage"]).is_file()
            assert set(s["images"]) <= {r["image"] for r in records}  # image paths exactly as in the manifest
    assert {"strategies.json", "strategies.html"} <= files(out)
    assert 'href="strategies.html"' in (out / "index.html").read_text()  # linked from the gallery
    checked = [s["measures"]["decisive"] for c in report["classes"] for s in c["strategies"]]
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in checked)  # the run removed every image's evidence
    rerun = invoke("cam", src, "--weights", tiny_weights, "--out", out, "-q", "--overwrite")
    assert rerun.exit_code == 0 and 'href="strategies.html"' in (out / "index.html").read_text()


def test_planted_pattern_montage_page_and_hostile_names(tmp_path: Path) -> None:
    records = planted_records(40, 15, "corner", "explain", other=6, shares=(0.25, 1.0))
    records[0]["image"] = 'val/horse/<script>alert("x")</script>.png'
    for r in records[-6:]:
        r["predictions"][0]["label"] = "<b>cat</b> & co"
    out = write_run(tmp_path / "run", records, images=tmp_path)
    result = invoke("strategies", out)
    assert result.exit_code == 0, result.output
    assert "horse: 55 decisions" in result.stdout and "flags: recurring_pattern, single_spot, " in result.stdout
    page = (out / "strategies.html").read_text()
    assert set(FLAG_TEXT) == set(FLAGS) and f'title="{FLAG_TEXT["single_spot"]}">single_spot</span>' in page
    assert re.search(r"spot share 0\.9\d\d|spot share 1\.\d\d\d", page)
    assert "the evidence was not removed in this run" in page  # these records made no removal
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;cat&lt;/b&gt; &amp; co" in page
    assert "http://" not in page and "https://" not in page
    report = json.loads((out / "strategies.json").read_text())
    montage = Image.open(out / report["classes"][0]["strategies"][0]["montage"])
    assert montage.width > 400 and montage.height > 250


def test_bad_input_is_one_line_with_its_exit_code(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke("strategies", empty)
    assert result.exit_code == 2
    assert result.output == (f"nestviz: error: {empty}: not a nestviz run folder (no manifest.jsonl): run nestviz "
                             f"explain, cam or annotate with --out {empty} first\n")
    old = write_run(tmp_path / "old", [{k: v for k, v in r.items() if k != "evidence"}
                                       for r in planted_records(5, 0, command="cam")])
    result = invoke("strategies", old)
    assert result.exit_code == 2
    assert result.output == (f"nestviz: error: {old / 'manifest.jsonl'}: nothing to group (val/horse/n00000.png: no "
                             "evidence recorded (made by an older nestviz)); run nestviz cam again with this version of "
                             "nestviz (--overwrite) to record the evidence\n")
    assert files(old) == {"manifest.jsonl"}  # nothing written
    result = invoke("strategies", old, "--command", "predict")
    assert result.exit_code == 2 and "--command must be one of annotate, cam, explain" in result.output


def test_failed_records_are_left_out_and_named(tmp_path: Path) -> None:
    records = planted_records(12, 0, command="cam")
    records.append({"image": "val/horse/broken.png", "command": "cam", "status": "error", "error": "truncated"})
    out = write_run(tmp_path / "run", records)
    (out / "manifest.jsonl").write_text((out / "manifest.jsonl").read_text() + '{"image": "torn', encoding="utf-8")
    result = invoke("strategies", out, "-q", "--no-montage")
    assert result.exit_code == 3
    assert result.output == "nestviz: left out: val/horse/broken.png: failed in the run: truncated\n"
    report = json.loads((out / "strategies.json").read_text())
    assert report["decisions"] == 12 and report["classes"][0]["strategies"][0]["montage"] is None


def test_strategies_never_import_torch(tmp_path: Path) -> None:
    out = write_run(tmp_path / "run", planted_records(20, 8, other=3), images=tmp_path)
    code = ("import sys; from nestviz.cli.app import main; sys.argv = ['nestviz', 'strategies', sys.argv[1], '-q']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, cwd=REPO)
    assert done.stdout.strip().endswith("NO-TORCH"), done.stderr
