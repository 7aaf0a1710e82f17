"""``nestviz metrics --evidence``: test the explanations on decisions whose evidence is known.

A user who planted, or suspects, a shortcut (a patch, a watermark) marks it with a box per image
(Pascal VOC, COCO or CSV, read as ``--boxes`` is). Each image is run twice: as it is, and with the
evidence removed (set to the mean colour, as occlusion does). Where removing it changes the top
class, the evidence caused the decision, and only those decisions are scored, for the class
the model chose (Kim et al. 2021; Adebayo et al. 2022); where the class the evidence feeds is known
(``EvidenceOptions.target``), only decisions for it count:

- ``holds_centre`` / ``covers``: the GradCAT leaf holds the evidence's centre / at least
  ``scoring.known_answers.COVER`` of its area; ``holds_centre_clear``: ``holds_centre`` on the decisions whose
  evidence centre lies at least ``tolerance`` pixels from every edge between two leaves (``clear_decisions`` of
  them). Nearer an edge, the evidence is split almost evenly between two leaves and which one holds its centre
  is decided by a few pixels, finer than any leaf-level explanation sees;
- ``point_on``: the explanation's point (CAM peak, GradCAT leaf centre) is within
  ``scoring.known_answers.TOLERANCE`` pixels of the evidence; ``box_holds_centre``: the default CAM box
  holds the evidence's centre;
- ``deletion``: the drop in the class probability when a region the size of the evidence,
  centred on the explanation's point, is removed; beside it ``evidence_drop``, removing the evidence.

Baselines on the same decisions: ``centre`` (the view's centre, a leaf-sized box there),
``random`` (a random leaf and point) and ``occlusion`` (the leaf whose removal costs the class most).
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..batch.discover import discover
from .boxes import image_key, read_boxes
from ..defaults import EXPLAIN_FIT
from ..methods.common import explaining
from ..methods.gradcat import block_box
from ..methods.perturb import class_probs, occlusion_drops
from ..preprocess import Geometry
from .scoring import known_answers as ev

METHODS = ("gradcat", "cam")
BASELINES = ("centre", "random", "occlusion")


@dataclass
class EvidenceOptions:
    """The known-answer protocol's settings; the defaults are the documented ones."""

    cover: float = ev.COVER
    tolerance: float = ev.TOLERANCE
    seed: int = 0
    baselines: bool = True  # also score the centre, random and occlusion baselines
    # the classes the evidence is known to feed (a planted patch's class): a decision counts only when the model
    # chose one of them, so that an image the patch merely disturbs into another class is not scored; None: any
    target: tuple[int, ...] | None = None


@dataclass
class EvidenceRecord:
    """One image: its decision with and without the evidence, and, if the evidence caused it, the scores."""

    image: str
    before: int
    after: int
    evidence_drop: float
    values: dict[str, dict[str, float | bool]] = field(default_factory=dict)
    for_target: bool = True  # the model chose one of EvidenceOptions.target (always, without one)
    clearance: float | None = None  # image px from the evidence's centre to the nearest edge between leaves

    @property
    def caused(self) -> bool:
        return self.before != self.after and self.for_target

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "class_index": self.before, "class_without_evidence": self.after,
                "caused": self.caused, "evidence_drop": self.evidence_drop, "values": self.values,
                "centre_clearance": None if self.clearance is None else round(self.clearance, 2)}


def to_model(geo: Geometry, box: Sequence[float]) -> tuple[int, int, int, int]:
    """An image-pixel box in model-input pixels, rounded outwards and clipped to the input."""
    x0, y0, x1, y1 = (float(v) for v in box)
    u0, v0 = x0 * geo.scale_x - geo.left, y0 * geo.scale_y - geo.top
    u1, v1 = x1 * geo.scale_x - geo.left, y1 * geo.scale_y - geo.top
    clip = lambda v: int(min(max(v, 0), geo.size))  # noqa: E731
    return clip(np.floor(u0)), clip(np.floor(v0)), clip(np.ceil(u1)), clip(np.ceil(v1))


def removed(x: torch.Tensor, boxes: Sequence[Sequence[tuple[int, int, int, int]]]) -> torch.Tensor:
    """Copies of ``x`` (B, 3, S, S) with each image's boxes (model-input pixels) set to 0, the mean colour."""
    out = x.clone()
    for i, per in enumerate(boxes):
        for x0, y0, x1, y1 in per:
            out[i, :, y0:y1, x0:x1] = 0.0
    return out


def evidence_batch(nv: Any, preps: Sequence[Any], boxes: Sequence[np.ndarray],
                   opts: EvidenceOptions | None = None) -> list[EvidenceRecord]:
    """Records of decoded images ``preps`` (``Nestviz.prepare``) with evidence ``boxes[i]`` (n, 4) in image pixels."""
    opts = opts or EvidenceOptions()
    model, geos = nv.model, [p.geometry for p in preps]
    x = torch.stack([p.tensor for p in preps]).to(nv.device)
    in_model = [[to_model(g, b) for b in np.asarray(bs).reshape(-1, 4)] for g, bs in zip(geos, boxes)]
    probs = torch.cat([class_probs_all(model, x), class_probs_all(model, removed(x, in_model))])
    p, p_rm = probs[:len(x)], probs[len(x):]
    before, after = p.argmax(dim=1), p_rm.argmax(dim=1)
    records = [EvidenceRecord(preps[i].name, int(before[i]), int(after[i]), float(p[i, before[i]] - p_rm[i, before[i]]),
                              for_target=opts.target is None or int(before[i]) in opts.target) for i in range(len(x))]
    caused = [i for i, r in enumerate(records) if r.caused]
    if caused:
        results = nv.run([preps[i] for i in caused], "annotate", top_k=1)
        leaves = _occlusion_leaves(model, x[caused], before[caused]) if opts.baselines else [0] * len(caused)
        points = {}
        for j, i in enumerate(caused):
            rng = np.random.default_rng([opts.seed, zlib.crc32(preps[i].name.encode())])
            answers = _answers(results[j].predictions[0], geos[i], model.cfg, int(leaves[j]), rng)
            answers = {k: a for k, a in answers.items() if opts.baselines or k in METHODS}
            evidence = np.asarray(boxes[i], dtype=np.float64).reshape(-1, 4)
            edges = leaf_edges(geos[i], model.cfg)
            records[i].clearance = min(ev.clearance(ev.centre(e), *edges) for e in evidence)
            records[i].values = _score(answers, evidence, opts, records[i].clearance >= opts.tolerance)
            points[i] = {name: a["point"] for name, a in answers.items()}
        _deletions(model, x, p, points, records, geos, boxes)
    return records


def class_probs_all(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax over all classes (B, K), on the CPU."""
    with explaining(model), torch.inference_mode():
        return model(x).float().softmax(dim=1).cpu()


def _occlusion_leaves(model: Any, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Index (row-major) of the leaf block whose occlusion costs each image's class the most."""
    cfg = model.cfg
    g = cfg.grid(0)
    boxes = [tuple(int(v) for v in block_box(cfg, 0, r, c)) for r in range(g) for c in range(g)]
    return occlusion_drops(model, x, classes.cpu(), boxes, batch_size=len(x)).argmax(dim=1)


def _answers(pred: Any, geo: Geometry, cfg: Any, occ_leaf: int, rng: np.random.Generator) -> dict[str, dict[str, Any]]:
    """Each method's region (a leaf-sized box) and point, in image pixels."""
    g, S = cfg.grid(0), float(geo.size)
    side = S / g
    leaf = lambda k: np.array(geo.box_to_original(block_box(cfg, 0, *divmod(int(k), g))))  # noqa: E731
    mid = np.array(geo.box_to_original((S / 2 - side / 2, S / 2 - side / 2, S / 2 + side / 2, S / 2 + side / 2)))
    rand_leaf = leaf(rng.integers(g * g))
    view = np.array(geo.box_to_original((0.0, 0.0, S, S)))
    out = {"gradcat": {"region": np.array(pred.path[-1].box)},
           "cam": {"point": np.array(pred.cam.peak), "box": np.array(pred.cam.box)},
           "centre": {"region": mid}, "random": {"region": rand_leaf},
           "occlusion": {"region": leaf(occ_leaf)}}
    for name in ("gradcat", "centre", "occlusion"):
        out[name]["point"] = ev.centre(out[name]["region"])
    out["random"]["point"] = view[:2] + rng.random(2) * (view[2:] - view[:2])
    return out


def leaf_edges(geo: Geometry, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    """The edges between leaf blocks in image pixels: the x of the vertical ones, the y of the horizontal ones."""
    g, S = cfg.grid(0), float(geo.size)
    inner = [geo.point_to_original(k * S / g, k * S / g) for k in range(1, g)]
    return np.array([p[0] for p in inner]), np.array([p[1] for p in inner])


def _score(answers: dict[str, dict[str, Any]], evidence: np.ndarray, opts: EvidenceOptions,
           clear: bool) -> dict[str, dict[str, Any]]:
    """The known-answer scores of each method's answers against the evidence boxes (the best box counts);
    ``clear``: the evidence's centre is clear of the leaf edges, so ``holds_centre`` is also kept apart."""
    out: dict[str, dict[str, Any]] = {}
    for name, a in answers.items():
        v: dict[str, Any] = {"point_on": any(ev.near(a["point"], e, opts.tolerance) for e in evidence)}
        if "region" in a:
            v["holds_centre"] = any(ev.holds(a["region"], ev.centre(e)) for e in evidence)
            v["covers"] = max(ev.covered(a["region"], e) for e in evidence) >= opts.cover
            if clear:
                v["holds_centre_clear"] = v["holds_centre"]
        if "box" in a:
            v["box_holds_centre"] = any(ev.holds(a["box"], ev.centre(e)) for e in evidence)
        out[name] = v
    return out


def _deletions(model: Any, x: torch.Tensor, probs: torch.Tensor, points: dict[int, dict[str, np.ndarray]],
               records: list[EvidenceRecord], geos: Sequence[Geometry], evidence: Sequence[np.ndarray]) -> None:
    """``deletion`` of every method: the class-probability drop when an evidence-sized box at its point is removed."""
    rows, boxes, where = [], [], []
    for i, per in points.items():
        like = np.asarray(evidence[i], dtype=np.float64).reshape(-1, 4)[0]
        for name, point in per.items():
            rows.append(i)
            boxes.append([to_model(geos[i], ev.box_at(point, like))])
            where.append((i, name))
    classes = torch.tensor([records[i].before for i in rows])
    base = probs[rows, classes]  # the images as they are: their probabilities are already known
    known = torch.cat([x, torch.zeros_like(x[:1])])  # what the copies' leaves come from: the images, the fill
    after = class_probs(model, removed(x[rows], boxes), classes, len(x), known)
    for (i, name), b, q in zip(where, base.tolist(), after.tolist()):
        records[i].values[name]["deletion"] = b - q


def aggregate(records: Sequence[EvidenceRecord], tolerance: float = ev.TOLERANCE) -> dict[str, Any]:
    """Means over the evidence-caused decisions, with how many there were (and how many are clear of the leaf
    edges by ``tolerance`` pixels: the ``holds_centre_clear`` means are over those)."""
    caused = [r for r in records if r.caused]
    clear = sum(r.clearance is not None and r.clearance >= tolerance for r in caused)
    out: dict[str, Any] = {"images": len(records), "decisions": len(caused), "clear_decisions": clear,
                           "share_caused": len(caused) / len(records) if records else float("nan"),
                           "evidence_drop": float(np.mean([r.evidence_drop for r in caused])) if caused else None}
    methods: dict[str, dict[str, float]] = {}
    for r in caused:
        for name, values in r.values.items():
            for k, v in values.items():
                methods.setdefault(name, {}).setdefault(k, []).append(float(v))  # type: ignore[arg-type]
    out["methods"] = {name: {k: float(np.mean(v)) for k, v in vals.items()} for name, vals in methods.items()}
    return out




@dataclass
class EvidenceReport:
    """What ``nestviz metrics --evidence`` found: the summary over evidence-caused decisions, per image, what it skipped."""

    summary: dict[str, Any]
    records: list[EvidenceRecord]
    skipped: list[dict[str, str]]
    seconds: float = 0.0
    protocol: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.summary, "skipped": self.skipped, "seconds": round(self.seconds, 2), "protocol": self.protocol}


def find_evidence(inputs: Sequence[str | os.PathLike[str]], evidence: str | os.PathLike[str]
                  ) -> tuple[list[tuple[Path, list[Any]]], list[dict[str, str]]]:
    """Images under ``inputs`` with their evidence boxes, and one ``{"image", "reason", "kind"}`` per one left out."""
    items, problems = discover(inputs)
    skipped = [{"image": p.split(": ", 1)[0], "reason": p.split(": ", 1)[-1], "kind": "error"} for p in problems]
    index, errors = read_boxes(evidence)
    skipped += [{"image": e.where, "reason": e.problem, "kind": "error"} for e in errors]
    found = []
    for item in items:
        objs = index.get(image_key(item.path.name))
        if objs:
            found.append((item.path, objs))
        else:
            skipped.append({"image": str(item.path), "reason": f"no evidence box for it in {evidence}",
                            "kind": "not measured"})
    return found, skipped


def run_evidence(nv: Any, samples: Sequence[tuple[Path, list[Any]]], opts: EvidenceOptions | None = None,
                 batch_size: int = 16, fit: str = EXPLAIN_FIT,
                 progress: Callable[[int], None] | None = None) -> EvidenceReport:
    """Score every sample in batches (see the module); ``progress(n)`` is told how many images are done."""
    opts, t0 = opts or EvidenceOptions(), time.perf_counter()
    records, skipped = [], []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        preps = [nv.prepare(path, fit) for path, _ in chunk]
        ok = [(objs, p) for (_, objs), p in zip(chunk, preps) if p.failure is None]
        skipped += [{"image": str(path), "reason": p.error or "", "kind": "error"}
                    for (path, _), p in zip(chunk, preps) if p.failure]
        if ok:
            boxes = [np.array([o.scaled_to(p.geometry.width, p.geometry.height) for o in objs]) for objs, p in ok]
            records += evidence_batch(nv, [p for _, p in ok], boxes, opts)
        if progress:
            progress(start + len(chunk))
    protocol = {"fit": fit, "cam_kind": nv.cam_kind, "gradcat_score": nv.gradcat_score, "cover": opts.cover,
                "target_classes": None if opts.target is None else list(opts.target),
                "tolerance_px": opts.tolerance, "removal": "mean colour", "seed": opts.seed}
    return EvidenceReport(aggregate(records, opts.tolerance), records, skipped, time.perf_counter() - t0, protocol)


def check_evidence(inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], boxes: str | os.PathLike[str], *,
             model: Any = None, weights: Any = None, device: str = "auto", batch_size: int = 16,
             options: EvidenceOptions | None = None, fit: str = EXPLAIN_FIT) -> EvidenceReport:
    """The known-answer check on a model (default: the embedded one, or ``model``, a loaded ``Nestviz``, with
    its explanation variants) over images with evidence ``boxes`` (see the module)."""
    from ..api import Nestviz

    nv = model or Nestviz.load(weights, device=device)
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    samples, skipped = find_evidence(paths, boxes)
    report = run_evidence(nv, samples, options, batch_size, fit)
    report.skipped = skipped + report.skipped
    return report


__all__ = ["METHODS", "BASELINES", "EvidenceOptions", "EvidenceRecord", "EvidenceReport", "to_model", "removed",
           "evidence_batch", "leaf_edges", "aggregate", "find_evidence", "run_evidence", "check_evidence"]
