"""Result records shared by the API, the renderers and the JSON output: numpy, no torch.

All locations are in pixels of the original image (after EXIF rotation), so they can be
drawn or compared without knowing how the model input was made: ``nestviz.api`` converts
them once from the model input's pixels. ``to_json`` gives the exact key names of the
``--json`` contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1


@dataclass
class PathNode:
    """One visited block of the GradCAT traversal.

    ``level`` counts from 1 (leaves) to L (root); ``node`` numbers the block row-major within
    its level; ``score`` is the node's mean contribution (as a child of its parent; for the
    root, over the whole top map); ``child_scores`` are the four quadrant scores in the order
    top-left, top-right, bottom-left, bottom-right, or None at a leaf.
    """

    level: int
    node: int
    box: Box
    score: float
    child_scores: list[float] | None = None
    chosen_child: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "node": self.node, "box": [round(v, 2) for v in self.box],
                "score": self.score, "child_scores": self.child_scores, "chosen_child": self.chosen_child}


@dataclass
class CamResult:
    """A class activation map: ``raw`` is the top-level map (logit units, mean = the logit).

    ``region`` is where the map lies in the original image (the model input's crop);
    ``box`` bounds the largest region above ``threshold`` x max; ``peak`` is the maximum.
    """

    raw: np.ndarray
    region: Box
    box: Box
    peak: tuple[float, float]
    threshold: float


@dataclass
class ClassExplanation:
    """One explained class of one image, with whichever explanations were computed."""

    rank: int
    class_index: int
    label: str
    probability: float
    path: list[PathNode] | None = None
    cam: CamResult | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"rank": self.rank, "class_index": self.class_index, "label": self.label,
                             "probability": self.probability}
        if self.path is not None:
            d["path"] = [n.to_json() for n in self.path]
        if self.cam is not None:
            d["box"] = [round(v, 2) for v in self.cam.box]
            d["peak"] = [round(v, 2) for v in self.cam.peak]
            d["threshold"] = self.cam.threshold
        return d


@dataclass
class ImageResult:
    """Everything nestviz computed for one image, or why it could not: ``error`` is set and nothing else is.

    ``region`` is the part of the image the model saw (its centre crop), ``grid_sizes`` the
    blocks per side at each level, leaves first: together they place every block.
    """

    image: str
    width: int = 0
    height: int = 0
    region: Box = (0.0, 0.0, 0.0, 0.0)
    predictions: list[ClassExplanation] = field(default_factory=list)
    grid_sizes: list[int] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def block_edges(self, level: int) -> tuple[list[float], list[float]]:
        """x and y of the inner block boundaries at 0-based ``level`` (``grid_sizes[level]`` blocks a side)."""
        x0, y0, x1, y1 = self.region
        g = self.grid_sizes[level]
        return [x0 + k * (x1 - x0) / g for k in range(1, g)], [y0 + k * (y1 - y0) / g for k in range(1, g)]

    def to_json(self, with_outputs: bool = True) -> dict[str, Any]:
        if self.error is not None:
            return error_json(self.image, self.error)
        d: dict[str, Any] = {"image": self.image, "width": self.width, "height": self.height,
                             "predictions": [p.to_json() for p in self.predictions]}
        if with_outputs:
            d["outputs"] = list(self.outputs)
        return d


def error_json(image: str, error: str) -> dict[str, Any]:
    """The JSON record of an image that failed."""
    return {"image": image, "error": error}
