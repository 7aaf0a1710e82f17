"""Where things go in a figure, shared by both renderers: panel sizes, the part of the image shown, titles.

Pure geometry and text, no drawing library: the raster renderer (``raster.py``, png/jpg) and the
vector one (``vector.py``, svg/pdf) place the same panels at the same pixels from these functions
(and look alike through ``style.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..results import Box, ClassExplanation, ImageResult, PathNode
from .style import DIM, PT, TITLE_PT, compact

MAX_ASPECT = 2.0  # panels of wider (taller) images show the part around the model's region
PAD, TITLE, GAP = 12, 34, 16  # pixels: figure margin, title band, gap between panels
CBAR, CBAR_GAP, CBAR_LABELS = 12, 6, 62  # pixels: colour bar, its gap, its tick labels


@dataclass(frozen=True)
class Panel:
    """One panel's picture rectangle in figure pixels (origin top-left), and its colour bar's, if any."""

    left: int
    top: int
    width: int
    height: int
    colorbar: tuple[int, int, int, int] | None = None  # left, top, width, height


@dataclass(frozen=True)
class FigureLayout:
    width: int
    height: int
    panels: list[Panel]


def figure_layout(result: ImageResult, n: int, colorbars: bool) -> FigureLayout:
    """``n`` panels (up to 4 a row) with the aspect of the image's view, laid out in whole pixels."""
    if n < 1:
        raise ValueError("nothing to draw: the result has no explained class for this figure")
    cols = n if n <= 4 else math.ceil(n / 2)
    rows = math.ceil(n / cols)
    pw, ph = panel_pixels(aspect(view(result)), large=n == 1)
    side = CBAR_GAP + CBAR + CBAR_LABELS if colorbars else 0
    cell_w, cell_h = pw + side, ph + TITLE
    fw = 2 * PAD + cols * cell_w + (cols - 1) * GAP
    fh = 2 * PAD + rows * cell_h + (rows - 1) * GAP
    panels = []
    for k in range(n):
        r, c = divmod(k, cols)
        left, top = PAD + c * (cell_w + GAP), PAD + r * (cell_h + GAP) + TITLE
        bar = (left + pw + CBAR_GAP, top, CBAR, ph) if colorbars else None
        panels.append(Panel(left, top, pw, ph, bar))
    return FigureLayout(fw, fh, panels)


def panel_pixels(ratio: float, large: bool) -> tuple[int, int]:
    """Panel width and height: a constant area, at most 600 x 500 pixels."""
    side = 440 if large else 350
    w, h = side * math.sqrt(ratio), side / math.sqrt(ratio)
    if w > 600:
        w, h = 600, 600 / ratio
    if h > 500:
        w, h = 500 * ratio, 500
    return max(1, round(w)), max(1, round(h))


def view(result: ImageResult) -> Box:
    """What a panel shows: the whole image, cut around the model's region to at most MAX_ASPECT : 1."""
    w, h = float(result.width), float(result.height)
    x0, y0, x1, y1 = result.region
    if w > MAX_ASPECT * h:
        w_view = MAX_ASPECT * h
        left = min(max((x0 + x1 - w_view) / 2.0, 0.0), w - w_view)
        return left, 0.0, left + w_view, h
    if h > MAX_ASPECT * w:
        h_view = MAX_ASPECT * w
        top = min(max((y0 + y1 - h_view) / 2.0, 0.0), h - h_view)
        return 0.0, top, w, top + h_view
    return 0.0, 0.0, w, h


def aspect(box: Box) -> float:
    return (box[2] - box[0]) / (box[3] - box[1])


def panel_picture(image: Image.Image, result: ImageResult, size: tuple[int, int]) -> Image.Image:
    """The viewed part of the image resized to the panel's pixel ``size`` (RGB), the part the model did not see dimmed.

    Resizing here keeps the drawing cost bounded for any image size. Shrinking averages pixels;
    enlarging a small image repeats them, showing what the model got.
    """
    vx0, vy0, vx1, vy1 = view(result)
    sx, sy = image.width / result.width, image.height / result.height
    crop = (round(vx0 * sx), round(vy0 * sy), round(vx1 * sx), round(vy1 * sy))
    shrink = size[0] < crop[2] - crop[0]
    resample = Image.Resampling.BILINEAR if shrink else Image.Resampling.NEAREST
    picture = np.array(image.convert("RGB").resize(size, resample, box=crop, reducing_gap=2.0 if shrink else None))
    x0, y0, x1, y1 = result.region
    cols = (np.arange(size[0]) + 0.5) * (vx1 - vx0) / size[0] + vx0
    rows = (np.arange(size[1]) + 0.5) * (vy1 - vy0) / size[1] + vy0
    outside = ~(((rows >= y0) & (rows < y1))[:, None] & ((cols >= x0) & (cols < x1))[None, :])
    picture[outside] = (picture[outside] * DIM).astype(np.uint8)
    return Image.fromarray(picture)


def title_text(pred: ClassExplanation, width_px: float) -> str:
    """'rank. label p%', the label cut with an ellipsis so the title fits ``width_px``."""
    prefix, suffix = f"{pred.rank}. ", f" {pred.probability * 100:.1f}%"
    room = max(4, int(width_px / PT / (TITLE_PT * 0.6)) - len(prefix) - len(suffix))
    label = pred.label if len(pred.label) <= room else pred.label[: room - 1].rstrip() + "\u2026"
    return f"{prefix}{label}{suffix}"


def centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def score_anchors(node: PathNode) -> list[tuple[str, bool, float, float]]:
    """Each child score of a visited node as (text, chosen, x, y): the centre of its quadrant, in original pixels."""
    if not node.child_scores:
        return []
    x0, y0, x1, y1 = node.box
    mx, my = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return [(compact(score), q == node.chosen_child, (x0 + mx) / 2.0 if q % 2 == 0 else (mx + x1) / 2.0,
             (y0 + my) / 2.0 if q < 2 else (my + y1) / 2.0) for q, score in enumerate(node.child_scores)]


def nice_ticks(lo: float, hi: float, max_ticks: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 x 10^k) inside [lo, hi], at most ``max_ticks`` of them."""
    if not hi > lo:
        return [lo]
    for k in range(math.floor(math.log10((hi - lo) / max_ticks)), 20):
        for m in (1.0, 2.0, 2.5, 5.0):
            step = m * 10.0 ** k
            first = math.ceil(lo / step - 1e-9)
            ticks = [(first + i) * step for i in range(int(math.floor(hi / step + 1e-9)) - first + 1)]
            if len(ticks) <= max_ticks:
                return [0.0 if abs(t) < step * 1e-9 else t for t in ticks]
    return [lo, hi]
