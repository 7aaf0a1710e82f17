"""Pillow drawing pieces of the raster figures: fonts, the colour map, smooth marks, outlines, text lines
and the tree diagram. ``raster.py`` puts them together; ``layout.py`` and ``tree.py`` say where."""

from __future__ import annotations

import math
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..results.records import ClassExplanation
from .layout import Panel
from .style import SCORE_PT, TREE_EDGE, colormap, luminance, rgb
from .tree import tree_diagram

SS = 2  # supersampling of the smooth-edged marks
BLACK, WHITE = (0, 0, 0), (255, 255, 255)


@lru_cache(maxsize=8)
def font(size_pt: float, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (the font matplotlib ships, so both renderers write alike), else Pillow's own."""
    from .style import PT

    spec = find_spec("matplotlib")
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "mpl-data" / "fonts" / "ttf" / name
        if path.is_file():
            return ImageFont.truetype(str(path), round(size_pt * PT))
    return ImageFont.load_default(round(size_pt * PT))


def text(canvas: Image.Image, xy: tuple[float, float], label: str, size_pt: float, bold: bool = False,
         anchor: str = "la", fill: tuple[int, ...] = BLACK) -> None:
    """``label`` drawn as ``ImageDraw.text`` draws it (pixel for pixel), its mask rendered once and pasted after:
    score labels, ticks and tree texts repeat across panels and figures, and rendering glyphs is the cost."""
    x, y = xy
    if x < 0 or y < 0 or "\n" in label:  # whole pixels and fractions split otherwise: draw it plainly
        ImageDraw.Draw(canvas).text(xy, label, font=font(size_pt, bold), anchor=anchor, fill=fill)
        return
    (fx, ix), (fy, iy) = math.modf(x), math.modf(y)
    mask, (dx, dy) = text_mask(label, size_pt, bold, anchor, fx, fy)
    canvas.paste(fill, (int(ix) - dx, int(iy) - dy), mask)


@lru_cache(maxsize=2048)
def text_mask(label: str, size_pt: float, bold: bool, anchor: str, fx: float,
              fy: float) -> tuple[Image.Image, tuple[int, int]]:
    """``label``'s coverage (L) as ``ImageDraw.text`` renders it at sub-pixel offset ``(fx, fy)``, and where the
    text's whole-pixel origin lies in it (the same glyph bitmap, so pasting it with the ink gives the same pixels)."""
    f = font(size_pt, bold)
    left, top, right, bottom = f.getbbox(label, anchor=anchor)
    ox, oy = 2 + max(0, -math.floor(left)), 2 + max(0, -math.floor(top))  # 2: room for a sub-pixel shift
    mask = Image.new("L", (ox + max(0, math.ceil(right)) + 2, oy + max(0, math.ceil(bottom)) + 2), 0)
    ImageDraw.Draw(mask).text((ox + fx, oy + fy), label, font=f, anchor=anchor, fill=255)
    return mask, (ox, oy)


def rounded_box(canvas: Image.Image, box: tuple[int, int, int, int], radius: int, fill: tuple[int, ...],
                outline: tuple[int, int, int] | None = None) -> None:
    """``ImageDraw.rounded_rectangle(box, radius, fill, outline, width=1)`` in RGBA mode, pixel for pixel, pasted
    from a kept tile: a GradCAT figure has dozens of score label boxes of a few sizes."""
    tile, mask = _rounded_tile(box[2] - box[0], box[3] - box[1], radius, fill, outline)
    canvas.paste(tile, box[:2], mask)


@lru_cache(maxsize=256)
def _rounded_tile(width: int, height: int, radius: int, fill: tuple[int, ...],
                  outline: tuple[int, int, int] | None) -> tuple[Image.Image, Image.Image]:
    """A rounded box at the origin: its colours (RGB) and coverage (L: the fill's alpha, the outline opaque)."""
    shape = (0, 0, width, height)  # Pillow's boxes include their last pixel
    tile = Image.new("RGB", (width + 1, height + 1), fill[:3])
    mask = Image.new("L", tile.size, 0)
    alpha = fill[3] if len(fill) == 4 else 255
    ImageDraw.Draw(mask).rounded_rectangle(shape, radius, fill=alpha, outline=None if outline is None else 255, width=1)
    if outline is not None:
        ImageDraw.Draw(tile).rounded_rectangle(shape, radius, outline=outline, width=1)
    return tile, mask


class Marks:
    """Smooth-edged marks over one panel: drawn at SS x size on a transparent layer, shrunk, composited.

    Every mark ends in a black edge, so shrinking leaves no coloured fringe. The marks are opaque,
    so the layer is the same premultiplied (RGBa) as straight: drawn RGBa, it is shrunk as it is, where
    Pillow would premultiply a full-size RGBA layer and back.
    """

    def __init__(self, canvas: Image.Image, panel: Panel, points: list[tuple[float, float]], margin: float) -> None:
        """A layer over the part of ``panel`` within ``margin`` pixels of ``points`` (smaller layer, less work)."""
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0 = max(panel.left, int(min(xs) - margin))
        y0 = max(panel.top, int(min(ys) - margin))
        x1 = min(panel.left + panel.width, int(max(xs) + margin) + 1)
        y1 = min(panel.top + panel.height, int(max(ys) + margin) + 1)
        self.canvas, self.origin = canvas, (x0, y0)
        self.layer = Image.new("RGBa", (max(1, x1 - x0) * SS, max(1, y1 - y0) * SS), (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.layer)

    def _xy(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.origin[0]) * SS, (y - self.origin[1]) * SS

    def polyline(self, points: list[tuple[float, float]], colour: tuple[int, int, int], width: float) -> None:
        pts = [self._xy(*p) for p in points]
        for fill, w in ((BLACK, width + 2.5), (colour, width)):
            self.draw.line(pts, fill=fill, width=max(1, round(w * SS)), joint="curve")
            for x, y in pts:  # round caps
                r = w * SS / 2
                self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def dot(self, x: float, y: float, diameter: float, colour: tuple[int, int, int]) -> None:
        cx, cy = self._xy(x, y)
        r = diameter * SS / 2
        self.draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline=BLACK, width=round(1.8 * SS))

    def cross(self, x: float, y: float, size: float, colour: tuple[int, int, int]) -> None:
        """matplotlib's filled 'X' marker: a plus of arm half-width size/6, turned 45 degrees."""
        cx, cy = self._xy(x, y)
        a, t = size * SS / 2, size * SS / 6
        plus = [(t, a), (t, t), (a, t), (a, -t), (t, -t), (t, -a), (-t, -a), (-t, -t), (-a, -t), (-a, t), (-t, t), (-t, a)]
        c = 0.70710678
        pts = [(cx + (u - v) * c, cy + (u + v) * c) for u, v in plus]
        self.draw.polygon(pts, fill=colour, outline=BLACK, width=round(1.4 * SS))

    def paste(self) -> None:
        small = self.layer.reduce(SS).convert("RGBA")
        self.canvas.paste(small, self.origin, small)


def outline(draw: ImageDraw.ImageDraw, box: list[float], colour: tuple[int, int, int], width: int, halo: int) -> None:
    """An axis-aligned outline on whole pixels, with a black halo ``halo`` pixels wide on each side."""
    x0, y0, x1, y1 = (round(v) for v in box)
    if halo:
        draw.rectangle((x0 - width // 2 - halo, y0 - width // 2 - halo, x1 + width // 2 + halo, y1 + width // 2 + halo),
                       outline=BLACK, width=width + 2 * halo)
    draw.rectangle((x0 - width // 2, y0 - width // 2, x1 + width // 2, y1 + width // 2), outline=colour, width=width)


def text_lines(canvas: Image.Image, lines: list[tuple[str, float, bool]], left: int, top: int) -> None:
    """Lines of (text, size in points, bold) down from ``(left, top)``, baselines as ``layout.header_line_y`` says."""
    from .layout import header_line_y

    draw = ImageDraw.Draw(canvas)
    for i, (line, size, bold) in enumerate(lines):
        if bold:  # the file name and classes: new for each image, not worth keeping
            draw.text((left, header_line_y(top, i)), line, font=font(size, bold=True), anchor="ls", fill=BLACK)
        else:  # the legend: the same in every figure of a kind
            text(canvas, (left, header_line_y(top, i)), line, size, anchor="ls")


def tree(canvas: Image.Image, pred: ClassExplanation, panel: Panel, colour: str) -> None:
    """The tree diagram of ``pred`` in ``panel.tree`` (see ``tree.tree_diagram``)."""
    assert panel.tree is not None
    diagram = tree_diagram(pred, panel.tree)
    draw = ImageDraw.Draw(canvas)
    c, grey = rgb(colour), rgb(TREE_EDGE)
    for e in diagram.edges:
        draw.line((*map(round, e.start), *map(round, e.end)), fill=c if e.chosen else grey, width=3 if e.chosen else 1)
    on_colour = BLACK if luminance(colour) > 0.4 else WHITE
    for n in diagram.nodes:
        draw.rectangle(tuple(round(v) for v in n.box), fill=c if n.chosen else WHITE, outline=BLACK if n.chosen else grey,
                       width=1)
        text(canvas, ((n.box[0] + n.box[2]) / 2, (n.box[1] + n.box[3]) / 2), n.text, SCORE_PT, bold=n.chosen,
             anchor="mm", fill=on_colour if n.chosen else BLACK)
    for row, x, y in diagram.rows:
        text(canvas, (x, y), row, SCORE_PT, anchor="lm", fill=grey)
