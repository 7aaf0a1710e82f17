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

from .._text import shown
from ..defaults import CAM_BOX_REGION
from ..results.records import Box, ClassExplanation, ImageResult, PathNode
from .style import DIM, HEADER_PT, PT, SCORE_PT, SETTLED, TITLE_PT

MAX_ASPECT = 2.0  # panels of wider (taller) images show the part around the model's region
PAD, TITLE, GAP = 12, 34, 16  # pixels: figure margin, title band, gap between panels
HEADER_LINE = 16  # pixels between header baselines; the header: the facts (image, true label, the model's top
# class, fit), then the legend, each wrapped to the figure's width (never cut)
CBAR, CBAR_GAP, CBAR_LABELS = 12, 6, 62  # pixels: colour bar, its gap, its tick labels
TREE_GAP, TREE_W = 10, 210  # pixels: the tree diagram beside a GradCAT panel (--tree)
COMPACT = 0.7  # panel side of compact figures (folder runs' default), relative to full size


@dataclass(frozen=True)
class Panel:
    """One panel's picture rectangle in figure pixels (origin top-left), and its colour bar's, if any."""

    left: int
    top: int
    width: int
    height: int
    colorbar: tuple[int, int, int, int] | None = None  # left, top, width, height
    tree: tuple[int, int, int, int] | None = None  # the tree diagram's rectangle (--tree)


HeaderLine = tuple[str, float, bool]  # text, size in points, bold


@dataclass(frozen=True)
class FigureLayout:
    width: int
    height: int
    panels: list[Panel]
    header: tuple[int, int] = (PAD, PAD)  # left and top of the header's lines
    header_text: tuple[HeaderLine, ...] = ()  # the lines, baselines at ``header_line_y``


def figure_layout(result: ImageResult, n: int, colorbars: bool, tree: bool = False,
                  compact: bool = False, kind: str | None = None) -> FigureLayout:
    """``n`` panels (up to 4 a row) with the aspect of the image's view, laid out in whole pixels, under a header
    (``kind``'s, by default cam's with ``colorbars``, else gradcat's) wrapped to the figure's width."""
    if n < 1:
        raise ValueError("nothing to draw: the result has no explained class for this figure")
    cols = n if n <= 4 else math.ceil(n / 2)
    rows = math.ceil(n / cols)
    pw, ph = panel_pixels(aspect(view(result)), large=n == 1, scale=COMPACT if compact else 1.0)
    side = (CBAR_GAP + CBAR + CBAR_LABELS if colorbars else 0) + (TREE_GAP + TREE_W if tree else 0)
    cell_w, cell_h = pw + side, max(ph, tree_height(len(result.grid_sizes)) if tree else 0) + TITLE
    fw = 2 * PAD + cols * cell_w + (cols - 1) * GAP
    lines = header_lines(result, kind or ("cam" if colorbars else "gradcat"), fw - 2 * PAD)
    header = header_line_y(0, len(lines) - 1) + 8  # the last baseline and room for descenders
    fh = 2 * PAD + header + rows * cell_h + (rows - 1) * GAP
    panels = []
    for k in range(n):
        r, c = divmod(k, cols)
        left, top = PAD + c * (cell_w + GAP), PAD + header + r * (cell_h + GAP) + TITLE
        bar = (left + pw + CBAR_GAP, top, CBAR, ph) if colorbars else None
        box = (left + cell_w - TREE_W, top, TREE_W, cell_h - TITLE) if tree else None
        panels.append(Panel(left, top, pw, ph, bar, box))
    return FigureLayout(fw, fh, panels, header_text=tuple(lines))


def tree_height(levels: int) -> int:
    """The least height of a tree diagram of ``levels`` rows."""
    return 40 * levels


def panel_pixels(ratio: float, large: bool, scale: float = 1.0) -> tuple[int, int]:
    """Panel width and height: a constant area, at most 600 x 500 pixels (times ``scale``)."""
    side = (440 if large else 350) * scale
    ratio = min(max(ratio, 1 / 50), 50)
    w, h = side * math.sqrt(ratio), side / math.sqrt(ratio)
    if w > 600 * scale:
        w, h = 600 * scale, 600 * scale / ratio
    if h > 500 * scale:
        w, h = 500 * scale * ratio, 500 * scale
    return max(1, round(w)), max(1, round(h))


def view(result: ImageResult) -> Box:
    """What a panel shows: for ``crop``, the whole image cut around the model's region to at most
    MAX_ASPECT : 1 (the region framed, the rest dimmed); for ``pad`` and ``squash``, exactly what the
    model saw: the region (for pad, the image with the border around it)."""
    if result.fit in ("pad", "squash"):
        return result.region
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


_DIM_LUT = [int(v * DIM) for v in range(256)] * 3  # each band's bytes dimmed as ``(byte * DIM).astype(uint8)``


def panel_picture(image: Image.Image, result: ImageResult, size: tuple[int, int]) -> Image.Image:
    """The viewed part of the image resized to the panel's pixel ``size`` (RGB), the part the model did not see dimmed.

    Resizing here keeps the drawing cost bounded for any image size. Shrinking averages pixels;
    enlarging a small image repeats them, showing what the model got.
    """
    vx0, vy0, vx1, vy1 = view(result)
    sx, sy = image.width / result.width, image.height / result.height
    if vx0 < 0 or vy0 < 0 or vx1 > result.width or vy1 > result.height:  # pad: the border the model saw
        return _padded_picture(image, result, size)
    crop = (round(vx0 * sx), round(vy0 * sy), round(vx1 * sx), round(vy1 * sy))
    shrink = size[0] < crop[2] - crop[0]
    resample = Image.Resampling.BILINEAR if shrink else Image.Resampling.NEAREST
    picture = _rgb(image).resize(size, resample, box=crop, reducing_gap=2.0 if shrink else None)
    x0, y0, x1, y1 = result.region
    cols = (np.arange(size[0]) + 0.5) * (vx1 - vx0) / size[0] + vx0
    rows = (np.arange(size[1]) + 0.5) * (vy1 - vy0) / size[1] + vy0
    return _dim_outside(picture, np.flatnonzero((cols >= x0) & (cols < x1)), np.flatnonzero((rows >= y0) & (rows < y1)))


def _rgb(image: Image.Image) -> Image.Image:
    """``image`` as RGB, not copied when it is already (resizing makes a new image anyway)."""
    return image if image.mode == "RGB" else image.convert("RGB")


def _dim_outside(picture: Image.Image, seen_cols: np.ndarray, seen_rows: np.ndarray) -> Image.Image:
    """``picture`` dimmed outside the seen columns and rows (each a run): all dimmed by a lookup, the seen
    rectangle put back, which is cheaper than masking pixels in numpy."""
    if len(seen_cols) == picture.width and len(seen_rows) == picture.height:
        return picture
    dimmed = picture.point(_DIM_LUT)
    if len(seen_cols) and len(seen_rows):
        box = (int(seen_cols[0]), int(seen_rows[0]), int(seen_cols[-1]) + 1, int(seen_rows[-1]) + 1)
        dimmed.paste(picture.crop(box), box[:2])
    return dimmed


def _padded_picture(image: Image.Image, result: ImageResult, size: tuple[int, int]) -> Image.Image:
    """The view of a ``pad`` result: the image inside the border colour, at the panel's pixel ``size``."""
    vx0, vy0, vx1, vy1 = view(result)
    sx, sy = size[0] / (vx1 - vx0), size[1] / (vy1 - vy0)
    canvas = Image.new("RGB", size, tuple(result.pad_rgb))
    left, top = round(-vx0 * sx), round(-vy0 * sy)
    inner = (max(1, round((result.width - vx0) * sx) - left), max(1, round((result.height - vy0) * sy) - top))
    shrink = inner[0] < image.width
    canvas.paste(_rgb(image).resize(inner, Image.Resampling.BILINEAR if shrink else Image.Resampling.NEAREST,
                                    reducing_gap=2.0 if shrink else None), (left, top))
    return canvas


def title_text(pred: ClassExplanation, width_px: float) -> str:
    """'#rank label p%' (rank among all classes), the label cut with an ellipsis so the title fits ``width_px``."""
    prefix, suffix = f"#{pred.rank} ", f" {pred.probability * 100:.1f}%"
    room = max(4, int(width_px / PT / (TITLE_PT * 0.6)) - len(prefix) - len(suffix))
    label = shown(pred.label)  # a label or file name is drawn as written, control characters escaped
    label = label if len(label) <= room else label[: room - 1].rstrip() + "\u2026"
    return f"{prefix}{label}{suffix}"


LEGENDS = {  # what the numbers and marks are, exactly (child_shares computes the numbers)
    "gradcat": "Numbers: each child's score / the sum of the 4 children's |scores| (signed); bold: the path",
    "cam": {"peak": "\u2715: the peak; white box: the region around it above the threshold (bar tick)",
            "largest": "White box: the largest region above the threshold (bar tick); \u2715: the peak"}[CAM_BOX_REGION],
}


SETTLED_LEGEND = f"{SETTLED}: a close call, decided by removing each of the two best children"  # where one is drawn


def header_line_y(top: int, i: int) -> int:
    """The baseline of header line ``i`` in figure pixels, the header starting at ``top``."""
    return top + 12 + HEADER_LINE * i


def wrap(parts: list[str], sep: str, width_px: float, size_pt: float, bold: bool = False) -> list[str]:
    """``parts`` joined with ``sep`` into lines of at most about ``width_px`` at ``size_pt`` (DejaVu Sans,
    a generous 0.62 em a character, 0.7 bold), broken at spaces; a word longer than a line is broken
    over lines, never cut."""
    room = max(4, int(width_px / PT / (size_pt * (0.7 if bold else 0.62))))
    words = [(w, sep if k == 0 else " ") for part in parts for k, w in enumerate(part.split(" "))]
    lines: list[str] = []
    for word, joiner in words:
        if lines and len(lines[-1]) + len(joiner) + len(word) <= room:
            lines[-1] += joiner + word
            continue
        while len(word) > room:
            lines.append(word[:room])
            word = word[room:]
        lines.append(word)
    return lines


def header_lines(result: ImageResult, kind: str, width_px: float) -> list[HeaderLine]:
    """The figure's header, wrapped to ``width_px``: file name, true label, the model's top class and fit
    (bold); the legend (for GradCAT with the mark of a close call where a path has one)."""
    name = result.image.replace("\\", "/").rsplit("/", 1)[-1]
    bits = [shown(name)]
    if result.true_label:
        bits.append(f"true: {shown(result.true_label)}")
    if result.top is not None:
        bits.append(f"model's top class: {shown(result.top.heading)}")
    bits.append(f"fit: {result.fit}")
    facts = [(t, HEADER_PT, True) for t in wrap(bits, "  \u00b7  ", width_px, HEADER_PT, bold=True)]
    settled = kind == "gradcat" and any(n.removal_drops is not None for p in result.predictions for n in p.path or [])
    text = f"{LEGENDS[kind]}; {SETTLED_LEGEND}" if settled else LEGENDS[kind]
    legend = [(t, HEADER_PT - 1, False) for t in wrap([text], "", width_px, HEADER_PT - 1)]
    return facts + legend


def centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def child_shares(node: PathNode) -> list[str]:
    """A node's child scores on one scale for every level: each divided by the sum of the four children's
    |scores|, sign kept (not a share of the parent's score, which differs when a child's score is negative); the
    chosen child marked :data:`SETTLED` where removal decided a close call (``PathNode.removal_drops``)."""
    scores = node.child_scores or []
    total = sum(abs(v) for v in scores)
    texts = [f"{100 * v / total:.0f}%".replace("-", "\u2212") if total > 0 else "0%" for v in scores]
    if node.removal_drops is not None and node.chosen_child is not None and node.chosen_child < len(texts):
        texts[node.chosen_child] += SETTLED
    return texts


@dataclass(frozen=True)
class ScoreLabel:
    """A child score placed in figure pixels: ``x`` its left edge, ``y`` its vertical centre."""

    text: str
    chosen: bool
    x: float
    y: float
    width: float
    height: float

    def overlaps(self, other: "ScoreLabel", gap: float = 1.0) -> bool:
        return (self.x < other.x + other.width + gap and other.x < self.x + self.width + gap
                and abs(self.y - other.y) < (self.height + other.height) / 2 + gap)


def label_size(text: str, bold: bool) -> tuple[float, float]:
    """A score label's box in pixels, text and padding (a little generous, so real text fits inside)."""
    em = SCORE_PT * PT
    return len(text) * em * (0.68 if bold else 0.64) + 0.5 * em, 1.5 * em


def score_labels(pred: ClassExplanation, to_px, panel: Panel) -> list[ScoreLabel]:  # noqa: ANN001
    """Every visited node's child shares, placed so that no two overlap and all stay in the panel.

    A label goes right of its quadrant's centre (where the diagonal path never passes), else left,
    above or below it; the chosen children are placed first, root first; a label with no free
    place is left out (the tree diagram and the JSON have every value).
    """
    nodes = sorted(pred.path or [], key=lambda n: -n.level)
    wanted = []
    for node in nodes:
        x0, y0, x1, y1 = node.box
        mx, my = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        for q, text in enumerate(child_shares(node)):
            qx = (x0 + mx) / 2.0 if q % 2 == 0 else (mx + x1) / 2.0
            qy = (y0 + my) / 2.0 if q < 2 else (my + y1) / 2.0
            wanted.append((q != node.chosen_child, text, q == node.chosen_child, *to_px(qx, qy)))
    placed: list[ScoreLabel] = []
    shift = 8 * PT
    for _, text, chosen, cx, cy in sorted(wanted, key=lambda w: w[0]):
        w, h = label_size(text, chosen)
        for x, y in ((cx + shift, cy), (cx - shift - w, cy), (cx - w / 2, cy - shift), (cx - w / 2, cy + shift)):
            label = ScoreLabel(text, chosen, round(x), round(y), w, h)
            inside = (panel.left + 1 <= label.x and label.x + w <= panel.left + panel.width - 1
                      and panel.top + 1 <= label.y - h / 2 and label.y + h / 2 <= panel.top + panel.height - 1)
            if inside and not any(label.overlaps(o) for o in placed):
                placed.append(label)
                break
    return placed


def threshold_value(lo: float, hi: float, threshold: float) -> float:
    """Where the box threshold lies on a map's scale: ``threshold`` of the way from its min to its max
    (as ``methods.cam.localize`` thresholds the min-max normalized map)."""
    return lo + threshold * (hi - lo)


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
