"""What the model saw at a decision's evidence, read from the pass that explained it (no extra forward pass).

``PassTaps`` listens to a model while an explanation runs and keeps the first output of the leaf level
(``levels[0]``, (B, C0, H0, W0)) and of the final norm (the top-level map the head reads, (B, C, H, W)).
``evidence_vectors`` then describes, per image, the explained class's evidence by the model's own features:

- the evidence cells: the ``EVIDENCE_CELLS`` top-level cells with the most class evidence (the class map when
  the pass made one, else the contrast share (w_c - mean w) . f), among the cells inside the GradCAT leaf block
  when there is a path;
- ``leaf``: the leaf-level tokens under those cells, their mean and their maximum per channel (2 * C0): what the
  model saw there, locally (a leaf token only ever attended to its own leaf block), so that a pattern pasted
  anywhere gives nearly the same vector wherever it is;
- ``top``: the mean top-level feature at those cells (C): what the head read there;
- ``extent``: how much of the image looks like the evidence: the share of the image's leaf tokens whose
  direction from the image's mean token is within 60 degrees (cosine > ``EXTENT_COSINE``) of the evidence
  tokens' mean's. A small pasted pattern is rare in its image; sky or water behind the object is everywhere.

``nestviz.strategies`` clusters a class's decisions by these and by where the evidence lies.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .cam import class_weights

EVIDENCE_CELLS = 2  # top-level cells whose content describes a decision's evidence
EXTENT_COSINE = 0.5  # a leaf token "looks like the evidence" above this cosine (both taken from the image's mean)


class PassTaps:
    """Within ``with PassTaps(model) as taps:``, ``taps.leaf`` and ``taps.features`` are the first leaf-level
    output and the first final-norm output of the passes that ran (detached), or None."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.leaf: Tensor | None = None
        self.features: Tensor | None = None
        self._hooks: list = []

    def __enter__(self) -> "PassTaps":
        levels, norm = getattr(self.model, "levels", None), getattr(self.model, "norm", None)
        if isinstance(levels, nn.Sequential) and len(levels) and isinstance(norm, nn.Module):
            self._hooks = [levels[0].register_forward_hook(self._on_leaf), norm.register_forward_hook(self._on_norm)]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def _on_leaf(self, module: nn.Module, inputs: object, output: Tensor) -> None:  # noqa: ARG002
        if self.leaf is None:
            self.leaf = output.detach()

    def _on_norm(self, module: nn.Module, inputs: object, output: Tensor) -> None:  # noqa: ARG002
        if self.features is None and output.ndim == 4:
            self.features = output.detach().permute(0, 3, 1, 2)  # the norm runs channels-last


@dataclass
class EvidenceVectors:
    """One image's evidence in model-input terms: ``cells`` row-major on the top grid, their ``box`` in model-input
    pixels, ``leaf`` (2 * C0) and ``top`` (C) float32 vectors."""

    cells: list[int]
    grid: tuple[int, int]
    box: tuple[float, float, float, float]
    leaf: np.ndarray
    top: np.ndarray
    extent: float


def evidence_vectors(model: nn.Module, taps: PassTaps, classes: Tensor, size: int, maps: Tensor | None = None,
                     leaf_boxes: list | None = None, kind: str = "contrast") -> list[EvidenceVectors] | None:
    """Per image, the evidence of class ``classes[i]`` (B,): see the module. ``maps`` (B, H, W) that class's map
    when the pass made one; ``leaf_boxes[i]`` the GradCAT leaf's box in model-input pixels (or None); ``size`` the
    model input's side. None when the taps heard nothing (a model without ``levels`` and ``norm``)."""
    if taps.leaf is None or taps.features is None:
        return None
    with torch.no_grad():
        feats = taps.features.float()
        B, C, H, W = feats.shape
        if maps is None:
            weight = class_weights(model, kind)[0].float().to(feats.device)
            maps = torch.einsum("bchw,bc->bhw", feats, weight[classes.to(feats.device)])
        score = maps.float().to(feats.device).clone()
        cell = size / W
        if leaf_boxes is not None:
            centres = (torch.arange(W, device=feats.device, dtype=torch.float32) + 0.5) * cell
            for i, box in enumerate(leaf_boxes):
                if box is not None:
                    inside = _inside(centres, box)
                    if bool(inside.any()):
                        score[i][~inside] = -torch.inf
        top = score.reshape(B, -1).topk(min(EVIDENCE_CELLS, H * W), dim=1).indices  # (B, M)
        return [_vectors(taps.leaf[i].float(), feats[i], top[i].tolist(), (H, W), cell) for i in range(B)]


def _inside(centres: Tensor, box: tuple[float, float, float, float]) -> Tensor:
    """(H, W) mask of the cells whose centre lies in ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    xs = (centres >= x0) & (centres < x1)
    ys = (centres >= y0) & (centres < y1)
    return ys[:, None] & xs[None, :]


def _vectors(leaf: Tensor, feats: Tensor, cells: list[int], grid: tuple[int, int], cell: float) -> EvidenceVectors:
    """The leaf tokens under ``cells`` (mean, max) and the top features at them."""
    H, W = grid
    k = max(1, leaf.shape[-1] // W)  # leaf tokens per top cell, per side
    rows, cols = [c // W for c in cells], [c % W for c in cells]
    tokens = torch.cat([leaf[:, r * k:(r + 1) * k, c * k:(c + 1) * k].reshape(leaf.shape[0], -1)
                        for r, c in zip(rows, cols)], dim=1)  # (C0, M * k * k)
    vec_leaf = torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)]).cpu().numpy()
    vec_top = feats[:, rows, cols].mean(dim=1).cpu().numpy()
    box = (min(cols) * cell, min(rows) * cell, (max(cols) + 1) * cell, (max(rows) + 1) * cell)
    every = leaf.reshape(leaf.shape[0], -1)
    centre = every.mean(dim=1, keepdim=True)
    like = torch.nn.functional.cosine_similarity(every - centre, tokens.mean(dim=1, keepdim=True) - centre, dim=0)
    extent = float((like > EXTENT_COSINE).float().mean())
    return EvidenceVectors(cells, grid, box, vec_leaf.astype(np.float32), vec_top.astype(np.float32), extent)


__all__ = ["EVIDENCE_CELLS", "EXTENT_COSINE", "PassTaps", "EvidenceVectors", "evidence_vectors"]
