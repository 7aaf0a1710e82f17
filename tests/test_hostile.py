"""Issue 21, hostile inputs (second round): each test reproduces one way an attacker or an unlucky user broke a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CHELSEA = REPO / "examples" / "chelsea.jpg"


def nestviz_subprocess(*args: str, cwd: Path, limit_bytes: int | None = None,
                       env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m nestviz ARGS`` in a fresh process (optionally under an address-space limit), this checkout first."""
    code = "import sys, runpy\n"
    if limit_bytes:
        code += f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit_bytes}, {limit_bytes}))\n"
    code += "sys.argv = ['nestviz', *sys.argv[1:]]; runpy.run_module('nestviz', run_name='__main__')\n"
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          env=full_env, timeout=300)


def test_an_extreme_aspect_ratio_is_explained_in_bounded_memory(tmp_path: Path) -> None:
    """A 40000 x 1 PNG (under 300 bytes) under crop was resized to 11.7M x 292 pixels (10 GB) first."""
    Image.new("RGB", (40000, 1), (200, 30, 30)).save(tmp_path / "w.png")
    Image.new("RGB", (1, 40000), (30, 30, 200)).save(tmp_path / "t.png")
    assert (tmp_path / "w.png").stat().st_size < 1000
    proc = nestviz_subprocess("explain", "w.png", "t.png", str(CHELSEA), "--out", "o", "-q", "--fit", "crop",
                              cwd=tmp_path, limit_bytes=3 * 2 ** 30)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in (tmp_path / "o" / "manifest.jsonl").read_text().splitlines()]
    assert sorted(Path(r["image"]).name for r in records if r["status"] == "ok") == ["chelsea.jpg", "t.png", "w.png"]
    wide = next(r for r in records if r["image"] == "w.png")
    assert (wide["width"], wide["height"]) == (40000, 1)


@pytest.mark.parametrize("fit", ["crop", "pad", "squash"])
def test_preprocessing_keeps_timms_pixels_and_bounds_extreme_shapes(fit: str) -> None:
    from nestviz.preprocess import Preprocessing, plan_geometry, resize_and_crop

    pre = Preprocessing(input_size=64)
    photo = Image.open(CHELSEA).convert("RGB")
    arr, geo = resize_and_crop(photo, pre, fit)
    if fit != "pad":  # an ordinary photo: exactly the whole image resized, then cropped (timm's transform)
        whole = photo.resize((geo.resized_width, geo.resized_height), Image.Resampling.BICUBIC)
        assert (arr == np.asarray(whole.crop((geo.left, geo.top, geo.left + 64, geo.top + 64)))).all()
    arr, geo = resize_and_crop(Image.new("RGB", (40000, 1), (10, 20, 30)), pre, fit)
    assert arr.shape == (64, 64, 3) and geo == plan_geometry(40000, 1, pre, fit)
    if fit != "pad":
        assert (arr == (10, 20, 30)).all()


# -- names: shown as written, recorded losslessly (items 2, 4, 5) -----------------------------------------------------
def cli(*args: object):  # noqa: ANN201
    from typer.testing import CliRunner

    from nestviz.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args])


def records_of(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_bytes().decode("utf-8").splitlines()]


def test_rich_markup_in_file_names_is_shown_as_written(tiny_weights: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """'d/[/]x.jpg' was a MarkupError (exit 1), '[bold]B.jpg' printed as a bold 'B.jpg', a [link=...] a hyperlink."""
    from .helpers import write_image

    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "d" / "[" / "]x.jpg")
    write_image(tmp_path / "d" / "[bold]B.jpg", seed=1)
    write_image(tmp_path / "d" / "[link=http:⁄⁄e.x]L.jpg", seed=2)
    result = cli("predict", "d", "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    assert "[bold]B.jpg" in result.stdout and "]x.jpg" in result.stdout and "[link=http:⁄⁄e.x]L.jpg" in result.stdout


def test_control_characters_in_names_are_escaped_and_drawn(tiny_weights: Path, tmp_path: Path) -> None:
    """ESC and CR reached the terminal raw; a CR or U+2028 failed in Pillow's text layout and ended the run
    (two images: the figures are drawn in the main process)."""
    from .helpers import write_image

    write_image(tmp_path / "d" / "a\x1b[31mred\rb.jpg")
    write_image(tmp_path / "d" / "c\u2028d.jpg", seed=1)
    result = cli("explain", tmp_path / "d", "--weights", tiny_weights, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\r" not in result.stdout and "\u2028" not in result.stdout
    assert "a\\x1b[31mred\\rb.jpg" in result.stdout and "c\\u2028d.jpg" in result.stdout
    assert (tmp_path / "o" / "a\x1b[31mred\rb.gradcat.jpg").is_file() and (tmp_path / "o" / "c\u2028d.thumb.jpg").is_file()


def test_shown_escapes_controls_bidi_and_undecodable_bytes() -> None:
    from nestviz._text import shown

    assert shown("plain é 猫 [bold].jpg") == "plain é 猫 [bold].jpg"
    assert shown("a\x1b\r\n\t\x7f\u2028\u202e" + os.fsdecode(b"\xff") + ".jpg") == \
        "a\\x1b\\r\\n\\t\\x7f\\u2028\\u202e\\xff.jpg"


def test_a_name_that_is_not_utf8_is_processed_and_recorded_losslessly(tiny_weights: Path, tmp_path: Path) -> None:
    from .helpers import write_image

    folder = tmp_path / "u"
    write_image(folder / "ok.jpg")
    bad = Path(os.fsdecode(os.fsencode(folder) + b"/b\xff.jpg"))
    write_image(tmp_path / "x.jpg", seed=1).rename(bad)
    out = tmp_path / "uo"
    result = cli("explain", folder, "--weights", tiny_weights, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    recs = records_of(out)
    assert sorted(os.fsencode(r["image"]) for r in recs) == sorted([os.fsencode(bad), os.fsencode(folder / "ok.jpg")])
    assert all(r["status"] == "ok" for r in recs)
    assert (out / "index.html").is_file() and b"b%FF.thumb.jpg" in (out / "gallery-data.js").read_bytes()
    assert len([json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]) == 2
    again = cli("explain", folder, "--weights", tiny_weights, "--out", out, "-q")
    assert again.exit_code == 0 and len(records_of(out)) == 2  # resumed: both skipped


def test_a_figure_that_fails_with_few_images_is_that_images_error(tiny_weights: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With two images or fewer the figures are drawn in this process: a failure there ended the run."""
    import nestviz.batch.runner as runner
    from .helpers import write_image

    original = runner.render_outputs

    def render(image_path: str, *args: object) -> None:
        if "bad" in image_path:
            raise RuntimeError("raqm_layout() failed.")
        original(image_path, *args)

    monkeypatch.setattr(runner, "render_outputs", render)
    monkeypatch.chdir(tmp_path)
    imgs = [write_image(tmp_path / "in" / "bad.jpg"), write_image(tmp_path / "in" / "good.jpg", seed=1)]
    result = cli("explain", *imgs, "--weights", tiny_weights, "--out", "o", "-q", "-k", "3")
    assert result.exit_code == 3
    assert result.stderr.strip() == f"nestviz: error: {imgs[0]}: writing its outputs failed: raqm_layout() failed."
    assert {Path(r["image"]).name: r["status"] for r in records_of(Path("o"))} == {"bad.jpg": "error", "good.jpg": "ok"}


def test_a_name_of_255_bytes_gets_its_outputs(tiny_weights: Path, tmp_path: Path) -> None:
    """The figure name (+12 bytes) and the temporary file (+14 more) were longer than the file system allows."""
    from .helpers import write_image

    long_name = "é" * 120 + "a" * 10 + ".jpg"  # 254 bytes
    assert len(long_name.encode()) == 254
    write_image(tmp_path / "in" / long_name)
    result = cli("explain", tmp_path / "in", "--weights", tiny_weights, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    [rec] = records_of(tmp_path / "o")
    [figure] = rec["outputs"]
    assert figure.startswith("é" * 20) and figure.endswith(".gradcat.jpg") and len(figure.encode()) <= 255
    assert (tmp_path / "o" / figure).is_file() and (tmp_path / "o" / rec["thumbnail"]).is_file()


def test_rendering_errors_in_shareable_outputs_name_out_relative_to_the_run(tiny_weights: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import nestviz.batch.runner as runner
    from .helpers import write_image

    def render(image_path: str, result: object, files: dict[str, str], *args: object) -> None:
        target = Path(next(iter(files.values())))
        raise PermissionError(13, "Permission denied", os.path.abspath(target.with_name("." + target.name + ".x.tmp")))

    monkeypatch.setattr(runner, "render_outputs", render)
    monkeypatch.chdir(tmp_path)
    write_image(tmp_path / "in" / "cat.jpg")
    result = cli("explain", "in", "--weights", tiny_weights, "--out", "o")
    assert result.exit_code == 3
    [rec] = records_of(tmp_path / "o")
    assert rec["error"] == "in/cat.jpg: writing its outputs failed: [Errno 13] Permission denied: 'o/.cat.gradcat.jpg.x.tmp'"
    assert str(tmp_path) not in (tmp_path / "o" / "index.html").read_text()
    assert str(tmp_path) not in (tmp_path / "o" / "manifest.jsonl").read_text()


# -- output places checked before any work (item 9) ---------------------------------------------------------------
def test_metrics_out_that_cannot_be_made_is_exit_2_before_any_work(tiny_weights: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import nestviz.evaluation.measure as measure
    from .helpers import write_image

    monkeypatch.setattr(measure, "run_metrics", lambda *a, **k: pytest.fail("measured before checking --out"))
    write_image(tmp_path / "val" / "red thing" / "a.png")
    (tmp_path / "file").write_text("x")
    result = cli("metrics", tmp_path / "val", "--weights", tiny_weights, "--out", tmp_path / "file" / "m")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"nestviz: error: --out {tmp_path / 'file' / 'm'}: {tmp_path / 'file'} is a file, not a folder"


def test_train_cache_dir_that_cannot_be_made_is_exit_2_before_any_work(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import nestviz.train.loop as loop
    from .helpers import write_image

    monkeypatch.setattr(loop, "decode_split", lambda *a, **k: pytest.fail("decoded before checking --cache-dir"))
    for c in ("a", "b"):
        write_image(tmp_path / "train" / c / "x.png")
    (tmp_path / "file").write_text("x")
    result = cli("train", tmp_path / "train", "--out", tmp_path / "w.safetensors", "--cache-dir", tmp_path / "file" / "c",
                 "--epochs", "1", "--device", "cpu")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"nestviz: error: {tmp_path / 'file' / 'c'}: the decoded-image cache folder "
                                     f"(--cache-dir) is not writable ({tmp_path / 'file'} is a file, not a folder)")


# -- a full disk (item 6) -----------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path):  # noqa: ANN201
    """A tmpfs of 64 KiB at tmp_path/disk, to be resized with ``remount(size)``; skipped where mounting is not allowed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or \
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("needs root and tmpfs to make a small disk")

    def remount(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)

    yield disk, remount
    subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def assert_manifest_valid(out: Path) -> list[dict]:
    lines = (out / "manifest.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    recs = [json.loads(line) for line in lines[:-1]]
    for r in recs:
        assert all((out / o).is_file() for o in r.get("outputs", [])), r
    assert not list(out.rglob("*.tmp"))
    return recs


def test_a_full_disk_stops_the_run_with_one_line_and_a_rerun_completes(tiny_weights: Path, tmp_path: Path,
                                                                       small_disk) -> None:  # noqa: ANN001
    from .helpers import write_image

    disk, remount = small_disk
    remount("600k")  # room for about 5 of the 12 images' figures (random pixels: about 100 KB each)
    imgs = [write_image(tmp_path / "in" / f"i{n:02d}.png", (64, 48), seed=n) for n in range(12)]
    out = disk / "o"
    result = cli("explain", tmp_path / "in", "--weights", tiny_weights, "--out", out, "-q", "-k", "3")
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"nestviz: error: {out}: no space left on the disk mounted at {disk}; stopped with ")
    assert lines[-1].endswith(" images not done: free some space and run the same command again to resume")
    assert "Traceback" not in result.output and "unexpected" not in result.output
    done = assert_manifest_valid(out)
    assert 0 < len(done) < len(imgs)
    remount("4m")
    again = cli("explain", tmp_path / "in", "--weights", tiny_weights, "--out", out, "-q", "-k", "3")
    assert again.exit_code == 0, again.output
    assert len(assert_manifest_valid(out)) == len(imgs) and (out / "index.html").is_file()


def test_a_disk_full_before_the_first_image_is_exit_2(tiny_weights: Path, tmp_path: Path, small_disk) -> None:  # noqa: ANN001
    from .helpers import write_image

    disk, remount = small_disk
    for n in range(3):
        write_image(tmp_path / "in" / f"i{n}.png", seed=n)
    filler = fill(disk)
    result = cli("explain", tmp_path / "in", "--weights", tiny_weights, "--out", disk / "o", "-q", "-k", "3")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1].startswith(f"nestviz: error: {disk / 'o'}: no space left on the disk")
    filler.unlink()
    remount("4m")
    again = cli("explain", tmp_path / "in", "--weights", tiny_weights, "--out", disk / "o", "-q", "-k", "3")
    assert again.exit_code == 0, again.output
    assert len(assert_manifest_valid(disk / "o")) == 3


# -- non-finite weights and outputs, bad preprocessing metadata (items 10, 11) ----------------------------------------
def rewritten_weights(src: Path, dst: Path, tensor: str | None = None, value: float = 0.0, **meta_fields: dict) -> Path:
    """``src`` (a nestviz file) with one value of ``tensor`` set to ``value`` and metadata fields replaced."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(src))
    if tensor is not None:
        tensors[tensor] = tensors[tensor].clone()
        tensors[tensor].view(-1)[0] = value
    for field, changes in meta_fields.items():
        meta[field] = json.dumps({**json.loads(meta[field]), **changes})
    save_file(tensors, str(dst), metadata=meta)
    return dst


@pytest.mark.parametrize("value, count", [(float("nan"), "1 NaN, 0 infinite"), (float("-inf"), "0 NaN, 1 infinite")])
def test_non_finite_weights_are_refused_at_load_naming_the_tensor(tiny_weights: Path, tmp_path: Path, value: float,
                                                                  count: str) -> None:
    bad = rewritten_weights(tiny_weights, tmp_path / "bad.safetensors", "head.bias", value)
    from .helpers import write_image

    result = cli("predict", write_image(tmp_path / "a.png"), "--weights", bad, "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == f"nestviz: error: {bad}: tensor head.bias has non-finite values ({count} of 3)"


def test_a_model_object_with_non_finite_weights_is_refused() -> None:
    import torch

    import nestviz
    from nestviz.model.bundle import WeightsError
    from .model_helpers import tiny_model

    model = tiny_model()
    with torch.no_grad():
        model.head.weight[1, 2] = float("inf")
    with pytest.raises(WeightsError, match=r"tensor head.weight has non-finite values \(0 NaN, 1 infinite of 48\)"):
        nestviz.load(model, device="cpu")


def overflowing_weights(path: Path) -> Path:
    """Finite weights whose outputs overflow to NaN for every image."""
    import torch

    from nestviz.model.checkpoints import save_nestviz
    from nestviz.preprocess import Preprocessing
    from .helpers import TINY_CLASSES
    from .model_helpers import tiny_model

    model = tiny_model()
    with torch.no_grad():
        model.head.weight.mul_(1e37)
        for name, p in model.named_parameters():
            if "patch_embed" in name:
                p.mul_(1e20)
    save_nestviz(path, model, TINY_CLASSES, Preprocessing(input_size=32), {})
    return path


def test_a_non_finite_output_is_that_images_error(tmp_path: Path) -> None:
    """predict printed "probability": NaN (not JSON) ranking every class first; cam --no-render recorded ok NaN maps."""
    from .helpers import write_image

    weights = overflowing_weights(tmp_path / "overflow.safetensors")
    img = write_image(tmp_path / "a.png")
    result = cli("predict", img, "--weights", weights, "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == \
        {"image": str(img), "error": f"{img}: the model's output is not finite (NaN or infinity)"}
    result = cli("cam", img, "--weights", weights, "--no-render", "--out", tmp_path / "o", "-q")
    assert result.exit_code == 3
    [rec] = records_of(tmp_path / "o")
    assert rec["status"] == "error" and rec["error"] == f"{img}: the model's output is not finite (NaN or infinity)"


@pytest.mark.parametrize("field, value, problem", [
    ("input_size", 2 ** 20, "preprocessing input_size 1048576 is not the model's img_size 32"),
    ("crop_pct", 1e-4, "crop_pct must be at least 0.1 (the model would see a sliver of the image), got 0.0001"),
    ("std", [0.2, 0.0, 0.2], "std must be 3 finite numbers above 0, got [0.2, 0.0, 0.2]"),
])
def test_bad_preprocessing_metadata_is_exit_2_naming_the_field(tiny_weights: Path, tmp_path: Path, field: str,
                                                               value: object, problem: str) -> None:
    from .helpers import write_image

    bad = rewritten_weights(tiny_weights, tmp_path / "bad.safetensors", preprocessing={field: value})
    img = write_image(tmp_path / "a.png")  # in its own process, under a memory limit: a 2^20 px resize takes 23 GB
    proc = nestviz_subprocess("predict", str(img), "--weights", str(bad), cwd=tmp_path, limit_bytes=3 * 2 ** 30)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == f"nestviz: error: {bad}: invalid nestviz metadata ({problem})"


def test_a_config_asking_for_terabytes_is_a_mismatch_not_an_allocation(tiny_weights: Path, tmp_path: Path) -> None:
    """Under a memory limit, in its own process: building the model before comparing shapes would allocate 2 TB."""
    bad = rewritten_weights(tiny_weights, tmp_path / "bad.safetensors", config={"img_size": 2 ** 20},
                            preprocessing={"input_size": 2 ** 20})
    proc = nestviz_subprocess("info", "--weights", str(bad), cwd=tmp_path, limit_bytes=3 * 2 ** 30)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"nestviz: error: {bad}: does not match the architecture: ")


# -- output folders as inputs (item 12) ---------------------------------------------------------------------------
def test_an_output_folder_given_as_input_is_not_explained(tiny_weights: Path, tmp_path: Path) -> None:
    from .helpers import write_image

    write_image(tmp_path / "in" / "cat.png")
    assert cli("explain", tmp_path / "in", "--weights", tiny_weights, "--out", tmp_path / "o", "-q").exit_code == 0
    result = cli("explain", tmp_path / "o", "--weights", tiny_weights, "--out", tmp_path / "o2", "-q")
    assert result.exit_code == 2 and not (tmp_path / "o2").exists()
    assert result.stderr.strip() == (f"nestviz: error: no input images found ({tmp_path / 'o'}: a nestviz output folder "
                                     "(it holds a manifest): its figures are not inputs)")
    mixed = cli("explain", tmp_path / "o", tmp_path / "in", "--weights", tiny_weights, "--out", tmp_path / "o3", "-q")
    assert mixed.exit_code == 3  # the other input is explained, the output folder named as a problem
    assert [Path(r["image"]).name for r in records_of(tmp_path / "o3")] == ["cat.png"]


def test_out_equal_to_the_input_says_so(tiny_weights: Path, tmp_path: Path) -> None:
    from .helpers import write_image

    write_image(tmp_path / "in" / "cat.png")
    result = cli("explain", tmp_path / "in", "--weights", tiny_weights, "--out", tmp_path / "in")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"nestviz: error: no input images found ({tmp_path / 'in'}: is the output folder "
                                     "(--out), not an input)")


# -- very large photos (item 14) ------------------------------------------------------------------------------------
def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that says it is ``width`` x ``height`` (its pixel data is a 1 x 1 image's): Pillow's bomb check reads
    only the header, so a 108-megapixel photo can be stood in for without 324 MB of pixels."""
    import struct
    import zlib

    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    path.write_bytes(bytes(data))
    return path


def keep_the_pixel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """--max-pixels sets $NESTVIZ_MAX_PIXELS and raises Pillow's limit for the process: both are restored after."""
    monkeypatch.setenv("NESTVIZ_MAX_PIXELS", "")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)


def test_a_108_megapixel_photo_is_refused_with_the_way_through(tiny_weights: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    keep_the_pixel_limit(monkeypatch)
    big = png_header_only(tmp_path / "big.png", 12000, 9000)
    result = cli("predict", big, "--weights", tiny_weights, "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["error"] == (
        f"{big}: refused as a possible decompression bomb (108000000 pixels, the limit is 89478485); if you trust it, "
        "raise the limit with --max-pixels 108000000 (or $NESTVIZ_MAX_PIXELS)")
    result = cli("predict", big, "--weights", tiny_weights, "--json", "--max-pixels", "108000000")
    assert "decompression bomb" not in result.stdout  # let through: this stand-in then fails as corrupt data
    assert json.loads(result.stdout)["error"].startswith(f"{big}: truncated or corrupt image data")


def test_max_pixels_lets_a_trusted_large_image_through_in_every_process(tiny_weights: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from .helpers import write_image

    keep_the_pixel_limit(monkeypatch)
    monkeypatch.setenv("NESTVIZ_MAX_PIXELS", "10000")  # stands for Pillow's limit: 120 x 100 pixels are over it
    imgs = [write_image(tmp_path / "in" / f"i{n}.png", (120, 100), seed=n) for n in range(3)]
    refused = cli("explain", tmp_path / "in", "--weights", tiny_weights, "--out", tmp_path / "o", "-q", "-k", "3")
    assert refused.exit_code == 3 and refused.stderr.count("--max-pixels 12000") == 3
    ok = cli("explain", tmp_path / "in", "--weights", tiny_weights, "--out", tmp_path / "o", "-q", "-k", "3",
             "--max-pixels", "12000")  # three images: the figures are drawn in worker processes, which decode again
    assert ok.exit_code == 0, ok.output
    assert all(r["status"] == "ok" for r in records_of(tmp_path / "o")) and len(imgs) == len(records_of(tmp_path / "o"))


# -- signals (item 8) ------------------------------------------------------------------------------------------
def test_a_signal_while_held_is_raised_when_released() -> None:
    """Ctrl-C while torch is imported broke torch (RecursionError, exit 1); while typer parses, it was exit 130 silent."""
    import signal

    from nestviz.cli.signals import hold_interrupts, release_interrupts

    before = signal.getsignal(signal.SIGINT)
    hold_interrupts()
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)  # held, not the end of the test process
    with pytest.raises(KeyboardInterrupt):
        release_interrupts()
    assert signal.getsignal(signal.SIGINT) is before
    release_interrupts()  # nothing came since: nothing raised


def test_ctrl_c_in_a_command_says_interrupted(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nestviz.cli.model as commands
    from .helpers import write_image

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "load_or_fail", interrupted)
    result = cli("predict", write_image(tmp_path / "a.png"), "--weights", tiny_weights)
    assert result.exit_code == 130 and result.stderr.strip() == "nestviz: interrupted"


def test_sigterm_stops_training_with_a_message_and_no_temporary_file(tmp_path: Path) -> None:
    """SIGTERM was exit 143 without a word, and could leave OUT.ckpt.*.tmp behind."""
    import signal

    from .helpers import write_image

    for c in ("a", "b"):
        for n in range(4):
            write_image(tmp_path / "train" / c / f"{n}.png", seed=n)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "nestviz", "train", "train", "--out", "w.safetensors", "--epochs",
                             "500", "--batch-size", "4", "--img-size", "32", "--device", "cpu", "--cache-dir", "cache"],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    for line in proc.stderr:  # the first epoch's line: training is under way, a checkpoint written
        if line.startswith("epoch 1/500"):
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    last = rest.strip().splitlines()[-1]  # where it stopped, and the command that resumes it
    assert last.startswith("nestviz: interrupted in epoch 1 at step ") and last.endswith(" --resume w.safetensors.ckpt")
    assert (tmp_path / "w.safetensors.ckpt").is_file() and not (tmp_path / "w.safetensors").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- the figure workers end with their parent (item 7) -----------------------------------------------------------
def children_of(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def wait_gone(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` ends within ``timeout`` seconds (waited on with a pidfd, not by polling)."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


@pytest.mark.skipif(not (sys.platform == "linux" and hasattr(os, "pidfd_open")), reason="reads /proc, uses pidfds")
def test_kill_9_of_the_main_process_ends_the_figure_workers(tiny_weights: Path, tmp_path: Path) -> None:
    import signal

    from .helpers import write_image

    for n in range(40):
        write_image(tmp_path / "in" / f"i{n:02d}.png", seed=n)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "nestviz", "explain", "in", "--weights", str(tiny_weights), "--out",
                             "o", "--json", "-q", "-k", "3", "--device", "cpu"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("{")  # a figure drawn: the workers are running
    kids = children_of(proc.pid)
    assert len(kids) >= 2  # two figure workers (and the resource tracker)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [k for k in kids if not wait_gone(k, 20.0)] == []


# -- two commands writing one --out at once (item 13) ------------------------------------------------------------
def test_two_commands_at_once_leave_thumbnails_with_both_marks(tiny_weights: Path, tmp_path: Path) -> None:
    """explain runs from start to end while cam is between its first and second image: each command's thumbnails
    were drawn without the other's marks; the last one to end now draws them from both records."""
    import nestviz
    from nestviz.batch.discover import discover
    from nestviz.batch.gallery import merge_predictions
    from nestviz.batch.manifest import merge_records
    from nestviz.batch.runner import RunOptions, run_folder
    from nestviz.draw.thumbnail import write_thumbnail
    from nestviz.images import load_rgb
    from nestviz.model.checkpoints import load_weights_identity
    from .helpers import write_image

    for n in range(3):
        write_image(tmp_path / "in" / f"i{n}.png", seed=n)
    items, _ = discover([tmp_path / "in"])
    out = tmp_path / "o"
    nv = nestviz.load(tiny_weights, device="cpu")
    weights_id = load_weights_identity(tiny_weights)

    def opts(mode: str) -> RunOptions:
        return RunOptions(mode=mode, out_dir=out, top_k=3, render_workers=0)

    started: list[bool] = []

    def explain_meanwhile(record: dict) -> None:
        if not started:  # cam has finished one image: explain runs whole, then cam goes on
            started.append(True)
            assert run_folder(items, opts("explain"), lambda: nv, weights_id).done == 3

    assert run_folder(items, opts("cam"), lambda: nv, weights_id, on_record=explain_meanwhile).done == 3
    records = merge_records(out)
    assert sorted((Path(r["image"]).name, r["command"]) for r in records) == \
        sorted((f"i{n}.png", c) for n in range(3) for c in ("cam", "explain"))
    for item in items:
        cam_rec, explain_rec = (next(r for r in records if r["image"] == str(item.path) and r["command"] == c)
                                for c in ("cam", "explain"))
        both = {"width": cam_rec["width"], "height": cam_rec["height"],
                "predictions": merge_predictions([cam_rec, explain_rec])}
        write_thumbnail(load_rgb(item.path), both, tmp_path / "expected.jpg")
        assert (out / cam_rec["thumbnail"]).read_bytes() == (tmp_path / "expected.jpg").read_bytes(), item.path.name
