"""``nestviz metrics``: does an explanation show what the model used, and does it find the object?

For each image and its true class this runs the explanations users see (GradCAT, CAM) once and
scores them with the field's protocols, beside baselines on the same images:

- localization (with object boxes; "GT-known": the true class is explained): MaxBoxAccV2
  (Choe et al., CVPR 2020), GT-known localization of the default box, how often the default box
  covers the whole view, and the pointing game (Zhang et al., ECCV 2016) for the CAM peak and the
  GradCAT leaf centre;
- faithfulness: deletion and insertion AUC (Petsiuk et al., BMVC 2018) and GradCAT path agreement
  with occlusion;
- sanity: rank correlation of each explanation with itself under cascading randomisation of the
  model's top (Adebayo et al., NeurIPS 2018).

Baselines: ``centre`` (centred boxes, the image centre), ``random`` (a random map, point, order
and child), ``occlusion`` (the class-probability drop when each leaf block is set to the mean).
The metric functions are pure (``nestviz.evaluation.scoring``); this module runs the model for them.
"""

from __future__ import annotations

import zlib

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..defaults import THRESHOLD, Variants
from ..methods import variants
from ..methods.cam import cam_maps_of_pass, localize
from ..methods.gradcat import GradcatOutput, block_box, leaf_order
from ..methods.perturb import class_probs, occlusion_drops, randomized_top
from ..model.nest import Nest
from ..preprocess import Geometry
from .scoring import faithfulness as fa
from .scoring import localization as lo
from .scoring.sanity import spearman

METHODS = ("gradcat", "cam")
BASELINES = ("centre", "random", "occlusion")
EVAL_SIDE = 256  # localization is scored in the image frame scaled so its longer side is at most this


@dataclass(kw_only=True)
class MetricsOptions:
    """How ``nestviz metrics`` measures; the defaults are the documented protocol."""

    methods: tuple[str, ...] = METHODS
    steps: int = 8  # deletion / insertion: the pixels change in this many equal steps
    tolerance: float = 15.0  # pointing game, in pixels of the image
    threshold: float = THRESHOLD  # CAM box threshold: the tool's default
    # the CAM kind and GradCAT score measured: None, the model's (run_metrics reads them from the Nestviz it
    # measures and refuses others); on a bare Nest (score_batch) None is nestviz.defaults'
    variants: Variants | None = None
    sanity: bool = True
    seed: int = 0


@dataclass
class ImageScores:
    """One image's scores: ``values[method][metric]`` and, with boxes, ``box_curves[method]`` (3 IoU x thresholds)."""

    image: str
    class_index: int
    label: str
    probability: float
    correct: bool
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    box_curves: dict[str, np.ndarray] = field(default_factory=dict)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"image": self.image, "class_index": self.class_index, "label": self.label,
                "probability": self.probability, "correct": self.correct, "values": self.values,
                "curves": self.curves}


def score_batch(model: Nest, x: Tensor, classes: Tensor, geos: Sequence[Geometry],
                boxes: Sequence[np.ndarray | None], names: Sequence[str], labels: Sequence[str],
                opts: MetricsOptions, randomized: Sequence[Nest] = ()) -> list[ImageScores]:
    """Scores of a batch ``x`` (B, 3, S, S) for its true ``classes`` (B,); ``boxes[i]`` in image pixels or None.

    One GradCAT pass (which CAM reuses), one batch of occlusions shared by the path agreement and the
    occlusion baseline, and one batch of perturbed images per image for all the curves. Long because
    every metric reads the same passes: splitting it would pass them around or run them twice.
    """
    cfg = model.cfg
    g, cams, trees = explain_true_class(model, x, classes, opts)
    probs = g.logits.softmax(dim=1).cpu()
    drops = _block_drops(model, x, classes, cfg)  # per level below the root: (B, g_l, g_l)
    sanity = _sanity(randomized, x, classes, cams, trees, cfg, opts) if opts.sanity and randomized else None
    out = []
    for i in range(len(x)):
        rng = np.random.default_rng([opts.seed, zlib.crc32(names[i].encode())])  # per image: batching changes nothing
        c = int(classes[i])  # classes may be on the model's device, probs are on the CPU
        rec = ImageScores(names[i], c, labels[i], float(probs[i, c]), bool(int(probs[i].argmax()) == c))
        leaves = {"cam": None, "gradcat": leaf_order(trees[i], cfg),
                  "occlusion": np.argsort(-drops[0][i].ravel(), kind="stable"),
                  "random": None}
        rec.values = {m: {} for m in (*opts.methods, *BASELINES)}
        if "gradcat" in rec.values:
            _agreement(rec, g.paths[i][0], drops, i, rng)
        if boxes[i] is not None:
            _localize(rec, cams[i], g.paths[i][0], drops[0][i], geos[i], boxes[i], opts, rng)
        _faithfulness(rec, model, x[i], classes[i], cams[i], leaves, cfg, opts, rng, chunk=len(x))
        if sanity is not None:
            rec.values["sanity"] = sanity[i]
        out.append(rec)
    return out


def explain_true_class(model: Nest, x: Tensor, classes: Tensor, opts: MetricsOptions
                       ) -> tuple[GradcatOutput, Tensor, list[list[np.ndarray]]]:
    """GradCAT of each image's class, its CAM (B, h, w) and every tree node's score, as ``opts`` asks for them."""
    chosen = opts.variants or Variants()
    g = variants.paths(model, x, chosen.gradcat_score, classes=classes[:, None], cam_kind=chosen.cam_kind)
    trees = variants.tree(model, x, classes, chosen.gradcat_score, g)
    with torch.inference_mode():
        cams = cam_maps_of_pass(model, x, g.features, g.flow, classes[:, None].to(g.features.device),
                                chosen.cam_kind)[:, 0].float().cpu()
    return g, cams, trees


def _block_drops(model: Nest, x: Tensor, classes: Tensor, cfg: Any) -> list[Tensor]:
    """Occlusion drop of every block below the root, per 0-based level: (B, grid, grid) each."""
    out = []
    for level in range(cfg.num_levels - 1):
        g = cfg.grid(level)
        boxes = [tuple(int(v) for v in block_box(cfg, level, r, c)) for r in range(g) for c in range(g)]
        out.append(occlusion_drops(model, x, classes.cpu(), boxes, batch_size=len(x)).view(len(x), g, g))
    return out


def _agreement(rec: ImageScores, path: Sequence[Any], drops: list[Tensor], i: int, rng: np.random.Generator) -> None:
    """Per visited node: does GradCAT's child (and a random child) match the child occlusion hurts most?"""
    for node in path[:-1]:
        level = node.level - 2  # 0-based level of the node's children
        g = drops[level].shape[-1]
        r, c = divmod(node.node, g // 2)
        kids = drops[level][i, 2 * r:2 * r + 2, 2 * c:2 * c + 2].reshape(1, 4).numpy()
        key = f"level_{node.level}"
        rec.values["gradcat"].setdefault("path_agreement", {})[key] = fa.path_agreement([node.chosen_child], kids)
        rec.values["random"].setdefault("path_agreement", {})[key] = fa.path_agreement([rng.integers(4)], kids)


def _localize(rec: ImageScores, cam: Tensor, path: Sequence[Any], leaf_drops: Tensor, geo: Geometry,
              gt: np.ndarray, opts: MetricsOptions, rng: np.random.Generator) -> None:
    """Box and point metrics in the image's own pixels (MaxBoxAcc in a frame scaled to ``EVAL_SIDE``)."""
    W, H = geo.width, geo.height
    f = min(1.0, EVAL_SIDE / max(W, H))
    fw, fh = max(1, round(W * f)), max(1, round(H * f))
    gt_f = gt * np.array([fw / W, fh / H, fw / W, fh / H])
    view = np.array(geo.box_to_original((0.0, 0.0, float(geo.size), float(geo.size))))
    box, peak = localize(cam, geo.size, opts.threshold)
    leaf = path[-1].box
    leaf_centre = geo.point_to_original((leaf[0] + leaf[2]) / 2, (leaf[1] + leaf[3]) / 2)
    g0 = leaf_drops.shape[-1]
    r, c = divmod(int(leaf_drops.argmax()), g0)
    occ_peak = geo.point_to_original((c + 0.5) * geo.size / g0, (r + 0.5) * geo.size / g0)
    maps = {"cam": image_map(cam, geo, (fw, fh)), "centre": lo.centred_map(fh, fw),
            "random": image_map(torch.from_numpy(rng.random(tuple(cam.shape))), geo, (fw, fh)),
            "occlusion": image_map(leaf_drops, geo, (fw, fh))}
    points = {"cam": geo.point_to_original(*peak), "gradcat": leaf_centre, "centre": (W / 2, H / 2),
              "random": (rng.random() * W, rng.random() * H), "occlusion": occ_peak}
    for method, m in maps.items():
        if method in rec.values:
            rec.box_curves[method] = lo.max_box_acc([m], [gt_f]).accuracy_curve
    for method, p in points.items():
        if method in rec.values:
            rec.values[method]["pointing"] = bool(lo.pointing_hits(np.array([p]), [gt], opts.tolerance)[0])
    if "cam" in rec.values:
        default_box = np.array(geo.box_to_original(box))
        rec.values["cam"]["gt_known_loc"] = bool(lo.box_iou(default_box, gt).max() >= 0.5)
        rec.values["cam"]["box_covers_view"] = bool(lo.covers_view(default_box, view)[0])


def image_map(raw: Tensor, geo: Geometry, frame: tuple[int, int]) -> np.ndarray:
    """A model-input map (h, w) laid over the image, resampled bilinearly to ``frame`` (w, h) pixels.

    Pixels the model did not see (outside a crop) get the map's minimum. Works for any fit whose
    geometry is a scale and an offset per axis, read off ``geo.point_to_original``.
    """
    fw, fh = frame
    (x0, y0), (x1, y1) = geo.point_to_original(0.0, 0.0), geo.point_to_original(float(geo.size), float(geo.size))
    xs = (np.arange(fw) + 0.5) * geo.width / fw
    ys = (np.arange(fh) + 0.5) * geo.height / fh
    u = (xs - x0) / (x1 - x0) * 2 - 1  # grid_sample coordinates of the model input, -1..1
    v = (ys - y0) / (y1 - y0) * 2 - 1
    grid = torch.from_numpy(np.stack(np.meshgrid(u, v), axis=-1)).float()[None]
    m = raw.detach().float().cpu()[None, None]
    out = F.grid_sample(m, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, 0].numpy()
    outside = (np.abs(u)[None, :] > 1) | (np.abs(v)[:, None] > 1)
    out[outside] = float(m.min())
    return out


def _faithfulness(rec: ImageScores, model: Nest, x: Tensor, cls: Tensor, cam: Tensor,
                  leaves: dict[str, np.ndarray | None], cfg: Any, opts: MetricsOptions,
                  rng: np.random.Generator, chunk: int = 16) -> None:
    """Deletion and insertion curves of every method's pixel order, from one batch of perturbed images (through
    the model ``chunk`` at a time: the run's batch size)."""
    S = cfg.img_size
    counts = fa.perturbation_steps(S * S, opts.steps)
    image = x.detach().float().cpu().numpy()
    blurred = fa.gaussian_blur(image, 5.0, radius=5).astype(np.float32)
    cells = F.interpolate(torch.from_numpy(rng.random((1, 1, *cam.shape))), size=(S, S), mode="nearest")[0, 0]
    orders = {"cam": fa.order_from_map(F.interpolate(cam[None, None], size=(S, S), mode="bilinear",
                                                     align_corners=False)[0, 0]),
              "random": fa.order_from_map(cells, rng)}
    for method in ("gradcat", "occlusion"):
        orders[method] = leaf_pixel_order(leaves[method], cfg)
    methods = [m for m in orders if m in rec.values]
    inner = counts[1:-1]
    batch = np.concatenate([image[None], np.zeros_like(image)[None], blurred[None]]
                           + [fa.deletion_batch(image, 0.0, orders[m], inner) for m in methods]
                           + [fa.insertion_batch(image, blurred, orders[m], inner) for m in methods])
    copies = torch.from_numpy(batch.astype(np.float32)).to(x.device)
    p = class_probs(model, copies, cls.repeat(len(batch)), chunk, known=copies[:3]).numpy()  # made from the first three
    full, empty, blur = p[:3]
    n = len(inner)
    for j, m in enumerate(methods):
        deletion = [full, *p[3 + j * n:3 + (j + 1) * n], empty]
        k = 3 + (len(methods) + j) * n
        insertion = [blur, *p[k:k + n], full]
        rec.curves[m] = {"deletion": [float(v) for v in deletion], "insertion": [float(v) for v in insertion]}
        rec.values[m]["deletion_auc"] = fa.auc(deletion)
        rec.values[m]["insertion_auc"] = fa.auc(insertion)


def leaf_pixel_order(leaves: np.ndarray, cfg: Any) -> np.ndarray:
    """Input pixels ordered leaf block by leaf block (row-major inside a block), in the leaves' order."""
    S, g0 = cfg.img_size, cfg.grid(0)
    side = S // g0
    rank = np.empty(g0 * g0, np.int64)
    rank[np.asarray(leaves)] = np.arange(g0 * g0)
    ys, xs = np.divmod(np.arange(S * S), S)
    block = np.minimum(ys // side, g0 - 1) * g0 + np.minimum(xs // side, g0 - 1)
    return np.lexsort((np.arange(S * S), rank[block]))


def _sanity(randomized: Sequence[Nest], x: Tensor, classes: Tensor, cams: Tensor, trees: list[list[np.ndarray]],
            cfg: Any, opts: MetricsOptions) -> list[dict[str, dict[str, float]]]:
    """Per image: Spearman correlation of CAM and of GradCAT's leaf ranking with the same on each randomised model."""
    out: list[dict[str, dict[str, float]]] = [{"cam": {}, "gradcat": {}} for _ in range(len(x))]
    ranks = [_leaf_ranks(leaf_order(t, cfg)) for t in trees]
    for step, rnd in enumerate(randomized):
        key = "head" if step == 0 else f"level_{cfg.num_levels - step + 1}"
        _, rcams, rtrees = explain_true_class(rnd, x, classes, opts)
        for i in range(len(x)):
            out[i]["cam"][key] = spearman(cams[i].numpy().ravel(), rcams[i].numpy().ravel())
            out[i]["gradcat"][key] = spearman(ranks[i], _leaf_ranks(leaf_order(rtrees[i], cfg)))
    return out


def _leaf_ranks(order: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(order))
    ranks[order] = np.arange(len(order))
    return ranks


def cascade(model: Nest, seed: int = 0) -> list[Nest]:
    """The randomised copies of the sanity check: the head alone, then the head and the top 1..L levels."""
    return [randomized_top(model, levels, seed=seed) for levels in range(model.cfg.num_levels + 1)]


def aggregate(records: Sequence[ImageScores]) -> dict[str, Any]:
    """Mean of every metric over the images that have it; MaxBoxAccV2 from the summed accuracy curves."""
    out: dict[str, Any] = {}
    for rec in records:
        for method, values in rec.values.items():
            dst = out.setdefault(method, {})
            _accumulate(dst, values)
    metrics = {m: _means(v) for m, v in out.items() if m != "sanity"}
    if "sanity" in out:
        for method, steps in _means(out["sanity"]).items():
            metrics.setdefault(method, {})["sanity"] = steps
    for method in {m for r in records for m in r.box_curves}:
        curves = [r.box_curves[method] for r in records if method in r.box_curves]
        curve = np.mean(curves, axis=0)
        per_iou = curve.max(axis=1)
        metrics.setdefault(method, {})["maxboxacc_v2"] = float(per_iou.mean())
        metrics[method]["maxboxacc_per_iou"] = {f"{u:.1f}": float(a) for u, a in zip((0.3, 0.5, 0.7), per_iou)}
        metrics[method]["best_thresholds"] = [float(lo.DEFAULT_THRESHOLDS[j]) for j in curve.argmax(axis=1)]
        metrics[method]["images_with_boxes"] = len(curves)
    return metrics


def _accumulate(dst: dict[str, Any], values: dict[str, Any]) -> None:
    for k, v in values.items():
        if isinstance(v, dict):
            _accumulate(dst.setdefault(k, {}), v)
        elif v is not None and not (isinstance(v, float) and np.isnan(v)):
            dst.setdefault(k, []).append(float(v))


def _means(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _means(v) if isinstance(v, dict) else float(np.mean(v)) for k, v in d.items()}


__all__ = ["METHODS", "BASELINES", "MetricsOptions", "ImageScores", "score_batch", "image_map", "leaf_pixel_order",
           "cascade", "aggregate"]
