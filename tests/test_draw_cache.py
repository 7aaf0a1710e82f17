"""What the raster renderer keeps between draws (text masks, label boxes, the panel picture) draws the same pixels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw

from nestviz.draw.layout import _dim_outside, panel_picture
from nestviz.draw.pixels import font, rounded_box, text, text_mask
from nestviz.draw.raster import HEAT_ALPHA, _colormap, _with_heat, cam_image, gradcat_image
from nestviz.draw.style import DIM
from tests.helpers import image, make_result

SPOTS = [(40.0, 30.0), (40.5, 30.25), (7.75, 3.5), (0.0, 0.0), (-3.5, 12.0), (119.9, 58.1)]  # last two: cut off


def blank() -> Image.Image:
    return Image.new("RGB", (120, 60), (90, 140, 200))


@pytest.mark.parametrize("label, size, bold, anchor", [("37%", 7.0, False, "mm"), ("\u221212%", 7.0, True, "mm"),
                                                       ("box", 7.0, True, "lm"), ("1.5e-5", 7.0, False, "lm"),
                                                       ("Numbers: each child's share", 7.0, False, "ls"),
                                                       ("#1 French horn 50.0%", 10.0, False, "ls")])
@pytest.mark.parametrize("xy", SPOTS)
def test_kept_text_is_pixel_for_pixel_what_imagedraw_draws(label, size, bold, anchor, xy):
    text_mask.cache_clear()
    want = blank()
    ImageDraw.Draw(want).text(xy, label, font=font(size, bold), anchor=anchor, fill=(255, 255, 255))
    for _ in range(2):  # rendered, then from the cache
        got = blank()
        text(got, xy, label, size, bold=bold, anchor=anchor, fill=(255, 255, 255))
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_kept_text_masks_are_per_text_size_and_sub_pixel_offset():
    text_mask.cache_clear()
    for label in ("12%", "13%", "12%"):
        text(blank(), (10.0, 10.0), label, 7.0)
    text(blank(), (10.5, 10.0), "12%", 7.0)
    text(blank(), (10.0, 10.0), "12%", 7.0, bold=True)
    assert text_mask.cache_info().misses == 4 and text_mask.cache_info().hits == 1


@pytest.mark.parametrize("fill, outline", [((0, 0, 0, 153), None), ((230, 159, 0), (0, 0, 0))])
def test_kept_label_boxes_are_what_a_rounded_rectangle_draws(fill, outline):
    photo = image(120, 60)
    for box in ((10, 10, 40, 25), (0, 0, 21, 14), (100, 50, 131, 64)):
        want = photo.copy()
        ImageDraw.Draw(want, "RGBA").rounded_rectangle(box, radius=2, fill=fill, outline=outline, width=1)
        got = photo.copy()
        rounded_box(got, box, 2, fill, outline)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_the_unseen_part_is_dimmed_as_numpy_would():
    picture = image(50, 40)
    cols, rows = np.arange(50), np.arange(40)
    for seen_cols, seen_rows in ((cols[5:30], rows), (cols, rows[3:9]), (cols[:0], rows), (cols, rows)):
        want = np.array(picture)
        outside = np.ones((40, 50), bool)
        outside[seen_rows[:, None], seen_cols[None, :]] = False
        want[outside] = (want[outside] * DIM).astype(np.uint8)
        np.testing.assert_array_equal(np.asarray(_dim_outside(picture, seen_cols, seen_rows)), want)


def test_the_heat_blend_is_the_plain_float_formula():
    pixels = np.asarray(image(60, 50))
    raw = np.random.default_rng(3).normal(size=(6, 6)).astype(np.float32)
    rect = (-7.0, 4.0, 48.0, 70.0)  # partly outside the panel
    lo, hi = float(raw.min()), float(raw.max())
    got = np.asarray(_with_heat(pixels, pixels.astype(np.float32) * (1 - HEAT_ALPHA), raw, lo, hi, rect))
    unit = Image.fromarray(((raw - lo) / (hi - lo)).astype(np.float32), mode="F").resize((55, 66), Image.BILINEAR)
    heat = _colormap()[np.clip(np.asarray(unit) * 255 + 0.5, 0, 255).astype(np.uint8)]
    want = pixels.copy()
    under, over = want[4:, :48].astype(np.float32), heat[:46, 7:].astype(np.float32)
    want[4:, :48] = (under * (1 - HEAT_ALPHA) + over * HEAT_ALPHA + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("draw", [gradcat_image, cam_image])
def test_a_figure_shows_its_own_image_never_the_last_one(draw):
    result = make_result(80, 60, k=2)
    a, b = image(80, 60), Image.effect_noise((80, 60), 40).convert("RGB")
    first, again = np.asarray(draw(a, result)), np.asarray(draw(a, result))
    np.testing.assert_array_equal(first, again)
    other = np.asarray(draw(b, result))
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(other, np.asarray(draw(b.copy(), result)))  # the same pixels, another object
    moved = dataclasses.replace(result, fit="squash", region=(0.0, 0.0, 80.0, 60.0))
    np.testing.assert_array_equal(np.asarray(draw(b, moved)), np.asarray(draw(b.copy(), moved)))


def test_the_panel_picture_is_the_image_resized_and_dimmed():
    result = make_result(300, 100, k=1)
    photo = Image.new("L", (300, 100), 200)  # not RGB: converted
    picture = panel_picture(photo, result, (150, 75))
    assert picture.mode == "RGB" and picture.size == (150, 75)
    assert picture.getpixel((75, 37)) == (200, 200, 200) and picture.getpixel((0, 37)) == (110, 110, 110)
