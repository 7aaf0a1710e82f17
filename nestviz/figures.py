"""Figure files by kind and format: PNG and JPEG from the Pillow renderer, SVG and PDF from matplotlib.

The raster renderer is an order of magnitude faster, which is what folder runs need; vector
formats keep matplotlib's text and paths. Both draw the same layout (``layout.py``).
"""

from __future__ import annotations

import os

from PIL import Image

from .results import ImageResult
from .weights import atomic_write_bytes

FORMATS = ("png", "jpg", "svg", "pdf")
KINDS = ("gradcat", "cam")


def figure_bytes(kind: str, image: Image.Image, result: ImageResult, fmt: str) -> bytes:
    """The file bytes of one figure (``kind`` gradcat or cam) of ``result`` drawn over ``image``."""
    if kind not in KINDS:
        raise ValueError(f"unknown figure kind {kind!r}; known: {', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; known: {', '.join(FORMATS)}")
    if fmt in ("png", "jpg"):
        from .raster import cam_image, encode_image, gradcat_image

        return encode_image((gradcat_image if kind == "gradcat" else cam_image)(image, result), fmt)
    from .render import cam_figure, encode_figure, gradcat_figure

    return encode_figure((gradcat_figure if kind == "gradcat" else cam_figure)(image, result), fmt)


def write_figure(kind: str, image: Image.Image, result: ImageResult, path: str | os.PathLike[str], fmt: str) -> None:
    """Draw and write one figure atomically: the file is whole or absent, and an older one is kept on failure."""
    atomic_write_bytes(path, figure_bytes(kind, image, result, fmt))
