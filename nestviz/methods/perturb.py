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


def class_probs(model: nn.Module, x: Tensor, classes: Tensor, batch_size: int = 16, known: Tensor | None = None
                ) -> Tensor:
    """Softmax probability of ``classes[i]`` for image ``x[i]`` (N, C, S, S) -> (N,), ``batch_size`` images at a time
    (the metrics pass their run's batch size: on 2 CPU cores 16 costs 10.1 ms per image, 64 12.7-13.6 ms).

    ``known`` (K, C, S, S): images the copies in ``x`` were made from (the original, the fill). The leaf level is
    block-local, so a copy's leaf block whose pixels equal a known image's same block has that block's leaf-level
    output: it is taken from the known image's, and only the other leaves run (:class:`LeafReuse`)."""
    out = []
    with explaining(model), torch.inference_mode():
        reuse = LeafReuse(model, known) if known is not None and model.cfg.num_levels > 1 else None
        for i in range(0, len(x), batch_size):
            logits = (model(x[i:i + batch_size]) if reuse is None else reuse.logits(x[i:i + batch_size])).float()
            out.append(logits.softmax(dim=1).gather(1, classes[i:i + batch_size, None].to(logits.device))[:, 0])
    return torch.cat(out).cpu() if out else torch.zeros(0)


class LeafReuse:
    """The model on copies that share whole leaf blocks with ``known`` images (K, C, S, S), the leaf level run only
    for the leaves no known image has. Deletion, insertion and occlusion copies are mostly such leaves: the leaf
    level is about a third of a forward pass (3.4-3.8 of 9.6-10.5 ms per image on 2 cores). Equal pixels give the
    same leaf output; a leaf is matched by a random projection of its pixels, then compared exactly."""

    def __init__(self, model: Nest, known: Tensor, outputs: Tensor | None = None) -> None:
        """``outputs``: the known images' leaf-level map (K, C0, H0, W0) when a pass already made it."""
        cfg = model.cfg
        self.model, self.side, self.grid, self.b = model, cfg.block_size * cfg.patch_size, cfg.grid(0), cfg.block_size
        self.pixels = self._leaves(known)  # (K, T, D)
        self.outputs = self._blocks(model.levels[0](model.patch_embed(known)) if outputs is None else outputs)
        self.probe = torch.randn(self.pixels.shape[-1], generator=torch.Generator().manual_seed(0)).to(known)
        self.keys = self.pixels @ self.probe  # (K, T)

    def logits(self, x: Tensor) -> Tensor:
        """``model(x)`` for a chunk of copies (n, C, S, S)."""
        n, T = len(x), self.grid * self.grid
        pixels = self._leaves(x)
        keys = pixels @ self.probe
        near = (keys[:, :, None] - self.keys.T[None]).abs() <= 1e-4 * (1 + keys[:, :, None].abs())  # (n, T, K)
        source = torch.full((n, T), -1, dtype=torch.long, device=x.device)
        for k in range(len(self.keys)):  # exact comparison of the candidates only
            cand = near[:, :, k] & (source < 0)
            if cand.any():
                same = (pixels[cand] == self.pixels[k][cand.nonzero()[:, 1]]).all(dim=-1)
                source[cand.nonzero()[same].unbind(1)] = k
        leaves = self.outputs.new_empty((n, T, *self.outputs.shape[2:]))
        found = source >= 0
        t = torch.arange(T, device=x.device).expand(n, T)
        leaves[found] = self.outputs[source[found], t[found]]
        if (~found).any():  # the changed leaves: their pixels through the patch embedding and the leaf level alone
            level = self.model.levels[0]
            crops = pixels[~found].reshape(-1, x.shape[1], self.side, self.side)
            tokens = self.model.patch_embed.proj(crops).flatten(2).transpose(1, 2).unsqueeze(1)  # (m, 1, b * b, C0)
            tokens = level.transformer_encoder(tokens + level.pos_embed[0, t[~found]].unsqueeze(1))
            leaves[~found] = tokens[:, 0].transpose(1, 2).reshape(-1, tokens.shape[-1], self.b, self.b)
        g, b = self.grid, self.b
        h = leaves.reshape(n, g, g, -1, b, b).permute(0, 3, 1, 4, 2, 5).reshape(n, -1, g * b, g * b)
        for level in self.model.levels[1:]:
            h = level(h)
        return self.model.forward_head(self.model.final_norm(h))

    def _leaves(self, x: Tensor) -> Tensor:
        """Pixels (N, C, S, S) -> each leaf block's pixels (N, T, C * side * side), leaves row-major."""
        N, C, g, s = len(x), x.shape[1], self.grid, self.side
        return x.reshape(N, C, g, s, g, s).permute(0, 2, 4, 1, 3, 5).reshape(N, g * g, C * s * s)

    def _blocks(self, h: Tensor) -> Tensor:
        """A leaf-level map (N, C0, g b, g b) -> (N, T, C0, b, b)."""
        N, C0, g, b = len(h), h.shape[1], self.grid, self.b
        return h.reshape(N, C0, g, b, g, b).permute(0, 2, 4, 1, 3, 5).reshape(N, g * g, C0, b, b)


def occlusion_drops(model: nn.Module, x: Tensor, classes: Tensor, boxes: Sequence[Sequence[int]],
                    fill: float = 0.0, batch_size: int = 16) -> Tensor:
    """(B, R) drop in each image's class probability when box r ([x0, y0, x1, y1], input pixels) is set to ``fill``.

    ``fill`` 0 is the dataset mean in normalised input space, the usual occlusion substrate.
    """
    base = class_probs(model, x, classes, batch_size)
    copies = x.repeat(len(boxes), 1, 1, 1)  # box-major: copy r of image i at r * B + i
    for r, (x0, y0, x1, y1) in enumerate(boxes):
        copies[r * len(x):(r + 1) * len(x), :, y0:y1, x0:x1] = fill
    known = torch.cat([x, torch.full_like(x[:1], fill)])  # what the copies' leaves come from
    probs = class_probs(model, copies, classes.repeat(len(boxes)), batch_size, known)
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


__all__ = ["class_probs", "LeafReuse", "occlusion_drops", "randomized_top"]
