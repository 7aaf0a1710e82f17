"""Figure files by kind and format: PNG and JPEG from the Pillow renderer, SVG and PDF from matplotlib.

The raster renderer is an order of magnitude faster, which is what folder runs need; vector
formats keep matplotlib's text and paths. Both draw the same layout (``layout.py``) in the same
style (``style.py``) from a :class:`nestviz.results.ImageResult`, whose locations are already in
original-image pixels. Nothing here imports torch or the model: a figure worker starts light.
"""

from __future__ import annotations

import os

from PIL import Image

from .._files import atomic_write_bytes
from ..results import ImageResult

FORMATS = ("png", "jpg", "svg", "pdf")
KINDS = ("gradcat", "cam")


def figure_format(fmt: str) -> str:
    """``fmt`` as one of :data:`FORMATS` (case, a leading dot and ``jpeg`` forgiven), else ValueError."""
    name = fmt.lower().lstrip(".")
    name = "jpg" if name == "jpeg" else name
    if name not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; known: {', '.join(FORMATS)}")
    return name


def figure_bytes(kind: str, image: Image.Image, result: ImageResult, fmt: str) -> bytes:
    """The file bytes of one figure (``kind`` gradcat or cam) of ``result`` drawn over ``image``."""
    if kind not in KINDS:
        raise ValueError(f"unknown figure kind {kind!r}; known: {', '.join(KINDS)}")
    fmt = figure_format(fmt)
    if fmt in ("png", "jpg"):
        from .raster import cam_image, encode_image, gradcat_image

        return encode_image((gradcat_image if kind == "gradcat" else cam_image)(image, result), fmt)
    from .vector import cam_figure, encode_figure, gradcat_figure

    return encode_figure((gradcat_figure if kind == "gradcat" else cam_figure)(image, result), fmt)


def write_figure(kind: str, image: Image.Image, result: ImageResult, path: str | os.PathLike[str], fmt: str) -> None:
    """Draw and write one figure atomically: the file is whole or absent, and an older one is kept on failure."""
    atomic_write_bytes(path, figure_bytes(kind, image, result, fmt))


__all__ = ["FORMATS", "KINDS", "figure_format", "figure_bytes", "write_figure"]
