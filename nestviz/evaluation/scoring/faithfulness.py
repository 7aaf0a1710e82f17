"""Faithfulness: deletion/insertion curves (Petsiuk et al., RISE, BMVC 2018) and GradCAT path agreement.

The model is not called here: the caller builds the perturbed batches with ``deletion_batch`` /
``insertion_batch``, runs the model on them, and passes the class probabilities to ``auc``.

- Deletion: the image, with its pixels replaced by the substrate (e.g. the per-channel mean, which
  is zeros in normalised space) in the explanation's order; a faithful map makes the probability
  fall fast: low AUC is good.
- Insertion: a blurred copy (``gaussian_blur``; RISE uses an 11-tap kernel, sigma 5, i.e.
  ``radius=5``), with the image's pixels put back in the explanation's order: high AUC is good.

Arrays are numpy; torch tensors are accepted and converted (results are numpy).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def as_numpy(x: Any) -> np.ndarray:
    """A numpy view of an array or a (CPU or device) torch tensor, without importing torch."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def auc(values: Any) -> float:
    """Area under a curve sampled at evenly spaced x in [0, 1]: the normalised trapezoid rule, as RISE."""
    v = as_numpy(values).astype(np.float64).ravel()
    if v.size < 2:
        raise ValueError(f"a curve needs at least 2 points, got {v.size}")
    return float((v.sum() - v[0] / 2 - v[-1] / 2) / (v.size - 1))


def order_from_map(scoremap: Any, rng: np.random.Generator | None = None) -> np.ndarray:
    """Flat pixel indices from most to least important; ties keep index order, or are shuffled by ``rng``."""
    neg = -as_numpy(scoremap).astype(np.float64).ravel()
    if rng is None:
        return np.argsort(neg, kind="stable")
    return np.lexsort((rng.permutation(neg.size), neg))  # last key is the primary one


def perturbation_steps(n_pixels: int, steps: int) -> list[int]:
    """How many pixels are changed after each of ``steps`` steps: steps+1 ints from 0 to n_pixels, evenly spaced (floored)."""
    if steps < 1 or n_pixels < 0:
        raise ValueError(f"need steps >= 1 and n_pixels >= 0, got {steps}, {n_pixels}")
    return [i * n_pixels // steps for i in range(steps + 1)]


def _take_first(base: Any, source: Any, order: Any, counts: Any) -> np.ndarray:
    """One copy of ``base`` (C,H,W) per count, with the first ``counts[i]`` pixels of ``order`` taken from ``source``."""
    base = as_numpy(base)
    if base.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got shape {base.shape}")
    c, h, w = base.shape
    source = np.broadcast_to(as_numpy(source), base.shape)  # a scalar or (C,1,1) substrate works too
    order = as_numpy(order).astype(np.int64).ravel()
    counts = as_numpy(counts).astype(np.int64).ravel()
    if counts.size and (counts.min() < 0 or counts.max() > order.size):
        raise ValueError(f"counts must lie in [0, {order.size}]")
    rank = np.full(h * w, h * w, np.int64)  # pixels missing from order are never changed
    rank[order] = np.arange(order.size)
    take = rank[None, None, :] < counts[:, None, None]  # (S, 1, HW)
    out = np.where(take, source.reshape(1, c, h * w), base.reshape(1, c, h * w))
    return out.reshape(counts.size, c, h, w)


def deletion_batch(image: Any, substrate: Any, order: Any, counts: Any) -> np.ndarray:
    """(len(counts), C, H, W): the image with its first ``counts[i]`` pixels in ``order`` replaced by the substrate."""
    return _take_first(image, substrate, order, counts)


def insertion_batch(image: Any, substrate: Any, order: Any, counts: Any) -> np.ndarray:
    """(len(counts), C, H, W): the substrate (a blurred image) with its first ``counts[i]`` pixels in ``order`` from the image."""
    return _take_first(substrate, image, order, counts)


def gaussian_kernel(sigma: float, radius: int) -> np.ndarray:
    """Normalised 1-D Gaussian taps at -radius..radius."""
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(image: Any, sigma: float = 5.0, radius: int | None = None) -> np.ndarray:
    """Separable Gaussian blur of the last two axes (e.g. C,H,W), reflect padding; radius defaults to ceil(3 sigma)."""
    x = as_numpy(image)
    if x.ndim < 2 or sigma <= 0:
        raise ValueError(f"need an (..., H, W) array and sigma > 0, got shape {x.shape}, sigma {sigma}")
    r = int(math.ceil(3 * sigma)) if radius is None else int(radius)
    k = gaussian_kernel(sigma, r)
    out = x.astype(np.float64)
    for axis in (-1, -2):
        n = out.shape[axis]
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="reflect") if n > 1 else np.pad(out, pad, mode="edge")
        out = sum(k[i] * np.take(padded, np.arange(i, i + n), axis=axis) for i in range(2 * r + 1))
    return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)


def path_agreement(chosen: Any, occlusion_drops: Any) -> float:
    """Share of visited nodes whose chosen child is the one whose occlusion drops the class probability most.

    ``chosen`` (N,) is the child index GradCAT picked at each visited node, ``occlusion_drops``
    (N, children) the fall in class probability when each child is occluded. Ties: a node whose
    maximum drop is shared by ``t`` children gives credit ``1/t`` if the chosen child is one of
    them, so a random choice still scores 1/children (0.25) on average. No nodes: nan.
    """
    c = as_numpy(chosen).astype(np.int64).ravel()
    d = as_numpy(occlusion_drops).astype(np.float64)
    if d.ndim != 2 or d.shape[0] != c.size:
        raise ValueError(f"need chosen (N,) and drops (N, children), got {c.shape} and {d.shape}")
    if not c.size:
        return float("nan")
    if c.min() < 0 or c.max() >= d.shape[1]:
        raise ValueError(f"chosen child indices must lie in [0, {d.shape[1]})")
    is_max = d == d.max(axis=1, keepdims=True)
    credit = is_max[np.arange(c.size), c] / is_max.sum(axis=1)
    return float(credit.mean())
