"""Preprocessing: timm's resize-and-centre-crop geometry, normalization, and mapping boxes back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nestviz.preprocess import Geometry, Preprocessing, normalize, pad_colour, plan_geometry, resize_and_crop, to_input

PRE = Preprocessing(input_size=32, crop_pct=0.875)  # shorter side -> floor(32 / 0.875) = 36, then crop 32


@pytest.mark.parametrize(("size", "expected"), [
    ((100, 100), Geometry(100, 100, 36, 36, 2, 2, 32)),
    ((200, 100), Geometry(200, 100, 72, 36, 20, 2, 32)),  # landscape: 36 * 2 = 72 wide, (72 - 32) / 2 = 20
    ((100, 300), Geometry(100, 300, 36, 108, 2, 38, 32)),  # portrait: 36 * 3 = 108 high
    ((30, 45), Geometry(30, 45, 36, 54, 2, 11, 32)),  # small images are enlarged
    ((301, 200), Geometry(301, 200, 54, 36, 11, 2, 32)),  # int(36 * 1.505) = 54: rounded down, as timm
])
def test_plan_geometry(size: tuple[int, int], expected: Geometry) -> None:
    assert PRE.resize_to == 36
    assert plan_geometry(*size, PRE) == expected


def test_no_crop_keeps_the_shorter_side_whole() -> None:
    geo = plan_geometry(64, 48, Preprocessing(input_size=32, crop_pct=1.0))
    assert (geo.resized_width, geo.resized_height, geo.left, geo.top) == (42, 32, 5, 0)


def test_preprocessing_checks_its_fields() -> None:
    with pytest.raises(ValueError) as e:
        Preprocessing(interpolation="sinc")
    assert str(e.value) == "unknown interpolation 'sinc'; known: bicubic, bilinear, nearest, lanczos, box"
    with pytest.raises(ValueError) as e:
        Preprocessing(crop_pct=1.5)
    assert str(e.value) == "crop_pct must be in (0, 1], got 1.5"
    assert Preprocessing.from_dict({**PRE.to_dict(), "crop_mode": "center"}) == PRE


def test_to_input_shape_and_normalization() -> None:
    colour = (255, 0, 128)
    pre = Preprocessing(input_size=32, mean=(0.5, 0.25, 0.75), std=(0.5, 0.25, 0.125))
    x, geo = to_input(Image.new("RGB", (50, 40), colour), pre)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert (geo.width, geo.height) == (50, 40)
    expected = [(v / 255 - m) / s for v, m, s in zip(colour, pre.mean, pre.std)]  # 1.0, -1.0, about 0.016
    for channel, value in enumerate(expected):
        torch.testing.assert_close(x[channel], torch.full((32, 32), value), atol=1e-5, rtol=0)


def test_normalize_batches() -> None:
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(2, 3, 1, 2)
    y = normalize(x, PRE)
    assert y.shape == (2, 3, 1, 2)
    torch.testing.assert_close(y[1, 0, 0], torch.tensor([-0.485 / 0.229, (1 - 0.485) / 0.229]))


def red_square(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    arr = np.full((size[1], size[0], 3), 255, dtype=np.uint8)
    arr[box[1]:box[3], box[0]:box[2]] = (255, 0, 0)
    return Image.fromarray(arr)


@pytest.mark.parametrize(("size", "box"), [
    ((300, 200), (180, 60, 210, 90)),  # landscape, square right of centre
    ((150, 260), (40, 150, 80, 190)),  # portrait, square below centre
])
def test_box_to_original_finds_the_square_again(size: tuple[int, int], box: tuple[int, int, int, int]) -> None:
    pre = Preprocessing(input_size=64, crop_pct=0.875, interpolation="bilinear")
    x, geo = to_input(red_square(size, box), pre)
    rgb = x * torch.tensor(pre.std).view(3, 1, 1) + torch.tensor(pre.mean).view(3, 1, 1)
    ys, xs = torch.nonzero((rgb[0] > 0.9) & (rgb[1] < 0.5), as_tuple=True)  # red in the model input
    found = (xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1)
    # where the square should be in the model input, from the geometry's scale and crop offset
    predicted = (box[0] * geo.scale_x - geo.left, box[1] * geo.scale_y - geo.top,
                 box[2] * geo.scale_x - geo.left, box[3] * geo.scale_y - geo.top)
    assert np.abs(np.subtract(found, predicted)).max() <= 1.0
    back = geo.box_to_original(found)
    one_input_pixel = 1 / geo.scale_x
    assert np.abs(np.subtract(back, box)).max() <= one_input_pixel + 0.5


def test_box_to_original_clips_to_the_image() -> None:
    geo = plan_geometry(200, 100, PRE)  # 72 x 36, cropped at (20, 2): scale 0.36
    assert geo.point_to_original(0, 0) == pytest.approx((20 / 0.36, 2 / 0.36))
    assert geo.box_to_original((0, 0, 32, 32)) == pytest.approx((20 / 0.36, 2 / 0.36, 52 / 0.36, 34 / 0.36))
    assert geo.box_to_original((-100, -100, 500, 500)) == (0.0, 0.0, 200.0, 100.0)


@pytest.mark.parametrize("fit", ["crop", "pad", "squash"])
@pytest.mark.parametrize(("size", "box"), [((300, 200), (180, 60, 210, 90)), ((150, 260), (40, 150, 80, 190)),
                                           ((300, 200), (5, 10, 40, 50))])  # the last one: outside the centre crop
def test_every_fit_maps_back_to_original_pixels(fit: str, size: tuple[int, int], box: tuple[int, int, int, int]) -> None:
    pre = Preprocessing(input_size=64, crop_pct=0.875, interpolation="bilinear")
    x, geo = to_input(red_square(size, box), pre, fit)
    assert x.shape == (3, 64, 64) and geo.fit == fit
    rgb = x * torch.tensor(pre.std).view(3, 1, 1) + torch.tensor(pre.mean).view(3, 1, 1)
    ys, xs = torch.nonzero((rgb[0] > 0.9) & (rgb[1] < 0.5), as_tuple=True)
    if fit == "crop" and box[0] < 20:
        assert len(xs) == 0  # the centre crop does not see the corner: pad and squash do
        return
    found = (xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1)
    back = geo.box_to_original(found)
    assert np.abs(np.subtract(back, box)).max() <= 1 / min(geo.scale_x, geo.scale_y) + 0.5


def test_pad_letterboxes_the_whole_image_with_the_mean_colour() -> None:
    pre = Preprocessing(input_size=32)
    crop, geo = resize_and_crop(Image.new("RGB", (200, 100), (255, 0, 0)), pre, "pad")
    assert (geo.resized_width, geo.resized_height, geo.left, geo.top) == (32, 16, 0, -8)
    assert tuple(crop[0, 0]) == pad_colour(pre) == (124, 116, 104) and tuple(crop[16, 16]) == (255, 0, 0)
    assert geo.region() == pytest.approx((0.0, -50.0, 200.0, 150.0))  # the square, past the image: the border
    assert geo.box_to_original((0, 0, 32, 8)) == (0.0, 0.0, 200.0, 0.0)  # a box wholly in the border: empty, on the edge
    squash = plan_geometry(200, 100, pre, "squash")
    assert squash.region() == (0.0, 0.0, 200.0, 100.0) and (squash.scale_x, squash.scale_y) == (0.16, 0.32)
    with pytest.raises(ValueError, match="fit must be crop, pad or squash, got 'zoom'"):
        plan_geometry(10, 10, pre, "zoom")
