"""Image -> model input, with the geometry recorded so every location maps back to original pixels.

timm's eval transform for NesT: resize the shorter side to floor(img_size / crop_pct)
(bicubic), centre-crop img_size, scale to [0, 1], normalize by mean/std.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # torch loads with the first tensor made: planning a geometry does not need it
    from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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
    """

    width: int
    height: int
    resized_width: int
    resized_height: int
    left: int
    top: int
    size: int

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
        """[x0, y0, x1, y1] in model-input pixels -> original pixels, clipped to the image."""
        x0, y0 = self.point_to_original(box[0], box[1])
        x1, y1 = self.point_to_original(box[2], box[3])
        return (max(0.0, x0), max(0.0, y0), min(float(self.width), x1), min(float(self.height), y1))


def plan_geometry(width: int, height: int, pre: Preprocessing) -> Geometry:
    """Resize so the shorter side is ``pre.resize_to`` (aspect kept), then centre-crop the input size."""
    short = pre.resize_to
    if width <= height:
        rw, rh = short, max(short, int(short * height / width))
    else:
        rw, rh = max(short, int(short * width / height)), short
    size = pre.input_size
    left = int(round((rw - size) / 2.0))
    top = int(round((rh - size) / 2.0))
    return Geometry(width, height, rw, rh, left, top, size)


def resize_and_crop(image: Image.Image, pre: Preprocessing) -> tuple[np.ndarray, Geometry]:
    """An RGB PIL image -> the (S, S, 3) uint8 model-input crop (not normalized) and its :class:`Geometry`."""
    geo = plan_geometry(image.width, image.height, pre)
    resized = image.resize((geo.resized_width, geo.resized_height), _RESAMPLE[pre.interpolation])
    crop = resized.crop((geo.left, geo.top, geo.left + geo.size, geo.top + geo.size))
    return np.asarray(crop, dtype=np.uint8), geo


def to_input(image: Image.Image, pre: Preprocessing) -> tuple[Tensor, Geometry]:
    """An RGB PIL image -> a normalized (3, S, S) float tensor and its :class:`Geometry`."""
    import torch

    crop, geo = resize_and_crop(image, pre)
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
