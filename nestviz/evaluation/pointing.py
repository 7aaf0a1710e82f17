"""The pointing game on 2x2 mosaics: does an explanation point at the right image?

Four images of four different classes are tiled into one; for each of the four classes, the
GradCAT leaf centre and the CAM peak either fall in that class's quadrant or not. Random
guessing scores 25%. Used by ``benchmarks/pointing_game.py`` and the default model's tests.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Sequence

from PIL import Image

from ..api import Nestviz
from ..defaults import SIGNED_SCORES

METHODS = ("gradcat+", "gradcat-", "cam")  # GradCAT with A*dY/dA (the default), with its negation, CAM peak


@dataclass
class PointingResult:
    trials: int
    hits: dict[str, int]

    def rate(self, method: str) -> float:
        return self.hits[method] / self.trials if self.trials else 0.0


def mosaic(paths: Sequence[str | os.PathLike[str]], tile: int = 224) -> Image.Image:
    """Four images as a 2x2 grid, each resized to ``tile``: top-left, top-right, bottom-left, bottom-right."""
    canvas = Image.new("RGB", (2 * tile, 2 * tile))
    for q, p in enumerate(paths):
        with Image.open(p) as im:
            canvas.paste(im.convert("RGB").resize((tile, tile), Image.Resampling.BICUBIC), ((q % 2) * tile, (q // 2) * tile))
    return canvas


def quadrant(x: float, y: float, size: float) -> int:
    """0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right, for a point of a ``size`` x ``size`` mosaic."""
    return int(y >= size / 2) * 2 + int(x >= size / 2)


def pointing_game(nv: Nestviz, images_by_class: dict[int, list[str]], mosaics: int, seed: int = 0) -> PointingResult:
    """Play ``mosaics`` rounds: four distinct classes (model indices, keys of ``images_by_class``), one image each."""
    rng = random.Random(seed)
    hits = dict.fromkeys(METHODS, 0)
    trials = 0
    for _ in range(mosaics):
        classes = rng.sample(sorted(images_by_class), 4)
        im = mosaic([rng.choice(images_by_class[c]) for c in classes])
        batch = [nv.prepare(im)]
        for sign, name in ((1.0, "gradcat+"), (-1.0, "gradcat-"))[:2 if nv.gradcat_score in SIGNED_SCORES else 1]:
            [res] = nv.run(batch, "explain", classes=classes, sign=sign)
            for q, pred in enumerate(res.predictions):
                x0, y0, x1, y1 = pred.path[-1].box
                hits[name] += quadrant((x0 + x1) / 2, (y0 + y1) / 2, im.width) == q
        [res] = nv.run(batch, "cam", classes=classes)
        for q, pred in enumerate(res.predictions):
            hits["cam"] += quadrant(*pred.cam.peak, im.width) == q
        trials += 4
    return PointingResult(trials, hits)
