"""GradCAT scored by the CAM: follow the child whose pixels hold the largest share of the class score.

NesT's head is linear on the mean of the normalized top map, so the logit splits exactly over
the top map's cells: logit_c = b_c + sum_cells (w_c . f(cell)) / cells. At the root this share of
a child quadrant is the paper's gradient score itself (``nestviz.methods.gradcat``: at the top
level A * dY/dA summed over channels is (w_c . f) / cells). ``kind`` is the CAM's
(``nestviz.methods.cam.cam_maps``): ``logit`` splits the logit, ``contrast`` the logit minus the
mean logit (w_c - mean(w)), what sets the class apart from the others, so that the path
descends through the same map that ``cam`` draws (``flow``: that map traced back through the top
level's attention, ``nestviz.methods.flow``, which keeps the split exact). Below the root this variant keeps
reading the same decomposition (a child's score is the logit share of the top cells over its
pixels, a cell split between children counting by area) where the paper reads A * dY/dA at the
child's own level. The scores are in logit units and add up: the children's shares make their
parent's. One inference forward pass, no backward pass: it costs what ``cam`` costs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..defaults import CAM_KIND
from ..model.nest import Nest
from .cam import class_weights, place
from .common import explaining, select_classes
from .flow import class_directions, forward_flow, redistribute
from .gradcat import GradcatOutput, child_of, walk


def cam_gradcat(model: Nest, x: Tensor, *, top_k: int = 4, classes: Sequence[int] | Tensor | None = None,
                sign: float = 1.0, kind: str = CAM_KIND) -> GradcatOutput:
    """GradCAT paths of ``classes`` (default: the ``top_k`` most probable) scored by their share of the
    ``kind`` CAM's class score (its bias left out: it is the same for every child); see the module."""
    cfg = model.cfg
    with explaining(model), torch.inference_mode():
        weight = class_weights(model, kind)[0].float()  # first: an unknown kind fails before any work
        features, acts, flow = forward_flow(model, x) if kind == "flow" else (*model.forward_intermediates(x), None)
        logits = model.forward_head(features).float()
        chosen = select_classes(logits, top_k, classes)
        share = torch.einsum("bchw,bkc->bkhw", features.float(), weight[chosen])
        share = share if flow is None else redistribute(share, flow, class_directions(model, weight[chosen]))
        share = place(share, cfg.top_shift(), keep_sum=True)  # where the cells see, every share kept
        share = sign * share.transpose(0, 1) / (share.shape[-1] * share.shape[-2])  # (k, B, H, W): each cell's share
    heat = logit_share_heat(share.cpu(), cfg.num_levels, cfg.block_size, offset=cfg.pool_offset)
    paths = [[walk([None if h is None else h[j, i] for h in heat], cfg) for j in range(chosen.shape[1])]
             for i in range(x.shape[0])]
    for i, row in enumerate(paths):
        for j, path in enumerate(row):
            path[0].score = float(share[j, i].sum(dtype=torch.float64))  # the root holds the whole share
    below = acts[-2].detach() if len(acts) > 1 else None
    return GradcatOutput(logits, chosen, paths, acts[-1].detach(), features.detach(), heat, flow, below)


def logit_share_heat(share: Tensor, levels: int, block: int, at: int | None = None, offset: int = 0
                     ) -> list[np.ndarray | None]:
    """Per 0-based level, (k, B, H_l, W_l) maps whose mean over any child quadrant is that child's logit share.

    ``share`` (k, B, H, W) is each position's share at level ``at`` (default: the top level). A level above it
    gets the shares summed over its 2^d x 2^d positions, a level below them spread evenly over its positions
    (a position split between children counts by area), each position times the size of the child quadrant it
    lies in (``gradcat.child_of``, ``offset`` 1 for "same" padding), so that ``gradcat.walk``'s quadrant means
    read as sums, also for odd blocks. The leaves' map (None) is only read by a one-level model, whose root is
    its only block.
    """
    k, b, h, w = share.shape
    at = levels - 1 if at is None else at
    flat = share.reshape(k * b, 1, h, w)
    heat: list[np.ndarray | None] = [None] if levels > 1 else []
    for level in range(1 if levels > 1 else 0, levels):
        f = 2 ** abs(level - at)
        if level >= at:  # summed over the positions each one of this level covers
            m = F.avg_pool2d(flat, f) * (f * f) if f > 1 else flat
        else:
            m = F.interpolate(flat, scale_factor=f, mode="nearest") / (f * f)
        n = _quadrant_sizes(m.shape[-1] // block, block, offset)
        heat.append((m * (n[:, None] * n[None, :])).reshape(k, b, *m.shape[-2:]).double().numpy())
    return heat


def _quadrant_sizes(blocks: int, block: int, offset: int) -> Tensor:
    """Along one axis of a level of ``blocks`` blocks: how many positions share each position's child half."""
    child = torch.from_numpy(child_of(0, block, offset))
    half = torch.stack([(child == 0).sum(), (child == 1).sum()]).clamp(min=1)
    return half[child].repeat(blocks).double()


__all__ = ["cam_gradcat", "logit_share_heat"]
