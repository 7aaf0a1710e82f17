"""``nestviz.metrics(...)``: score a model's explanations on the user's own images (and boxes).

Finds the images, their true classes (the class folder's name, or the box file's object name,
as a WordNet id or a label) and boxes, runs ``nestviz.evaluation.trust`` batch by batch and returns a
:class:`MetricsReport`. Images of a class the model lacks are counted and listed, not fatal.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._files import atomic_write_bytes
from ..api import Nestviz
from ..defaults import EXPLAIN_FIT, check_fit
from ..batch.discover import discover
from .boxes import BoxFileError, ObjectBox, image_key, read_boxes
from ..model.classes import match_class
from .trust import MetricsOptions, aggregate, cascade, score_batch


@dataclass
class Sample:
    """One image to measure: its path, true class and object boxes (None: no box file names it)."""

    path: Path
    class_index: int
    boxes: list[ObjectBox] | None = None


@dataclass
class MetricsReport:
    """What ``nestviz metrics`` found: the per-method means, per class, per image, and what it skipped."""

    images: int
    skipped: list[dict[str, str]]
    metrics: dict[str, Any]
    per_class: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: list[Any] = field(default_factory=list)
    accuracy: float = float("nan")
    seconds: float = 0.0
    protocol: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object: ``images``, ``skipped``, ``metrics`` are the contract."""
        return {"images": self.images, "skipped": self.skipped, "metrics": self.metrics, "accuracy": self.accuracy,
                "per_class": self.per_class, "seconds": round(self.seconds, 2), "protocol": self.protocol}


def find_samples(inputs: Sequence[str | os.PathLike[str]], class_names: Sequence[str],
                 boxes: str | os.PathLike[str] | None = None,
                 limit: int | None = None) -> tuple[list[Sample], list[dict[str, str]]]:
    """Images under ``inputs`` with a class the model knows, and one ``{"image", "reason", "kind"}`` per image or
    file left out (kind "error": unreadable; "not measured": a class the model lacks; "partial": no boxes).

    The class is the box file's first object name when there is one, else the parent folder's name.
    ``limit`` keeps that many images spread evenly over the sorted list (so over the class folders).
    """
    items, problems = discover(inputs)
    skipped = [{"image": p.split(": ", 1)[0], "reason": p.split(": ", 1)[-1], "kind": "error"} for p in problems]
    index: dict[str, list[ObjectBox]] = {}
    if boxes is not None:
        index, errors = read_boxes(boxes)
        skipped += [{"image": e.where, "reason": e.problem, "kind": "error"} for e in errors]
    if limit is not None and len(items) > limit:
        items = [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]
    samples = []
    for item in items:
        objs = index.get(image_key(item.path.name)) if boxes is not None else None
        token = next((o.label for o in objs or [] if o.label), None) or item.path.parent.name
        cls = match_class(token, class_names)
        if cls is None:
            skipped.append({"image": str(item.path), "reason": f"class {token!r} is not one of the model's classes",
                            "kind": "not measured"})
            continue
        if boxes is not None and objs is None:
            skipped.append({"image": str(item.path), "reason": "no box file names this image: faithfulness only",
                            "kind": "partial"})
        samples.append(Sample(item.path, cls, objs))
    return samples, skipped


def run_metrics(nv: Nestviz, samples: Sequence[Sample], opts: MetricsOptions | None = None,
                batch_size: int = 16, progress: Callable[[int], None] | None = None,
                fit: str = EXPLAIN_FIT) -> MetricsReport:
    """Score every sample in batches, each image made the model's input under ``fit`` (crop, pad, squash);
    ``progress(n)`` is told how many images are done. The variants measured are ``nv``'s (``opts.variants``
    None), and options naming others are refused: the protocol says what was measured."""
    opts, fit = opts or MetricsOptions(), check_fit(fit)
    if opts.variants not in (None, nv.variants):
        raise ValueError(f"the options measure {opts.variants}, the model was loaded with {nv.variants}: load it "
                         "with those (nestviz.load(..., cam_kind=, gradcat_score=)) or leave the options' variants None")
    opts = replace(opts, variants=nv.variants)
    t0 = time.perf_counter()
    randomized = cascade(nv.model, opts.seed) if opts.sanity else []
    for m in randomized:
        m.to(nv.device).eval()
    records, skipped = [], []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        preps = [nv.prepare(s.path, fit) for s in chunk]
        ok = [(s, p) for s, p in zip(chunk, preps) if p.failure is None]
        skipped += [{"image": str(s.path), "reason": p.error or "", "kind": "error"}
                    for s, p in zip(chunk, preps) if p.failure]
        if ok:
            x = torch.stack([p.tensor for _, p in ok]).to(nv.device)
            classes = torch.tensor([s.class_index for s, _ in ok], device=nv.device)
            geos = [p.geometry for _, p in ok]
            gts = [None if s.boxes is None else np.array([o.scaled_to(g.width, g.height) for o in s.boxes])
                   for (s, _), g in zip(ok, geos)]
            records += score_batch(nv.model, x, classes, geos, gts, [p.name for _, p in ok],
                                   [nv.bundle.label(s.class_index) for s, _ in ok], opts, randomized)
        if progress:
            progress(start + len(chunk))
    per_class = {label: aggregate([r for r in records if r.label == label])
                 for label in sorted({r.label for r in records})}
    accuracy = float(np.mean([r.correct for r in records])) if records else float("nan")
    protocol = {"fit": fit, "cam_kind": nv.cam_kind, "gradcat_score": nv.gradcat_score, "steps": opts.steps,
                "tolerance_px": opts.tolerance, "threshold": opts.threshold, "iou_levels": [0.3, 0.5, 0.7],
                "thresholds": "0.00..0.99 by 0.01", "seed": opts.seed}
    return MetricsReport(len(records), skipped, aggregate(records) if records else {}, per_class, records,
                         accuracy, time.perf_counter() - t0, protocol)


def write_outputs(report: MetricsReport, out_dir: str | os.PathLike[str]) -> list[Path]:
    """``metrics.json``, per-image ``metrics.jsonl`` and ``metrics-curves.png`` under ``out_dir``."""
    from ..draw.curves import curves_png  # matplotlib loads only when a plot is asked for

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "metrics.json", out / "metrics.jsonl", out / "metrics-curves.png"]
    atomic_write_bytes(files[0], json.dumps(report.to_json(), indent=1).encode())
    atomic_write_bytes(files[1], "".join(json.dumps(r.to_json()) + "\n" for r in report.records).encode())
    curves = {}
    for r in report.records:
        for method, c in r.curves.items():
            for kind, values in c.items():
                curves.setdefault(method, {}).setdefault(kind, []).append(values)
    mean = {m: {k: np.mean(v, axis=0).tolist() for k, v in c.items()} for m, c in curves.items()}
    atomic_write_bytes(files[2], curves_png(mean, report.metrics))
    return files


def metrics(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
            boxes: str | os.PathLike[str] | None = None, methods: Sequence[str] = ("gradcat", "cam"),
            limit: int | None = None, weights: Any = None, arch: str | None = None, device: str = "auto",
            batch_size: int = 16, options: MetricsOptions | None = None, model: Nestviz | None = None,
            fit: str = EXPLAIN_FIT) -> MetricsReport:
    """Score the explanations of a model (default: the embedded one) on images and, with ``boxes``, localization;
    ``fit`` makes each image the model's input (crop, pad, squash); the variants are the model's, those
    ``model`` was loaded with (or, loading one here, ``options.variants``, else ``nestviz.defaults``)."""
    nv = model or Nestviz.load(weights, arch, device, variants=options.variants if options else None)
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    samples, skipped = find_samples(paths, nv.bundle.class_names, boxes, limit)
    opts = options or MetricsOptions(methods=tuple(methods), variants=nv.variants)
    report = run_metrics(nv, samples, opts, batch_size, fit=fit)
    report.skipped = skipped + report.skipped
    return report


__all__ = ["Sample", "MetricsReport", "BoxFileError", "find_samples", "run_metrics", "write_outputs", "metrics"]
