"""Known-answer scores: does an explanation point at evidence the model is known to use?

Pure functions on boxes and points in one frame (``[x0, y0, x1, y1]``, exclusive ends, as
everywhere in ``nestviz.evaluation.scoring``). The evidence is a box (a planted patch, a watermark); an
explanation answers with a region (GradCAT's leaf block) or a point (CAM's peak).
"""

from __future__ import annotations

import numpy as np

COVER = 0.25  # a region "covers" the evidence when it holds at least this share of the evidence's area
TOLERANCE = 8.0  # pixels of the image: a point this close to the evidence box is on it


def centre(box: np.ndarray) -> np.ndarray:
    """Centre (x, y) of a box [x0, y0, x1, y1]."""
    b = np.asarray(box, dtype=np.float64)
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])


def holds(region: np.ndarray, point: np.ndarray) -> bool:
    """Whether ``point`` (x, y) lies in ``region`` (its left and top edges included, right and bottom not)."""
    r, p = np.asarray(region, dtype=np.float64), np.asarray(point, dtype=np.float64)
    return bool(r[0] <= p[0] < r[2] and r[1] <= p[1] < r[3])


def covered(region: np.ndarray, evidence: np.ndarray) -> float:
    """Share of the evidence box's area inside ``region`` (0 for an empty evidence box)."""
    r, e = np.asarray(region, dtype=np.float64), np.asarray(evidence, dtype=np.float64)
    w = max(0.0, min(r[2], e[2]) - max(r[0], e[0]))
    h = max(0.0, min(r[3], e[3]) - max(r[1], e[1]))
    area = (e[2] - e[0]) * (e[3] - e[1])
    return float(w * h / area) if area > 0 else 0.0


def near(point: np.ndarray, evidence: np.ndarray, tolerance: float = TOLERANCE) -> bool:
    """Whether ``point`` is within ``tolerance`` pixels of the evidence box (0 inside it)."""
    p, e = np.asarray(point, dtype=np.float64), np.asarray(evidence, dtype=np.float64)
    dx = max(e[0] - p[0], 0.0, p[0] - e[2])
    dy = max(e[1] - p[1], 0.0, p[1] - e[3])
    return bool(np.hypot(dx, dy) <= tolerance)


def clearance(point: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> float:
    """Distance from ``point`` (x, y) to the nearest vertical line x in ``xs`` or horizontal line y in ``ys``: how
    far it lies from an edge between two blocks (inf where there is none). Evidence whose centre lies within a
    few pixels of a leaf edge is split nearly evenly between two leaves, and which of them holds the centre turns
    on those few pixels, finer than a block-level explanation resolves: the known-answer check reports those
    decisions apart."""
    p = np.asarray(point, dtype=np.float64)
    d = [np.abs(np.asarray(xs, dtype=np.float64) - p[0]), np.abs(np.asarray(ys, dtype=np.float64) - p[1])]
    return float(min((v.min() for v in d if v.size), default=np.inf))


def box_at(point: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A box the size of ``like``, centred on ``point``: the region an explanation's point stands for."""
    half = (np.asarray(like[2:], dtype=np.float64) - np.asarray(like[:2], dtype=np.float64)) / 2
    p = np.asarray(point, dtype=np.float64)
    return np.concatenate([p - half, p + half])


def region_scores(region: np.ndarray, evidence: np.ndarray, cover: float = COVER) -> dict[str, bool]:
    """A region's known-answer scores: it holds the evidence's centre; it covers at least ``cover`` of it."""
    return {"holds_centre": holds(region, centre(evidence)), "covers": covered(region, evidence) >= cover}


__all__ = ["COVER", "TOLERANCE", "centre", "holds", "covered", "near", "clearance", "box_at", "region_scores"]
