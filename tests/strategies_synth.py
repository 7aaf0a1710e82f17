"""Synthetic run folders for ``nestviz strategies``, with the right grouping known by construction.

A class's natural decisions have evidence that varies (a random "object" direction plus noise, a broad map near
the centre); planted ones (images of another class, predicted as this one) all show nearly the same pattern
(one fixed vector plus a little noise) in a small spot: at a random place (a patch that moves) or always in the
bottom-right corner (a watermark). Records are written as folder runs write them (``cam``: ``cam_map`` and
``cam_region``; ``explain``: a GradCAT path), with the ``evidence`` the runs record. With ``share``, the path has
three levels whose leaf holds that share of the root's score, as the run's GradCAT ``score`` recorded it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nestviz.results.records import encode_vector

LEAF, TOP, GRID = 32, 48, 8
SIZE = (64, 48)  # image width, height


def _blob(rng: np.random.Generator, cx: float, cy: float, sigma: float) -> np.ndarray:
    ys, xs = np.mgrid[0:GRID, 0:GRID] + 0.5
    return np.exp(-((xs / GRID - cx) ** 2 + (ys / GRID - cy) ** 2) / (2 * sigma**2)) + 0.02 * rng.random((GRID, GRID))


def decision_record(image: str, label: str, index: int, true: str | None, leaf: np.ndarray, top: np.ndarray,
                    spot: tuple[float, float], sigma: float, command: str, rng: np.random.Generator,
                    extent: float = 0.1, size: tuple[int, int] = SIZE, share: float | None = None,
                    score: str = "relevance") -> dict[str, Any]:
    """One manifest record whose evidence lies at ``spot`` (normalized x, y) with spread ``sigma`` and covers
    ``extent`` of the image (``size``: width, height); ``share``: its leaf's share of the class score."""
    w, h = size
    cx, cy = spot
    col, row = min(int(cx * GRID), GRID - 1), min(int(cy * GRID), GRID - 1)
    cell_w, cell_h = w / GRID, h / GRID
    box = [col * cell_w, row * cell_h, (col + 1) * cell_w, (row + 1) * cell_h]
    pred: dict[str, Any] = {"rank": 1, "class_index": index, "label": label, "probability": 0.9}
    if command in ("cam", "annotate"):
        pred.update(cam_map=np.round(_blob(rng, cx, cy, sigma), 4).tolist(), cam_region=[0.0, 0.0, w, h],
                    box=box, peak=[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], threshold=0.35)
    if command in ("explain", "annotate"):
        leaf_w, leaf_h = w / 4, h / 4
        lc, lr = min(int(cx * 4), 3), min(int(cy * 4), 3)
        pred["path"] = [{"level": 1, "node": lr * 4 + lc, "box": [lc * leaf_w, lr * leaf_h, (lc + 1) * leaf_w,
                                                                   (lr + 1) * leaf_h], "score": 1.0,
                         "child_scores": None, "chosen_child": None}]
        if share is not None:  # root (the whole view, score 2), the leaf's parent, the leaf (2 * share)
            leaf_node = {**pred["path"][0], "score": 2.0 * share}
            pred["path"] = [{"level": 3, "node": 0, "box": [0.0, 0.0, w, h], "score": 2.0},
                            {"level": 2, "node": (lr // 2) * 2 + lc // 2,
                             "box": [lc // 2 * w / 2, lr // 2 * h / 2, (lc // 2 + 1) * w / 2, (lr // 2 + 1) * h / 2],
                             "score": 1.0 + share}, leaf_node]
    rec = {"image": image, "width": w, "height": h, "predictions": [pred], "outputs": [], "command": command,
           "status": "ok", "key": "synthetic", "evidence": {"class_index": index, "cells": [row * GRID + col],
                                                             "grid": [GRID, GRID], "box": box, "extent": extent,
                                                             "leaf": encode_vector(leaf), "top": encode_vector(top)}}
    if share is not None:
        rec["options"] = {"gradcat_score": score}
    if true is not None:
        rec["true_label"] = true
    return rec


def planted_records(natural: int, planted: int, place: str = "random", command: str = "cam", seed: int = 0,
                    label: str = "horse", other: int = 0, small: str | None = None,
                    shares: tuple[float, float] | None = None, score: str = "relevance") -> list[dict[str, Any]]:
    """``natural`` decisions of ``label`` (true label ``label``) and ``planted`` of images of "cat" that show the
    pattern at a ``place`` ("random" or "corner"), predicted ``label``; plus ``other`` natural decisions of "cat".
    Planted images are named ``planted/...``. ``small``: the pattern covers a small part of the evidence cells, so
    only one half of its leaf vector shows it ("max": the tokens' maximum, as a real pattern does; "mean": the
    tokens' mean, a control) and the other half is the photo around it. ``shares``: the leaf's share of the class
    score around which natural and planted decisions scatter (+-0.1), recorded as ``score`` records it."""
    rng = np.random.default_rng(seed)
    pattern_leaf, pattern_top = rng.normal(0, 1, LEAF), rng.normal(0, 1, TOP)
    records = []
    for i in range(natural):
        spot = (0.5 + 0.15 * rng.normal(), 0.5 + 0.15 * rng.normal())
        records.append(decision_record(f"val/{label}/n{i:05d}.png", label, 0, label, rng.normal(0, 1, LEAF),
                                       rng.normal(0, 1, TOP), tuple(np.clip(spot, 0.05, 0.95)), 0.25, command, rng,
                                       float(rng.uniform(0.05, 0.4)), share=_share(shares, 0, rng), score=score))
    for i in range(planted):
        spot = (0.9, 0.9) if place == "corner" else tuple(rng.uniform(0.1, 0.9, 2))
        leaf = pattern_leaf + 0.3 * rng.normal(0, 1, LEAF)
        if small is not None:  # the other half is the photo's
            photo = slice(0, LEAF // 2) if small == "max" else slice(LEAF // 2, LEAF)
            leaf[photo] = rng.normal(0, 1, LEAF // 2)
        records.append(decision_record(f"planted/cat/p{i:05d}.png", label, 0, "cat", leaf,
                                       pattern_top + 0.8 * rng.normal(0, 1, TOP), spot, 0.08, command, rng,
                                       float(rng.uniform(0.005, 0.05)), share=_share(shares, 1, rng), score=score))
    for i in range(other):
        records.append(decision_record(f"val/cat/c{i:05d}.png", "cat", 1, "cat", rng.normal(0, 1, LEAF),
                                       rng.normal(0, 1, TOP), (0.5, 0.5), 0.3, command, rng,
                                       share=_share(shares, 0, rng), score=score))
    return records


def _share(shares: tuple[float, float] | None, which: int, rng: np.random.Generator) -> float | None:
    return None if shares is None else float(shares[which] + rng.uniform(-0.1, 0.1))


def write_run(out: Path, records: list[dict[str, Any]], images: Path | None = None) -> Path:
    """``records`` as ``out/manifest.jsonl``; with ``images``, a small PNG for each record's image under it."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    if images is not None:
        from PIL import Image

        for n, r in enumerate(records):
            p = images / r["image"]
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", SIZE, ((n * 37) % 256, 120, 200)).save(p)
    return out
