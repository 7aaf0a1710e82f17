"""Synthetic and real-looking folder runs for the gallery tests and benchmarks/gallery_load.py.

``synthetic_run(out, n)`` writes a few tiny shared thumbnails and figures under ``out`` and returns
``n`` manifest records like a run of ``nestviz annotate`` on a class-per-folder validation set
(ten classes, true labels, about 1% failures, some images explained by two commands).
``real_run(out)`` uses the records of a real run of the embedded model on the example photos
(tests/fixtures/gallery_run.jsonl) with real thumbnails drawn by ``nestviz.draw.thumbnail``.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["tench", "English springer", "cassette player", "chain saw", "church", "French horn", "garbage truck",
           "gas pump", "golf ball", "parachute"]
COLOURS = [(200, 80, 60), (60, 140, 200), (90, 170, 90), (220, 190, 70)]


def shared_files(out: Path) -> tuple[list[str], list[str]]:
    """Four tiny thumbnails and two figures, shared by all synthetic records (relative paths)."""
    thumbs, figures = [], []
    (out / "shared").mkdir(parents=True, exist_ok=True)
    for i, c in enumerate(COLOURS):
        img = Image.new("RGB", (64, 48), c)
        for x in range(0, 64, 8):
            img.paste((255, 255, 255), (x, (x * 3 + i * 7) % 40, x + 4, (x * 3 + i * 7) % 40 + 6))
        rel = f"shared/t{i}.thumb.jpg"
        img.save(out / rel, quality=80)
        thumbs.append(rel)
    for kind in ("gradcat", "cam"):
        rel = f"shared/example.{kind}.png"
        Image.new("RGB", (32, 16), (120, 120, 120)).save(out / rel)
        figures.append(rel)
    return thumbs, figures


def _path(rng: random.Random, w: int, h: int, levels: int = 3) -> list[dict[str, Any]]:
    box = [0.0, 0.0, float(w), float(h)]
    nodes, node = [], 0
    for level in range(levels, 0, -1):
        leaf = level == 1
        scores = None if leaf else [round(rng.gauss(0.05, 0.04), 4) for _ in range(4)]
        chosen = None if leaf else max(range(4), key=lambda q: scores[q])
        nodes.append({"level": level, "node": node, "box": [round(v, 2) for v in box],
                      "score": round(rng.gauss(0.05, 0.03), 4), "child_scores": scores, "chosen_child": chosen})
        if not leaf:
            qx, qy = chosen % 2, chosen // 2
            mx, my = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            box = [box[0] if qx == 0 else mx, box[1] if qy == 0 else my, mx if qx == 0 else box[2],
                   my if qy == 0 else box[3]]
            side = 2 ** (levels - level + 1)
            node = int(box[1] / h * side) * side + int(box[0] / w * side)
    return nodes


def _cam_map(rng: random.Random) -> list[list[float]]:
    cx, cy, s = rng.uniform(0, 5), rng.uniform(0, 5), rng.uniform(0.8, 2.5)
    return [[round(6 * math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s)) + rng.gauss(0, 0.3), 3)
             for x in range(6)] for y in range(6)]


def synthetic_records(n: int, thumbs: list[str], figures: list[str], seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        true = CLASSES[i % len(CLASSES)]
        image = f"val/{true}/img_{i:05d}.JPEG"
        if i % 97 == 13:
            records.append({"image": image, "status": "error", "command": "annotate",
                            "error": f"{image}: cannot identify image file (truncated)"})
            continue
        w, h = rng.choice([(500, 375), (375, 500), (640, 427), (400, 400)])
        correct = rng.random() < 0.8
        top = true if correct else rng.choice([c for c in CLASSES if c != true])
        p1 = rng.uniform(0.3, 0.99)
        others = rng.sample([c for c in CLASSES if c != top], 2)
        p2 = rng.uniform(0, min(p1, 1 - p1))
        p3 = rng.uniform(0, min(p2, 1 - p1 - p2))
        probs = [(top, p1), (others[0], p2), (others[1], p3)]
        region = [0.0, 0.0, float(w), float(h)]
        preds = []
        for rank, (label, p) in enumerate(probs, 1):
            path = _path(rng, w, h)
            leaf = path[-1]["box"]
            inside = rng.random() < 0.65
            peak = ([round(rng.uniform(leaf[0], leaf[2]), 2), round(rng.uniform(leaf[1], leaf[3]), 2)] if inside
                    else [round(rng.uniform(0, w), 2), round(rng.uniform(0, h), 2)])
            x0, y0 = rng.uniform(0, w / 2), rng.uniform(0, h / 2)
            preds.append({"rank": rank, "class_index": CLASSES.index(label), "label": label, "probability": round(p, 5),
                          "path": path, "box": [round(x0, 2), round(y0, 2), round(rng.uniform(x0 + 20, w), 2),
                                                round(rng.uniform(y0 + 20, h), 2)],
                          "peak": peak, "threshold": 0.2, "cam_map": _cam_map(rng), "cam_region": region})
        rec = {"image": image, "width": w, "height": h, "status": "ok", "command": "annotate", "true_label": true,
               "thumbnail": thumbs[i % len(thumbs)], "outputs": list(figures), "predictions": preds}
        if i % 11 != 3:  # the run removed the evidence: every seventh decision falls
            after = CLASSES.index(others[0]) if i % 7 == 0 else CLASSES.index(top)
            rec["evidence"] = {"class_index": CLASSES.index(top), "removal": {
                "boxes": [], "after": after, "probability": [round(p1, 5), round(p1 * (0.2 if i % 7 == 0 else 0.8), 5)]}}
        if i % 50 == 7:  # explained by two commands: explain (paths) and cam (maps), one card
            cam = {**rec, "command": "cam", "outputs": [figures[1]],
                   "predictions": [{k: v for k, v in p.items() if k != "path"} for p in preds]}
            rec = {**rec, "command": "explain", "outputs": [figures[0]],
                   "predictions": [{k: v for k, v in p.items() if k not in ("box", "peak", "threshold", "cam_map",
                                                                               "cam_region")} for p in preds]}
            records += [rec, cam]
        else:
            records.append(rec)
    return records


def synthetic_run(out: Path, n: int, seed: int = 0) -> list[dict[str, Any]]:
    thumbs, figures = shared_files(out)
    return synthetic_records(n, thumbs, figures, seed)


def real_run(out: Path) -> list[dict[str, Any]]:
    """The example photos as a folder run: real records and thumbnails, stand-in figures, one failure."""
    from nestviz.batch.outputs import THUMB_SUFFIX
    from nestviz.draw.thumbnail import thumbnail

    out.mkdir(parents=True, exist_ok=True)
    fixture = REPO / "tests" / "fixtures" / "gallery_run.jsonl"
    records = [json.loads(line) for line in fixture.read_text().splitlines()]
    for rec in records:
        stem = Path(rec["image"]).stem
        with Image.open(REPO / rec["image"]) as im:
            thumb = thumbnail(im, rec)
        thumb.save(out / f"{stem}{THUMB_SUFFIX}", quality=80, optimize=True)
        rec["thumbnail"] = f"{stem}{THUMB_SUFFIX}"
        for o in rec["outputs"]:  # the real figures are ~300 KB each: stand-ins of the same names
            thumb.save(out / o)
    records[1]["true_label"] = "French horn"  # a made-up ground truth, to show accuracy and confusions
    for rec in records:  # a close call at chelsea's top root settled by removal, as a relevance run records it
        if rec["image"].endswith("chelsea.jpg"):
            root = rec["predictions"][0]["path"][0]
            root["removal_drops"] = [0.25 if q == root["chosen_child"] else None for q in range(4)]
            root["removal_drops"][(root["chosen_child"] + 1) % 4] = 0.125
    records[4]["true_label"] = "rocket"
    records.append({"image": "examples/broken.jpg", "status": "error", "command": "annotate",
                    "error": "examples/broken.jpg: cannot identify image file <_io.BytesIO object>"})
    return records


__all__ = ["CLASSES", "shared_files", "synthetic_records", "synthetic_run", "real_run"]
