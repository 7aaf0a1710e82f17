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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .model import Nest, NestConfig
from .results import Box, PathNode


@dataclass
class GradcatOutput:
    """GradCAT paths for a batch, with the forward's logits and top map for reuse (e.g. by CAM)."""

    logits: Tensor  # (B, K) float32, detached
    classes: Tensor  # (B, k) long: the explained classes of each image, in rank order
    paths: list[list[list[PathNode]]]  # [image][rank] -> nodes, root first, leaf last
    top: Tensor  # (B, C, H, W) detached top-level map, before the final norm


@contextmanager
def explaining(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients inside; every mode and flag is restored on exit, even on error."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


def select_classes(logits: Tensor, top_k: int, classes: Sequence[int] | None) -> Tensor:
    """(B, k) class indices to explain: ``classes`` for every image, else each image's top-k logits."""
    B, K = logits.shape
    if classes is None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        return logits.topk(min(top_k, K), dim=1).indices
    chosen = [int(c) for c in classes]
    if not chosen:
        raise ValueError("classes is empty")
    bad = [c for c in chosen if not 0 <= c < K]
    if bad:
        raise ValueError(f"class index {bad[0]} is out of range for a model with {K} classes")
    return torch.tensor(chosen, dtype=torch.long, device=logits.device).repeat(B, 1)


def gradcat(model: Nest, x: Tensor, *, top_k: int = 4, classes: Sequence[int] | None = None,
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
    paths = [[_walk([None if h is None else h[j, i] for h in heat], cfg) for j in range(chosen.shape[1])]
             for i in range(x.shape[0])]
    return GradcatOutput(logits.float(), chosen, paths, top)


def traverse(acts: Sequence[Tensor], grads: Sequence[Tensor | None], cfg: NestConfig,
             sign: float = 1.0) -> list[PathNode]:
    """The GradCAT path of one image and one class, root first, from per-level (C, H, W) maps.

    ``acts[i]`` / ``grads[i]`` belong to 0-based level i, the top one taken after the final norm
    (``model.top_features``, channels first). ``grads[0]`` is only read when the leaves are the
    root (a 1-level model), so it may be None otherwise.
    """
    L = cfg.num_levels
    heat = [None if g is None or (i == 0 and L > 1) else (sign * (a * g).sum(0)).float().cpu().numpy()
            for i, (a, g) in enumerate(zip(acts, grads))]
    return _walk(heat, cfg)


def block_box(cfg: NestConfig, level: int, row: int, col: int) -> Box:
    """Model-input pixel box [x0, y0, x1, y1] of block (row, col) at 0-based ``level``."""
    side = cfg.block_size * 2**level * cfg.patch_size
    return (float(col * side), float(row * side), float((col + 1) * side), float((row + 1) * side))


def _forward_backward(model: Nest, x: Tensor, top_k: int, classes: Sequence[int] | None
                      ) -> tuple[list[Tensor], list[Tensor | None], Tensor, Tensor, Tensor]:
    """Per-level maps (the top one after the final norm), their gradients (k, B, C, H, W) (None for
    the leaves unless they are the root), logits, explained classes, top map before the norm."""
    L = model.cfg.num_levels
    # Leaf gradients are never used, so the patch embedding and the first level(s) run without a
    # graph; it starts at level 2's output, or at the final norm's output when nothing below is needed.
    start = min(2, L)
    with torch.no_grad():
        h = model.patch_embed(x)
        acts = []
        for level in model.levels[:start]:
            h = level(h)
            acts.append(h)
    with torch.enable_grad():
        if L > 2:
            acts[-1].requires_grad_(True)
        for level in model.levels[start:]:
            acts.append(level(acts[-1]))
        feats = model.top_features(acts[-1])  # (B, H, W, C), what the head reads
        if L <= 2:
            feats.requires_grad_(True)
        logits = model.classify(feats)  # = model.forward_head(acts[-1])
    chosen = select_classes(logits.detach(), top_k, classes)
    *mid, g_top = _class_grads(logits, [*acts[1:-1], feats], chosen)
    maps = [a.detach() for a in acts[:-1]] + [feats.detach().permute(0, 3, 1, 2)]
    grads = [None, *mid, g_top.permute(0, 1, 4, 2, 3)][-L:]
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


def _walk(heat: Sequence[np.ndarray | None], cfg: NestConfig) -> list[PathNode]:
    """Descend from the root through per-level contribution maps ``heat[i]`` (H, W), 0-based levels."""
    b, L = cfg.block_size, cfg.num_levels
    offset = 1 if cfg.pad_type == "same" else 0
    row = col = 0
    score = float(heat[L - 1].mean(dtype=np.float64))
    path = []
    for level in range(L - 1, -1, -1):
        node = PathNode(level + 1, row * cfg.grid(level) + col, block_box(cfg, level, row, col), score)
        path.append(node)
        if level == 0:
            break
        region = heat[level][row * b:(row + 1) * b, col * b:(col + 1) * b]
        scores = _child_scores(region, _child_of(row, b, offset), _child_of(col, b, offset))
        pick = int(np.argmax(scores))
        node.child_scores, node.chosen_child = scores, pick
        row, col, score = 2 * row + pick // 2, 2 * col + pick % 2, scores[pick]
    return path


def _child_of(block: int, b: int, offset: int) -> np.ndarray:
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


__all__ = ["GradcatOutput", "gradcat", "traverse", "explaining", "select_classes", "block_box"]
