"""GradCAT scored by what each child alone tells the top level: a causal node score at the cost of two top passes.

A child block is scored by the class evidence the model finds when the top level sees only the
child's cells: its input tokens (after the last block aggregation, with their position
embeddings) are kept, every other token is left out of attention and of the mean the head
reads, and the score is the class's logit minus the mean logit (the contrast CAM's units). It
is an intervention, not a first-order guess: what the block's content does to the decision,
measured by running the model, the way occlusion does, but only through the top level.

Why the top level's input. Every level below the top is block-local (attention inside a block,
a 3x3 conv and a 3x3 max-pool at block borders), so a block's content is still where it was when
the top level starts; the top level's attention then spreads it over every cell, which is why a
map of the top level's output (CAM, and the paper's score at the root) can point away from
evidence that moved. A top cell belongs to the block holding its pooling window's centre, level
by level (``gradcat._child_of``'s rule), so every block of the tree is a set of top cells.

Cost: the children of every block at once, for every class at once: each token of the top
map is processed once per level below the root (4 x 16 + 16 x 4 tokens for a 3-level NesT:
two top passes without their attention's width), shared by all explained classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..model.layers import blockify
from ..model.nest import Nest, NestConfig
from .common import explaining, select_classes
from .flow import forward_flow
from .gradcat import BlockNode, GradcatOutput, block_box


def cell_blocks(cfg: NestConfig) -> list[np.ndarray]:
    """Per 0-based level below the root: the block (row or column) each top-map cell belongs to, (b,) each.

    Cell p of the top level was pooled from a window centred at 2p (+1 with "same" padding) of the
    level below, and so on down: its block at level l is its position there divided by the block size.
    """
    b, L = cfg.block_size, cfg.num_levels
    offset = 1 if cfg.pad_type == "same" else 0
    pos = np.arange(b)
    out: list[np.ndarray] = [np.zeros(b, np.int64)] * max(L - 1, 0)
    for level in range(L - 2, -1, -1):
        pos = 2 * pos + offset
        out[level] = pos // b
    return out


def block_cells(cfg: NestConfig) -> list[list[np.ndarray]]:
    """Per 0-based level below the root, per block (row-major): the flat indices of its top cells."""
    b = cfg.block_size
    out = []
    for level, along in enumerate(cell_blocks(cfg)):
        g = cfg.grid(level)
        owner = along[:, None] * g + along[None, :]  # (b, b) block index of each top cell
        out.append([np.flatnonzero(owner.ravel() == k) for k in range(g * g)])
    return out


def resolvable(cfg: NestConfig) -> bool:
    """Whether every block of the tree holds at least one top cell (every NesT with blocks of 4 or more tokens
    a side and three levels); tiny models whose leaves are finer than the top map are not."""
    return all(len(cells) for level in block_cells(cfg) for cells in level)


def top_tokens(model: Nest, below: Tensor) -> Tensor:
    """The top level's input tokens (B, N, C): the aggregated map of the level below, plus position embeddings."""
    top = model.levels[-1]
    z = top.pool(below).permute(0, 2, 3, 1)
    return (blockify(z, top.block_size) + top.pos_embed)[:, 0]


def kept_logits(model: Nest, tokens: Tensor, subsets: Sequence[np.ndarray]) -> Tensor:
    """Logits (B, S, K) of the model when its top level sees only each subset of ``tokens`` (B, N, C)."""
    B, N, C = tokens.shape
    out = tokens.new_empty((B, len(subsets), model.cfg.num_classes), dtype=torch.float32)
    by_size: dict[int, list[int]] = {}
    for s, cells in enumerate(subsets):
        by_size.setdefault(len(cells), []).append(s)
    for size, which in by_size.items():
        idx = torch.as_tensor(np.stack([subsets[s] for s in which]), device=tokens.device)  # (n, size)
        z = tokens[:, idx].reshape(B * len(which), 1, size, C)
        z = model.norm(model.levels[-1].transformer_encoder(z))
        out[:, torch.as_tensor(which, device=tokens.device)] = model.head(z.mean(dim=2)[:, 0]).float().view(B, len(which), -1)
    return out


def keep_scores(model: Nest, tokens: Tensor) -> list[Tensor]:
    """Every block's score for every class, per 0-based level below the root: (B, g*g, K) contrast logits."""
    levels = block_cells(model.cfg)
    flat = [cells for level in levels for cells in level]
    logits = kept_logits(model, tokens, flat)
    contrast = logits - logits.mean(dim=2, keepdim=True)
    out, start = [], 0
    for level in levels:
        out.append(contrast[:, start:start + len(level)])
        start += len(level)
    return out


def keep_gradcat(model: Nest, x: Tensor, *, top_k: int = 4, classes: Sequence[int] | Tensor | None = None,
                 with_flow: bool = False) -> GradcatOutput:
    """GradCAT paths of ``classes`` (default: the ``top_k`` most probable) scored as the module says.

    ``with_flow`` keeps the top level's attention flow (for a ``flow`` CAM of the same pass).
    """
    cfg = model.cfg
    with explaining(model), torch.inference_mode():
        features, acts, flow = forward_flow(model, x) if with_flow else (*model.forward_intermediates(x), None)
        logits = model.forward_head(features).float()
        chosen = select_classes(logits, top_k, classes)
        scores = keep_scores(model, top_tokens(model, acts[-2])) if cfg.num_levels > 1 else []
    root = (logits - logits.mean(dim=1, keepdim=True)).cpu()
    tree = [s.cpu() for s in scores]
    paths = [[walk_tree([t[i, :, c] for t in tree], float(root[i, c]), cfg) for c in chosen[i].tolist()]
             for i in range(x.shape[0])]
    return GradcatOutput(logits, chosen, paths, acts[-1].detach(), features.detach(), None, flow)


def walk_tree(scores: Sequence[Tensor], root_score: float, cfg: NestConfig) -> list[BlockNode]:
    """Descend from the root to the best child at each level; ``scores[l]`` (g_l * g_l,) per 0-based level."""
    path = [BlockNode(cfg.num_levels, 0, block_box(cfg, cfg.num_levels - 1, 0, 0), root_score)]
    row = col = 0
    for level in range(cfg.num_levels - 2, -1, -1):
        g = cfg.grid(level)
        kids = [(2 * row + q // 2) * g + 2 * col + q % 2 for q in range(4)]
        child = [float(scores[level][k]) for k in kids]
        pick = int(np.argmax(child))
        path[-1].child_scores, path[-1].chosen_child = child, pick
        row, col = divmod(kids[pick], g)
        path.append(BlockNode(level + 1, kids[pick], block_box(cfg, level, row, col), child[pick]))
    return path


def keep_block_scores(model: Nest, x: Tensor, classes: Tensor) -> list[list[np.ndarray]]:
    """Every block's score for ``classes`` (B,): [image][0-based level] (g, g), ``gradcat.block_scores``' layout."""
    cfg = model.cfg
    with explaining(model), torch.inference_mode():
        _, acts = model.forward_intermediates(x)
        scores = keep_scores(model, top_tokens(model, acts[-2]))
    return [[s[i, :, int(classes[i])].reshape(cfg.grid(lv), cfg.grid(lv)).double().cpu().numpy()
             for lv, s in enumerate(scores)] for i in range(x.shape[0])]


__all__ = ["cell_blocks", "block_cells", "top_tokens", "kept_logits", "keep_scores", "keep_gradcat", "walk_tree",
           "keep_block_scores"]
