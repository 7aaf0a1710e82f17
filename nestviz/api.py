"""The Python API: load a NesT once, then predict, explain (GradCAT) or map (CAM) images.

    import nestviz
    nv = nestviz.load()                       # the embedded default model, or load("ckpt.safetensors")
    [res] = nv.explain("cat.jpg", top_k=4)    # Result (an ImageResult that draws itself): predictions with GradCAT paths
    [res] = nv.cam(["cat.jpg", pil_image])    # predictions with CAMs, boxes and peaks

Images are paths, PIL images, numpy arrays (H, W[, C]) or tensors (C, H, W), one or a list.
``load(..., cam_kind=, gradcat_score=)`` picks the explanation variants (defaults: ``nestviz.defaults``).
``nestviz.explain`` and ``nestviz.cam`` answer in model-input pixels; this module converts
every location to original-image pixels, once, into ``nestviz.results``. The CLI only wraps it.
"""

from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from .defaults import CAM_KIND, EXPLAIN_FIT, GRADCAT_SCORE, PREDICT_FIT, THRESHOLD, Variants, check_fit
from .devices import resolve_device
from .results.display import Result
from .methods.cam import cam, cam_maps_of_pass, localize
from .methods import variants
from .methods.common import explaining, finite_rows, select_classes
from .methods.gradcat import BlockNode
from .images import ImageReadError, array_to_image, load_rgb, to_rgb
from .model.bundle import ModelBundle, bundle_from_model
from .model.checkpoints import load_weights
from .model.classes import label_for_folder, resolve_classes
from .preprocess import Geometry, Preprocessing, pad_colour, to_input
from .recording import explain_with_evidence, with_evidence
from .results.records import CamResult, ClassExplanation, PathNode

ImageLike = str | os.PathLike[str] | Image.Image | np.ndarray | Tensor
Weights = str | os.PathLike[str] | nn.Module | None
MODES = ("predict", "explain", "cam", "annotate")


@dataclass
class Prepared:
    """One decoded image ready for the model, or the reason it could not be read."""

    name: str
    tensor: Tensor | None = None
    geometry: Geometry | None = None
    failure: ImageReadError | None = None
    image: Image.Image | None = None  # the decoded RGB image, kept only for the API's results (``keep``)

    @property
    def error(self) -> str | None:
        return None if self.failure is None else str(self.failure)


@dataclass
class _Explained:
    """What the explanation methods said about a batch, in model-input pixels, on the CPU."""

    probs: Tensor  # (B, K)
    classes: Tensor  # (B, k)
    paths: list[list[list[BlockNode]]] | None = None
    maps: Tensor | None = None  # (B, k, H, W)


def as_list(images: ImageLike | Iterable[ImageLike]) -> list[ImageLike]:
    """One image (a path, PIL image, array or tensor; a 4-D array or tensor is a batch) or many, as a list."""
    if isinstance(images, (str, os.PathLike, Image.Image)):
        return [images]
    if isinstance(images, (np.ndarray, Tensor)):
        return list(images) if images.ndim == 4 else [images]
    return list(images)


class Nestviz:
    """A loaded model on a device, with the methods that explain images.

    ``variants`` (``nestviz.defaults.Variants``: ``cam_kind`` flow, contrast, logit; ``gradcat_score`` gradient,
    cam, ablation) choose the variant of every CAM and GradCAT it computes; see :mod:`nestviz.defaults`.
    """

    def __init__(self, bundle: ModelBundle, device: torch.device | str = "cpu", *, variants: Variants = Variants()):
        self.variants = variants  # the one owner of the pair: folder runs and metrics read it from here
        self.bundle = bundle
        self.device = torch.device(device) if isinstance(device, str) else device
        self.model = bundle.model.to(self.device).eval()
        cfg = bundle.config
        self.grid_sizes = [cfg.grid(i) for i in range(cfg.num_levels)]

    def __repr__(self) -> str:
        b = self.bundle
        return f"Nestviz({os.path.basename(str(b.source)) or 'model object'!r}, {len(b.class_names)} classes, {self.device})"

    cam_kind = property(lambda self: self.variants.cam_kind, doc="The CAM variant (read-only: ``variants`` holds it).")
    gradcat_score = property(lambda self: self.variants.gradcat_score, doc="The GradCAT node score (read-only).")

    @property
    def num_classes(self) -> int:
        return len(self.bundle.class_names)

    @classmethod
    def load(cls, weights: Weights = None, arch: str | None = None, device: str = "auto", *,
             class_names: Sequence[str] | None = None, preprocessing: Preprocessing | None = None,
             cam_kind: str = CAM_KIND, gradcat_score: str = GRADCAT_SCORE,
             variants: Variants | None = None) -> "Nestviz":
        """Load ``weights`` (a checkpoint file or folder, a model object; default: the embedded model)
        onto ``device`` (auto: CUDA, MPS, CPU); ``class_names`` and ``preprocessing`` replace the bundle's;
        ``cam_kind`` and ``gradcat_score`` choose the explanation variants, or ``variants`` holds both."""
        if variants is None:
            variants = Variants(cam_kind, gradcat_score)  # checked before loading
        elif (cam_kind, gradcat_score) != (CAM_KIND, GRADCAT_SCORE):
            raise TypeError("give variants=, or cam_kind= and gradcat_score=, not both")
        if isinstance(weights, nn.Module):
            bundle = bundle_from_model(weights, class_names, preprocessing, arch)
        else:
            bundle = load_weights(weights, arch=arch)
            if class_names is not None:
                if len(class_names) != bundle.config.num_classes:
                    raise ValueError(f"{len(class_names)} class names for a {bundle.config.num_classes}-class head")
                bundle.class_names = [str(n) for n in class_names]
            if preprocessing is not None:
                bundle.preprocessing = preprocessing
        return cls(bundle, resolve_device(device), variants=variants)

    # -- inputs ---------------------------------------------------------------------------------
    def prepare(self, image: ImageLike, fit: str = PREDICT_FIT, keep: bool = False) -> Prepared:
        """Decode and preprocess one image under ``fit`` (crop, pad, squash; see ``nestviz.preprocess``);
        a bad file becomes ``Prepared(failure=...)``, never an exception. ``keep`` keeps the decoded image."""
        if isinstance(image, Image.Image):
            name, im = getattr(image, "filename", "") or "<image>", to_rgb(image)
        elif isinstance(image, (np.ndarray, Tensor)):
            name, im = f"<{type(image).__name__}>", array_to_image(image)
        else:
            name = str(image)
            try:
                im = load_rgb(image)
            except ImageReadError as e:
                return Prepared(name, failure=e)
        tensor, geo = to_input(im, self.bundle.preprocessing, fit)
        return Prepared(name, tensor, geo, image=im if keep else None)

    def prepared_batches(self, images: Iterable[ImageLike], batch_size: int = 16, workers: int = 2,
                         fit: str = PREDICT_FIT, keep: bool = False) -> Iterator[list[Prepared]]:
        """Decode in background threads, one batch ahead of the model, yielding lists of ``Prepared``."""
        fit = check_fit(fit)
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="nestviz-decode") as pool:
            pending: list = []
            for image in images:
                pending.append(pool.submit(self.prepare, image, fit, keep))
                if len(pending) >= 2 * batch_size:
                    yield [f.result() for f in pending[:batch_size]]
                    pending = pending[batch_size:]
            while pending:
                yield [f.result() for f in pending[:batch_size]]
                pending = pending[batch_size:]

    def resolve_classes(self, specs: Sequence[str | int]) -> list[int]:
        """Class indices from indices or labels (case-insensitive; a unique prefix is enough)."""
        return resolve_classes(specs, self.bundle.class_names)

    def label_for_folder(self, folder: str) -> str | None:
        """The model label a class folder's name stands for, or None (see ``model.classes.label_for_folder``)."""
        return label_for_folder(folder, self.bundle.class_names, self.bundle.provenance.get("class_folders"))

    # -- the work -------------------------------------------------------------------------------
    def run(self, batch: Sequence[Prepared | ImageLike] | ImageLike, mode: str = "predict", *, top_k: int = 5,
            classes: Sequence[int] | None = None, threshold: float = THRESHOLD, sign: float = 1.0,
            check_evidence: bool = False) -> list[Result]:
        """Run ``mode`` on images (one forward pass for the batch): one result per image, in order.

        ``batch``: images from :meth:`prepare`, or what it takes (prepared here with the mode's default fit).
        An image that could not be read gives a result with its ``error`` set. ``sign`` -1 flips GradCAT's
        gradient or logit-share scores (the pointing game's control; the ablation score has no sign).
        ``check_evidence`` (folder runs do) also records the decision with the evidence removed: one more pass."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}: one of {', '.join(MODES)}")
        fit, items = PREDICT_FIT if mode == "predict" else EXPLAIN_FIT, [batch] if isinstance(batch, Prepared) else as_list(batch)
        batch = [p if isinstance(p, Prepared) else self.prepare(p, fit) for p in items]
        ok = [p for p in batch if p.failure is None]
        results: dict[int, Result] = {}
        if ok:
            x = torch.stack([p.tensor for p in ok]).to(self.device)
            out, found = explain_with_evidence(self, x, mode, top_k, classes, sign, check=check_evidence)  # + heard
            for i, (p, finite) in enumerate(zip(ok, finite_rows(out.probs, out.maps))):  # NaN / inf: that image's error
                results[id(p)] = with_evidence(self._result(p, out, i, threshold), found, out, i, p.geometry) \
                    if finite else Result(p.name, error=f"{p.name}: the model's output is not finite (NaN or infinity)")
        return [results.get(id(p)) or Result(p.name, error=p.error) for p in batch]

    def _explain(self, x: Tensor, mode: str, top_k: int, classes: Sequence[int] | None, sign: float) -> _Explained:
        """The explanation methods ``mode`` needs, from one forward pass."""
        model, paths, maps = self.model, None, None
        if mode in ("explain", "annotate"):
            g = variants.paths(model, x, self.gradcat_score, top_k=top_k, classes=classes, sign=sign,
                               cam_kind=self.cam_kind)
            logits, chosen, paths = g.logits, g.classes, g.paths
            if mode == "annotate":
                with explaining(model), torch.inference_mode():
                    maps = cam_maps_of_pass(model, x, g.features, g.flow, chosen, self.cam_kind)
        elif mode == "cam":
            c = cam(model, x, top_k=top_k, classes=classes, kind=self.cam_kind)
            logits, chosen, maps = c.logits, c.classes, c.maps
        else:
            with explaining(model), torch.inference_mode():
                logits = model(x)
            chosen = select_classes(logits, top_k, classes)
        return _Explained(logits.float().softmax(dim=1).cpu(), chosen.cpu(), paths,
                          None if maps is None else maps.float().cpu())

    def _result(self, prep: Prepared, out: _Explained, i: int, threshold: float) -> Result:
        """Image ``i`` of a batch's explanations, every location converted to original-image pixels."""
        geo = prep.geometry
        assert geo is not None
        region = geo.region()
        probs = out.probs[i]
        preds = []
        for r, c in enumerate(out.classes[i].tolist()):
            pred = ClassExplanation(self._rank(probs, c), c, self.bundle.label(c), float(probs[c]))
            if out.paths is not None:
                pred.path = [PathNode(n.level, n.node, geo.box_to_original(n.box), n.score, n.child_scores,
                                      n.chosen_child, n.removal_drops) for n in out.paths[i][r]]
            if out.maps is not None:
                box, peak = localize(out.maps[i, r], geo.size, threshold)
                pred.cam = CamResult(out.maps[i, r].numpy(), region, geo.box_to_original(box),
                                     geo.point_to_original(*peak), threshold, self.cam_kind, geo.size)
            preds.append(pred)
        best = int(probs.argmax())
        top = next((p for p in preds if p.class_index == best), None) or \
            ClassExplanation(1, best, self.bundle.label(best), float(probs[best]))
        return Result(prep.name, geo.width, geo.height, region, preds, list(self.grid_sizes), fit=geo.fit,
                      pad_rgb=pad_colour(self.bundle.preprocessing), top=top, picture=prep.image)

    @staticmethod
    def _rank(probs: Tensor, c: int) -> int:
        """1 + the number of classes more probable than ``c`` (ties share the better rank)."""
        return 1 + int((probs > probs[c]).sum())

    def _many(self, images: ImageLike | Iterable[ImageLike], mode: str, batch_size: int, fit: str,
              **kw) -> list[Result]:
        """Results for every image (each keeps its picture, to show and save itself); the first
        unreadable one raises its :class:`ImageReadError`."""
        results: list[Result] = []
        for batch in self.prepared_batches(as_list(images), batch_size, fit=fit, keep=True):
            failed = next((p.failure for p in batch if p.failure is not None), None)
            if failed is not None:
                raise failed
            results += self.run(batch, mode, **kw)
        return results

    def predict(self, images: ImageLike | Iterable[ImageLike], top_k: int = 5, batch_size: int = 16,
                fit: str = PREDICT_FIT) -> list[Result]:
        """Top-k classes and probabilities per image."""
        return self._many(images, "predict", batch_size, fit, top_k=top_k)

    def explain(self, images: ImageLike | Iterable[ImageLike], top_k: int = 4,
                classes: Sequence[int | str] | None = None, batch_size: int = 16,
                fit: str = EXPLAIN_FIT) -> list[Result]:
        """GradCAT paths for the top-k classes (or the named ``classes``) of each image.

        ``fit`` says how the image becomes the model's square: crop (timm's centre crop), pad
        (the whole image, letterboxed) or squash (the whole image, resized to the square).
        """
        return self._many(images, "explain", batch_size, fit, top_k=top_k,
                          classes=self.resolve_classes(classes) if classes else None)

    def cam(self, images: ImageLike | Iterable[ImageLike], top_k: int = 1, classes: Sequence[int | str] | None = None,
            threshold: float = THRESHOLD, batch_size: int = 16, fit: str = EXPLAIN_FIT) -> list[Result]:
        """Class activation maps, weak-localization boxes and peaks for the top-k (or named) classes."""
        return self._many(images, "cam", batch_size, fit, top_k=top_k, threshold=threshold,
                          classes=self.resolve_classes(classes) if classes else None)

    def annotate(self, images: ImageLike | Iterable[ImageLike], top_k: int = 4,
                 classes: Sequence[int | str] | None = None, threshold: float = THRESHOLD,
                 batch_size: int = 16, fit: str = EXPLAIN_FIT) -> list[Result]:
        """GradCAT and CAM together, from one forward pass."""
        return self._many(images, "annotate", batch_size, fit, top_k=top_k, threshold=threshold,
                          classes=self.resolve_classes(classes) if classes else None)


def load(weights: Weights = None, arch: str | None = None, device: str = "auto", *,
         class_names: Sequence[str] | None = None, preprocessing: Preprocessing | None = None,
         cam_kind: str = CAM_KIND, gradcat_score: str = GRADCAT_SCORE, variants: Variants | None = None) -> Nestviz:
    """Load a model: a nestviz/timm/Hugging Face checkpoint (default: the embedded model) or a model object;
    ``cam_kind`` (flow, contrast, logit) and ``gradcat_score`` (gradient, cam, ablation) choose the explanation variants
    (or ``variants``, a ``nestviz.defaults.Variants``, both)."""
    return Nestviz.load(weights, arch, device, class_names=class_names, preprocessing=preprocessing,
                        cam_kind=cam_kind, gradcat_score=gradcat_score, variants=variants)


# -- one-call helpers: a small cache of loaded models ----------------------------------------------------
CACHE_SIZE = 2  # models kept by the one-call helpers, least recently used dropped first
_cache: OrderedDict[tuple[str, str, str, Variants], Nestviz] = OrderedDict()
_cache_lock = threading.Lock()


def _cached(weights: str | os.PathLike[str] | None, arch: str | None, device: str, cam_kind: str = CAM_KIND,
            gradcat_score: str = GRADCAT_SCORE) -> Nestviz:
    """The cached ``Nestviz`` for (weights, arch, device, variants); another variant of a cached model
    shares its weights (a shallow copy), it is not loaded again."""
    chosen = Variants(cam_kind, gradcat_score)
    key = (os.fspath(weights) if weights is not None else "", arch or "", device, chosen)
    with _cache_lock:
        nv = _cache.pop(key, None)
        if nv is None:
            same = next((v for k, v in _cache.items() if k[:3] == key[:3]), None)
            nv = Nestviz.load(weights, arch, device) if same is None else copy.copy(same)
            nv.variants = chosen
        _cache[key] = nv
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return nv


def clear_cache() -> None:
    """Forget the models the one-call helpers loaded (and give back the GPU memory they held)."""
    with _cache_lock:
        _cache.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def predict(images: ImageLike | Iterable[ImageLike], *, weights: str | os.PathLike[str] | None = None,
            arch: str | None = None, device: str = "auto", top_k: int = 5, fit: str = PREDICT_FIT) -> list[Result]:
    """One-call prediction; the model is loaded once per (weights, device) and reused."""
    return _cached(weights, arch, device).predict(images, top_k=top_k, fit=fit)


def explain(images: ImageLike | Iterable[ImageLike], *, weights: str | os.PathLike[str] | None = None,
            arch: str | None = None, device: str = "auto", top_k: int = 4,
            classes: Sequence[int | str] | None = None, fit: str = EXPLAIN_FIT,
            gradcat_score: str = GRADCAT_SCORE) -> list[Result]:
    """One-call GradCAT: ``nestviz.explain("cat.jpg")[0].predictions[0].path``."""
    nv = _cached(weights, arch, device, gradcat_score=gradcat_score)
    return nv.explain(images, top_k=top_k, classes=classes, fit=fit)


def class_maps(images: ImageLike | Iterable[ImageLike], *, weights: str | os.PathLike[str] | None = None,
               arch: str | None = None, device: str = "auto", top_k: int = 1,
               classes: Sequence[int | str] | None = None, threshold: float = THRESHOLD,
               fit: str = EXPLAIN_FIT, cam_kind: str = CAM_KIND) -> list[Result]:
    """One-call CAM: ``nestviz.class_maps("cat.jpg")[0].predictions[0].cam.box``."""
    nv = _cached(weights, arch, device, cam_kind=cam_kind)
    return nv.cam(images, top_k=top_k, classes=classes, threshold=threshold, fit=fit)
