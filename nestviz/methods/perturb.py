"""Perturbation passes: how a model's class probability answers when image regions are removed.

The references that nestviz's metrics hold explanations against (occlusion; the deletion and
insertion curves of Petsiuk et al., RISE, BMVC 2018) all ask the model one question: the
probability of a class for copies of the input that differ in chosen pixels. The sanity check
(Adebayo et al., NeurIPS 2018) asks the same explanation of a model whose top is re-initialised.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..model.nest import Nest
from .common import explaining


def class_probs(model: nn.Module, x: Tensor, classes: Tensor, batch_size: int = 16) -> Tensor:
    """Softmax probability of ``classes[i]`` for image ``x[i]`` (N, C, S, S) -> (N,), ``batch_size`` images at a time
    (the metrics pass their run's batch size: on 2 CPU cores 16 costs 10.1 ms per image, 64 12.7-13.6 ms)."""
    out = []
    with explaining(model), torch.inference_mode():
        for i in range(0, len(x), batch_size):
            logits = model(x[i:i + batch_size]).float()
            out.append(logits.softmax(dim=1).gather(1, classes[i:i + batch_size, None].to(logits.device))[:, 0])
    return torch.cat(out).cpu() if out else torch.zeros(0)


def occlusion_drops(model: nn.Module, x: Tensor, classes: Tensor, boxes: Sequence[Sequence[int]],
                    fill: float = 0.0, batch_size: int = 16) -> Tensor:
    """(B, R) drop in each image's class probability when box r ([x0, y0, x1, y1], input pixels) is set to ``fill``.

    ``fill`` 0 is the dataset mean in normalised input space, the usual occlusion substrate.
    """
    base = class_probs(model, x, classes, batch_size)
    copies = x.repeat(len(boxes), 1, 1, 1)  # box-major: copy r of image i at r * B + i
    for r, (x0, y0, x1, y1) in enumerate(boxes):
        copies[r * len(x):(r + 1) * len(x), :, y0:y1, x0:x1] = fill
    probs = class_probs(model, copies, classes.repeat(len(boxes)), batch_size)
    return base[:, None] - probs.view(len(boxes), len(x)).T


def randomized_top(model: Nest, levels: int, head: bool = True, seed: int = 0) -> Nest:
    """A copy of ``model`` whose head and top ``levels`` levels have random weights.

    The cascading randomisation of Adebayo et al.: an explanation that still looks the same once
    the weights it claims to read are random does not explain the model. Every weight matrix,
    convolution and position embedding is redrawn (normal, variance 1/fan-in; 0.02 for position
    embeddings); biases and norm gains are kept, so activations keep their scale.
    """
    rnd = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    modules: list[nn.Module] = [rnd.head] if head else []
    modules += list(rnd.levels)[len(rnd.levels) - levels:] if levels else []
    with torch.no_grad():
        for module in modules:
            for name, p in module.named_parameters():
                if name.endswith("pos_embed"):
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
                elif p.ndim >= 2:
                    p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(math.prod(p.shape[1:])))
    return rnd


__all__ = ["class_probs", "occlusion_drops", "randomized_top"]
