"""What a user should read first about a strategy: the flags, their measures and their thresholds (numpy only).

- ``recurring_pattern``: the model saw nearly the same thing at the evidence of every member: the strategy's
  *tightness* (mean pairwise cosine of its members' leaf evidence vectors, centred on the class's mean and scaled
  by the run's spread per feature)
  reaches ``pattern_tightness`` and exceeds the class's own tightness by ``pattern_gain``; or its evidence sits in
  one small place (its members' evidence boxes, averaged on the where grid, hold ``place_mass`` of their mass in
  ``place_cells`` cells, 1/16 of the image) while its tightness reaches ``place_tightness`` and exceeds the
  class's by ``place_gain``. Either way the pattern must be small: in the median member, at most ``extent_max`` of
  the image looks like the evidence (``nestviz.methods.evidence``); sky or water behind an object is tight too,
  but it is everywhere. A pasted patch, a logo or a watermark.
- ``single_spot``: one small spot carries the decision: in the median member whose share is known, the GradCAT
  path's block of 1/16 of the image (the leaf of a three-level NesT) holds at least ``spot_share`` of the class score
  (``records.spot_share_of``). An object's decisions share the score among the blocks it covers (on the default model's
  2,925 Imagenette val photos the median member's leaf holds 0.24, and no strategy's median reaches 0.32); a
  decision a pasted patch makes holds it in the patch's leaf, the rest of the image arguing for its own class
  (medians 0.72-1.29 on ten planted shortcuts of four models, README). A model may also rest a class's natural
  decisions on a small part (a weak model's gas pumps on a red label): look at the montage. Where the run removed
  each member's evidence (``nestviz.methods.removal``), the removal must also have changed at least
  ``spot_decisive`` of the members' decisions: a spot whose removal leaves the decisions standing does not carry them.
- ``border``: the mean where map holds at least ``border_mass`` of its mass in the outer band (``border_band`` of
  each side: 44% of the image's area for 0.125, so a map spread evenly holds 0.44).
- ``errors``: more than ``errors_share`` of the members whose true class is known are wrong.

A flag needs ``min_members`` members. Every threshold is in ``THRESHOLDS`` and copied into strategies.json.
Two strategies of a class flagged ``recurring_pattern`` whose members are as alike across as a pattern's are within
(:func:`cross_tightness` >= ``pattern_tightness``) are one strategy: a patch pasted anywhere is one finding,
whatever the places that the clustering's where view split it by (``report``).
"""

from __future__ import annotations

import numpy as np

THRESHOLDS = {
    "pattern_tightness": 0.45,
    "pattern_gain": 0.25,
    "place_mass": 0.5,
    "place_tightness": 0.3,
    "place_gain": 0.2,
    "place_cells": 4,
    "extent_max": 0.08,
    "spot_share": 0.6,
    "spot_decisive": 0.5,
    "border_band": 0.125,
    "border_mass": 0.6,
    "errors_share": 0.5,
    "min_members": 3,
}
FLAGS = ("recurring_pattern", "single_spot", "border", "errors")


def centred_units(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """One class's rows ``x`` minus the class's mean, divided by the run's spread ``scale`` per column, unit length:
    what every decision of the class shares (the class itself) is not a recurring pattern."""
    z = (x - x.mean(axis=0)) / scale
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def tightness(u: np.ndarray) -> float:
    """Mean pairwise cosine of unit rows ``u`` (i != j), from their sum: O(n d). 1.0 for fewer than two rows."""
    n = len(u)
    if n < 2:
        return 1.0
    s = u.sum(axis=0)
    return float((s @ s - n) / (n * (n - 1)))


def cross_tightness(a: np.ndarray, b: np.ndarray) -> float:
    """Mean cosine between the unit rows of ``a`` and those of ``b``, from their sums: O(n d). Two strategies whose
    members are as alike across as a pattern's members are within (``pattern_tightness``) show one pattern."""
    return float(a.sum(axis=0) @ b.sum(axis=0) / (len(a) * len(b)))


def place_mass(mean_map: np.ndarray, cells: int) -> float:
    """The mass of a where map (summing to 1) in its ``cells`` largest cells."""
    flat = np.sort(np.ravel(mean_map))[::-1]
    return float(flat[:cells].sum())


def border_mass(mean_map: np.ndarray, band: float) -> float:
    """The mass of a square where map in its outer band of ``band`` of each side (cells whose centre lies there)."""
    g = mean_map.shape[0]
    centres = (np.arange(g) + 0.5) / g
    edge = (centres < band) | (centres > 1 - band)
    return float(mean_map[edge[:, None] | edge[None, :]].sum())


def measures(u: np.ndarray, mean_map: np.ndarray, spots: np.ndarray, extents: np.ndarray, shares: np.ndarray,
             wrong: list[bool | None], class_tightness: float, decisive: list[bool | None] | None = None) -> dict:
    """A strategy's measures: ``u`` its members' unit leaf vectors, ``mean_map`` its mean where map (g, g),
    ``spots`` its mean evidence-box map (g, g), ``extents`` and ``shares`` its members' evidence extents and leaf
    shares of the class score (NaN: not recorded, not known), ``decisive`` whether removing each member's evidence
    changed its decision (None: not checked); ``decisive`` the share of the checked members it changed."""
    known = [w for w in wrong if w is not None]
    checked = [d for d in (decisive or []) if d is not None]
    t = THRESHOLDS
    ext, share = extents[np.isfinite(extents)], shares[np.isfinite(shares)]
    return {"tightness": round(tightness(u), 4), "class_tightness": round(class_tightness, 4),
            "extent": round(float(np.median(ext)), 4) if len(ext) else None,
            "spot_share": round(float(np.median(share)), 4) if len(share) else None,
            "place_mass": round(place_mass(spots, int(t["place_cells"])), 4),
            "border_mass": round(border_mass(mean_map, float(t["border_band"])), 4),
            "decisive": round(sum(checked) / len(checked), 4) if checked else None,
            "known": len(known), "wrong": int(sum(known))}


def decisive_text(decisive: float | None) -> str | None:
    """What ``measures.decisive`` says, in the words the command and the page use (None: not checked)."""
    return None if decisive is None else f"removing the evidence changed {decisive:.0%} of the decisions"


def flags_of(m: dict, members: int) -> list[str]:
    """The flags (in ``FLAGS`` order) that a strategy's measures ``m`` raise; see the module."""
    t = THRESHOLDS
    if members < t["min_members"]:
        return []
    gain = m["tightness"] - m["class_tightness"]
    small = m["extent"] is None or m["extent"] <= t["extent_max"]
    out = []
    tight = m["tightness"] >= t["pattern_tightness"] and gain >= t["pattern_gain"]
    placed = m["place_mass"] >= t["place_mass"] and m["tightness"] >= t["place_tightness"] and gain >= t["place_gain"]
    if small and (tight or placed):
        out.append("recurring_pattern")
    decided = m.get("decisive") is None or m["decisive"] >= t["spot_decisive"]
    if m.get("spot_share") is not None and m["spot_share"] >= t["spot_share"] and decided:
        out.append("single_spot")
    if m["border_mass"] >= t["border_mass"]:
        out.append("border")
    if m["known"] and m["wrong"] / m["known"] > t["errors_share"]:
        out.append("errors")
    return out


__all__ = ["THRESHOLDS", "FLAGS", "centred_units", "tightness", "cross_tightness", "place_mass", "border_mass", "measures",
           "decisive_text", "flags_of"]
