"""Batched training augmentation on uint8 tensors: random-resized crop, flip, colour jitter, mixup/CutMix, mosaic
(with the tile layout that the region loss needs).

Everything runs as a few batched tensor ops (one ``grid_sample`` for all crops), so
augmentation costs little next to the model on a 2-core CPU. All randomness comes from
the ``torch.Generator`` passed in, so a resumed epoch repeats exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def random_resized_crop_flip(x: Tensor, out_size: int, gen: torch.Generator,
                             scale: tuple[float, float] = (0.25, 1.0),
                             ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Tensor:
    """uint8 (B, 3, S, S) -> float (B, 3, out, out) in [0, 1]: a random box per image, flipped half the time."""
    B = x.shape[0]
    area = torch.empty(B).uniform_(scale[0], scale[1], generator=gen)
    log_r = torch.empty(B).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)  # fractions of the source side
    h = torch.sqrt(area / r).clamp(max=1.0)
    cx = (torch.rand(B, generator=gen) * (1 - w) + w / 2) * 2 - 1  # centre in [-1, 1] coords
    cy = (torch.rand(B, generator=gen) * (1 - h) + h / 2) * 2 - 1
    flip = torch.where(torch.rand(B, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [B, 3, out_size, out_size], align_corners=False)
    return F.grid_sample(x.float() / 255.0, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(x: Tensor, gen: torch.Generator, strength: float = 0.3) -> Tensor:
    """Random brightness, contrast and saturation per image, in place of a full RandAugment."""
    B = x.shape[0]

    def factor() -> Tensor:
        return torch.empty(B, 1, 1, 1).uniform_(1 - strength, 1 + strength, generator=gen)

    x = x * factor()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * factor() + mean
    gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - gray) * factor() + gray
    return x.clamp_(0.0, 1.0)


def mix_batch(x: Tensor, y: Tensor, gen: torch.Generator, prob: float, mixup_alpha: float = 0.8,
              cutmix_alpha: float = 1.0) -> Tensor:
    """With probability ``prob`` apply mixup or CutMix (even odds) to the batch in place; returns soft targets.

    ``y`` holds soft labels (B, K); the batch is mixed with its reverse.
    """
    if prob <= 0 or torch.rand(1, generator=gen).item() >= prob:
        return y
    use_cutmix = torch.rand(1, generator=gen).item() < 0.5
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = _beta(alpha, gen)
    flipped = x.flip(0)
    if use_cutmix:
        S = x.shape[-1]
        cut = math.sqrt(1 - lam)
        ch, cw = int(S * cut), int(S * cut)
        cy, cx = int(torch.randint(S, (1,), generator=gen)), int(torch.randint(S, (1,), generator=gen))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, S)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, S)
        x[:, :, y0:y1, x0:x1] = flipped[:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (S * S)
    else:
        x.mul_(lam).add_(flipped, alpha=1 - lam)
    return y * lam + y.flip(0) * (1 - lam)


@dataclass
class MosaicTiles:
    """Where the tiles of the mosaic images in a batch are: the targets of the region loss.

    ``image[m]`` is the batch index of mosaic ``m``; ``boxes[m, t]`` is tile ``t``'s
    (y0, x0, y1, x1) in input pixels and ``labels[m, t]`` its soft label.
    """

    image: Tensor  # (M,) long
    boxes: Tensor  # (M, 4, 4) long
    labels: Tensor  # (M, 4, K) float


def mosaic_batch(x: Tensor, y: Tensor, gen: torch.Generator, prob: float) -> tuple[Tensor, MosaicTiles | None]:
    """With probability ``prob`` per image, replace it by a 2x2 mosaic of itself and three others.

    The split point is random (middle half of each side); each tile is the whole source image
    resized to its cell, and the soft target is the area-weighted mix of the four labels.
    Objects appear smaller and beside other classes, which teaches the spatial evidence that
    CAM and GradCAT read. ``x`` is modified in place; returns the new soft targets and the
    tile layout (None when no image was picked).
    """
    B, _, S, _ = x.shape
    pick = torch.rand(B, generator=gen) < prob
    if not pick.any():
        return y, None
    src, y_src = x.clone(), y.clone()
    y = y.clone()
    chosen = torch.nonzero(pick).flatten()
    boxes = torch.zeros(len(chosen), 4, 4, dtype=torch.long)
    labels = torch.zeros(len(chosen), 4, y.shape[1])
    for m, i in enumerate(chosen.tolist()):
        cx = int(S * (0.25 + 0.5 * float(torch.rand(1, generator=gen))))
        cy = int(S * (0.25 + 0.5 * float(torch.rand(1, generator=gen))))
        others = torch.randint(B, (3,), generator=gen).tolist()
        cells = ((0, 0, cy, cx), (0, cx, cy, S), (cy, 0, S, cx), (cy, cx, S, S))
        y[i] = 0
        for t, (j, (y0, x0, y1, x1)) in enumerate(zip([i] + others, cells)):
            tile = F.interpolate(src[j:j + 1], size=(y1 - y0, x1 - x0), mode="bilinear", antialias=True,
                                 align_corners=False)
            x[i, :, y0:y1, x0:x1] = tile[0]
            y[i] += y_src[j] * ((y1 - y0) * (x1 - x0) / (S * S))
            boxes[m, t] = torch.tensor([y0, x0, y1, x1])
            labels[m, t] = y_src[j]
    return y, MosaicTiles(chosen, boxes, labels)


def region_weights(boxes: Tensor, image_size: int, grid: int) -> Tensor:
    """Pixel boxes (..., 4) as (y0, x0, y1, x1) -> (..., grid, grid) weights over a top map's cells.

    A cell's weight is the share of its area inside the box; weights are normalized to sum
    to one, so weights . features is the mean feature of the box, as the head sees a whole image.
    """
    edges = torch.linspace(0, image_size, grid + 1, dtype=torch.float32)
    lo, hi = edges[:-1], edges[1:]
    b = boxes.float()

    def overlap(a0: Tensor, a1: Tensor) -> Tensor:  # (..., 1) box sides -> (..., grid) overlap lengths
        return (torch.minimum(hi, a1) - torch.maximum(lo, a0)).clamp(min=0)

    wy = overlap(b[..., 0:1], b[..., 2:3])
    wx = overlap(b[..., 1:2], b[..., 3:4])
    w = wy[..., :, None] * wx[..., None, :]
    return w / w.sum(dim=(-2, -1), keepdim=True).clamp(min=1e-12)


def _beta(alpha: float, gen: torch.Generator) -> float:
    """Beta(alpha, alpha) from two Gamma draws made with ``gen`` (torch's Beta takes no generator)."""
    a, b = _gamma(alpha, gen), _gamma(alpha, gen)
    return a / (a + b)


def _gamma(alpha: float, gen: torch.Generator) -> float:
    """Gamma(alpha, 1) by Marsaglia-Tsang, driven by ``gen`` so runs repeat."""
    boost = 1.0
    if alpha < 1:
        boost = float(torch.rand(1, generator=gen)) ** (1 / alpha)
        alpha += 1
    d = alpha - 1 / 3
    c = 1 / math.sqrt(9 * d)
    while True:
        z = float(torch.randn(1, generator=gen))
        v = (1 + c * z) ** 3
        if v <= 0:
            continue
        u = float(torch.rand(1, generator=gen))
        if math.log(max(u, 1e-300)) < 0.5 * z * z + d - d * v + d * math.log(v):
            return d * v * boost
