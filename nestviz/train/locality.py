"""The locality loss (``--locality-loss``): hiding part of an image removes its class evidence, and only its.

CAM and GradCAT read NesT's top map cell by cell, as if each cell's class evidence came from
its own pixels. Attention lets evidence drift: a cell over water can carry "tench" because it
attends to the fish, so the map spreads past the object (CAM boxes about twice the object's
area) and a region's share of the logit is not what hiding it costs (occlusion disagrees with
the first-order scores). This loss asks for what the explanations assume: a random rectangle of
top-map cells is set to the dataset mean (0 after normalization, the occlusion substrate of
``nestviz metrics``); the contrastive class map of the occluded copy must equal the clean one on
every cell outside the rectangle, and be 0 (no class set apart) on the hidden cells. Then hiding
a region takes away exactly its share of the class score, which is what GradCAT's child scores
and the CAM claim. No label or box enters it; the clean map is the target (detached).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..model.nest import Nest


def occlusion_cells(batch: int, grid: int, gen: torch.Generator, max_side: int) -> Tensor:
    """(B, 4) random rectangles (r0, c0, r1, c1) of 1..``max_side`` x 1..``max_side`` cells inside a ``grid`` map."""
    side = torch.randint(1, max_side + 1, (batch, 2), generator=gen)
    r0 = (torch.rand(batch, generator=gen) * (grid - side[:, 0] + 1)).long()
    c0 = (torch.rand(batch, generator=gen) * (grid - side[:, 1] + 1)).long()
    return torch.stack([r0, c0, r0 + side[:, 0], c0 + side[:, 1]], dim=1)


def cell_masks(cells: Tensor, grid: int) -> Tensor:
    """(B, grid, grid) bool: True on the cells of each rectangle (r0, c0, r1, c1)."""
    idx = torch.arange(grid)
    rows = (idx[None] >= cells[:, 0:1]) & (idx[None] < cells[:, 2:3])
    cols = (idx[None] >= cells[:, 1:2]) & (idx[None] < cells[:, 3:4])
    return rows[:, :, None] & cols[:, None, :]


def occlude(x: Tensor, masks: Tensor) -> Tensor:
    """A copy of normalized images ``x`` (B, 3, S, S) with the pixels under each mask's cells set to 0 (the mean)."""
    keep = torch.nn.functional.interpolate((~masks)[:, None].float(), size=x.shape[-2:], mode="nearest")
    return x * keep.to(x.dtype)


def contrast_cam(model: Nest, features: Tensor) -> Tensor:
    """(B, g, g, K) class maps minus their mean over classes, from ``forward_features``'s (B, C, g, g)."""
    head = model.get_classifier()
    w = head.weight - head.weight.mean(dim=0, keepdim=True)
    return torch.einsum("bchw,kc->bhwk", features.float(), w.float())


def locality_loss(model: Nest, clean_features: Tensor, x: Tensor, gen: torch.Generator, max_side: int = 3) -> Tensor:
    """Mean squared distance of the occluded copy's contrastive class map from the clean one with the hidden
    cells set to 0, over cells and classes (see module)."""
    grid = clean_features.shape[-1]
    masks = cell_masks(occlusion_cells(len(x), grid, gen, min(max_side, grid)), grid).to(x.device)
    occluded = model.forward_features(occlude(x, masks))
    target = contrast_cam(model, clean_features).detach() * (~masks)[..., None]
    return (contrast_cam(model, occluded) - target).pow(2).mean()


__all__ = ["occlusion_cells", "cell_masks", "occlude", "contrast_cam", "locality_loss"]
