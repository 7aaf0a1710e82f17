"""Helpers the tests share, free of torch (a test draws figures in a process that must not load it): paths,
the tiny model's class names, small images, a plausible result to draw, artists by gid, a run's manifest, class
folders. The helpers that build models are in ``model_helpers.py``. Tests import helpers from these two modules,
never from another test module; ``conftest.py`` holds the fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from PIL import Image

from nestviz.preprocess import Preprocessing, plan_geometry
from nestviz.results.records import CamResult, ClassExplanation, ImageResult, PathNode

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TINY_CLASSES = ["red thing", "green thing", "blue thing"]


def write_image(path: Path, size: tuple[int, int] = (48, 40), seed: int = 0, fmt: str | None = None) -> Path:
    """A small random-colour image (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


LABELS = ["French horn", "tabby cat", "espresso", "space shuttle", "golden retriever", "church",
          "parachute", "a very long label that cannot possibly fit above a panel of this size at all"]


def make_result(width: int = 64, height: int = 48, k: int = 2, levels: int = 3, size: int = 32) -> ImageResult:
    """A plausible result: per class, a root-to-leaf path of nested quadrants and a CAM, all in original pixels."""
    geo = plan_geometry(width, height, Preprocessing(input_size=size))
    region = geo.box_to_original((0.0, 0.0, float(size), float(size)))
    preds = []
    for r in range(k):
        box, path = (0.0, 0.0, float(size), float(size)), []
        for level in range(levels, 0, -1):
            chosen = (r + level) % 4 if level > 1 else None
            scores = [(1 if q == chosen else -1) * (0.1 * level + 0.01 * q + 0.001 * r) for q in range(4)]
            path.append(PathNode(level, 0, geo.box_to_original(box), 0.5, scores if level > 1 else None, chosen))
            if chosen is not None:
                x0, y0, x1, y1 = box
                mx, my = (x0 + x1) / 2, (y0 + y1) / 2
                box = [(x0, y0, mx, my), (mx, y0, x1, my), (x0, my, mx, y1), (mx, my, x1, y1)][chosen]
        raw = np.arange(16, dtype=np.float32).reshape(4, 4) * (r + 1) - 3.0
        cam = CamResult(raw, region, geo.box_to_original((16, 16, 32, 32)), geo.point_to_original(28, 28), 0.2)
        preds.append(ClassExplanation(r + 1, r, LABELS[r % len(LABELS)], 0.5 / (r + 1), path, cam))
    return ImageResult("img.jpg", width, height, region, preds, [2 ** (levels - 1 - i) for i in range(levels)])


def image(width: int = 64, height: int = 48) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def by_gid(fig: Figure, gid: str) -> list[Artist]:
    return [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]


def manifest(out: Path) -> list[dict]:
    lines = []
    for part in sorted(out.glob("manifest*.jsonl")):
        lines += [json.loads(line) for line in part.read_text().splitlines() if line.strip()]
    return lines


def class_folders(root: Path, n: int = 2) -> Path:
    for k, label in enumerate(TINY_CLASSES):
        for i in range(n):
            write_image(root / label / f"{label[:3]}{i}.png", (40 + 4 * i, 36), seed=10 * k + i)
    write_image(root / "purple thing" / "p0.png", (40, 36), seed=99)
    return root
