"""Sanity check support (Adebayo et al., NeurIPS 2018): rank correlation between two explanation maps.

In the cascading-randomisation check the model's levels are re-initialised from the top one by
one; the Spearman correlation between the original map and each randomised map must fall towards
0 if the explanation depends on the learned weights. The randomisation itself needs the model and
lives elsewhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .faithfulness import as_numpy


def average_ranks(x: Any) -> np.ndarray:
    """1-based ranks of a flattened array, tied values sharing the mean of their ranks."""
    values = as_numpy(x).astype(np.float64).ravel()
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based position of each distinct value's first copy
    return (first + (counts + 1) / 2)[inverse.ravel()]


def spearman(a: Any, b: Any) -> float:
    """Spearman rank correlation of two equally sized maps (Pearson of average ranks).

    A constant input has no ranking, so the correlation is undefined: nan (as scipy), which the
    caller must report as such rather than as "uncorrelated". NaN values in the maps are an error.
    """
    ra, rb = as_numpy(a).astype(np.float64).ravel(), as_numpy(b).astype(np.float64).ravel()
    if ra.size != rb.size or ra.size < 2:
        raise ValueError(f"need two maps of the same size (>= 2 values), got {ra.size} and {rb.size}")
    if np.isnan(ra).any() or np.isnan(rb).any():
        raise ValueError("maps contain NaN")
    ra, rb = average_ranks(ra) - (ra.size + 1) / 2, average_ranks(rb) - (rb.size + 1) / 2
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")
