"""Attention flow of a NesT's top level: which top-level cells each output cell's class evidence came from.

The top level is one block whose transformer layers let every cell read every other one, so the
class evidence a CAM shows at a cell (``w_c . f(cell)``) may have been gathered from elsewhere:
on photographs the evidence spreads past the object. Each layer's output at cell i is its input
plus the attention output, o_i = x_i + sum_h sum_j a_h,ij W_o,h v_h,j (the MLP acts on each cell alone).
Its mixing matrix is M_ij = r_i [i = j] + (1 - r_i) s_ij, with r_i = |x_i| / (|x_i| + |attn_i|) the
residual's share of the update and s_ij the share of cell j in the class evidence the attention brings to i:
s_ij proportional to max(0, sum_h a_h,ij u . W_o,h v_h,j), u the class's direction as the head reads the
residual stream (:func:`class_directions`). Weighing what the heads carry, not the attention weights alone,
follows Kobayashi et al. (EMNLP 2020): a cell with a small value carries little whatever its weight (Abnar &
Zuidema, ACL 2020, weigh by a alone and fix r at 1/2). Weighing what they carry *of the class* keeps an
attention sink out: the default model's top level attends from everywhere to its bottom-right cell, whose
value is large and says nothing of the class; weighed by its norm (Kobayashi's |W_o,h v_h,j|, the release
before) it collected the evidence, and the CAM peak of a planted top-left logo fell there in 12 of 156
decisions (0.923 on the patch; 0.994 weighed by the class, README, Trust). The flow is the product over
layers, F = M_L ... M_1, each row a distribution over the top level's input cells, one per explained class.
``redistribute`` moves each cell's evidence back to those sources: m'_j = sum_i F_ij m_i. Rows sum to 1, so
the map's total (the class score) is kept: the CAM's mean and GradCAT's cam-score decomposition stay exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..model.layers import Attention, NestLevel, TransformerLayer, blockify, deblockify
from ..model.nest import Nest


@dataclass
class Flow:
    """What the top level's layers did, kept to trace a class's evidence back through them (one block): per layer
    its residual shares r (B, N), attention weights (B, H, N, N), values (B, H, N, d) and attention module (its
    output projection per head). :func:`redistribute` and :meth:`matrix` read it with the class directions."""

    steps: list[tuple[Tensor, Tensor, Tensor, Attention]]

    def mixing(self, layer: int, directions: Tensor) -> Tensor:
        """Layer ``layer``'s mixing matrix M_l (B, k, N, N) for the class directions (B, k, C)."""
        keep, weights, values, attn = self.steps[layer]
        return mixing(keep, class_shares(weights, values, attn, directions))

    def matrix(self, directions: Tensor) -> Tensor:
        """The flow F = M_L ... M_1 (B, k, N, N) of each class direction (B, k, C): row i the sources of cell i."""
        B, k = directions.shape[:2]
        n = self.steps[0][1].shape[-1] if self.steps else 0
        f = torch.eye(n, dtype=directions.dtype, device=directions.device).expand(B, k, n, n)
        for layer in range(len(self.steps)):
            f = self.mixing(layer, directions) @ f
        return f


def forward_flow(model: Nest, x: Tensor, residual: float | None = None) -> tuple[Tensor, list[Tensor], Flow]:
    """One forward pass of images ``x`` (B, 3, S, S): the normalized top map (B, C, H, W), every level's
    output map (as ``model.forward_intermediates``) and the top level's :class:`Flow`.

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
                  residual: float | None = None) -> tuple[Tensor, Flow]:
    """The top level's transformer layers on its aggregated input ``pooled`` (B, C, H, W): the output map
    (B, C, H, W) and its :class:`Flow`. ``step(layer, t)`` runs one layer on the block (B, 1, N, C) and returns
    what ``TransformerLayer.forward_with_attention`` returns (the default; the relevance score holds some factors
    for its backward pass)."""
    step = step or (lambda layer, t: layer.forward_with_attention(t))
    t = blockify(pooled.permute(0, 2, 3, 1), top.block_size) + top.pos_embed  # (B, 1, N, C): one block
    steps = []
    for layer in top.transformer_encoder:
        out, update, weights, values = step(layer, t)
        steps.append((residual_share(t.detach(), update.detach(), residual)[:, 0], weights[:, :, 0].detach(),
                      values[:, :, 0].detach(), layer.attn))
        t = out
    return deblockify(t, top.block_size).permute(0, 3, 1, 2), Flow(steps)


def residual_share(x: Tensor, update: Tensor, residual: float | None = None) -> Tensor:
    """r_i = |x_i| / (|x_i| + |attn_i|) (B, T, N): how much of a cell's output its input keeps; ``residual`` a
    fixed number instead (attention rollout's 1/2)."""
    if residual is not None:
        return torch.full(x.shape[:-1], float(residual), dtype=x.dtype, device=x.device)
    return x.norm(dim=-1) / (x.norm(dim=-1) + update.norm(dim=-1)).clamp(min=1e-12)


def class_directions(model: Nest, weights: Tensor) -> Tensor:
    """The direction (..., C) in which the head reads class rows ``weights`` (..., C) off the residual stream:
    gamma * w through the final LayerNorm, centred (the norm removes each cell's mean; its 1/sigma is each cell's
    own and cancels in a cell's shares)."""
    u = weights * model.norm.weight.to(weights.dtype)
    return u - u.mean(dim=-1, keepdim=True)


def class_shares(weights: Tensor, values: Tensor, attn: Attention, directions: Tensor) -> Tensor:
    """s_ij (B, k, N, N): cell j's share of the class evidence the attention brings to cell i, max(0, sum_h a_h,ij
    u . W_o,h v_h,j) over the row, per class direction u (B, k, C); a row with none is all zero."""
    per_head = attn.head_projections().to(directions.dtype)  # (C, d, H)
    u = torch.einsum("bkc,cdh->bkhd", directions, per_head)  # W_o,h' u
    carried = torch.einsum("bhnd,bkhd->bkhn", values.to(directions.dtype), u)  # u . W_o,h v_h,j
    s = torch.einsum("bhij,bkhj->bkij", weights.to(directions.dtype), carried).clamp(min=0)
    return s / s.sum(dim=-1, keepdim=True).clamp(min=1e-12)


def mixing(keep: Tensor, shares: Tensor) -> Tensor:
    """A layer's mixing matrix (B, k, N, N) from its residual shares ``keep`` (B, N) and ``shares`` (B, k, N, N):
    M_ij = r_i [i = j] + (1 - r_i) s_ij; a cell the attention brings no class evidence to keeps its own."""
    r = torch.where(shares.sum(dim=-1) > 0, keep[:, None].to(shares.dtype), torch.ones_like(shares[..., 0]))
    return (1 - r)[..., None] * shares + torch.diag_embed(r)


def layer_flow(layer: TransformerLayer, x: Tensor, residual: float | None = None) -> tuple[Tensor, Tensor]:
    """``layer(x)`` for blocks (B, T, N, C), with the attention weights the layer computes
    (``TransformerLayer.forward_with_attention``), and its class-blind mixing matrix (B, T, N, N): shares by the
    norm of what the heads carry, |W_o,h v_h,j| (Kobayashi et al.; this module's flow before it weighed by the
    class), ``residual`` as :func:`forward_flow`'s. For comparison (``benchmarks/explanation_variants.py``)."""
    out, update, weights, values = layer.forward_with_attention(x)
    per_head = layer.attn.head_projections()
    gram = torch.einsum("ocg,odg->gcd", per_head, per_head)  # |W_h v|^2 = v' W_h'W_h v: d x d per head
    carried = torch.einsum("bgtnc,gcd,bgtnd->bgtn", values, gram, values).clamp(min=0).sqrt()
    share = torch.einsum("bhtij,bhtj->btij", weights, carried)
    share = share / share.sum(dim=-1, keepdim=True).clamp(min=1e-12)
    keep = residual_share(x, update, residual)
    return out, (1 - keep)[..., None] * share + torch.diag_embed(keep)


def redistribute(maps: Tensor, flow: Flow, directions: Tensor) -> Tensor:
    """Maps (B, k, H, W) over the top level's cells, each cell's value moved to the cells it came from
    through ``flow`` for its class direction (B, k, C): m'_j = sum_i F_ij m_i, layer by layer from the last
    (M_1' ... M_L' m, never the N x N product). Sums are kept."""
    B, k, H, W = maps.shape
    m = maps.reshape(B, k, H * W)
    for layer in reversed(range(len(flow.steps))):  # one layer's matrices at a time
        m = torch.einsum("bkij,bki->bkj", flow.mixing(layer, directions).to(m.dtype), m)
    return m.reshape(B, k, H, W)


__all__ = ["Flow", "forward_flow", "top_with_flow", "residual_share", "class_directions", "class_shares", "mixing",
           "layer_flow", "redistribute"]
