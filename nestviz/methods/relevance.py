"""GradCAT scored by conservative relevance: follow the child block that holds the largest share of the class
score, the share carried down through the top level's attention with the factors that break it held constant.

The paper's score, sum(A * dY/dA) at a child's level, is the first-order share of the class score a
block's output holds; through a transformer it does not add up to the score and points wherever the
gradient of a normalization or a softmax happens to be large (the planted top-left logo: 11% of its
decisions; README, Trust). Ali et al. (ICML 2022, "XAI for Transformers: better explanations through
conservative propagation") locate the break: LayerNorm's division by the standard deviation and the
attention's softmax let the gradient flow through factors that only rescale or route the signal. Held
constant (their LN and AH rules), and GELU's gate held at gelu(z) / z (the z-rule), the levels above a
map are linear in it, so A * dY/dA is each position's exact share of the class score (up to biases and
position embeddings, which are not any block's): the shares add up and follow what the levels above
actually do with each block.

Here the shares are read at the output of the level below the top (one backward pass per explained
class through the top level and its aggregation only): the root's children are that level's blocks,
each scored by the sum of its positions' shares; a lower block by the shares over its area (a position
split between blocks counting by area, ``camtree.logit_share_heat``). The class direction is the CAM
kind's (``cam.class_weights``: by default the class minus the mean class, what sets it apart). The pass
keeps the top level's attention flow, so a CAM of the same images costs no extra pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..defaults import CAM_KIND
from ..model.layers import TransformerLayer
from ..model.nest import Nest, NestConfig
from .cam import class_weights
from .camtree import cam_gradcat, logit_share_heat
from .common import explaining, select_classes
from .flow import Flow, top_with_flow
from .gradcat import GradcatOutput, child_of, walk


LayerRule = Callable[[TransformerLayer, Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]


@dataclass
class HeldPass:
    """One held pass: the logits, the explained classes (B, k), the shares at the output of the level below the
    top, and the pass's maps for reuse (the top map before and after the final norm, its attention flow)."""

    logits: Tensor  # (B, K) float32
    classes: Tensor  # (B, k)
    share: Tensor  # (k, B, H, W): each position's share of the class score, at the level below the top
    top: Tensor
    features: Tensor
    flow: Flow
    below: Tensor  # (B, C, H, W) the output of the level below the top


def relevance_gradcat(model: Nest, x: Tensor, *, top_k: int = 4, classes: Sequence[int] | Tensor | None = None,
                      sign: float = 1.0, kind: str = CAM_KIND) -> GradcatOutput:
    """GradCAT paths of ``classes`` (default: the ``top_k`` most probable) scored by conservative relevance in
    the direction of the ``kind`` CAM's class weights; see the module. A one-level model's only block is its
    root, scored as the cam score scores it."""
    cfg, L = model.cfg, model.cfg.num_levels
    if L == 1:
        return cam_gradcat(model, x, top_k=top_k, classes=classes, sign=sign, kind=kind)
    p = held_pass(model, x, top_k=top_k, classes=classes, kind=kind)
    share = sign * p.share.float().cpu()
    heat = logit_share_heat(share, L, cfg.block_size, at=L - 2, offset=cfg.pool_offset)  # below the root: area shares
    heat[L - 1] = block_totals(share, cfg)  # the root's children: the blocks whose outputs hold the shares
    k = p.classes.shape[1]
    paths = [[walk([None if m is None else m[j, i] for m in heat], cfg) for j in range(k)] for i in range(x.shape[0])]
    for i, row in enumerate(paths):
        for j, path in enumerate(row):
            path[0].score = float(share[j, i].sum(dtype=torch.float64))  # the root holds the whole share
    return GradcatOutput(p.logits, p.classes, paths, p.top, p.features, heat, p.flow, p.below)


def held_pass(model: Nest, x: Tensor, *, top_k: int = 4, classes: Sequence[int] | Tensor | None = None,
              kind: str = CAM_KIND) -> HeldPass:
    """The top level run with the held factors, and one backward pass per explained class through it: each
    position's share of the ``kind`` class score at the output of the level below the top."""
    with explaining(model):
        weight = class_weights(model, kind)[0]  # first: an unknown kind fails before any work
        with torch.inference_mode():
            h = model.patch_embed(x)
            for level in model.levels[:-1]:
                h = level(h)
        with torch.inference_mode(False), torch.enable_grad():
            below = h.clone().requires_grad_(True)  # an inference tensor cannot start a graph
            top, flow = held_top(model, below)
            features = held_norm(model.norm, top.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            pooled = features.mean(dim=(2, 3))
            logits = model.head(pooled).float()
            chosen = select_classes(logits.detach(), top_k, classes)
            directions = weight[chosen].to(pooled.dtype)  # (B, k, C): d(class score) / d(pooled)
            k = chosen.shape[1]
            share = torch.stack([(below * torch.autograd.grad(pooled, below, directions[:, j], retain_graph=j < k - 1)[0])
                                 .sum(dim=1).detach() for j in range(k)])
    return HeldPass(logits.detach(), chosen, share, top.detach(), features.detach(), flow, below.detach())


def block_totals(share: Tensor, cfg: NestConfig) -> np.ndarray:
    """The parent level's map for ``gradcat.walk`` from shares (k, B, H, W) at a level's output: each position
    holds the total of the child block it belongs to (``gradcat.child_of``), so a quadrant's mean is that
    block's own total, whatever the block size."""
    b = cfg.block_size
    k, B, h, w = share.shape
    sums = share.double().reshape(k, B, h // b, b, w // b, b).sum(dim=(3, 5))  # (k, B, g, g): each block's total
    parents = range(h // 2 // b)  # the parent level's blocks along an axis, and the child row (col) of each position
    child = torch.from_numpy(np.concatenate([2 * p + child_of(p, b, cfg.pool_offset) for p in parents]))
    return sums[:, :, child[:, None], child[None, :]].numpy()


def held_top(model: Nest, below: Tensor, layer: LayerRule | None = None) -> tuple[Tensor, Flow]:
    """The top level on the map of the level below it (B, C, H, W), with LayerNorm's scale, the attention weights
    and GELU's gate held for the backward (see the module): its output map and its attention flow, as
    ``flow.forward_flow`` gives them (``flow.top_with_flow``). ``layer``: how a transformer layer is run (default
    :func:`held_layer`; ``benchmarks/root_choice.py`` measures other rules through it)."""
    pool = model.levels[-1].pool
    pooled = pool.downsample(held_norm(pool.norm, pool.conv(below).permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
    return top_with_flow(model.levels[-1], pooled, layer or held_layer)


def held_layer(layer: TransformerLayer, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``layer.forward_with_attention(x)`` for blocks (B, T, N, C) with the held factors: the output, the attention
    update, weights and values (the last three detached: they only feed the flow)."""
    update, weights, values = layer.attn.forward_with_weights(held_norm(layer.norm1, x), hold=True)
    mid = x + update
    out = mid + layer.mlp.fc2(held_gelu(layer.mlp.fc1(held_norm(layer.norm2, mid))))
    return out, update.detach(), weights.detach(), values.detach()


def held_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    """``norm(x)`` (channels last), whose gradient holds the standard deviation constant (Ali et al.'s LN rule):
    the centring and the affine map stay, so the map is linear in ``x`` for the backward."""
    return _HeldNorm.apply(x, norm) if x.requires_grad else norm(x)


def held_gelu(z: Tensor) -> Tensor:
    """GELU(z), whose gradient is the gate gelu(z) / z held constant (the z-rule): linear in ``z`` for the backward."""
    return _HeldGelu.apply(z) if z.requires_grad else F.gelu(z)


class _HeldNorm(torch.autograd.Function):
    """:func:`held_norm` as one node: the value is the norm's own, the backward only what the rule keeps (the
    relevance pass for four classes 22.9-24.1 ms per image on 2 cores, against 25.0-25.7 with the rule built out
    of the graph's own operations)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, norm: nn.LayerNorm) -> Tensor:
        ctx.save_for_backward((x.var(dim=-1, unbiased=False, keepdim=True) + norm.eps).sqrt(), norm.weight.detach())
        return norm(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        sd, weight = ctx.saved_tensors
        g = grad * weight
        return (g - g.mean(dim=-1, keepdim=True)) / sd, None


class _HeldGelu(torch.autograd.Function):
    """:func:`held_gelu` as one node: GELU's value, the gate gelu(z) / z (1/2 at 0) as its gradient."""

    @staticmethod
    def forward(ctx: Any, z: Tensor) -> Tensor:
        value = F.gelu(z)
        away = z.abs() > 1e-6
        ctx.save_for_backward(torch.where(away, value / torch.where(away, z, torch.ones_like(z)), 0.5))
        return value

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (gate,) = ctx.saved_tensors
        return grad * gate


__all__ = ["HeldPass", "relevance_gradcat", "held_pass", "block_totals", "held_top", "held_layer", "held_norm", "held_gelu"]
