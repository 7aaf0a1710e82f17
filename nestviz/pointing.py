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

import torch
from PIL import Image

from .api import Nestviz
from .cam import cam_maps, localize
from .gradcat import gradcat

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
        prep = nv.prepare(im)
        x, geo = prep.tensor[None].to(nv.device), prep.geometry
        for sign, name in ((1.0, "gradcat+"), (-1.0, "gradcat-")):
            out = gradcat(nv.model, x, classes=classes, sign=sign)
            for q, path in enumerate(out.paths[0]):
                x0, y0, x1, y1 = geo.box_to_original(path[-1].box)
                hits[name] += quadrant((x0 + x1) / 2, (y0 + y1) / 2, im.width) == q
        with torch.inference_mode():
            maps = cam_maps(nv.model, nv.model.forward_levels(x)[-1], torch.tensor([classes], device=x.device))
        for q in range(4):
            _, peak = localize(maps[0, q].cpu(), geo.size)
            hits["cam"] += quadrant(*geo.point_to_original(*peak), im.width) == q
        trials += 4
    return PointingResult(trials, hits)
