"""Image -> model input, with the geometry recorded so every location maps back to original pixels.

Three fits (``nestviz.defaults.FITS``), then scale to [0, 1] and normalize by mean/std:

- ``crop``: timm's eval transform for NesT: resize the shorter side to floor(img_size / crop_pct)
  (bicubic), centre-crop img_size;
- ``pad``: resize the longer side to img_size, centre the image on a square of the mean colour
  (what normalizes to zero);
- ``squash``: resize the whole image to img_size x img_size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .defaults import PREDICT_FIT, check_fit

if TYPE_CHECKING:  # torch loads with the first tensor made: planning a geometry does not need it
    from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ``crop`` resizes the whole image before cropping only while the resized image is at most this many times the
# input square (aspect ratios up to about 1:13); beyond, only the square is resampled, so that memory stays
# bounded by the input size whatever the aspect ratio (a 40000 x 1 image would be 11.7 million x 292 pixels).
MAX_RESIZED_AREA = 16
MIN_CROP_PCT = 0.1  # timm's NesT checkpoints use 0.875; below this the view is a sliver (and the resize huge)

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


@dataclass(frozen=True)
class Preprocessing:
    """What a checkpoint expects as input (timm's pretrained_cfg fields)."""

    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 0.875

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; known: {', '.join(_RESAMPLE)}")
        if not 0.0 < self.crop_pct <= 1.0:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.crop_pct < MIN_CROP_PCT:
            raise ValueError(f"crop_pct must be at least {MIN_CROP_PCT} (the model would see a sliver of the image), "
                             f"got {self.crop_pct:g}")
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int) or self.input_size < 1:
            raise ValueError(f"input_size must be a positive whole number of pixels, got {self.input_size!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(math.isfinite(v) for v in values) or (name == "std" and min(values) <= 0):
                raise ValueError(f"{name} must be 3 finite numbers{' above 0' if name == 'std' else ''}, got {list(values)}")

    @property
    def resize_to(self) -> int:
        """Length of the shorter side after resizing, before the centre crop."""
        return math.floor(self.input_size / self.crop_pct)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Preprocessing":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Geometry:
    """How an original image of ``width`` x ``height`` became the square model input.

    Model-input pixel (u, v) came from original pixel ((u + left) / scale_x, (v + top) / scale_y).
    ``left`` and ``top`` are negative for ``pad``: the resized image sits inside the square.
    """

    width: int
    height: int
    resized_width: int
    resized_height: int
    left: int
    top: int
    size: int
    fit: str = "crop"

    @property
    def scale_x(self) -> float:
        return self.resized_width / self.width

    @property
    def scale_y(self) -> float:
        return self.resized_height / self.height

    def point_to_original(self, u: float, v: float) -> tuple[float, float]:
        """A point in model-input pixels -> the same point in original-image pixels."""
        return (u + self.left) / self.scale_x, (v + self.top) / self.scale_y

    def box_to_original(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """[x0, y0, x1, y1] in model-input pixels -> original pixels, clipped to the image (a box wholly
        in ``pad``'s border becomes an empty box on the image's edge)."""
        x0, y0, x1, y1 = self.region(box)
        w, h = float(self.width), float(self.height)
        return (min(max(0.0, x0), w), min(max(0.0, y0), h), min(max(0.0, x1), w), min(max(0.0, y1), h))

    def region(self, box: tuple[float, float, float, float] | None = None) -> tuple[float, float, float, float]:
        """``box`` (default: the whole model input) in original pixels, not clipped: for ``pad`` it reaches
        past the image, over the border the model saw."""
        box = box if box is not None else (0.0, 0.0, float(self.size), float(self.size))
        return (*self.point_to_original(box[0], box[1]), *self.point_to_original(box[2], box[3]))


def plan_geometry(width: int, height: int, pre: Preprocessing, fit: str = PREDICT_FIT) -> Geometry:
    """How an image of ``width`` x ``height`` becomes the square input under ``fit`` (see the module)."""
    fit = check_fit(fit)
    size = pre.input_size
    if fit == "squash":
        return Geometry(width, height, size, size, 0, 0, size, fit)
    if fit == "pad":
        scale = size / max(width, height)
        rw, rh = max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale)))
        return Geometry(width, height, rw, rh, -((size - rw) // 2), -((size - rh) // 2), size, fit)
    short = pre.resize_to
    if width <= height:
        rw, rh = short, max(short, int(short * height / width))
    else:
        rw, rh = max(short, int(short * width / height)), short
    left = int(round((rw - size) / 2.0))
    top = int(round((rh - size) / 2.0))
    return Geometry(width, height, rw, rh, left, top, size)


def pad_colour(pre: Preprocessing) -> tuple[int, int, int]:
    """The mean colour as 0..255 RGB: ``pad``'s border, which normalizes to (about) zero."""
    r, g, b = (round(255 * m) for m in pre.mean)
    return r, g, b


def resize_and_crop(image: Image.Image, pre: Preprocessing, fit: str = PREDICT_FIT) -> tuple[np.ndarray, Geometry]:
    """An RGB PIL image -> the (S, S, 3) uint8 model input (not normalized) under ``fit``, and its :class:`Geometry`."""
    geo = plan_geometry(image.width, image.height, pre, fit)
    if geo.fit == "pad":
        resized = image.resize((geo.resized_width, geo.resized_height), _RESAMPLE[pre.interpolation])
        square = Image.new("RGB", (geo.size, geo.size), pad_colour(pre))
        square.paste(resized, (-geo.left, -geo.top))
        return np.asarray(square, dtype=np.uint8), geo
    resample = _RESAMPLE[pre.interpolation]
    if geo.resized_width * geo.resized_height <= MAX_RESIZED_AREA * geo.size ** 2:  # timm's transform, exactly
        resized = image.resize((geo.resized_width, geo.resized_height), resample)
        crop = resized.crop((geo.left, geo.top, geo.left + geo.size, geo.top + geo.size))
    else:  # an extreme aspect ratio: resample only the square the model sees (the same filter, +-2 grey levels)
        crop = image.resize((geo.size, geo.size), resample, box=geo.region())
    return np.asarray(crop, dtype=np.uint8), geo


def to_input(image: Image.Image, pre: Preprocessing, fit: str = PREDICT_FIT) -> tuple[Tensor, Geometry]:
    """An RGB PIL image -> a normalized (3, S, S) float tensor under ``fit`` and its :class:`Geometry`."""
    import torch

    crop, geo = resize_and_crop(image, pre, fit)
    return normalize(torch.from_numpy(crop.copy()).permute(2, 0, 1), pre), geo


def normalize(x: Tensor, pre: Preprocessing) -> Tensor:
    """Images (..., 3, H, W) -> standardized by the checkpoint's mean/std, as float32.

    uint8 images are scaled to [0, 1] first; float images are taken as already in [0, 1].
    """
    import torch

    mean = torch.tensor(pre.mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
    std = torch.tensor(pre.std, dtype=torch.float32, device=x.device).view(3, 1, 1)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return (x - mean) / std
