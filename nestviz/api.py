"""The Python API: load a NesT once, then predict, explain (GradCAT) or map (CAM) images.

    import nestviz
    nv = nestviz.load()                       # the embedded default model, or load("ckpt.safetensors")
    [res] = nv.explain(["cat.jpg"], top_k=4)  # ImageResult: predictions with GradCAT paths
    [res] = nv.cam(["cat.jpg"])               # predictions with CAMs, boxes and peaks

Everything returned is in original-image pixels (see nestviz.results); the CLI only wraps this.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from .cam import cam_maps, localize
from .devices import resolve_device
from .gradcat import gradcat
from .images import ImageReadError, load_rgb
from .preprocess import Geometry, to_input
from .results import CamResult, ClassExplanation, ImageResult, PathNode
from .weights import ModelBundle, load_weights

ImageLike = str | os.PathLike[str] | Image.Image
MODES = ("predict", "explain", "cam", "annotate")


@dataclass
class Prepared:
    """One decoded image ready for the model, or the reason it could not be read."""

    name: str
    tensor: Tensor | None = None
    geometry: Geometry | None = None
    error: str | None = None


class Nestviz:
    """A loaded model on a device, with the methods that explain images."""

    def __init__(self, bundle: ModelBundle, device: torch.device | str = "cpu"):
        self.bundle = bundle
        self.device = torch.device(device) if isinstance(device, str) else device
        self.model = bundle.model.to(self.device).eval()

    @classmethod
    def load(cls, weights: str | os.PathLike[str] | None = None, arch: str | None = None,
             device: str = "auto") -> "Nestviz":
        """Load ``weights`` (default: the embedded model) onto ``device`` (auto: CUDA, MPS, CPU)."""
        return cls(load_weights(weights, arch=arch), resolve_device(device))

    # -- inputs ---------------------------------------------------------------------------------
    def prepare(self, image: ImageLike) -> Prepared:
        """Decode and preprocess one image; a bad file becomes ``Prepared(error=...)``, never an exception."""
        name = (getattr(image, "filename", "") or "<image>") if isinstance(image, Image.Image) else str(image)
        try:
            im = image.convert("RGB") if isinstance(image, Image.Image) else load_rgb(image)
        except ImageReadError as e:
            return Prepared(name, error=str(e))
        tensor, geo = to_input(im, self.bundle.preprocessing)
        return Prepared(name, tensor, geo)

    def prepared_batches(self, images: Iterable[ImageLike], batch_size: int = 16,
                         workers: int = 2) -> Iterator[list[Prepared]]:
        """Decode in background threads, one batch ahead of the model, yielding lists of ``Prepared``."""
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="nestviz-decode") as pool:
            pending: list = []
            for image in images:
                pending.append(pool.submit(self.prepare, image))
                if len(pending) >= 2 * batch_size:
                    yield [f.result() for f in pending[:batch_size]]
                    pending = pending[batch_size:]
            while pending:
                yield [f.result() for f in pending[:batch_size]]
                pending = pending[batch_size:]

    def resolve_classes(self, specs: Sequence[str | int]) -> list[int]:
        """Class indices from indices or labels (case-insensitive; a unique prefix is enough)."""
        names = [n.lower() for n in self.bundle.class_names]
        out = []
        for spec in specs:
            s = str(spec).strip()
            if s.lstrip("-").isdigit():
                i = int(s)
                if not 0 <= i < len(names):
                    raise ValueError(f"class index {i} is out of range (the model has {len(names)} classes)")
                out.append(i)
                continue
            exact = [i for i, n in enumerate(names) if n == s.lower()]
            match = exact or [i for i, n in enumerate(names) if n.startswith(s.lower())]
            if len(match) != 1:
                problem = "matches no class" if not match else f"is ambiguous ({', '.join(self.bundle.class_names[i] for i in match[:5])})"
                raise ValueError(f"class {s!r} {problem}")
            out.append(match[0])
        return out

    # -- the work -------------------------------------------------------------------------------
    def run(self, batch: Sequence[Prepared], mode: str = "predict", *, top_k: int = 5,
            classes: Sequence[int] | None = None, threshold: float = 0.2) -> list[ImageResult | Prepared]:
        """Run ``mode`` on decoded images (one forward pass for the batch); failed inputs pass through."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        ok = [p for p in batch if p.error is None]
        results: dict[int, ImageResult] = {}
        if ok:
            x = torch.stack([p.tensor for p in ok]).to(self.device)
            for p, r in zip(ok, self._run_tensor(x, [p.geometry for p in ok], [p.name for p in ok], mode,
                                                  top_k, classes, threshold)):
                results[id(p)] = r
        return [results.get(id(p), p) for p in batch]

    def _run_tensor(self, x: Tensor, geos: list[Geometry], names: list[str], mode: str, top_k: int,
                    classes: Sequence[int] | None, threshold: float) -> list[ImageResult]:
        model, cfg = self.model, self.bundle.config
        paths = None
        if mode in ("explain", "annotate"):
            out = gradcat(model, x, top_k=top_k, classes=classes)
            logits, chosen, top, paths = out.logits, out.classes, out.top, out.paths
        else:
            with torch.inference_mode():
                top = model.forward_levels(x)[-1]
                logits = model.forward_head(top).float()
            k = min(top_k, logits.shape[1])
            chosen = (torch.tensor(list(classes), device=logits.device).expand(len(x), -1) if classes
                      else logits.topk(k, dim=1).indices)
        probs = logits.softmax(dim=1).cpu()
        chosen = chosen.cpu()
        maps = None
        if mode in ("cam", "annotate"):
            with torch.inference_mode():
                maps = cam_maps(model, top, chosen.to(top.device)).float().cpu()
        grid_sizes = [cfg.grid(i) for i in range(cfg.num_levels)]
        results = []
        for i, geo in enumerate(geos):
            preds = []
            region = geo.box_to_original((0.0, 0.0, float(geo.size), float(geo.size)))
            for r, c in enumerate(chosen[i].tolist()):
                pred = ClassExplanation(r + 1, c, self.bundle.label(c), float(probs[i, c]))
                if paths is not None:
                    pred.path = [PathNode(n.level, n.node, geo.box_to_original(n.box), n.score, n.child_scores,
                                          n.chosen_child) for n in paths[i][r]]
                if maps is not None:
                    box, peak = localize(maps[i, r], geo.size, threshold)
                    pred.cam = CamResult(maps[i, r].numpy(), region, geo.box_to_original(box),
                                         geo.point_to_original(*peak), threshold)
                preds.append(pred)
            results.append(ImageResult(names[i], geo.width, geo.height, geo, preds, grid_sizes))
        return results

    def _many(self, images: Iterable[ImageLike], mode: str, batch_size: int, **kw) -> list[ImageResult]:
        results: list[ImageResult] = []
        for batch in self.prepared_batches(images, batch_size):
            for r in self.run(batch, mode, **kw):
                if isinstance(r, Prepared):
                    raise ImageReadError(r.name, r.error.split(": ", 1)[-1] if r.error else "unreadable")
                results.append(r)
        return results

    def predict(self, images: Iterable[ImageLike], top_k: int = 5, batch_size: int = 16) -> list[ImageResult]:
        """Top-k classes and probabilities per image."""
        return self._many(images, "predict", batch_size, top_k=top_k)

    def explain(self, images: Iterable[ImageLike], top_k: int = 4, classes: Sequence[int | str] | None = None,
                batch_size: int = 16) -> list[ImageResult]:
        """GradCAT paths for the top-k classes (or the named ``classes``) of each image."""
        return self._many(images, "explain", batch_size, top_k=top_k,
                          classes=self.resolve_classes(classes) if classes else None)

    def cam(self, images: Iterable[ImageLike], top_k: int = 1, classes: Sequence[int | str] | None = None,
            threshold: float = 0.2, batch_size: int = 16) -> list[ImageResult]:
        """Class activation maps, weak-localization boxes and peaks for the top-k (or named) classes."""
        return self._many(images, "cam", batch_size, top_k=top_k, threshold=threshold,
                          classes=self.resolve_classes(classes) if classes else None)

    def annotate(self, images: Iterable[ImageLike], top_k: int = 4, classes: Sequence[int | str] | None = None,
                 threshold: float = 0.2, batch_size: int = 16) -> list[ImageResult]:
        """GradCAT and CAM together, from one forward pass."""
        return self._many(images, "annotate", batch_size, top_k=top_k, threshold=threshold,
                          classes=self.resolve_classes(classes) if classes else None)


def load(weights: str | os.PathLike[str] | None = None, arch: str | None = None, device: str = "auto") -> Nestviz:
    """Load a model: ``weights`` is a nestviz/timm/Hugging Face checkpoint (default: the embedded model)."""
    return Nestviz.load(weights, arch, device)


_LOADED: dict[tuple[str, str, str], Nestviz] = {}


def _cached(weights: str | os.PathLike[str] | None, arch: str | None, device: str) -> Nestviz:
    key = (str(weights or ""), arch or "", device)
    if key not in _LOADED:
        _LOADED[key] = Nestviz.load(weights, arch, device)
    return _LOADED[key]


def _as_list(images: ImageLike | Iterable[ImageLike]) -> list[ImageLike]:
    return [images] if isinstance(images, (str, os.PathLike, Image.Image)) else list(images)


def predict(images: ImageLike | Iterable[ImageLike], *, weights: str | os.PathLike[str] | None = None,
            arch: str | None = None, device: str = "auto", top_k: int = 5) -> list[ImageResult]:
    """One-call prediction; the model is loaded once per (weights, device) and reused."""
    return _cached(weights, arch, device).predict(_as_list(images), top_k=top_k)


def explain(images: ImageLike | Iterable[ImageLike], *, weights: str | os.PathLike[str] | None = None,
            arch: str | None = None, device: str = "auto", top_k: int = 4,
            classes: Sequence[int | str] | None = None) -> list[ImageResult]:
    """One-call GradCAT: ``nestviz.explain("cat.jpg")[0].predictions[0].path``."""
    return _cached(weights, arch, device).explain(_as_list(images), top_k=top_k, classes=classes)


def class_maps(images: ImageLike | Iterable[ImageLike], *, weights: str | os.PathLike[str] | None = None,
        arch: str | None = None, device: str = "auto", top_k: int = 1,
        classes: Sequence[int | str] | None = None, threshold: float = 0.2) -> list[ImageResult]:
    """One-call CAM: ``nestviz.class_maps("cat.jpg")[0].predictions[0].cam.box``."""
    return _cached(weights, arch, device).cam(_as_list(images), top_k=top_k, classes=classes, threshold=threshold)
