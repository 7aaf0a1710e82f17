"""Result records shared by the API, the renderers and the JSON output: numpy, no torch.

All locations are in pixels of the original image (after EXIF rotation), so they can be
drawn or compared without knowing how the model input was made: ``nestviz.api`` converts
them once from the model input's pixels. ``to_json`` gives the exact key names of the
``--json`` contract.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1
MAP_FIELDS = ("cam_map", "cam_region", "cam_size", "cam_cmap")  # what a viewer redraws a CAM from (manifest only)


@dataclass
class PathNode:
    """One visited block of the GradCAT traversal.

    ``level`` counts from 1 (leaves) to L (root); ``node`` numbers the block row-major within
    its level; ``score`` is the node's score as a child of its parent (for the root, over the whole map): with the
    default ``gradcat_score="relevance"`` and with ``"cam"`` its share of the class score (the CAM kind's, in logit
    units: the root's is the whole share, children's add up to it), with ``"gradient"`` its mean gradient
    contribution, with ``"ablation"`` the drop in the class probability when the block is removed (for the root: the
    class probability), with ``"root-ablation"`` that drop for the root's children; ``child_scores``
    are the four quadrant scores in the order top-left, top-right, bottom-left, bottom-right, or
    None at a leaf; ``chosen_child`` the child the path follows, the best score's unless ``removal_drops`` is set: at
    a relevance root whose best children's shares are within ``nestviz.defaults.SETTLE_MARGIN`` of each other, the
    drop in the class probability when each of those children is removed (None for the others), the largest of
    which was followed.
    """

    level: int
    node: int
    box: Box
    score: float
    child_scores: list[float] | None = None
    chosen_child: int | None = None
    removal_drops: list[float | None] | None = None

    def __repr__(self) -> str:
        return f"PathNode(level {self.level}, node {self.node}, box {box_text(self.box)}, score {self.score:.3g})"

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "node": self.node, "box": [round(v, 2) for v in self.box],
                "score": self.score, "child_scores": self.child_scores, "chosen_child": self.chosen_child,
                "removal_drops": self.removal_drops}


@dataclass
class CamResult:
    """A class activation map: ``raw`` is the top-level map in logit units; ``kind`` "logit": its mean is the
    class logit; "contrast": the map minus the mean class map, its mean the logit minus the mean logit; "flow":
    the contrast map with each cell's evidence moved to the cells the top level's attention took it from, same mean.

    ``region`` is where the map lies in the original image (the model input's crop); ``size`` the model input's
    side, the pixels ``box`` and ``peak`` were found at (``nestviz.methods.cam.localize``): the box bounds the region
    above ``threshold`` of the map's range that holds the peak, the maximum.
    """

    raw: np.ndarray
    region: Box
    box: Box
    peak: tuple[float, float]
    threshold: float
    kind: str = "logit"
    size: int = 0

    def __repr__(self) -> str:
        h, w = np.shape(self.raw)
        return (f"CamResult({h}x{w} map, box {box_text(self.box)}, peak ({self.peak[0]:.0f}, {self.peak[1]:.0f}), "
                f"threshold {self.threshold:g})")

    def map_json(self) -> list[list[float]]:
        """The raw map as nested lists (the manifest's ``cam_map``), each value with the fewest digits that give its
        float32 back: the very map the box was found on, so a viewer that redraws the box finds the same one."""
        return [[float(str(v)) for v in row] for row in np.asarray(self.raw, dtype=np.float32)]


@dataclass
class Evidence:
    """What the model saw at the evidence of an image's first explained class (``nestviz.methods.evidence``):
    the top-level ``cells`` (row-major on a ``grid`` of rows x columns) holding the most class evidence, their
    ``box`` in original pixels, and the model's features there: ``leaf`` (the leaf-level tokens' mean, then their
    maximum) and ``top`` (the mean top-level feature), how much of the image looks like it (``extent``) and, in a
    folder run, what removing it did (``removal``). The manifest keeps the vectors as float16, base64."""

    class_index: int
    cells: list[int]
    grid: tuple[int, int]
    box: Box
    leaf: np.ndarray
    top: np.ndarray
    extent: float = float("nan")  # the share of the image's leaf tokens that look like the evidence
    removal: Removal | None = None

    def to_json(self) -> dict[str, Any]:
        d = {"class_index": self.class_index, "cells": list(self.cells), "grid": list(self.grid),
             "box": [round(v, 2) for v in self.box], "extent": round(self.extent, 4),
             "leaf": encode_vector(self.leaf), "top": encode_vector(self.top)}
        if self.removal is not None:
            d["removal"] = self.removal.to_json()
        return d


@dataclass
class Removal:
    """What removing a decision's evidence did (``nestviz.methods.removal``): the ``boxes`` filled with the mean
    colour (original pixels: the GradCAT leaf, a leaf-sized window on the CAM peak), the model's top class then
    (``after``) and the explained class's probability before and after."""

    boxes: list[Box]
    after: int
    before_probability: float
    after_probability: float

    def to_json(self) -> dict[str, Any]:
        return {"boxes": [[round(v, 2) for v in b] for b in self.boxes], "after": self.after,
                "probability": [round(self.before_probability, 4), round(self.after_probability, 4)]}


def decisive_of(removal: Any, pred: dict[str, Any]) -> bool | None:
    """Whether removing the evidence (a manifest record's ``evidence.removal``, :class:`Removal`) took the top class
    away from the explained class ``pred`` (its first prediction); None when the run did not remove it or the class
    was not the top one. What ``nestviz strategies`` splits a finding by and the gallery filters on."""
    if not isinstance(removal, dict) or not isinstance(removal.get("after"), int) or pred.get("rank") != 1:
        return None
    return removal["after"] != int(pred["class_index"])


def leaf_maximum(leaf: np.ndarray) -> np.ndarray:
    """The per-channel maximum over the evidence's leaf tokens: the second half of an :class:`Evidence` ``leaf``
    vector (their mean, then their maximum). What ``nestviz strategies`` compares: a pattern fires the same
    channels wherever it lies and whatever share of the evidence cells it covers, while the mean mixes in the
    photo around it by that share (on a 24 px sticker, the mean's half cut a strategy's precision from 0.98 to
    0.83; README, Prediction strategies)."""
    return leaf[leaf.shape[0] // 2:]


def encode_vector(v: np.ndarray) -> str:
    """A vector as base64 of its little-endian float16 values (the manifest's compact form)."""
    return base64.b64encode(np.asarray(v, dtype="<f2").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    """:func:`encode_vector`'s text back to a float32 vector; ValueError if it is not one."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as e:
        raise ValueError(f"not a base64 vector: {e}") from None
    if len(raw) % 2:
        raise ValueError("not a float16 vector: odd byte count")
    return np.frombuffer(raw, dtype="<f2").astype(np.float32)


@dataclass
class ClassExplanation:
    """One explained class of one image, with whichever explanations were computed.

    ``rank`` is the class's rank among all the model's classes (1: the most probable), also for a
    class asked for by name.
    """

    rank: int
    class_index: int
    label: str
    probability: float
    path: list[PathNode] | None = None
    cam: CamResult | None = None

    @property
    def heading(self) -> str:
        """'#7 tench 0.6%': rank among all classes, label, probability."""
        return f"#{self.rank} {self.label} {self.probability * 100:.1f}%"

    def __repr__(self) -> str:
        parts = [self.heading]
        if self.path:
            parts.append(f"leaf {box_text(self.path[-1].box)}")
        if self.cam is not None:
            parts.append(f"cam box {box_text(self.cam.box)}")
        return f"ClassExplanation({', '.join(parts)})"

    def to_json(self, maps: bool = False) -> dict[str, Any]:
        """The ``--json`` object; ``maps`` adds :data:`MAP_FIELDS`: ``cam_map`` (the raw map), ``cam_region`` (where
        it lies), ``cam_size`` (the input side the box was found at) and ``cam_cmap`` (the colour map drawing it)."""
        d: dict[str, Any] = {"rank": self.rank, "class_index": self.class_index, "label": self.label,
                             "probability": self.probability}
        if self.path is not None:
            d["path"] = [n.to_json() for n in self.path]
        if self.cam is not None:
            d["box"] = [round(v, 2) for v in self.cam.box]
            d["peak"] = [round(v, 2) for v in self.cam.peak]
            d["threshold"] = self.cam.threshold
            if maps:
                from ..draw.style import CMAP  # not at the top: nestviz.draw imports this module

                d.update(cam_map=self.cam.map_json(), cam_region=[round(v, 2) for v in self.cam.region],
                         cam_size=self.cam.size, cam_cmap=CMAP)
        return d


@dataclass
class ImageResult:
    """Everything nestviz computed for one image, or why it could not: ``error`` is set and nothing else is.

    ``region`` is the model input's square in original pixels (``fit`` crop: the centre crop;
    pad: past the image, over the border of ``pad_rgb``; squash: the whole image), ``grid_sizes``
    the blocks per side at each level, leaves first: together they place every block. ``top`` is
    the model's most probable class, explained or not; ``true_label`` the label the image is known
    to have (a folder run's class folder), if any.
    """

    image: str
    width: int = 0
    height: int = 0
    region: Box = (0.0, 0.0, 0.0, 0.0)
    predictions: list[ClassExplanation] = field(default_factory=list)
    grid_sizes: list[int] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    error: str | None = None
    fit: str = "crop"
    pad_rgb: tuple[int, int, int] = (124, 116, 104)
    top: ClassExplanation | None = None
    true_label: str | None = None
    evidence: Evidence | None = None  # the first explained class's, recorded in the manifest (``maps``)

    def __repr__(self) -> str:
        name = type(self).__name__
        if self.error is not None:
            return f"{name}({self.image!r}, error={self.error!r})"
        shown = ", ".join(p.heading for p in self.predictions[:4]) + (", ..." if len(self.predictions) > 4 else "")
        return f"{name}({self.image!r}, {self.width}x{self.height}, fit {self.fit}: {shown})"

    @property
    def ok(self) -> bool:
        return self.error is None

    def block_edges(self, level: int) -> tuple[list[float], list[float]]:
        """x and y of the inner block boundaries at 0-based ``level`` (``grid_sizes[level]`` blocks a side)."""
        x0, y0, x1, y1 = self.region
        g = self.grid_sizes[level]
        return [x0 + k * (x1 - x0) / g for k in range(1, g)], [y0 + k * (y1 - y0) / g for k in range(1, g)]

    def to_json(self, with_outputs: bool = True, maps: bool = False) -> dict[str, Any]:
        if self.error is not None:
            return error_json(self.image, self.error)
        d: dict[str, Any] = {"image": self.image, "width": self.width, "height": self.height,
                             "predictions": [p.to_json(maps) for p in self.predictions]}
        if maps and self.evidence is not None:
            d["evidence"] = self.evidence.to_json()
        if with_outputs:
            d["outputs"] = list(self.outputs)
        return d


def box_text(box: Box) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in box) + "]"


def error_json(image: str, error: str) -> dict[str, Any]:
    """The JSON record of an image that failed."""
    return {"image": image, "error": error}
