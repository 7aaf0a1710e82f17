"""Localization metrics: IoU, boxes from thresholded score maps, MaxBoxAcc, pointing.

Conventions (shared by every function here):

- A box is ``[x0, y0, x1, y1]`` in float pixels with exclusive ends: area ``(x1-x0)*(y1-y0)``;
  pixel ``(col i, row j)`` is ``[i, j, i+1, j+1]``. An ImageNet/VOC box with inclusive ``xmax``
  becomes ``x1 = xmax + 1`` (``nestviz.evaluation.boxes`` does this), which makes our IoU equal to the
  ``+1`` IoU of wsolevaluation on integer boxes.
- A threshold ``t`` selects the pixels whose min-max normalised score is ``>= t``; regions are
  8-connected (as OpenCV's contours are). At ``t = 0`` the whole map is one region.
- A threshold whose mask is empty yields no box, which counts as a miss (IoU 0); wsolevaluation
  returns a ``[0, 0, 0, 0]`` box there, which also never reaches an IoU level.
- Points are ``(x, y)`` in the same continuous pixel frame: the centre of pixel ``(i, j)`` is
  ``(i + 0.5, j + 0.5)``.

All components for all thresholds of one map are found in a single pass over horizontal runs
(see ``_level_components``), so MaxBoxAcc over 100 thresholds costs a few milliseconds a map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

DEFAULT_THRESHOLDS = np.arange(0.0, 1.0, 0.01)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N,4) with every box in ``b`` (M,4), exclusive ends: (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _area(boxes: np.ndarray) -> np.ndarray:
    """Areas of (N,4) boxes; an inverted box has area 0."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def normalize_map(m: np.ndarray) -> np.ndarray:
    """Min-max rescale to [0, 1] so thresholds mean the same on every map; a constant map gives zeros."""
    m = np.asarray(m, np.float64)
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def _ragged_arange(counts: np.ndarray) -> np.ndarray:
    """``concatenate([arange(n) for n in counts])`` without a Python loop."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def _run_keys(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys ``(k*H + row)*(W+1) + col`` of the starts and (exclusive) ends of the row runs of every set {levels > k}."""
    h, w = levels.shape
    padded = np.zeros((h, w + 2), np.int64)
    padded[:, 1:-1] = levels
    step = np.diff(padded, axis=1)  # step[r, c]: level change entering column c (c = w: leaving the row)
    keys = []
    for sign, base in ((1, padded[:, :-1]), (-1, padded[:, 1:])):  # rising edges start runs, falling ones end them
        r, c = np.nonzero(step * sign > 0)
        n = step[r, c] * sign  # the levels k in [base, base + n) change state at this column
        k = np.repeat(base[r, c], n) + _ragged_arange(n)
        keys_rc = np.repeat(r * (w + 1) + c, n)  # already in (row, col) order
        small = k.astype(np.int16) if padded.max() < 2**15 else k  # 16-bit keys sort by radix, in linear time
        order = np.argsort(small, kind="stable")
        keys.append(k[order] * (h * (w + 1)) + keys_rc[order])
    return keys[0], keys[1]


def _union_roots(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root (smallest member) of each of ``n`` nodes joined by edges (a, b): vectorised union-find."""
    parent = np.arange(n)
    while a.size:
        ra, rb = parent[a], parent[b]  # parent is fully compressed here, so these are roots
        keep = ra != rb
        a, b, ra, rb = a[keep], b[keep], ra[keep], rb[keep]
        parent[np.maximum(ra, rb)] = np.minimum(ra, rb)  # hook the larger root under the smaller
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
    return parent


def _level_components(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """8-connected regions of every set {levels > k}: their k (K,), boxes (K,4) and pixel counts (K,).

    Every row run of every level set is a node; runs of the same level in adjacent rows that touch
    are joined by union-find; a region's box is the extent of its runs. Sets are nested, so the
    runs of all levels together number far fewer than levels x pixels on smooth maps.
    """
    levels = np.asarray(levels, np.int64)
    h, w = levels.shape
    starts, ends = _run_keys(levels)
    if not starts.size:
        return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64)
    m = w + 1
    group, x0, x1 = starts // m, starts % m, ends % m  # run i spans columns [x0, x1) of row group % h
    row, k = group % h, group // h
    # Runs of the same k in the next row touching run i (diagonals included) form a contiguous range.
    nxt = (group + 1) * m
    lo = np.searchsorted(ends, nxt + x0, side="left")  # first with end >= x0
    hi = np.searchsorted(starts, nxt + x1, side="right")  # past the last with start <= x1
    count = np.where(row < h - 1, np.clip(hi - lo, 0, None), 0)
    a = np.repeat(np.arange(starts.size), count)
    b = np.repeat(lo, count) + _ragged_arange(count)
    roots = _union_roots(starts.size, a, b)
    is_root = roots == np.arange(starts.size)  # a root is its region's first run (top row, leftmost)
    comp = (np.cumsum(is_root) - 1)[roots]
    n = int(is_root.sum())
    y0 = row[is_root]
    xa, xb, yb = np.full(n, w), np.zeros(n, np.int64), np.zeros(n, np.int64)  # contiguous int64: ufunc.at's fast path
    np.minimum.at(xa, comp, x0)
    np.maximum.at(xb, comp, x1)
    np.maximum.at(yb, comp, row + 1)
    boxes = np.stack([xa, y0, xb, yb], axis=1).astype(np.float64)
    return k[is_root], boxes, np.bincount(comp, weights=x1 - x0, minlength=n).astype(np.int64)


def connected_boxes(mask: np.ndarray) -> np.ndarray:
    """Bounding boxes (K,4) of the 8-connected True regions of a 2-D mask, top-left region first."""
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    return _level_components(mask.astype(np.int64))[1]


def _threshold_levels(scoremap: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each pixel, how many thresholds its normalised score reaches (pixel in mask k iff level > k)."""
    if thresholds.ndim != 1 or np.any(np.diff(thresholds) < 0):
        raise ValueError("thresholds must be a 1-D ascending sequence")
    m = np.asarray(scoremap)
    if m.ndim != 2 or not np.isfinite(m).all():
        raise ValueError(f"score map must be 2-D and finite, got shape {m.shape}")
    return np.searchsorted(thresholds, normalize_map(m), side="right")


def _regions_per_threshold(scoremap: np.ndarray, thresholds: np.ndarray,
                           multi_contour: bool) -> tuple[np.ndarray, np.ndarray]:
    """Threshold index (K,) and box (K,4) of the regions kept at each threshold: all, or the largest."""
    k, boxes, areas = _level_components(_threshold_levels(scoremap, thresholds))
    if not multi_contour:  # largest region by pixel count (OpenCV's V1 uses polygon area); ties: top-left one
        order = np.lexsort((-areas, k))
        _, first = np.unique(k[order], return_index=True)
        k, boxes = k[order][first], boxes[order][first]
    return k, boxes


def boxes_at_thresholds(scoremap: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                        multi_contour: bool = True) -> list[np.ndarray]:
    """Per threshold, the (K,4) boxes of all regions (MaxBoxAccV2) or of the largest (V1); (0,4) if empty."""
    thresholds = np.asarray(thresholds, np.float64)
    k, boxes = _regions_per_threshold(scoremap, thresholds, multi_contour)
    return [boxes[k == i] for i in range(thresholds.size)]


@dataclass
class MaxBoxAccResult:
    """MaxBoxAcc at each IoU level, the threshold reaching it, their mean, and the whole curve."""

    per_iou: dict[float, float]
    best_threshold: dict[float, float]  # the lowest threshold reaching the best accuracy
    value: float  # mean of per_iou: MaxBoxAccV2 for IoU (0.3, 0.5, 0.7) with all regions
    accuracy_curve: np.ndarray  # (len(iou_levels), len(thresholds)) share of images correct


def max_box_acc(scoremaps: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray],
                thresholds: Sequence[float] = DEFAULT_THRESHOLDS, iou_levels: Sequence[float] = (0.3, 0.5, 0.7),
                multi_contour: bool = True) -> MaxBoxAccResult:
    """Best share over thresholds of images whose best predicted box meets a GT box at each IoU level (Choe et al. 2020).

    V1 is ``iou_levels=(0.5,), multi_contour=False``. Score maps must be at the resolution of the
    boxes' pixels; each is min-max normalised here.
    """
    if len(scoremaps) != len(gt_boxes) or not len(scoremaps):
        raise ValueError(f"need as many score maps as box lists, and at least one: {len(scoremaps)} vs {len(gt_boxes)}")
    thresholds = np.asarray(thresholds, np.float64)
    ious = np.asarray(iou_levels, np.float64)
    correct = np.zeros((ious.size, thresholds.size))
    for i, (scoremap, gt) in enumerate(zip(scoremaps, gt_boxes)):
        gt = np.asarray(gt, np.float64).reshape(-1, 4)
        if not gt.size:
            raise ValueError(f"image {i} has no ground-truth box")
        k, boxes = _regions_per_threshold(scoremap, thresholds, multi_contour)
        best = np.zeros(thresholds.size)  # a threshold without a region keeps IoU 0
        np.maximum.at(best, k, box_iou(boxes, gt).max(axis=1))
        correct += best[None, :] >= ious[:, None]
    curve = correct / len(scoremaps)
    arg = curve.argmax(axis=1)
    per_iou = {float(u): float(curve[j, arg[j]]) for j, u in enumerate(ious)}
    best_t = {float(u): float(thresholds[arg[j]]) for j, u in enumerate(ious)}
    return MaxBoxAccResult(per_iou, best_t, float(np.mean(list(per_iou.values()))), curve)


def covers_view(pred_boxes: np.ndarray, view_boxes: np.ndarray, frac: float = 0.95) -> np.ndarray:
    """Whether each box covers at least ``frac`` of its view's area (the part inside the view counts)."""
    pred = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
    view = np.broadcast_to(np.asarray(view_boxes, np.float64).reshape(-1, 4), pred.shape)
    inside = np.concatenate([np.maximum(pred[:, :2], view[:, :2]), np.minimum(pred[:, 2:], view[:, 2:])], axis=1)
    return _area(inside) >= frac * _area(view)


def point_box_distance(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Euclidean distance (N, M) from each (x, y) point to each box, 0 inside or on the border."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    dx = np.maximum.reduce([b[None, :, 0] - p[:, None, 0], np.zeros((len(p), len(b))), p[:, None, 0] - b[None, :, 2]])
    dy = np.maximum.reduce([b[None, :, 1] - p[:, None, 1], np.zeros((len(p), len(b))), p[:, None, 1] - b[None, :, 3]])
    return np.hypot(dx, dy)


def pointing_hits(points: np.ndarray, gt_boxes: Sequence[np.ndarray], tolerance: float = 15.0) -> np.ndarray:
    """Pointing game (Zhang et al. 2016): a hit when the point lies within ``tolerance`` px of a GT box."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    if len(p) != len(gt_boxes):
        raise ValueError(f"{len(p)} points for {len(gt_boxes)} images")
    return np.array([point_box_distance(q, g).min(initial=np.inf) <= tolerance for q, g in zip(p, gt_boxes)], bool)


def centred_map(h: int, w: int) -> np.ndarray:
    """Score map whose threshold sets are centred boxes of every scale: the "best centred box" baseline."""
    x = (np.arange(w) + 0.5 - w / 2) / (w / 2)
    y = (np.arange(h) + 0.5 - h / 2) / (h / 2)
    return 1.0 - np.maximum(np.abs(x)[None, :], np.abs(y)[:, None])
