"""The locality loss (``--locality-loss``): hiding part of an image removes its class evidence, and only its.

CAM and GradCAT read NesT's top map cell by cell, as if each cell's class evidence came from
its own pixels. Attention lets evidence drift: a cell over water can carry "tench" because it
attends to the fish, so the map spreads past the object (CAM boxes about twice the object's
area) and a region's share of the logit is not what hiding it costs (occlusion disagrees with
the first-order scores). This loss asks for what the explanations assume: a random rectangle of
pixels (1/12 to 1/2 of the side, at any place, so that it cuts cells as GradCAT's 48-px leaves
cut the 32-px cells) is set to the dataset mean (0 after normalization, the occlusion substrate
of ``nestviz metrics``), and the contrastive class map of the occluded copy must be the clean one
times each cell's visible fraction: unchanged outside, 0 (no class set apart) where all is
hidden. Then hiding a region takes away its share of the class score and only that, which is
what GradCAT's child scores and the CAM claim. No label or box enters it; the clean map is the
target (detached).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..methods.cam import class_weights
from ..model.nest import Nest


def occlusion_boxes(batch: int, size: int, gen: torch.Generator, min_side: int, max_side: int) -> Tensor:
    """(B, 4) random pixel rectangles (y0, x0, y1, x1), sides ``min_side``..``max_side``, inside a ``size`` square."""
    side = torch.randint(min_side, max_side + 1, (batch, 2), generator=gen)
    y0 = (torch.rand(batch, generator=gen) * (size - side[:, 0] + 1)).long()
    x0 = (torch.rand(batch, generator=gen) * (size - side[:, 1] + 1)).long()
    return torch.stack([y0, x0, y0 + side[:, 0], x0 + side[:, 1]], dim=1)


def box_masks(boxes: Tensor, size: int) -> Tensor:
    """(B, size, size) bool: True on the pixels of each rectangle (y0, x0, y1, x1)."""
    idx = torch.arange(size)
    rows = (idx[None] >= boxes[:, 0:1]) & (idx[None] < boxes[:, 2:3])
    cols = (idx[None] >= boxes[:, 1:2]) & (idx[None] < boxes[:, 3:4])
    return rows[:, :, None] & cols[:, None, :]


def occlude(x: Tensor, masks: Tensor) -> Tensor:
    """A copy of normalized images ``x`` (B, 3, S, S) with the masked pixels set to 0 (the dataset mean)."""
    return x * (~masks)[:, None].to(x.dtype)


def contrast_cam(model: Nest, features: Tensor) -> Tensor:
    """(B, g, g, K) class maps minus their mean over classes, from ``forward_features``'s (B, C, g, g)."""
    return torch.einsum("bchw,kc->bhwk", features.float(), class_weights(model, "contrast")[0].float())


def locality_loss(model: Nest, clean_features: Tensor, x: Tensor, gen: torch.Generator) -> Tensor:
    """Mean squared distance, over cells and classes, of the occluded copy's contrastive class map from the
    clean one times each cell's visible fraction (see module)."""
    size, grid = x.shape[-1], clean_features.shape[-1]
    masks = box_masks(occlusion_boxes(len(x), size, gen, max(1, size // 12), size // 2), size).to(x.device)
    occluded = model.forward_features(occlude(x, masks))
    visible = 1.0 - F.adaptive_avg_pool2d(masks[:, None].float(), grid)[:, 0]  # (B, g, g)
    target = contrast_cam(model, clean_features).detach() * visible[..., None]
    return (contrast_cam(model, occluded) - target).pow(2).mean()


__all__ = ["occlusion_boxes", "box_masks", "occlude", "contrast_cam", "locality_loss"]
