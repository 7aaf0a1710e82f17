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

from ..model.layers import deblockify
from ..model.nest import Nest, NestConfig
from .common import explaining, select_classes
from .flow import forward_flow
from .gradcat import BlockNode, GradcatOutput, block_box


def owners(cfg: NestConfig, level: int) -> list[np.ndarray]:
    """For each level m above ``level`` (m = level + 1 .. L - 1): the block row (or column) at ``level`` that each
    row (column) of level m's map was pooled from, (H_m,) each.

    Position p of a level was pooled from a window centred at 2p (+1 with "same" padding) of the level
    below, and so on down: its block at ``level`` is its position there divided by the block size.
    """
    b, L = cfg.block_size, cfg.num_levels
    offset = 1 if cfg.pad_type == "same" else 0
    out = []
    for m in range(level + 1, L):
        pos = np.arange(b * cfg.grid(m))
        for _ in range(m - level):
            pos = 2 * pos + offset
        out.append(pos // b)
    return out


def cell_blocks(cfg: NestConfig) -> list[np.ndarray]:
    """Per 0-based level below the root: the block (row or column) each top-map cell belongs to, (b,) each."""
    return [owners(cfg, level)[-1] for level in range(cfg.num_levels - 1)]


def block_positions(cfg: NestConfig, level: int) -> list[list[np.ndarray]]:
    """For each level m above ``level``, per block of ``level`` (row-major): the flat positions of m's map it owns."""
    g = cfg.grid(level)
    out = []
    for along in owners(cfg, level):
        owner = along[:, None] * g + along[None, :]
        out.append([np.flatnonzero(owner.ravel() == k) for k in range(g * g)])
    return out


def block_cells(cfg: NestConfig) -> list[list[np.ndarray]]:
    """Per 0-based level below the root, per block (row-major): the flat indices of its top cells."""
    return [block_positions(cfg, level)[-1] for level in range(cfg.num_levels - 1)]


def resolvable(cfg: NestConfig) -> bool:
    """Whether every block owns at least one position of every level above it (every NesT with blocks of 4 or
    more tokens a side and three levels); tiny models whose leaves are finer than the top map are not."""
    return all(len(p) for level in range(cfg.num_levels - 1) for per in block_positions(cfg, level) for p in per)


def level_tokens(model: Nest, m: int, z: Tensor) -> Tensor:
    """Level ``m``'s input tokens as a map (B, H, W, C): ``z`` (B, C_prev, H', W') aggregated, plus position embeddings."""
    lv = model.levels[m]
    pos = deblockify(lv.pos_embed, lv.block_size)  # (1, H, W, C)
    return lv.pool(z).permute(0, 2, 3, 1) + pos


def top_tokens(model: Nest, below: Tensor) -> Tensor:
    """The top level's input tokens (B, N, C): the aggregated map of the level below, plus position embeddings."""
    return level_tokens(model, len(model.levels) - 1, below).flatten(1, 2)


def kept_logits(model: Nest, tokens: Tensor, subsets: Sequence[np.ndarray]) -> Tensor:
    """Logits (B, S, K) of the model when its top level sees only each subset of its input ``tokens`` (B, N, C)."""
    B, _, C = tokens.shape
    out = tokens.new_empty((B, len(subsets), model.cfg.num_classes), dtype=torch.float32)
    for size in sorted({len(c) for c in subsets}):
        which = [s for s, c in enumerate(subsets) if len(c) == size]
        idx = torch.as_tensor(np.stack([subsets[s] for s in which]), device=tokens.device)  # (n, size)
        z = model.levels[-1].transformer_encoder(tokens[:, idx].flatten(0, 1)[:, None])
        out[:, which] = model.head(model.norm(z).mean(dim=2)[:, 0]).float().view(B, len(which), -1)
    return out


def alone_logits(model: Nest, acts: Sequence[Tensor], level: int) -> Tensor:
    """Logits (B, g*g, K) of the model seeing only each block of ``level``, from the level above it up.

    Level ``level + 1`` runs on the block's own positions of its input; each level above gets the
    block's outputs on a blank (zero) map, aggregates it, and runs on the positions the block owns.
    Blocks that own as many positions at every level run together.
    """
    cfg = model.cfg
    owned = block_positions(cfg, level)
    B, n = acts[level].shape[0], len(owned[0])
    tokens = level_tokens(model, level + 1, acts[level]).flatten(1, 2)
    out = tokens.new_empty((B, n, cfg.num_classes), dtype=torch.float32)
    groups: dict[tuple[int, ...], list[int]] = {}
    for k in range(n):
        groups.setdefault(tuple(len(per[k]) for per in owned), []).append(k)
    for ks in groups.values():
        z = tokens[:, _index([owned[0][k] for k in ks], tokens.device)]  # (B, n, size, C)
        for step, m in enumerate(range(level + 1, cfg.num_levels)):
            if step:
                z = _on_blank(model, m, z, [owned[step - 1][k] for k in ks])
                z = z[:, torch.arange(len(ks), device=z.device)[:, None], _index([owned[step][k] for k in ks], z.device)]
            z = model.levels[m].transformer_encoder(z.flatten(0, 1)[:, None]).view(z.shape)
        out[:, ks] = model.head(model.norm(z).mean(dim=2)).float()
    return out


def _index(subsets: Sequence[np.ndarray], device: torch.device) -> Tensor:
    return torch.as_tensor(np.stack(subsets), device=device)


def _on_blank(model: Nest, m: int, z: Tensor, where: Sequence[np.ndarray]) -> Tensor:
    """Level m - 1's outputs ``z`` (B, n, size, C) placed on zero maps at ``where[j]``, then level m's input
    tokens, (B, n, H*W, C_m)."""
    B, n, size, C = z.shape
    side = model.levels[m - 1].block_size * model.cfg.grid(m - 1)
    blank = z.new_zeros((B, n, side * side, C))
    idx = _index(where, z.device)[None, :, :, None].expand(B, -1, -1, C)
    maps = blank.scatter(2, idx, z).view(B * n, side, side, C).permute(0, 3, 1, 2)
    t = level_tokens(model, m, maps)
    return t.reshape(B, n, t.shape[1] * t.shape[2], t.shape[3])


def keep_scores(model: Nest, acts: Sequence[Tensor]) -> list[Tensor]:
    """Every block's score for every class, per 0-based level below the root: (B, g*g, K) contrast logits."""
    out = []
    for level in range(model.cfg.num_levels - 1):
        logits = alone_logits(model, acts, level)
        out.append(logits - logits.mean(dim=2, keepdim=True))
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
        scores = keep_scores(model, acts) if cfg.num_levels > 1 else []
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
        scores = keep_scores(model, acts)
    return [[s[i, :, int(classes[i])].reshape(cfg.grid(lv), cfg.grid(lv)).double().cpu().numpy()
             for lv, s in enumerate(scores)] for i in range(x.shape[0])]


__all__ = ["cell_blocks", "block_cells", "top_tokens", "kept_logits", "keep_scores", "keep_gradcat", "walk_tree",
           "keep_block_scores"]
