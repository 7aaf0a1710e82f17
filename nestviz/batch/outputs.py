"""What a folder run writes for one image: the options that name its files, the files (figures, thumbnail,
CAM maps), and its JSON for ``--json``. Drawing happens in ``render_outputs``, in a worker process."""

from __future__ import annotations

import io
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_write_bytes, fit_name
from .._text import json_text
from ..defaults import CAM_KIND, EXPLAIN_FIT, GRADCAT_SCORE, THRESHOLD, TOP_K, Variants
from ..results.records import MAP_FIELDS, ImageResult
from .discover import InputItem, output_stem

# The figures of each command, by kind, and the name each gets: commands sharing OUT never share a file.
FIGURES = {"explain": {"gradcat": "gradcat"}, "cam": {"cam": "cam"},
           "annotate": {"gradcat": "annotate-gradcat", "cam": "annotate-cam"}}
THUMB_SUFFIX = ".thumb.jpg"  # one small picture per image for the gallery (``nestviz.draw.thumbnail``): the one place


@dataclass
class RunOptions:
    """What to compute and write for each image."""

    mode: str  # explain | cam | annotate
    out_dir: Path
    _: KW_ONLY  # the rest by name
    top_k: int = 4
    classes: list[int] | None = None
    threshold: float = THRESHOLD
    fmt: str = "jpg"
    render: bool = True
    save_maps: bool = False
    overwrite: bool = False
    batch_size: int = 16
    render_workers: int = 2  # processes drawing figures (0: draw in this process)
    shard: tuple[int, int] | None = None
    multi_root: bool = False  # inputs came from several roots: prefix outputs with the root's name
    fit: str = EXPLAIN_FIT
    tree: bool = False  # GradCAT figures with the tree diagram
    full_size: bool = False  # full-size figures (else compact: smaller panels, JPEG quality 80)
    # the CAM kind (cam, annotate) and GradCAT node score (explain, annotate): known before the model is loaded
    # (records' keys, file names), the model is loaded with this object and the runner refuses one without it
    variants: Variants = Variants()

    def options(self) -> dict[str, Any]:
        """The options that made an image's outputs, as its manifest record says them."""
        d: dict[str, Any] = {"top_k": self.top_k, "classes": self.classes, "fit": self.fit}
        if self.mode != "explain":
            d.update(threshold=self.threshold, cam_kind=self.variants.cam_kind)
        if self.mode != "cam":
            d["gradcat_score"] = self.variants.gradcat_score
        d.update({"format": self.fmt, "render": self.render, "save_maps": self.save_maps, "tree": self.tree,
                  "full_size": self.full_size})
        return d

    def key_fields(self, weights_id: str) -> dict[str, Any]:
        """Everything that changes an image's outputs: a change means the image is redone."""
        return {"weights": weights_id, "mode": self.mode, **self.options()}

    def tags(self) -> str:
        """The options that matter, for file names: ``.k2``, ``.c7-12``, ``.pad``, ``.contrast``, ``.ablation``,
        ``.t0.5``, ``.tree``, ``.full`` (nothing for the defaults), so that outputs made with other options never
        overwrite these."""
        cam_kind, score = self.variants.cam_kind, self.variants.gradcat_score
        tags = [f"c{'-'.join(map(str, self.classes))}" if self.classes else
                (f"k{self.top_k}" if self.top_k != TOP_K[self.mode] else ""),
                self.fit if self.fit != EXPLAIN_FIT else "",
                cam_kind if self.mode != "explain" and cam_kind != CAM_KIND else "",
                score if self.mode != "cam" and score != GRADCAT_SCORE else "",
                f"t{self.threshold:g}" if self.mode != "explain" and self.threshold != THRESHOLD else "",
                "tree" if self.tree and self.mode != "cam" else "", "full" if self.full_size else ""]
        return "".join(f".{t}" for t in tags if t)

    def figure_options(self) -> dict[str, bool]:
        return {"tree": self.tree, "compact": not self.full_size}


def planned_outputs(item: InputItem, opts: RunOptions) -> dict[str, Path]:
    """Files one image produces: {"gradcat": figure, "cam": figure, "thumb": thumbnail, "maps": .npz}.

    ``OUT/a/cat.gradcat.jpg`` (explain), ``cat.cam.jpg`` (cam), ``cat.annotate-gradcat.jpg`` and
    ``cat.annotate-cam.jpg`` (annotate), each with :meth:`RunOptions.tags`; ``cat.thumb.jpg``.
    """
    stem = output_stem(item, opts.out_dir, opts.multi_root)
    names, tags = FIGURES[opts.mode], opts.tags()
    suffixes: dict[str, str] = {}
    if opts.render:
        for kind, name in names.items():
            suffixes[kind] = f".{name}{tags}.{opts.fmt}"
        suffixes["thumb"] = THUMB_SUFFIX
    if opts.save_maps and "cam" in names:
        suffixes["maps"] = f".{names['cam']}{tags}.npz"
    # a name too long for the file system with its suffixes is cut, with a hash of the whole name (see fit_name)
    base = fit_name(stem.name, max((len(s.encode()) for s in suffixes.values()), default=0))
    return {kind: stem.with_name(base + suffix) for kind, suffix in suffixes.items()}


def render_outputs(image_path: str, result: ImageResult, files: dict[str, str], fmt: str,
                   options: dict[str, bool] | None = None, thumb_record: dict[str, Any] | None = None,
                   picture: Any = None) -> None:
    """Draw and save one image's figures and thumbnail (runs in a worker process); the thumbnail shows
    ``thumb_record`` (the image's records of every command, merged) or else the result. ``picture`` is the
    image as decoded for the model (RGB); without it the file is read again."""
    from ..draw import write_figure
    from ..draw.thumbnail import write_thumbnail
    from ..images import load_rgb

    image = picture if picture is not None else load_rgb(image_path)
    for kind, path in files.items():
        if kind == "thumb":
            write_thumbnail(image, thumb_record or result.to_json(with_outputs=False), path)
        else:  # "gradcat" or "cam"
            write_figure(kind, image, result, path, fmt, **(options or {}))


def save_maps(result: ImageResult, path: Path) -> None:
    """Raw CAMs of the explained classes, written atomically as one .npz: ``maps`` (k, h, w) float32 in
    logit units, with ``class_index``, ``rank``, ``label`` and ``probability`` (k,) and ``region`` (4,),
    where the maps lie in the original image."""
    preds = [p for p in result.predictions if p.cam is not None]
    buf = io.BytesIO()
    np.savez(buf, maps=np.stack([p.cam.raw for p in preds]).astype(np.float32),
             class_index=np.array([p.class_index for p in preds], dtype=np.int64),
             rank=np.array([p.rank for p in preds], dtype=np.int64), label=np.array([p.label for p in preds]),
             probability=np.array([p.probability for p in preds], dtype=np.float32),
             region=np.array(result.region, dtype=np.float64))
    atomic_write_bytes(path, buf.getvalue())


JSON_KEYS = ("image", "width", "height", "predictions", "outputs", "error")


def public_json(record: dict[str, Any]) -> dict[str, Any]:
    """A manifest record as the ``--json`` contract has it: no bookkeeping, no CAM maps."""
    out = {k: record[k] for k in JSON_KEYS if k in record}
    if "predictions" in out:
        out["predictions"] = [{k: v for k, v in p.items() if k not in MAP_FIELDS}
                              for p in out["predictions"]]
    return out


def dumps(record: dict[str, Any]) -> str:
    """One JSON Lines line."""
    return json_text(record)


__all__ = ["FIGURES", "THUMB_SUFFIX", "RunOptions", "planned_outputs", "render_outputs", "save_maps", "public_json",
           "dumps"]
