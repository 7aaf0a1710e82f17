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
