"""GradCAT with causal node scores: follow the child whose removal costs the class the most.

The paper scores a child block by its gradient contribution sum(A * dY/dA); that is a first-order
guess of what the block does for the class, and on photographs it often disagrees with what
occluding the block does. Here a child is scored by ablation instead: its output tokens at its
own level are set to zero (the value LayerNorm'd activations are centred on), the levels above
are run again, and the score is the drop in the class's probability. One ablated pass gives
the drop for every class, so the passes are shared by all explained classes; a level is only
re-run for the distinct nodes the classes visit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..model.nest import Nest
from .common import explaining, select_classes
from .gradcat import BlockNode, GradcatOutput, block_box


def ablation_gradcat(model: Nest, x: Tensor, *, top_k: int = 4, classes: Sequence[int] | Tensor | None = None,
                     batch_size: int = 64) -> GradcatOutput:
    """GradCAT paths of ``classes`` (default: the ``top_k`` most probable) scored by ablation; see the module."""
    cfg, L = model.cfg, model.cfg.num_levels
    with explaining(model), torch.inference_mode():
        features, acts = model.forward_intermediates(x)
        logits = model.forward_head(features).float()
        chosen = select_classes(logits, top_k, classes)
        probs = logits.softmax(dim=1)
        B, k = chosen.shape
        nodes = [[(0, 0)] * k for _ in range(B)]  # (row, col) of each (image, rank)'s current node
        paths: list[list[list[BlockNode]]] = [[[] for _ in range(k)] for _ in range(B)]
        score = [[float(probs[i, chosen[i, j]]) for j in range(k)] for i in range(B)]
        for level in range(L - 1, -1, -1):
            drops = _child_drops(model, acts, level, nodes, probs, batch_size) if level > 0 else {}
            for i in range(B):
                for j in range(k):
                    r, c = nodes[i][j]
                    node = BlockNode(level + 1, r * cfg.grid(level) + c, block_box(cfg, level, r, c), score[i][j])
                    paths[i][j].append(node)
                    if level == 0:
                        continue
                    child = drops[(i, r, c)][:, chosen[i, j]].tolist()
                    pick = max(range(4), key=child.__getitem__)
                    node.child_scores, node.chosen_child = child, pick
                    nodes[i][j] = (2 * r + pick // 2, 2 * c + pick % 2)
                    score[i][j] = child[pick]
    return GradcatOutput(logits, chosen, paths, acts[-1], features, None)


def ablation_block_scores(model: Nest, x: Tensor, classes: Tensor, batch_size: int = 64) -> list[list[Tensor]]:
    """Every block's ablation score for ``classes`` (B,) as a child of its parent: [image][0-based level] (g, g).

    The whole tree, not only a path, in the layout of ``gradcat.block_scores`` (the metrics rank
    all leaves with it).
    """
    cfg, L = model.cfg, model.cfg.num_levels
    with explaining(model), torch.inference_mode():
        features, acts = model.forward_intermediates(x)
        probs = model.forward_head(features).float().softmax(dim=1)
        out = [[torch.zeros(cfg.grid(lv), cfg.grid(lv)) for lv in range(L - 1)] for _ in range(len(x))]
        for level in range(1, L):
            g = cfg.grid(level)
            every = [[(r, c) for r in range(g) for c in range(g)] for _ in range(len(x))]
            drops = _child_drops(model, acts, level, every, probs, batch_size)
            for (i, r, c), d in drops.items():
                out[i][level - 1][2 * r:2 * r + 2, 2 * c:2 * c + 2] = d[:, int(classes[i])].view(2, 2)
    return out


def _child_drops(model: Nest, acts: list[Tensor], level: int, nodes: list[list[tuple[int, int]]], probs: Tensor,
                 batch_size: int) -> dict[tuple[int, int, int], Tensor]:
    """(image, row, col) of each distinct visited node at ``level`` -> (4, K) drop in every class's probability
    when each of its children (at ``level - 1``) is zeroed."""
    b = model.cfg.block_size
    wanted = sorted({(i, r, c) for i, row in enumerate(nodes) for r, c in row})
    below = acts[level - 1]
    copies, index = [], []
    for i, r, c in wanted:
        for q in range(4):
            cr, cc = 2 * r + q // 2, 2 * c + q % 2
            a = below[i].clone()
            a[:, cr * b:(cr + 1) * b, cc * b:(cc + 1) * b] = 0.0
            copies.append(a)
            index.append(i)
    out = []
    for s in range(0, len(copies), batch_size):
        h = torch.stack(copies[s:s + batch_size])
        for lv in model.levels[level:]:
            h = lv(h)
        out.append(model.forward_head(model.final_norm(h)).float().softmax(dim=1))
    ablated = torch.cat(out)
    drops = probs[torch.tensor(index, device=probs.device)] - ablated
    return {key: drops[4 * n:4 * n + 4].cpu() for n, key in enumerate(wanted)}


__all__ = ["ablation_gradcat", "ablation_block_scores"]
