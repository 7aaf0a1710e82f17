"""The command line through Typer's runner, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nestviz.defaults import CAM_KIND
import torch
from typer.testing import CliRunner

from nestviz.api import Nestviz
from nestviz.cli.app import app
from .helpers import TINY_CLASSES, write_image


runner = CliRunner()


def run(*args: str):  # noqa: ANN201
    return runner.invoke(app, [str(a) for a in args])


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("command", ["predict", "info", "evaluate", "explain", "cam", "annotate", "train", "metrics",
                                     "strategies"])
def test_every_command_has_help(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Exit codes" in result.output


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and result.output.startswith("nestviz 0.")


def test_help_does_not_import_torch() -> None:
    code = ("import sys; sys.argv = ['nestviz', '--help']\nimport nestviz.cli.app as c\ntry:\n    c.main()\n"
            "except SystemExit:\n    pass\nprint('TORCH' if 'torch' in sys.modules else 'NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("NO-TORCH")


def test_predict_json_contract_and_partial_failure(tiny_weights: Path, images: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "in" / "broken.jpg"
    bad.write_text("not an image")
    result = run("predict", tmp_path / "in", "--weights", tiny_weights, "--json", "--top-k", "2")
    assert result.exit_code == 3
    records = {Path(r["image"]).name: r for r in json_lines(result.stdout)}
    assert set(records) == {"broken.jpg", "img0.png", "img1.png", "img2.png"}
    assert set(records["broken.jpg"]) == {"image", "error"}
    assert records["broken.jpg"]["error"].endswith("broken.jpg: not an image Pillow can read")
    ok = records["img1.png"]
    assert set(ok) == {"image", "width", "height", "predictions"}
    assert (ok["width"], ok["height"]) == (48, 36)
    preds = ok["predictions"]
    assert [p["rank"] for p in preds] == [1, 2]
    assert set(preds[0]) == {"rank", "class_index", "label", "probability"}
    assert preds[0]["label"] == TINY_CLASSES[preds[0]["class_index"]]
    assert preds[0]["probability"] >= preds[1]["probability"]


def test_predict_matches_the_api(tiny_weights: Path, images: list[Path]) -> None:
    result = run("predict", images[0], "--weights", tiny_weights, "--json", "--top-k", "3")
    assert result.exit_code == 0
    [record] = json_lines(result.stdout)
    [expected] = Nestviz.load(tiny_weights, device="cpu").predict([images[0]], top_k=3)
    assert [p["class_index"] for p in record["predictions"]] == [p.class_index for p in expected.predictions]
    assert np.allclose([p["probability"] for p in record["predictions"]],
                       [p.probability for p in expected.predictions], atol=1e-6)


def test_predict_table(tiny_weights: Path, images: list[Path]) -> None:
    result = run("predict", images[0], "--weights", tiny_weights)
    assert result.exit_code == 0
    assert "img0.png" in result.stdout and "%" in result.stdout


@pytest.mark.parametrize("args, code, message", [
    (["predict", "IMG", "--weights", "missing.safetensors"], 2, "missing.safetensors: no such file"),
    (["predict", "nowhere/"], 2, "no input images found"),
    (["predict", "IMG", "--weights", "W", "--device", "cuda:7"], 2, "not available"),
    (["predict", "IMG", "--weights", "W", "--device", "tpu"], 2, "unknown device 'tpu'"),
    (["explain", "IMG", "--weights", "W", "--device", "cuda:7", "--out", "OUT"], 2, "not available"),  # no stray bar
    (["explain", "IMG", "--weights", "W", "--format", "bmp"], 2, "--format must be png, jpg, svg or pdf"),
    (["explain", "IMG", "--weights", "W", "--class", "zebra", "--out", "OUT"], 2, "class 'zebra' matches no class"),
    (["cam", "IMG", "--weights", "W", "--threshold", "1.5"], 2, "--threshold must be between 0 and 1"),
    (["explain", "IMG", "--weights", "W", "--shard", "4/4", "--out", "OUT"], 2, "shard"),
])
def test_setup_errors_are_one_line_exit_2(args: list[str], code: int, message: str, tiny_weights: Path,
                                          images: list[Path], tmp_path: Path) -> None:
    subst = {"IMG": str(images[0]), "W": str(tiny_weights), "OUT": str(tmp_path / "out")}
    result = run(*[subst.get(a, a) for a in args])
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nestviz: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_out_naming_a_file_is_exit_2_and_says_so(tiny_weights: Path, images: list[Path], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        result = run("explain", images[0], "--weights", tiny_weights, "--out", out)
        assert result.exit_code == 2
        assert result.stderr.strip() == f"nestviz: error: --out {out}: {blocker} is a file, not a folder"
    assert blocker.read_text() == "x"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_out_is_exit_2_before_model_work(tiny_weights: Path, images: list[Path], tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run("explain", images[0], "--weights", tiny_weights, "--out", locked / "sub")
    assert result.exit_code == 2
    assert "output folder is not writable" in result.stderr


@pytest.mark.parametrize("args", [["--class", "zebra"], ["--fit", "stretch"], ["--weights", "missing.safetensors"],
                                  ["--shard", "9/2"]])
def test_a_setup_error_leaves_no_output_folder(tiny_weights: Path, images: list[Path], tmp_path: Path,
                                               args: list[str]) -> None:
    out = tmp_path / "new" / "out"
    args = args if "--weights" in args else ["--weights", str(tiny_weights), *args]
    result = run("annotate", images[0], "--out", out, *args)
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "new").exists()
    bad_weights = tmp_path / "bad.safetensors"
    bad_weights.write_bytes(b"not a checkpoint")
    result = run("cam", images[0], "--out", out, "--weights", bad_weights)
    assert result.exit_code == 2 and not (tmp_path / "new").exists(), result.output


def test_explain_writes_figures_and_json(tiny_weights: Path, images: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("explain", images[1], "--weights", tiny_weights, "--out", out, "--json", "-k", "2", "-q")
    assert result.exit_code == 0, result.output
    [record] = json_lines(result.stdout)
    assert set(record) == {"image", "width", "height", "predictions", "outputs"}
    assert record["outputs"] == ["img1.gradcat.k2.jpg"]  # -k 2 is not explain's default: the name says so
    assert (out / "img1.gradcat.k2.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    pred = record["predictions"][0]
    assert set(pred) == {"rank", "class_index", "label", "probability", "path"}
    path = pred["path"]
    assert [n["level"] for n in path] == [3, 2, 1]
    assert set(path[0]) == {"level", "node", "box", "score", "child_scores", "chosen_child", "removal_drops"}
    assert path[-1]["child_scores"] is None and path[-1]["chosen_child"] is None
    for parent, child in zip(path, path[1:]):
        assert len(parent["child_scores"]) == 4
        assert parent["child_scores"][parent["chosen_child"]] == pytest.approx(child["score"])
        px0, py0, px1, py1 = parent["box"]
        cx0, cy0, cx1, cy1 = child["box"]
        assert px0 - 1e-6 <= cx0 < cx1 <= px1 + 1e-6 and py0 - 1e-6 <= cy0 < cy1 <= py1 + 1e-6
    assert (out / "manifest.jsonl").exists() and (out / "index.html").exists()


def test_cam_json_and_saved_maps(tiny_weights: Path, images: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run("cam", images[2], "--weights", tiny_weights, "--out", out, "--json", "-k", "2",
                 "--save-maps", "--no-render", "--threshold", "0.3", "--cam-kind", "logit", "-q")
    assert result.exit_code == 0, result.output
    [record] = json_lines(result.stdout)
    name = "img2.cam.k2.t0.3.npz" if CAM_KIND == "logit" else "img2.cam.k2.logit.t0.3.npz"
    assert record["outputs"] == [name]
    saved = np.load(out / name)
    maps = saved["maps"]
    assert maps.shape == (2, 2, 2)  # k classes x the 2x2 top-level map of the tiny model
    assert saved["class_index"].tolist() == [p["class_index"] for p in record["predictions"]]
    assert saved["rank"].tolist() == [1, 2] and saved["label"].tolist() == [p["label"] for p in record["predictions"]]
    pred = record["predictions"][0]
    assert set(pred) == {"rank", "class_index", "label", "probability", "box", "peak", "threshold"}
    assert pred["threshold"] == 0.3
    x0, y0, x1, y1 = pred["box"]
    assert 0 <= x0 < x1 <= 56 and 0 <= y0 < y1 <= 40
    # the saved map is the logit CAM of that class (placed where its cells see), whose cells' mean is the logit
    from nestviz.methods.cam import cam, cam_cells

    nv = Nestviz.load(tiny_weights, device="cpu")
    x = nv.prepare(images[2]).tensor[None]
    idx = pred["class_index"]
    with torch.no_grad():
        logit = float(nv.model(x)[0, idx])
        cells = cam_cells(nv.model, nv.model.forward_features(x), torch.tensor([[idx]]), "logit")
    np.testing.assert_allclose(maps[0], cam(nv.model, x, classes=[idx], kind="logit").maps[0, 0].numpy(), atol=1e-5)
    assert float(cells.mean()) == pytest.approx(logit, abs=1e-5)


def test_explain_named_classes(tiny_weights: Path, images: list[Path], tmp_path: Path) -> None:
    result = run("explain", images[0], "--weights", tiny_weights, "--out", tmp_path / "o", "--json",
                 "--class", "blue thing", "--class", "0", "--no-render", "-q")
    assert result.exit_code == 0, result.output
    [record] = json_lines(result.stdout)
    assert [p["class_index"] for p in record["predictions"]] == [2, 0]


def test_info(tiny_weights: Path) -> None:
    result = run("info", "--weights", tiny_weights, "--json")
    assert result.exit_code == 0
    card = json.loads(result.stdout)
    assert card["class_names"] == TINY_CLASSES
    assert card["config"]["num_levels"] == 3
    assert card["preprocessing"]["input_size"] == 32


def test_evaluate_exact_numbers(tiny_weights: Path, tmp_path: Path) -> None:
    """Label a folder with the model's own predictions for some images and wrong labels for others."""
    nv = Nestviz.load(tiny_weights, device="cpu")
    pool = [write_image(tmp_path / "pool" / f"p{i}.png", (36, 36), seed=10 + i) for i in range(6)]
    preds = [r.predictions[0].class_index for r in nv.predict(pool, top_k=1)]
    data = tmp_path / "data"
    for i, (p, c) in enumerate(zip(pool, preds)):
        label = c if i < 4 else (c + 1) % 3  # 4 right, 2 wrong
        dest = data / TINY_CLASSES[label] / p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(p.read_bytes())
    for name in TINY_CLASSES:
        (data / name).mkdir(parents=True, exist_ok=True)
    result = run("evaluate", data, "--weights", tiny_weights, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 6
    assert report["top1"] == pytest.approx(4 / 6)
    assert report["top5"] == 1.0  # 3 classes: the true one is always in the top 5
    assert sum(d["images"] for d in report["per_class"].values()) == 6
    assert sum(d["images"] for d in report["confusions"]) == 2


def test_real_subprocess(tiny_weights: Path, images: list[Path]) -> None:
    proc = subprocess.run([sys.executable, "-m", "nestviz", "predict", str(images[0]), "--weights", str(tiny_weights),
                           "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    [record] = json_lines(proc.stdout)
    assert record["image"] == str(images[0])


def test_batch_matches_single(tiny_weights: Path, images: list[Path]) -> None:
    nv = Nestviz.load(tiny_weights, device="cpu")
    batch = [nv.prepare(p) for p in images]
    x = torch.stack([b.tensor for b in batch])
    with torch.no_grad():
        together = nv.model(x)
        alone = torch.cat([nv.model(x[i:i + 1]) for i in range(len(x))])
    assert torch.allclose(together, alone, atol=1e-5)
    explained = nv.explain(images, top_k=2, batch_size=3)
    singles = [nv.explain([p], top_k=2, batch_size=1)[0] for p in images]
    for a, b in zip(explained, singles):
        assert [p.class_index for p in a.predictions] == [p.class_index for p in b.predictions]
        for pa, pb in zip(a.predictions, b.predictions):
            assert [n.node for n in pa.path] == [n.node for n in pb.path]
            assert np.allclose([n.score for n in pa.path], [n.score for n in pb.path], rtol=1e-4, atol=1e-6)


def test_every_option_of_every_command_has_help_text() -> None:
    import typer.main

    group = typer.main.get_command(app)
    missing = [f"{name} {p.opts[0]}" for name, cmd in group.commands.items() for p in cmd.params
               if p.param_type_name == "option" and not (p.help or "").strip()]
    assert missing == []


def test_folder_commands_print_each_image_with_its_leaf_and_box(tiny_weights: Path, images: list[Path],
                                                                 tmp_path: Path) -> None:
    result = run("annotate", *images[:2], "--weights", tiny_weights, "--out", tmp_path / "o", "-k", "2")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for image in images[:2]:
        at = lines.index(str(image))
        assert all(lines[at + 1 + r].startswith(f"  #{r + 1} ") for r in range(2))
        assert " leaf [" in lines[at + 1] and " box [" in lines[at + 1] and " peak (" in lines[at + 1]
    assert f"what the decisions share: nestviz strategies {tmp_path / 'o'}" in result.stderr.splitlines()
    again = run("annotate", images[0], "--weights", tiny_weights, "--out", tmp_path / "o", "-k", "2")
    assert f"{images[0]}  (done earlier)" in again.stdout


def test_quiet_hides_progress_never_errors_and_failures_are_named_once(tiny_weights: Path, images: list[Path],
                                                                     tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    quiet = run("cam", images[0], bad, "--weights", tiny_weights, "--out", tmp_path / "q", "-q")
    assert quiet.exit_code == 3 and quiet.stdout == ""
    assert quiet.stderr.splitlines() == [f"nestviz: error: {bad}: empty file (0 bytes)"]
    loud = run("cam", images[0], bad, "--weights", tiny_weights, "--out", tmp_path / "l")
    assert loud.stderr.count(str(bad)) == 2  # as it happened, and in the summary: never "bad.png: bad.png"
    assert f"{bad}: {bad}" not in loud.stderr and f"failed: {bad}: empty file (0 bytes)" in loud.stderr


def test_top_k_above_the_class_count_says_so_once(tiny_weights: Path, images: list[Path], tmp_path: Path) -> None:
    for args in (["predict", *images], ["explain", *images, "--out", tmp_path / "o", "-q"]):
        result = run(*args, "--weights", tiny_weights, "-k", "5")
        assert result.exit_code == 0, result.output
        note = "nestviz: note: --top-k 5 is more than the model's 3 classes; showing all 3"
        assert result.stderr.count(note) == 1, result.stderr


@pytest.mark.parametrize("fit", ["crop", "pad", "squash"])
def test_fit_on_every_command(tiny_weights: Path, images: list[Path], tmp_path: Path, fit: str) -> None:
    for command in ("predict", "explain", "cam", "annotate"):
        extra = [] if command == "predict" else ["--out", tmp_path / fit, "-q"]
        result = run(command, images[2], "--weights", tiny_weights, "--fit", fit, "--json", *extra)
        assert result.exit_code == 0, result.output
        [record] = json_lines(result.stdout)
        api = getattr(Nestviz.load(tiny_weights, device="cpu"), command)(images[2], fit=fit)[0]
        assert record["predictions"][0]["class_index"] == api.predictions[0].class_index
    data = tmp_path / "data" / "green thing"
    write_image(data / "x.png")
    assert run("evaluate", tmp_path / "data", "--weights", tiny_weights, "--fit", fit).exit_code == 0
