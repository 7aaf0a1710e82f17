"""Spectral clustering of one class's decisions, numpy only: arrays in, cluster labels out (no I/O).

Each decision is described by views (where its evidence lies, what the model saw there), each a matrix with one
row per decision. ``describe`` standardizes every view over the class (z-scores per column), scales each row of
each view to unit length and joins them, weighted (``VIEW_WEIGHTS``), into unit rows: the cosine of two
descriptors is the weighted mean of the views' cosines.

``cluster`` builds a k-nearest-neighbour graph with self-tuning Gaussian weights (Zelnik-Manor & Perona 2004:
each point's scale is the distance to its ``SCALE_NEIGHBOUR``-th neighbour; ``NEIGHBOURS`` or sqrt(n) neighbours,
whichever is more), takes the leading eigenvectors of
the normalized affinity D^-1/2 A D^-1/2 and chooses the number of clusters k <= ``MAX_K`` at the largest
eigengap (lambda_k - lambda_k+1, eigenvalues descending; the gap must reach ``MIN_GAP`` or k is 1), and at least
the number of eigenvalues >= ``COMPONENT`` (groups the graph barely connects to the rest). The
eigenvector rows, scaled to unit length (Ng, Jordan & Weiss 2001), are grouped by k-means (k-means++ seeding,
``KMEANS_RUNS`` seeded runs, the best kept). A class of more than ``SAMPLE`` decisions is clustered on a seeded
sample of that many and the rest join the nearest cluster mean in descriptor space, so that time and memory stay
bounded. Clusters smaller than ``min_size`` join their nearest neighbour cluster. Deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MAX_K = 8  # most strategies per class
MIN_GAP = 0.05  # smallest eigengap that splits a class at all
COMPONENT = 0.995  # eigenvalues at least this mark (nearly) disconnected groups: k is at least their number
SAMPLE = 1000  # decisions per class clustered exactly; the rest join the nearest cluster mean
NEIGHBOURS = 10  # k of the k-nearest-neighbour graph: at least this, sqrt(n) for larger samples (fewer for tiny ones)
SCALE_NEIGHBOUR = 7  # the self-tuning scale: distance to this neighbour
KMEANS_RUNS = 4
MIN_SPLIT = 6  # a class with fewer decisions is one strategy


@dataclass
class Clustering:
    """``labels`` (n,) in 0..k-1, clusters ordered by size (largest first); ``eigenvalues`` the leading ones of the
    normalized affinity (empty when the class was not split: too small); ``k`` the number chosen; ``finer`` the
    labels at every number of clusters from 2 to ``MAX_K`` when asked (:func:`cluster`'s ``every_k``)."""

    labels: np.ndarray
    k: int
    eigenvalues: np.ndarray
    finer: list[np.ndarray] = field(default_factory=list)


def describe(views: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """One unit-length descriptor per row from ``views`` (each (n, d_v)): standardized, unit rows, weighted, joined."""
    parts = []
    for view, w in zip(views, weights):
        v = np.asarray(view, dtype=np.float64)
        v = (v - v.mean(axis=0)) / np.maximum(v.std(axis=0), 1e-6)
        parts.append(w * _unit_rows(v))
    return _unit_rows(np.concatenate(parts, axis=1))


def cluster(x: np.ndarray, seed: int = 0, min_size: int = 2, every_k: bool = False) -> Clustering:
    """Cluster the rows of ``x`` (n, d) unit descriptors; see the module. ``every_k``: also cluster them, from the
    same spectrum, at every number of clusters from 2 to ``MAX_K`` (fewer for a small class), into ``finer``: the
    eigengap picks one k, but a group that a sixth of the class forms need not make the largest gap
    (``report.split_patterns``). Deterministic for a seed."""
    n = x.shape[0]
    if n < MIN_SPLIT:
        return Clustering(np.zeros(n, dtype=np.int64), 1, np.empty(0))
    rng = np.random.default_rng(seed)
    sample, values, vectors = _sampled_spectrum(x, rng)
    finer = [_partition(x, sample, vectors, k, np.random.default_rng([seed, k]), min_size)
             for k in range(2, min(MAX_K, vectors.shape[1]) + 1)] if every_k else []
    k = choose_k(values)
    if k == 1:
        return Clustering(np.zeros(n, dtype=np.int64), 1, values, finer)
    labels = _partition(x, sample, vectors, k, rng, min_size)
    return Clustering(labels, int(labels.max()) + 1, values, finer)


def _sampled_spectrum(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows clustered exactly (all, or a seeded sample of ``SAMPLE``) and their graph's spectrum."""
    n = x.shape[0]
    sample = np.sort(rng.choice(n, SAMPLE, replace=False)) if n > SAMPLE else np.arange(n)
    values, vectors = _spectrum(x[sample], min(MAX_K + 1, len(sample)))
    return sample, values, vectors


def _partition(x: np.ndarray, sample: np.ndarray, vectors: np.ndarray, k: int, rng: np.random.Generator,
               min_size: int) -> np.ndarray:
    """k clusters: k-means on the sample's first k eigenvectors (unit rows), the rest to the nearest cluster mean,
    clusters below ``min_size`` merged; labels (n,) renumbered by size."""
    n = x.shape[0]
    sample_labels = kmeans(_unit_rows(vectors[:, :k]), k, rng)
    labels = np.empty(n, dtype=np.int64)
    labels[sample] = sample_labels
    if len(sample) < n:
        rest = np.setdiff1d(np.arange(n), sample)
        labels[rest] = nearest_mean(x[rest], x[sample], sample_labels, k)
    return merge_small(x, labels, min_size)


def choose_k(values: np.ndarray) -> int:
    """The k (1..MAX_K) at the largest gap between consecutive eigenvalues (descending), 1 if none reaches MIN_GAP;
    but at least the number of eigenvalues >= COMPONENT (each a group the graph barely connects to the rest: in a
    large class the other eigenvalues crowd near 1 too, so the gap after such a group can be small)."""
    if len(values) < 2:
        return 1
    gaps = (values[:-1] - values[1:])[:MAX_K]
    k = int(np.argmax(gaps)) + 1
    k = k if gaps[k - 1] >= MIN_GAP else 1
    return min(MAX_K, max(k, int(np.sum(values >= COMPONENT))))


def _spectrum(x: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` largest eigenvalues (descending) and their eigenvectors of the kNN graph's normalized affinity."""
    n = x.shape[0]
    sq = np.maximum(2.0 - 2.0 * (x @ x.T), 0.0)  # squared distances of unit rows
    np.fill_diagonal(sq, np.inf)
    nn = min(max(NEIGHBOURS, round(np.sqrt(n))), n - 1)
    order = np.argpartition(sq, nn - 1, axis=1)[:, :nn]  # each row's nn nearest (unordered)
    near = np.sort(np.take_along_axis(sq, order, axis=1), axis=1)
    scale = np.sqrt(near[:, min(SCALE_NEIGHBOUR, nn) - 1]) + 1e-9
    mask = np.zeros((n, n), dtype=bool)
    np.put_along_axis(mask, order, True, axis=1)
    mask |= mask.T
    a = np.where(mask, np.exp(-np.where(mask, sq, 0.0) / np.outer(scale, scale)), 0.0)
    d = 1.0 / np.sqrt(np.maximum(a.sum(axis=1), 1e-12))
    values, vectors = np.linalg.eigh(a * d[:, None] * d[None, :])
    return values[::-1][:count], vectors[:, ::-1][:, :count]


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 50) -> np.ndarray:
    """Labels of k-means on the rows of ``x``: ``KMEANS_RUNS`` k-means++ seeded runs, the lowest inertia kept."""
    best, best_cost = None, np.inf
    for _ in range(KMEANS_RUNS):
        centres = _plus_plus(x, k, rng)
        for _ in range(iters):
            labels = np.argmin(_sq_dist(x, centres), axis=1)
            new = np.array([x[labels == j].mean(axis=0) if np.any(labels == j) else centres[j] for j in range(k)])
            if np.allclose(new, centres):
                break
            centres = new
        cost = float(np.min(_sq_dist(x, centres), axis=1).sum())
        if cost < best_cost - 1e-12:
            best, best_cost = labels, cost
    return best


def _plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min(_sq_dist(x, np.array(centres)), axis=1)
        total = d.sum()
        centres.append(x[rng.choice(len(x), p=d / total)] if total > 0 else x[rng.integers(len(x))])
    return np.array(centres)


def nearest_mean(x: np.ndarray, ref: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Each row of ``x`` to the cluster (of ``ref``'s ``labels``) whose mean descriptor is nearest in cosine."""
    means = _unit_rows(np.array([ref[labels == j].mean(axis=0) for j in range(k)]))
    return np.argmax(x @ means.T, axis=1)


def merge_small(x: np.ndarray, labels: np.ndarray, min_size: int) -> np.ndarray:
    """Clusters below ``min_size`` join the nearest other cluster (by mean descriptor), smallest first; then the
    clusters are renumbered by size, largest first (ties: first member first)."""
    labels = labels.copy()
    while True:
        ids, counts = np.unique(labels, return_counts=True)
        if len(ids) < 2 or counts.min() >= min_size:
            break
        small = ids[np.argmin(counts)]
        others = ids[ids != small]
        means = _unit_rows(np.array([x[labels == j].mean(axis=0) for j in others]))
        target = others[np.argmax(means @ x[labels == small].mean(axis=0))]
        labels[labels == small] = target
    return renumber(labels)


def renumber(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0..k-1 by cluster size, largest first (ties: first member first)."""
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = sorted(range(len(ids)), key=lambda j: (-counts[j], first[j]))
    remap = np.empty(int(ids.max()) + 1, dtype=np.int64)
    remap[ids[order]] = np.arange(len(ids))
    return remap[labels]


def _sq_dist(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum((x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :], 0.0)


def _unit_rows(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


__all__ = ["MAX_K", "MIN_GAP", "COMPONENT", "SAMPLE", "Clustering", "describe", "cluster", "choose_k", "kmeans", "nearest_mean",
           "merge_small", "renumber"]
