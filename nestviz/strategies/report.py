"""Decisions in, strategies out: per predicted class, cluster the decisions and describe each cluster (no I/O).

A class is clustered by the joint descriptor of its decisions (where the evidence lies, what the model saw there);
its leaf view is also clustered alone, so that a recurring pattern a few decisions carry is not buried in a larger
strategy (:func:`split_patterns`), patterns split by place are joined (:func:`merge_patterns`), and a finding keeps
the decisions that removing its evidence changed (:func:`split_undecided`).

The result is strategies.json's content (``classes``) and, per strategy, the members to show in its montage
(the most typical first: nearest to the strategy's mean descriptor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .._text import counted
from .cluster import COMPONENT, MAX_K, MIN_GAP, MIN_SPLIT, NEIGHBOURS, SAMPLE, cluster, describe, renumber
from .flags import THRESHOLDS, centred_units, cross_tightness, flags_of, measures, tightness
from .records import WHERE_GRID, Decision

VIEW_WEIGHTS = {"where": 0.5, "leaf": 1.0, "top": 0.5}  # how much each view counts in the joint descriptor
PATTERN_OVERLAP = 0.5  # a pattern found in the leaf view alone is new unless more than this of it is one already
MONTAGE_CROPS = 12  # evidence crops per strategy montage
MONTAGE_WHOLE = 4  # whole images per strategy montage
MONTAGE_DIR = "strategies"  # montages go to DIR/strategies/<class index>-<n>.png
FINDINGS = ("recurring_pattern", "single_spot")  # the flags that say a small thing decides: split by its removal


@dataclass
class Shown:
    """What one strategy's montage draws: its id, file, mean where map and the decisions to show, most typical first."""

    id: str
    montage: str
    mean_map: np.ndarray
    members: list[Decision]
    title: str


def method() -> dict:
    """How strategies were found, for the JSON: views, k selection, thresholds."""
    return {"views": dict(VIEW_WEIGHTS), "where_grid": WHERE_GRID, "max_k": MAX_K, "min_gap": MIN_GAP, "component": COMPONENT,
            "sample": SAMPLE, "neighbours": NEIGHBOURS, "min_split": MIN_SPLIT,
            "k_choice": "largest eigengap of the kNN graph's normalized affinity, at least its near-1 eigenvalues",
            "pattern_split": "the leaf view is also clustered alone; a cluster of it that is a recurring pattern "
                             f"becomes its own strategy unless more than {PATTERN_OVERLAP} of it is one already; where "
                             "the run removed the evidence and a path measured its spot, so does one at any count from "
                             f"2 to {MAX_K} that is also a single spot whose removal changed its decisions",
            "pattern_merge": "recurring patterns whose members are as alike across as within (cross tightness >= "
                             "pattern_tightness) are one strategy",
            "finding_split": "a finding (" + " or ".join(FINDINGS) + ") keeps the members whose decision removing "
                             "their evidence changed; the members it left standing become their own strategy",
            "thresholds": dict(THRESHOLDS)}


def find_strategies(decisions: list[Decision], seed: int = 0) -> tuple[list[dict], list[Shown]]:
    """Per predicted class (most decisions first, then by index), its strategies; see the module."""
    if not decisions:
        return [], []
    leaf = np.stack([d.leaf for d in decisions]).astype(np.float64)
    scale = np.maximum(leaf.std(axis=0), 1e-6)  # the run's spread of each feature
    by_class: dict[int, list[int]] = {}
    for i, d in enumerate(decisions):
        by_class.setdefault(d.class_index, []).append(i)
    classes, shown = [], []
    for c, idx in sorted(by_class.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        entry, pics = _class_strategies(c, [decisions[i] for i in idx], centred_units(leaf[idx], scale), seed)
        classes.append(entry)
        shown += pics
    return classes, shown


def _class_strategies(c: int, decs: list[Decision], units: np.ndarray, seed: int) -> tuple[dict, list[Shown]]:
    """One class's entry for the JSON and its montages' contents."""
    n = len(decs)
    where = np.stack([d.where for d in decs])
    x = describe([where, np.stack([d.leaf for d in decs]), np.stack([d.top for d in decs])],
                            list(VIEW_WEIGHTS.values()))
    min_size = max(2, int(np.ceil(0.01 * n)))
    result = cluster(x, seed=seed, min_size=min_size)
    class_t = tightness(units)

    def measured(members: np.ndarray) -> tuple[np.ndarray, dict]:
        mean_map = where[members].mean(axis=0).reshape(WHERE_GRID, WHERE_GRID)
        spots = np.mean([decs[i].spot for i in members], axis=0).reshape(WHERE_GRID, WHERE_GRID)
        extents = np.array([decs[i].extent for i in members], dtype=np.float64)
        shares = np.array([decs[i].spot_share for i in members], dtype=np.float64)
        return mean_map, measures(units[members], mean_map, spots, extents, shares, [decs[i].wrong for i in members],
                                  class_t, [decs[i].decisive for i in members])

    def is_pattern(members: np.ndarray) -> bool:
        return "recurring_pattern" in flags_of(measured(members)[1], len(members))

    def is_finding(members: np.ndarray) -> bool:  # what the evidence looks like, before removal is asked
        return bool(set(FINDINGS) & set(flags_of({**measured(members)[1], "decisive": None}, len(members))))

    decisive = [d.decisive for d in decs]

    def is_spot(members: np.ndarray) -> bool:  # one spot carries them, and removing it changed them
        return "single_spot" in flags_of(measured(members)[1], len(members))

    spots = any(d is not None for d in decisive) and any(np.isfinite(d.spot_share) for d in decs)  # removal and path
    merged = merge_patterns(split_patterns(result.labels, units, is_pattern, is_spot if spots else None, seed,
                                           min_size), units, is_pattern)
    labels = split_undecided(merged, decisive, is_finding)
    look_alikes = split_parts(merged, labels, decisive)
    k = int(labels.max()) + 1
    entry = {"label": decs[0].label, "class_index": c, "images": n, "k": k,
             "eigenvalues": [round(float(v), 4) for v in result.eigenvalues],
             "wrong": sum(1 for d in decs if d.wrong), "strategies": []}
    if n < MIN_SPLIT:
        entry["note"] = f"{counted(n, 'decision')}: too few to split (fewer than {MIN_SPLIT})"
    shown = []
    for j in range(k):
        members = np.flatnonzero(labels == j)
        mean_map, m = measured(members)
        sid = f"{c}-{j + 1}"
        montage = f"{MONTAGE_DIR}/{sid}.png"
        centre = x[members].mean(axis=0)
        typical = members[np.argsort(-(x[members] @ centre), kind="stable")]
        entry["strategies"].append({
            "id": sid, "share": round(len(members) / n, 4), "images": [decs[i].image for i in members],
            "wrong": m["wrong"], "known": m["known"], "flags": flags_of(m, len(members)), "montage": montage,
            "measures": {k: m[k] for k in ("tightness", "class_tightness", "extent", "spot_share", "place_mass",
                                           "border_mass", "decisive")},
            "mean_map": [[round(float(v), 4) for v in row] for row in mean_map]})
        if j in look_alikes:  # the decisions of finding look_alikes[j] that removing their evidence left standing
            entry["strategies"][-1]["split_from"] = f"{c}-{look_alikes[j] + 1}"
        title = f"{decs[0].label}: strategy {j + 1} of {k}, {len(members)} of {n} decisions"
        shown.append(Shown(sid, montage, mean_map, [decs[i] for i in typical[:max(MONTAGE_CROPS, MONTAGE_WHOLE)]],
                           title))
    return entry, shown


def split_patterns(labels: np.ndarray, units: np.ndarray, is_pattern: Callable[[np.ndarray], bool],
                   is_spot: Callable[[np.ndarray], bool] | None = None, seed: int = 0, min_size: int = 2) -> np.ndarray:
    """Clusters ``labels`` of one class with each recurring pattern that the joint descriptor buried made its own.

    The class's unit leaf rows ``units`` are clustered alone at the eigengap's number of clusters
    (``cluster.cluster``); a cluster of them that is a pattern (``is_pattern(members)``, the flag's own test) becomes
    one strategy, its members leaving theirs, unless more than ``PATTERN_OVERLAP`` of it lies in patterns already.
    A pattern that a few decisions carry (a weakly learned barcode: 16 of 283 garbage-truck decisions, README)
    sinks into a larger strategy of the joint descriptor when their where maps differ; in the leaf view alone it
    stands apart.

    One that a sixth of the class carries may not make the leaf view's largest eigengap (a red cross on parachutes:
    47 of 299 decisions, inside one half of a 2-way split; a cluster of its own from 5 clusters on). Where the run
    removed the evidence and a GradCAT path measured the spot (explain and annotate runs), ``is_spot(members)`` says
    whether one small spot carries the members' decisions and its removal changed them (the ``single_spot`` flag's
    test); the leaf view is then also clustered at every count from 2 to ``MAX_K`` (``cluster.cluster``'s
    ``every_k``), and a cluster of those that is both a pattern and such a spot is taken as well. Trying that many
    clusters finds small tight groups of natural decisions too; a spot whose removal changes them is what a pasted
    patch makes, and they seldom are. Largest first; the whole class as one cluster is no finding. Renumbered by
    size."""
    labels = labels.copy()
    alone = cluster(units, seed=seed, min_size=min_size, every_k=is_spot is not None)
    tries: list[tuple[np.ndarray, Callable[[np.ndarray], bool]]] = [(alone.labels, is_pattern)]
    if is_spot is not None:
        tries += [(part, lambda m: is_pattern(m) and is_spot(m)) for part in alone.finer]
    found = [(m, test) for part, test in tries for g in np.unique(part) if len(m := np.flatnonzero(part == g)) < len(labels)]
    patterns = [j for j in np.unique(labels) if is_pattern(np.flatnonzero(labels == j))]
    for members, test in sorted(found, key=lambda f: len(f[0]), reverse=True):  # stable: equal sizes as found
        if np.isin(labels[members], patterns).mean() <= PATTERN_OVERLAP and test(members):
            labels[members] = labels.max() + 1
            patterns = [j for j in np.unique(labels) if is_pattern(np.flatnonzero(labels == j))]
    return renumber(labels)


def split_undecided(labels: np.ndarray, decisive: list[bool | None],
                    is_finding: Callable[[np.ndarray], bool]) -> np.ndarray:
    """Clusters ``labels`` of one class with each finding (``is_finding(members)``: a recurring pattern or a single
    spot) split in two when removing the evidence left some of its members' decisions standing (``decisive`` False)
    and changed at least ``min_members`` of them: those keep the strategy, the others (and none of the unchecked)
    become their own, measured and flagged anew. A pasted patch's decisions fall with it; a natural photo
    clustered with them for looking alike mostly stands (0.73-1.00 against 0.11-0.31 on planted shortcuts,
    ``methods.removal``), so the finding's members are the decisions it caused. Renumbered by size."""
    labels = labels.copy()
    checked = np.array([d is not None for d in decisive])
    changed = np.array([bool(d) for d in decisive])
    for j in np.unique(labels):
        members = labels == j
        stood = members & checked & ~changed
        enough = (members & changed).sum() >= THRESHOLDS["min_members"]
        if stood.any() and enough and is_finding(np.flatnonzero(members)):
            labels[stood] = labels.max() + 1
    return renumber(labels)


def split_parts(before: np.ndarray, after: np.ndarray, decisive: list[bool | None]) -> dict[int, int]:
    """For labels ``before`` and ``after`` :func:`split_undecided`: each strategy of standing members (every one
    checked and not changed) -> the finding it was split from."""
    stood = np.array([d is False for d in decisive])
    out = {}
    for b in np.unique(before):
        parts = np.unique(after[before == b])
        if len(parts) == 2:
            rest = [q for q in parts if stood[after == q].all()]
            if len(rest) == 1:
                out[int(rest[0])] = int(parts[parts != rest[0]][0])
    return out


def merge_patterns(labels: np.ndarray, units: np.ndarray, is_pattern: Callable[[np.ndarray], bool]) -> np.ndarray:
    """Clusters ``labels`` of one class with every two recurring patterns (``is_pattern(members)``) whose members'
    unit leaf rows ``units`` are as alike across as a pattern's are within (``flags.cross_tightness`` >=
    ``pattern_tightness``) joined, most alike first, then renumbered by size: a patch pasted at random places is
    one finding, though the where view may split it by place. Two different patterns feeding one class stay apart
    (their members' leaf rows are unrelated: cross tightness near 0)."""
    labels = labels.copy()
    while True:
        patterns = [j for j in np.unique(labels) if is_pattern(np.flatnonzero(labels == j))]
        pairs = [(cross_tightness(units[labels == a], units[labels == b]), a, b) for a, b in combinations(patterns, 2)]
        pairs = [p for p in pairs if p[0] >= THRESHOLDS["pattern_tightness"]]
        if not pairs:
            return renumber(labels)
        _, a, b = max(pairs)
        labels[labels == b] = a


__all__ = ["VIEW_WEIGHTS", "PATTERN_OVERLAP", "MONTAGE_CROPS", "MONTAGE_WHOLE", "MONTAGE_DIR", "Shown", "method",
           "find_strategies", "split_patterns", "split_undecided", "split_parts", "merge_patterns", "FINDINGS"]
