"""GradCAT: explain a NesT prediction as one root-to-leaf path through its tree of blocks.

One forward pass keeps every level's output A_l and one batched backward pass gives
G_l = dY_c/dA_l for each explained class c. From the root down, the current block's four 2x2
child quadrants are scored by the mean of h = sign * sum_channels(A_l * G_l) and the traversal
descends into the best one.

At the top level A_L is the map the classifier reads, after the final LayerNorm (so
h_L = (w_c . f) / HW, the CAM without its bias). Before that norm h_L would vanish: LayerNorm
is scale-invariant per position, so sum_channels(A * dY/dA) = 0 there up to its epsilon, and
the root's choice would be float32 rounding noise.

Quadrant membership follows the block aggregation: a position p of level l was pooled from a
window centred at 2p (plain padding) or 2p + 1 ("same" padding) of level l - 1, and belongs to
the child block holding that centre. For an even block size this is the plain half split.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..model.nest import Nest, NestConfig
from .common import Box, explaining, select_classes
from .flow import Flow


@dataclass
class BlockNode:
    """One visited block of the traversal, with the fields of ``nestviz.results.records.PathNode`` (which
    documents them), but its box in model-input pixels: ``nestviz.api`` maps it onto the image."""

    level: int
    node: int
    box: Box
    score: float
    child_scores: list[float] | None = None
    chosen_child: int | None = None
    removal_drops: list[float | None] | None = None


@dataclass
class GradcatOutput:
    """GradCAT paths for a batch, with the forward's logits and maps for reuse (e.g. by CAM)."""

    logits: Tensor  # (B, K) float32, detached
    classes: Tensor  # (B, k) long: the explained classes of each image, in rank order
    paths: list[list[list[BlockNode]]]  # [image][rank] -> nodes, root first, leaf last
    top: Tensor  # (B, C, H, W) detached top-level map, before the final norm
    features: Tensor  # (B, C, H, W) detached top-level map after the final norm: what the head reads
    heat: list[np.ndarray | None] | None = None  # per 0-based level: (k, B, H, W) contributions, None where unused
    flow: Flow | None = None  # the top level's attention flow, where the forward pass kept it
    below: Tensor | None = None  # (B, C, H, W) the output of the level below the top, where the pass kept it


def gradcat(model: Nest, x: Tensor, *, top_k: int = 4, classes: Sequence[int] | Tensor | None = None,
            sign: float = 1.0) -> GradcatOutput:
    """Explain ``classes`` (default: each image's ``top_k`` most probable) of images ``x`` (B, C, S, S).

    Costs one forward pass plus k backward passes through the levels above the leaves, batched.
    The model comes back exactly as it was (modes, gradient flags), also when this raises.
    """
    cfg = model.cfg
    with explaining(model), torch.inference_mode(False):
        maps, grads, logits, chosen, top = _forward_backward(model, x, top_k, classes)
    heat = [None if g is None else (sign * (a.unsqueeze(0) * g).sum(2)).float().cpu().numpy()
            for a, g in zip(maps, grads)]  # per level: (k, B, H, W), None for unused leaves
    paths = [[walk([None if h is None else h[j, i] for h in heat], cfg) for j in range(chosen.shape[1])]
             for i in range(x.shape[0])]
    return GradcatOutput(logits.float(), chosen, paths, top, maps[-1], heat)


def block_box(cfg: NestConfig, level: int, row: int, col: int) -> Box:
    """Model-input pixel box [x0, y0, x1, y1] of block (row, col) at 0-based ``level``."""
    side = cfg.block_size * 2**level * cfg.patch_size
    return (float(col * side), float(row * side), float((col + 1) * side), float((row + 1) * side))


def _forward_backward(model: Nest, x: Tensor, top_k: int, classes: Sequence[int] | Tensor | None
                      ) -> tuple[list[Tensor], list[Tensor | None], Tensor, Tensor, Tensor]:
    """Per-level maps (the top one after the final norm), their gradients (k, B, C, H, W) (None for
    the leaves unless they are the root), logits, explained classes, top map before the norm.

    The parameters are frozen (:func:`explaining`), so the graph starts where gradients are asked
    for: at the input when a level between the leaves and the root needs them, else at the features.
    """
    L = model.cfg.num_levels
    x = x.clone() if x.is_inference() else x.detach()  # an inference-mode tensor cannot start a graph
    with torch.set_grad_enabled(L > 2):
        feats, acts = model.forward_intermediates(x.requires_grad_(L > 2))
    with torch.enable_grad():
        if L <= 2:
            feats = feats.detach().requires_grad_(True)
        logits = model.forward_head(feats)
    chosen = select_classes(logits.detach(), top_k, classes)
    *mid, g_top = _class_grads(logits, [*acts[1:-1], feats], chosen)
    maps = [a.detach() for a in acts[:-1]] + [feats.detach()]
    grads = [None, *mid, g_top][-L:]
    return maps, grads, logits.detach(), chosen, acts[-1].detach()


def _class_grads(logits: Tensor, inputs: Sequence[Tensor], chosen: Tensor) -> list[Tensor]:
    """d logits[b, chosen[b, j]] / d inputs for every rank j, stacked first: one (k, B, ...) per input."""
    onehot = torch.zeros((chosen.shape[1], *logits.shape), dtype=logits.dtype, device=logits.device)
    onehot.scatter_(2, chosen.T.unsqueeze(-1), 1.0)
    try:  # all k backward passes at once, vectorized over the first dimension of the one-hots
        with warnings.catch_warnings():  # ops without a batching rule (fused attention on CUDA) loop inside
            warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet")
            return list(torch.autograd.grad(logits, inputs, onehot, retain_graph=True, is_grads_batched=True))
    except RuntimeError:  # an op without a batching rule: one backward per rank through the same graph
        per_rank = [torch.autograd.grad(logits, inputs, v, retain_graph=True) for v in onehot]
        return [torch.stack(g) for g in zip(*per_rank)]


def walk(heat: Sequence[np.ndarray | None], cfg: NestConfig, first: int | None = None) -> list[BlockNode]:
    """Descend from the root through per-level contribution maps ``heat[i]`` (H, W), 0-based levels; ``first``: the
    root's child to take (0-3, row-major) where another test than the root map's scores decided it."""
    b, L = cfg.block_size, cfg.num_levels
    offset = cfg.pool_offset
    row = col = 0
    score = float(heat[L - 1].mean(dtype=np.float64))
    path = []
    for level in range(L - 1, -1, -1):
        node = BlockNode(level + 1, row * cfg.grid(level) + col, block_box(cfg, level, row, col), score)
        path.append(node)
        if level == 0:
            break
        region = heat[level][row * b:(row + 1) * b, col * b:(col + 1) * b]
        scores = _child_scores(region, child_of(row, b, offset), child_of(col, b, offset))
        pick = int(np.argmax(scores)) if first is None or level < L - 1 else first
        node.child_scores, node.chosen_child = scores, pick
        row, col, score = 2 * row + pick // 2, 2 * col + pick % 2, scores[pick]
    return path


def block_scores(heat: Sequence[np.ndarray | None], cfg: NestConfig) -> list[np.ndarray]:
    """Every block's score as a child of its parent, per 0-based level below the root: (grid, grid) arrays.

    The same quadrant scores the traversal compares, for all nodes of the tree rather than the
    visited ones; ``leaf_order`` ranks the leaves with them.
    """
    b, L = cfg.block_size, cfg.num_levels
    offset = cfg.pool_offset
    out = []
    for level in range(L - 1):
        g = cfg.grid(level)
        scores = np.zeros((g, g))
        for pr in range(g // 2):
            for pc in range(g // 2):
                region = heat[level + 1][pr * b:(pr + 1) * b, pc * b:(pc + 1) * b]
                q = _child_scores(region, child_of(pr, b, offset), child_of(pc, b, offset))
                scores[2 * pr:2 * pr + 2, 2 * pc:2 * pc + 2] = np.reshape(q, (2, 2))
        out.append(scores)
    return out


def leaf_order(scores: Sequence[np.ndarray], cfg: NestConfig) -> np.ndarray:
    """Leaf blocks (row-major indices) in the order a best-first GradCAT would reach them.

    A leaf ranks by its ancestors' scores from the root's child down to its own: all leaves under
    the root's best child come first, among them those under that child's best child, and so on.
    The traversal's leaf is first.
    """
    g0 = cfg.grid(0)
    rows, cols = np.divmod(np.arange(g0 * g0), g0)
    keys = [scores[level][rows >> level, cols >> level] for level in range(len(scores))]  # leaf level first
    return np.lexsort([-k for k in keys])  # lexsort's last key is the primary one: the root's child


def child_of(block: int, b: int, offset: int) -> np.ndarray:
    """Child index (0 or 1) of each position of parent ``block`` along one axis: where its pool window is centred."""
    p = np.arange(block * b, (block + 1) * b)
    return (2 * p + offset) // b - 2 * block


def _child_scores(region: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> list[float]:
    """Mean of ``region`` over each quadrant: top-left, top-right, bottom-left, bottom-right.

    A quadrant can only be empty for 1x1 blocks, where the one position feeds every child; it
    then gets the whole region's mean.
    """
    scores = []
    for r in (0, 1):
        for c in (0, 1):
            q = region[np.ix_(rows == r, cols == c)]
            scores.append(float((q if q.size else region).mean(dtype=np.float64)))
    return scores


__all__ = ["BlockNode", "GradcatOutput", "gradcat", "walk", "child_of", "block_box", "block_scores", "leaf_order"]
