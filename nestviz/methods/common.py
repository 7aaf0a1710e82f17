"""What both explanation methods need: a model held still while it is explained, and the classes to explain."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in model-input pixels


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


def select_classes(logits: Tensor, top_k: int, classes: Sequence[int] | Tensor | None) -> Tensor:
    """(B, k) class indices to explain: ``classes`` for every image (or a (B, k) tensor, one row per
    image, e.g. each image's true class), else each image's top-k logits."""
    B, K = logits.shape
    if classes is None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        return logits.topk(min(top_k, K), dim=1).indices
    chosen = torch.as_tensor(classes, dtype=torch.long).to(logits.device)
    if chosen.ndim == 1:
        chosen = chosen.repeat(B, 1)
    if chosen.ndim != 2 or chosen.shape[0] != B or chosen.shape[1] == 0:
        raise ValueError(f"classes must be a list of class indices or a ({B}, k) tensor, got shape {tuple(chosen.shape)}")
    bad = chosen[(chosen < 0) | (chosen >= K)]
    if bad.numel():
        raise ValueError(f"class index {int(bad[0])} is out of range for a model with {K} classes")
    return chosen


def finite_rows(*batches: Tensor | None) -> list[bool]:
    """Per image (the first dimension of each batch): whether all its values are finite (None batches are skipped)."""
    rows = [torch.isfinite(b.flatten(1)).all(dim=1) for b in batches if b is not None]
    return torch.stack(rows).all(dim=0).tolist()


__all__ = ["Box", "explaining", "finite_rows", "select_classes"]
