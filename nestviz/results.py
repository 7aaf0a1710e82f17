"""Result records shared by the API, the renderers and the JSON output.

All locations are in pixels of the original image (after EXIF rotation), so they can be
drawn or compared without knowing how the model input was made. ``to_json`` gives the
exact key names of the ``--json`` contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .preprocess import Geometry

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
    """Everything nestviz computed for one image."""

    image: str
    width: int
    height: int
    geometry: Geometry
    predictions: list[ClassExplanation]
    grid_sizes: list[int] = field(default_factory=list)  # blocks per side at each level, leaves first
    outputs: list[str] = field(default_factory=list)

    def to_json(self, with_outputs: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"image": self.image, "width": self.width, "height": self.height,
                             "predictions": [p.to_json() for p in self.predictions]}
        if with_outputs:
            d["outputs"] = list(self.outputs)
        return d


def error_json(image: str, error: str) -> dict[str, Any]:
    """The JSON record of an image that failed."""
    return {"image": image, "error": error}
