"""A run's decisions, read from its manifest: one compact row per image (no torch, no drawing).

Each current ``ok`` record of the chosen command gives a :class:`Decision`: the image as the manifest names it, the
top explained class, whether it is wrong (when the true label is known), where its evidence lies (``where``: the
explanation's positive mass on a ``WHERE_GRID`` x ``WHERE_GRID`` grid over the image, normalized image
coordinates, summing to 1: the CAM map where the run made one, else the GradCAT leaf block) and what the model saw
there (``leaf``: the per-channel maximum over the evidence's leaf tokens, ``results.records.leaf_maximum``; ``top``:
the record's ``evidence`` vectors), how much of the decision one small block carries (``spot_share``,
:func:`spot_share_of`) and whether removing the evidence changed the decision (``decisive``,
:func:`decisive_of`). The manifest is read line by line and only these rows are kept, so memory grows with the
rows, not with the records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..batch.manifest import manifest_parts, record_id
from ..defaults import SPOT_SCORES
from ..results.records import decisive_of, decode_vector, leaf_maximum

WHERE_GRID = 8  # cells per side of the where map (normalized image coordinates)
SAMPLES = 4  # points per where cell and side at which a map is read
SPOT_DEPTH = 2  # the spot: the GradCAT path's node this far below the root, a block of 1/16 of the view
COMMANDS = ("annotate", "cam", "explain")  # the runs strategies reads, preferred first when a folder has several
EXIT_NOT_A_RUN, EXIT_NO_RECORDS, EXIT_BAD_RECORDS = 2, 2, 3


class StrategiesError(Exception):
    """A folder strategies cannot read: ``code`` is the exit code, the message one line naming the file."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Decision:
    image: str
    label: str
    class_index: int
    wrong: bool | None
    where: np.ndarray  # (WHERE_GRID * WHERE_GRID,) float32, sums to 1
    leaf: np.ndarray  # the evidence's leaf tokens' per-channel maximum (C0,)
    top: np.ndarray
    box: tuple[float, float, float, float]  # the evidence cells' box, original pixels
    spot: np.ndarray  # the evidence box on the where grid, summing to 1 (where the evidence cells lie)
    extent: float  # the share of the image that looks like the evidence (NaN: not recorded)
    spot_share: float  # the share of the class score the path's 1/16 block holds (NaN: not known, spot_share_of)
    size: tuple[int, int]  # image width, height
    thumbnail: str | None
    decisive: bool | None = None  # removing the evidence changed the top class (None: not checked, not the top)


def read_decisions(out_dir: Path, command: str | None = None) -> tuple[str, list[Decision], list[str]]:
    """The chosen command (``command``, else the first of ``COMMANDS`` with records) and its decisions, with the
    problems found (one line each: records that failed or lack what strategies needs). StrategiesError if the
    folder is not a run or holds no usable record."""
    out_dir = Path(out_dir)
    parts = manifest_parts(out_dir) if out_dir.is_dir() else []
    if not parts:
        raise StrategiesError(f"{out_dir}: not a nestviz run folder (no manifest.jsonl): run nestviz explain, cam or "
                              f"annotate with --out {out_dir} first", EXIT_NOT_A_RUN)
    current: dict[tuple[str, str], tuple[float, Decision | str]] = {}
    for part in parts:
        _read_part(part, current)
    commands = {cmd for _, cmd in current}
    chosen = command or next((c for c in COMMANDS if c in commands), None)
    if chosen is None:
        raise StrategiesError(f"{parts[0]}: no explain, cam or annotate records: run one of them on the images first",
                              EXIT_NO_RECORDS)
    rows = [(image, v) for (image, cmd), (_, v) in sorted(current.items()) if cmd == chosen]
    decisions = [v for _, v in rows if isinstance(v, Decision)]
    problems = [v for _, v in rows if isinstance(v, str)]
    if not decisions:
        why = problems[0] if problems else f"no {chosen} records"
        raise StrategiesError(f"{parts[0]}: nothing to group ({why}); run nestviz {chosen} again with this version "
                              f"of nestviz (--overwrite) to record the evidence", EXIT_NO_RECORDS)
    return chosen, decisions, problems


def _read_part(part: Path, current: dict) -> None:  # noqa: ANN001
    """Fold one manifest file's lines into ``current``: the latest (time, Decision or problem) per (image, command)."""
    with open(part, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if not isinstance(rec, dict) or not isinstance(rec.get("image"), str) or rec.get("status") == "skipped":
                continue
            rid = record_id(rec)
            t = rec.get("time")
            t = float(t) if isinstance(t, (int, float)) else float("-inf")
            old = current.get(rid)
            if old is None or t >= old[0]:
                current[rid] = (t, decision_of(rec))


def decision_of(rec: dict[str, Any]) -> Decision | str:
    """A record's Decision, or one line saying why it has none."""
    image = rec["image"]
    if rec.get("status", "ok") != "ok":
        return f"{image}: failed in the run: {rec.get('error', 'error')}"
    ev, preds = rec.get("evidence"), rec.get("predictions")
    if not isinstance(ev, dict) or not isinstance(preds, list) or not preds or not isinstance(preds[0], dict):
        return f"{image}: no evidence recorded (made by an older nestviz)"
    try:
        pred = preds[0]
        leaf, top = leaf_maximum(decode_vector(ev["leaf"])), decode_vector(ev["top"])
        width, height = int(rec["width"]), int(rec["height"])
        box = tuple(float(v) for v in ev["box"])
        where = where_map(pred, (width, height), box)
        spot = where_map({"path": [{"box": list(box)}]}, (width, height), box)
        label, index = str(pred["label"]), int(pred["class_index"])
        extent = float(ev["extent"]) if isinstance(ev.get("extent"), (int, float)) else float("nan")
        options = rec.get("options")
        spot_share = spot_share_of(pred.get("path"), options.get("gradcat_score") if isinstance(options, dict) else None)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        return f"{image}: unreadable evidence record ({type(e).__name__}: {e})"
    if not (np.all(np.isfinite(leaf)) and np.all(np.isfinite(top))):
        return f"{image}: evidence vectors are not finite"
    true = rec.get("true_label")
    wrong = None if not isinstance(true, str) else true.casefold() != label.casefold()
    thumb = rec.get("thumbnail") if isinstance(rec.get("thumbnail"), str) else None
    return Decision(image, label, index, wrong, where, leaf, top, box, spot, extent, spot_share, (width, height), thumb,
                    decisive_of(ev.get("removal"), pred))


def spot_share_of(path: Any, score: Any) -> float:
    """The share of the class score that the GradCAT path's block of 1/16 of the view holds (the root's grandchild,
    ``SPOT_DEPTH``: the leaf of a three-level NesT such as timm's and the default, the same area on a deeper one):
    its node score over the root's, when the run's node scores are the shares the threshold was set on
    (``defaults.SPOT_SCORES``) and the root's score is positive. Above 1 when the rest of the image, together, argues against the class. NaN
    otherwise: the gradient and ablation scores are not shares, the cam score's are spread (``defaults``), and a
    two-level model has no block that small."""
    if score not in SPOT_SCORES or not isinstance(path, list) or len(path) <= SPOT_DEPTH:
        return float("nan")
    root, spot = (node.get("score") if isinstance(node, dict) else None for node in (path[0], path[SPOT_DEPTH]))
    if not isinstance(root, (int, float)) or not isinstance(spot, (int, float)) or not root > 0:
        return float("nan")
    return float(spot) / float(root)


def where_map(pred: dict[str, Any], size: tuple[int, int], fallback: tuple[float, ...]) -> np.ndarray:
    """The explanation's positive mass over the image on the where grid, summing to 1 (see the module)."""
    width, height = size
    g = WHERE_GRID * SAMPLES
    xs = (np.arange(g) + 0.5) / g * width
    ys = (np.arange(g) + 0.5) / g * height
    cam, region = pred.get("cam_map"), pred.get("cam_region")
    if isinstance(cam, list) and cam and isinstance(region, list) and len(region) == 4:
        m = np.maximum(np.asarray(cam, dtype=np.float64), 0.0)
        x0, y0, x1, y1 = (float(v) for v in region)
        col = np.floor((xs - x0) / (x1 - x0) * m.shape[1]).astype(int)
        row = np.floor((ys - y0) / (y1 - y0) * m.shape[0]).astype(int)
        okc, okr = (col >= 0) & (col < m.shape[1]), (row >= 0) & (row < m.shape[0])
        values = m[np.clip(row, 0, m.shape[0] - 1)][:, np.clip(col, 0, m.shape[1] - 1)] * np.outer(okr, okc)
    else:
        path = pred.get("path")
        x0, y0, x1, y1 = path[-1]["box"] if isinstance(path, list) and path else fallback
        values = np.outer((ys >= y0) & (ys < y1), (xs >= x0) & (xs < x1)).astype(np.float64)
    cells = values.reshape(WHERE_GRID, SAMPLES, WHERE_GRID, SAMPLES).sum(axis=(1, 3)).ravel()
    total = cells.sum()
    return (cells / total if total > 0 else np.full(cells.shape, 1.0 / cells.size)).astype(np.float32)


__all__ = ["WHERE_GRID", "SPOT_DEPTH", "COMMANDS", "StrategiesError", "Decision", "read_decisions", "decision_of",
           "spot_share_of", "decisive_of", "where_map"]
