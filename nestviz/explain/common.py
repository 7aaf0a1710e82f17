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


__all__ = ["Box", "explaining", "select_classes"]
