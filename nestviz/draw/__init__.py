"""Figure files by kind and format: PNG and JPEG from the Pillow renderer, SVG and PDF from matplotlib.

The raster renderer is an order of magnitude faster, which is what folder runs need; vector
formats keep matplotlib's text and paths. Both draw the same layout (``layout.py``) in the same
style (``style.py``) from a :class:`nestviz.results.records.ImageResult`, whose locations are already in
original-image pixels. Nothing here imports torch or the model: a figure worker starts light.
"""

from __future__ import annotations

import os

from PIL import Image

from .._files import atomic_write_bytes
from ..results.records import ImageResult

FORMATS = ("png", "jpg", "svg", "pdf")
KINDS = ("gradcat", "cam")


def figure_format(fmt: str) -> str:
    """``fmt`` as one of :data:`FORMATS` (case, a leading dot and ``jpeg`` forgiven), else ValueError."""
    name = fmt.lower().lstrip(".")
    name = "jpg" if name == "jpeg" else name
    if name not in FORMATS:
        raise ValueError(f"unknown figure format {fmt!r}; known: {', '.join(FORMATS)}")
    return name


def format_of(path: str | os.PathLike[str], fmt: str | None = None) -> str:
    """The format a figure file gets: ``path``'s suffix; ``fmt``, if given, must agree with it."""
    suffix = os.path.splitext(os.fspath(path))[1]
    if not suffix:
        if fmt is None:
            raise ValueError(f"{os.fspath(path)}: no suffix to take the figure format from ({', '.join(FORMATS)})")
        return figure_format(fmt)
    from_suffix = figure_format(suffix.lstrip("."))
    if fmt is not None and figure_format(fmt) != from_suffix:
        raise ValueError(f"{os.fspath(path)}: the suffix says {from_suffix} but the format asked for is {figure_format(fmt)}")
    return from_suffix


def check_image(image: Image.Image, result: ImageResult) -> None:
    """A result's coordinates are pixels of its image: refuse to draw it over an image of another size."""
    if result.error is not None:
        raise ValueError(f"{result.image}: nothing to draw ({result.error})")
    if image.size != (result.width, result.height):
        raise ValueError(f"the image is {image.width}x{image.height} but the result is of a "
                         f"{result.width}x{result.height} image ({result.image}): pass the image it was computed on")


def figure_bytes(kind: str, image: Image.Image, result: ImageResult, fmt: str, *, tree: bool = False,
                 compact: bool = False) -> bytes:
    """The file bytes of one figure (``kind`` gradcat or cam) of ``result`` drawn over ``image``.

    ``tree`` adds the GradCAT tree diagram beside each panel; ``compact`` (raster formats only)
    draws smaller panels and encodes JPEG at a lower quality: folder runs' default.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown figure kind {kind!r}; known: {', '.join(KINDS)}")
    fmt = figure_format(fmt)
    check_image(image, result)
    if fmt in ("png", "jpg"):
        from .raster import cam_image, encode_image, gradcat_image

        draw = gradcat_image if kind == "gradcat" else cam_image
        return encode_image(draw(image, result, tree=tree, compact=compact), fmt, compact=compact)
    from .vector import cam_figure, encode_figure, gradcat_figure

    draw = gradcat_figure if kind == "gradcat" else cam_figure
    return encode_figure(draw(image, result, tree=tree), fmt)


def write_figure(kind: str, image: Image.Image, result: ImageResult, path: str | os.PathLike[str],
                 fmt: str | None = None, **options: bool) -> None:
    """Draw and write one figure atomically, in the format of ``path``'s suffix (``fmt``, if given, must agree):
    the file is whole or absent, and an older one is kept on failure."""
    atomic_write_bytes(path, figure_bytes(kind, image, result, format_of(path, fmt), **options))


__all__ = ["FORMATS", "KINDS", "figure_format", "format_of", "check_image", "figure_bytes", "write_figure"]
