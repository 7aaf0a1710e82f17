"""Attention flow of a NesT's top level: which top-level cells each output cell's content came from.

The top level is one block whose transformer layers let every cell read every other one, so the
class evidence a CAM shows at a cell (``w_c . f(cell)``) may have been gathered from elsewhere:
on photographs the evidence spreads past the object. Each layer's output at cell i is its input
plus the attention output, o_i = x_i + sum_h sum_j a_h,ij W_o,h v_h,j (the MLP acts on each cell alone).
Its mixing matrix is M_ij = r_i [i = j] + (1 - r_i) s_ij, with r_i = |x_i| / (|x_i| + |attn_i|) the
residual's share of the update and s_ij the share of cell j in the attention output, by what the heads
carry from it: s_ij proportional to sum_h a_h,ij |W_o,h v_h,j| (Kobayashi et al., EMNLP 2020: attention
weights alone overstate the mixing, a cell with a small value vector carries little whatever its weight;
Abnar & Zuidema, ACL 2020, weigh by a alone and fix r at 1/2). On a model with a planted logo in a
corner, weighing by the carried norm puts the CAM peak on the logo in 95% of the decisions it caused,
the attention weights alone in 57% (README, Trust). The flow is the product over layers, F = M_L ... M_1, each row a
distribution over the top level's input cells. ``redistribute`` moves each cell's evidence back
to those sources: m'_j = sum_i F_ij m_i. Rows sum to 1, so the map's total (the class score) is
kept: the CAM's mean and GradCAT's cam-score decomposition stay exact.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..model.layers import NestLevel, TransformerLayer, blockify, deblockify
from ..model.nest import Nest


def forward_flow(model: Nest, x: Tensor, residual: float | None = None) -> tuple[Tensor, list[Tensor], Tensor]:
    """One forward pass of images ``x`` (B, 3, S, S): the normalized top map (B, C, H, W), every level's
    output map (as ``model.forward_intermediates``) and the top level's attention flow (B, HW, HW).

    ``residual``: None reads each cell's residual share off the norms (the default); a number fixes it
    (attention rollout's 1/2, Abnar & Zuidema), for comparison."""
    acts, h = [], model.patch_embed(x)
    for level in model.levels[:-1]:
        h = level(h)
        acts.append(h)
    top = model.levels[-1]
    out, flow = top_with_flow(top, top.pool(h), residual=residual)
    acts.append(out)
    return model.final_norm(out), acts, flow


def top_with_flow(top: NestLevel, pooled: Tensor, step: Callable[..., tuple[Tensor, ...]] | None = None,
                  residual: float | None = None) -> tuple[Tensor, Tensor]:
    """The top level's transformer layers on its aggregated input ``pooled`` (B, C, H, W): the output map
    (B, C, H, W) and the attention flow (B, HW, HW). ``step(layer, t)`` runs one layer on the block (B, 1, N, C)
    and returns what ``TransformerLayer.forward_with_attention`` returns (the default; the relevance score holds
    some factors for its backward pass)."""
    step = step or (lambda layer, t: layer.forward_with_attention(t))
    t = blockify(pooled.permute(0, 2, 3, 1), top.block_size) + top.pos_embed  # (B, 1, N, C): one block
    flow = torch.eye(t.shape[2], dtype=t.dtype, device=t.device).expand(t.shape[0], 1, -1, -1)
    for layer in top.transformer_encoder:
        out, update, weights, carried = step(layer, t)
        flow = mixing(t, update, weights, carried, residual) @ flow
        t = out
    return deblockify(t, top.block_size).permute(0, 3, 1, 2), flow[:, 0]


def layer_flow(layer: TransformerLayer, x: Tensor, residual: float | None = None) -> tuple[Tensor, Tensor]:
    """``layer(x)`` for blocks (B, T, N, C), with the attention weights the layer computes
    (``TransformerLayer.forward_with_attention``), and its mixing matrix (B, T, N, N) (``residual``: as
    :func:`forward_flow`'s)."""
    out, update, weights, carried = layer.forward_with_attention(x)
    return out, mixing(x, update, weights, carried, residual)


def mixing(x: Tensor, update: Tensor, weights: Tensor, carried: Tensor, residual: float | None = None) -> Tensor:
    """A layer's mixing matrix (B, T, N, N) from its input ``x``, its attention update and what
    ``Attention.forward_with_weights`` returns (``residual``: as :func:`forward_flow`'s)."""
    if residual is None:
        keep = x.norm(dim=-1) / (x.norm(dim=-1) + update.norm(dim=-1)).clamp(min=1e-12)  # (B, T, N)
    else:
        keep = torch.full(x.shape[:-1], float(residual), dtype=x.dtype, device=x.device)
    share = torch.einsum("bhtij,bhtj->btij", weights, carried)  # what the heads carry from j into i
    share = share / share.sum(dim=-1, keepdim=True).clamp(min=1e-12)
    return (1 - keep)[..., None] * share + torch.diag_embed(keep)


def redistribute(maps: Tensor, flow: Tensor) -> Tensor:
    """Maps (B, k, H, W) over the top level's cells, each cell's value moved to the cells it came from
    through ``flow`` (B, HW, HW): m'_j = sum_i flow_ij m_i. Sums are kept."""
    B, k, H, W = maps.shape
    return torch.einsum("bij,bki->bkj", flow.to(maps.dtype), maps.reshape(B, k, H * W)).reshape(B, k, H, W)


__all__ = ["forward_flow", "top_with_flow", "layer_flow", "mixing", "redistribute"]
