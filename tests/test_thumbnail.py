"""Gallery thumbnails: small, the right size, marks drawn where the record says, robust to odd records."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nestviz.batch.outputs import THUMB_SUFFIX
from nestviz.draw.thumbnail import PATH_RGB, thumbnail, thumbnail_bytes, top_prediction, write_thumbnail

REPO = Path(__file__).resolve().parents[1]
RECORDS = [json.loads(line) for line in (REPO / "tests" / "fixtures" / "gallery_run.jsonl").read_text().splitlines()]


def grey(w: int, h: int) -> Image.Image:
    return Image.new("RGB", (w, h), (128, 128, 128))


def record(w: int, h: int) -> dict:
    return {"image": "x.jpg", "width": w, "height": h, "predictions": [
        {"rank": 2, "label": "b", "probability": 0.1, "path": [{"level": 1, "node": 0, "box": [0, 0, 10, 10]}]},
        {"rank": 1, "label": "a", "probability": 0.8,
         "path": [{"level": 2, "node": 0, "box": [0, 0, w, h], "child_scores": [1, 2, 3, 4], "chosen_child": 3},
                  {"level": 1, "node": 3, "box": [w / 2, h / 2, w, h], "child_scores": None, "chosen_child": None}],
         "box": [w * 0.1, h * 0.1, w * 0.4, h * 0.4], "peak": [w * 0.25, h * 0.25], "threshold": 0.2}]}


def test_size_aspect_and_never_enlarged() -> None:
    t = thumbnail(grey(1000, 500), record(1000, 500))
    assert t.size == (256, 128) and t.mode == "RGB"
    assert thumbnail(grey(100, 60), record(100, 60)).size == (100, 60)
    assert thumbnail(grey(300, 900).convert("L"), {}, max_side=90).size == (30, 90)
    with pytest.raises(ValueError):
        thumbnail(grey(10, 10), {}, max_side=0)


def test_marks_follow_the_top_prediction() -> None:
    w, h = 800, 600
    t = np.asarray(thumbnail(grey(w, h), record(w, h)), dtype=int)
    plain = np.asarray(thumbnail(grey(w, h), {}), dtype=int)
    s = t.shape[1] / w
    changed = np.abs(t - plain).sum(axis=2) > 30
    # the leaf box (bottom-right quadrant) is outlined in the path colour
    y, x0, x1 = round(h / 2 * s), round(w / 2 * s) + 10, round(w * s) - 10
    orange = [((t[r, x0:x1, 0] - t[r, x0:x1, 2] > 100) & (t[r, x0:x1, 0] > t[r, x0:x1, 1])).mean()
              for r in range(y - 3, y + 4)]
    assert max(orange) > 0.9 and PATH_RGB[0] > PATH_RGB[1] > PATH_RGB[2]
    # the CAM box's top edge is drawn, the middle of the top-left quadrant's interior is not touched
    assert changed[round(h * 0.1 * s) + 1, round(w * 0.2 * s):round(w * 0.3 * s)].mean() > 0.5
    assert not changed[round(h * 0.2 * s), round(w * 0.3 * s)]
    # the rank-2 prediction's box (top-left 10 px) is not drawn
    assert not changed[3:6, 3:6].any()


def test_malformed_records_draw_nothing_and_do_not_fail() -> None:
    plain = np.asarray(thumbnail(grey(64, 64), {}))
    for rec in ({"predictions": None}, {"predictions": ["x", {"path": "no"}]}, {"width": 0, "height": "?"},
                {"predictions": [{"path": [{"box": [1, 2]}, {"box": [0, 0, float("nan"), 3]}], "peak": [1]}]}):
        assert np.array_equal(np.asarray(thumbnail(grey(64, 64), rec)), plain), rec
    assert top_prediction({"predictions": [{"probability": 0.2}, {"probability": 0.7}]}) == {"probability": 0.7}


@pytest.mark.parametrize("rec", RECORDS, ids=[r["image"] for r in RECORDS])
def test_real_photos_make_small_jpegs(rec: dict) -> None:
    with Image.open(REPO / rec["image"]) as im:
        data = thumbnail_bytes(im, rec)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "JPEG" and max(decoded.size) == 256
    assert len(data) < 20_000  # 7 to 17 KB at quality 80 for these photos; 12.6 KB on average


def test_write_is_atomic(tmp_path: Path) -> None:
    path = write_thumbnail(grey(50, 40), record(50, 40), tmp_path / "a" / f"cat{THUMB_SUFFIX}")
    assert path.is_file() and Image.open(path).size == (50, 40)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["cat.thumb.jpg"]


def test_does_not_import_torch() -> None:
    code = "import sys, nestviz.draw.thumbnail; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
