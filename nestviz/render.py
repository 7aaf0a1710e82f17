"""GradCAT and CAM figures, drawn headless and deterministically with matplotlib's Agg canvas.

Figures are plain ``matplotlib.figure.Figure`` objects on a ``FigureCanvasAgg`` (never pyplot:
no global registry, no window, nothing kept between images). Each panel's axes run in original
image pixels, so the coordinates in the result records are drawn as they are; the picture under
them is resized once to the panel's pixel size, which keeps the cost per figure bounded for
any image size. Panels of very wide or tall images show the model's region with some context.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
from matplotlib import patheffects, rc_context, transforms
from matplotlib.axes import Axes
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize, to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from .results import Box, ClassExplanation, ImageResult
from .weights import atomic_write_bytes

FORMATS = ("png", "jpg", "svg", "pdf")
DPI = 100
MAX_ASPECT = 2.0  # panels of wider (taller) images show the part around the model's region
# Okabe & Ito's colour-blind-safe palette (black left out: it vanishes on dark images), then grey.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#BBBBBB")
CMAP = "inferno"
TITLE_PT, SCORE_PT = 10.0, 7.0
_PAD, _TITLE, _GAP = 12, 34, 16  # pixels: figure margin, title band, gap between panels
_CBAR, _CBAR_GAP, _CBAR_LABELS = 12, 6, 62  # pixels: colour bar, its gap, its tick labels
_OUTLINE = [patheffects.withStroke(linewidth=3.0, foreground="black")]
_METADATA = {"svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}


def gradcat_figure(image: Image.Image, result: ImageResult) -> Figure:
    """One panel per explained class: block grids, the root-to-leaf path, and each visited node's child scores."""
    explained = [p for p in result.predictions if p.path]
    fig, axes, _ = _layout(_aspect(_view(result)), len(explained), colorbars=False)
    picture = _picture(image, result, axes[0])
    for i, (ax, pred) in enumerate(zip(axes, explained)):
        colour = PALETTE[i % len(PALETTE)]
        _show_image(ax, picture, result)
        _draw_grids(ax, result)
        _draw_path(ax, pred, colour)
        _title(ax, pred, colour)
    return fig


def cam_figure(image: Image.Image, result: ImageResult) -> Figure:
    """One panel per explained class: the class map over the image, its box and peak, and a colour bar.

    The colour scale of each panel runs from the map's minimum to its maximum (min-max normalized
    for display); its colour bar is labelled in raw logit units, where the map's mean is the logit.
    A white tick on the colour bar marks the box threshold (``threshold`` x max).
    """
    explained = [p for p in result.predictions if p.cam is not None]
    fig, axes, cbar_axes = _layout(_aspect(_view(result)), len(explained), colorbars=True)
    picture = _picture(image, result, axes[0])
    for i, (ax, cax, pred) in enumerate(zip(axes, cbar_axes, explained)):
        cam = pred.cam
        assert cam is not None
        _show_image(ax, picture, result)
        raw = np.asarray(cam.raw, dtype=np.float32)
        lo, hi = float(raw.min()), float(raw.max())
        x0, y0, x1, y1 = cam.region
        heat = ax.imshow(raw, cmap=CMAP, norm=Normalize(lo, hi if hi > lo else lo + 1e-6), alpha=0.55,
                         extent=(x0, x1, y1, y0), interpolation="bilinear", aspect="auto", zorder=2)
        ax.plot(*_outline(cam.box), color="white", linewidth=1.8, path_effects=_OUTLINE, zorder=4, gid="cam-box")
        ax.plot([cam.peak[0]], [cam.peak[1]], marker="X", markersize=9, color=PALETTE[i % len(PALETTE)],
                markeredgecolor="black", markeredgewidth=1.0, linestyle="none", zorder=5, gid="cam-peak")
        bar = fig.colorbar(heat, cax=cax)
        bar.solids.set_alpha(1.0)
        bar.locator = MaxNLocator(nbins=4)  # few ticks: legible, and each tick label costs time
        bar.set_label("class score (logit)", fontsize=SCORE_PT + 0.5)
        bar.ax.tick_params(labelsize=SCORE_PT, length=2, pad=1.5)
        if lo < cam.threshold * hi < hi:
            cax.axhline(cam.threshold * hi, color="white", linewidth=1.2)
        _title(ax, pred, PALETTE[i % len(PALETTE)])
    return fig


def save_figure(fig: Figure, path: str | os.PathLike[str], fmt: str | None = None) -> None:
    """Write ``fig`` as png, jpg, svg or pdf (``fmt``, else the suffix) atomically, then release it."""
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    fmt = "jpg" if fmt == "jpeg" else fmt
    try:
        if fmt not in FORMATS:
            raise ValueError(f"{path}: unknown figure format {fmt!r}; known: {', '.join(FORMATS)}")
        atomic_write_bytes(path, encode_figure(fig, fmt))
    finally:  # nothing else refers to the figure (no pyplot registry): dropping it frees it
        FigureCanvasBase(fig)  # swaps the canvas: the Agg pixel buffer goes now (fig.clear() costs 10% more time)


def encode_figure(fig: Figure, fmt: str) -> bytes:
    """The file bytes of ``fig`` in ``fmt``, the same for the same figure (no dates, no version strings)."""
    buf = io.BytesIO()
    if fmt in ("png", "jpg"):  # Agg pixels saved as RGB by Pillow: smaller and faster than savefig's RGBA
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        canvas.draw()
        rgb = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
        if fmt == "png":  # zlib level 1: twice as fast as the default, files ~5% larger
            rgb.save(buf, "PNG", compress_level=1, dpi=(DPI, DPI))
        else:
            rgb.save(buf, "JPEG", quality=90, dpi=(DPI, DPI))
    else:
        with rc_context({"svg.hashsalt": "nestviz", "svg.fonttype": "path"}):
            fig.savefig(buf, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    return buf.getvalue()


# -- layout -------------------------------------------------------------------------------------------
def _layout(aspect: float, n: int, colorbars: bool) -> tuple[Figure, list[Axes], list[Axes]]:
    """A figure with ``n`` image panels (up to 4 a row) of the given width / height ratio.

    Laid out in whole pixels, so each panel's picture can be placed pixel for pixel.
    """
    if n < 1:
        raise ValueError("nothing to draw: the result has no explained class for this figure")
    cols = n if n <= 4 else math.ceil(n / 2)
    rows = math.ceil(n / cols)
    pw, ph = _panel_pixels(aspect, large=n == 1)
    side = _CBAR_GAP + _CBAR + _CBAR_LABELS if colorbars else 0
    cell_w, cell_h = pw + side, ph + _TITLE
    fw = 2 * _PAD + cols * cell_w + (cols - 1) * _GAP
    fh = 2 * _PAD + rows * cell_h + (rows - 1) * _GAP
    fig = Figure(figsize=(fw / DPI, fh / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    axes, cbars = [], []
    for k in range(n):
        r, c = divmod(k, cols)
        left = _PAD + c * (cell_w + _GAP)
        bottom = fh - _PAD - r * (cell_h + _GAP) - cell_h
        ax = fig.add_axes((left / fw, bottom / fh, pw / fw, ph / fh), xticks=[], yticks=[])
        ax.patch.set_visible(False)  # the picture lies under the axes (see _show_image)
        axes.append(ax)
        if colorbars:
            cbars.append(fig.add_axes(((left + pw + _CBAR_GAP) / fw, bottom / fh, _CBAR / fw, ph / fh)))
    return fig, axes, cbars


def _panel_pixels(aspect: float, large: bool) -> tuple[int, int]:
    """Panel width and height: a constant area, at most 600 x 500 pixels."""
    side = 440 if large else 350
    w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
    if w > 600:
        w, h = 600, 600 / aspect
    if h > 500:
        w, h = 500 * aspect, 500
    return max(1, round(w)), max(1, round(h))


def _view(result: ImageResult) -> Box:
    """What a panel shows: the whole image, cut around the model's region to at most MAX_ASPECT : 1."""
    w, h = float(result.width), float(result.height)
    x0, y0, x1, y1 = _region(result)
    if w > MAX_ASPECT * h:
        w_view = MAX_ASPECT * h
        left = min(max((x0 + x1 - w_view) / 2.0, 0.0), w - w_view)
        return left, 0.0, left + w_view, h
    if h > MAX_ASPECT * w:
        h_view = MAX_ASPECT * w
        top = min(max((y0 + y1 - h_view) / 2.0, 0.0), h - h_view)
        return 0.0, top, w, top + h_view
    return 0.0, 0.0, w, h


def _aspect(box: Box) -> float:
    return (box[2] - box[0]) / (box[3] - box[1])


def _picture(image: Image.Image, result: ImageResult, ax: Axes) -> np.ndarray:
    """The viewed part of the image resized to the panel's pixel size, the part the model did not see dimmed.

    Resizing here keeps the drawing cost bounded for any image size. Shrinking averages pixels;
    enlarging a small image repeats them, showing what the model got.
    """
    vx0, vy0, vx1, vy1 = _view(result)
    sx, sy = image.width / result.width, image.height / result.height
    crop = (round(vx0 * sx), round(vy0 * sy), round(vx1 * sx), round(vy1 * sy))
    size = (round(ax.bbox.width), round(ax.bbox.height))
    shrink = size[0] < crop[2] - crop[0]
    resample = Image.Resampling.BILINEAR if shrink else Image.Resampling.NEAREST
    picture = np.array(image.convert("RGB").resize(size, resample, box=crop, reducing_gap=2.0 if shrink else None)
                       .convert("RGBA"))  # RGBA: matplotlib copies it as is (RGB would be resampled: 2.5x slower)
    x0, y0, x1, y1 = _region(result)  # dim what the model did not see (cheaper than drawing patches)
    cols = (np.arange(size[0]) + 0.5) * (vx1 - vx0) / size[0] + vx0
    rows = (np.arange(size[1]) + 0.5) * (vy1 - vy0) / size[1] + vy0
    outside = ~(((rows >= y0) & (rows < y1))[:, None] & ((cols >= x0) & (cols < x1))[None, :])
    picture[outside, :3] = (picture[outside, :3] * 0.55).astype(np.uint8)
    return picture


def _show_image(ax: Axes, picture: np.ndarray, result: ImageResult) -> None:
    """The picture from :func:`_picture` put pixel for pixel under the panel; the axes map original pixels onto it.

    (A figure image is copied as it is, which is much cheaper than resampling an ``imshow``.)
    """
    vx0, vy0, vx1, vy1 = _view(result)
    ax.get_figure().figimage(picture, xo=round(ax.bbox.x0), yo=round(ax.bbox.y0), origin="upper", zorder=-1)
    ax.set_xlim(vx0, vx1)  # fixes the limits: later artists do not rescale the view
    ax.set_ylim(vy1, vy0)


def _region(result: ImageResult) -> Box:
    """The part of the original image the model saw (its centre crop)."""
    s = float(result.geometry.size)
    return result.geometry.box_to_original((0.0, 0.0, s, s))


def _draw_grids(ax: Axes, result: ImageResult) -> None:
    """Each level's block grid over the model's region; finer levels fainter and thinner."""
    geo, s = result.geometry, float(result.geometry.size)
    x0, y0, x1, y1 = _region(result)
    levels = len(result.grid_sizes)
    for i, g in enumerate(result.grid_sizes):
        weight = i / max(levels - 1, 1)  # leaves (i = 0) faintest
        segments = []
        for k in range(1, g):
            u = k * s / g
            gx, gy = geo.point_to_original(u, u)
            segments += [((gx, y0), (gx, y1)), ((x0, gy), (x1, gy))]
        if i == levels - 1:  # the root block: the region's outline
            segments += [((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))]
        if segments:
            halo = patheffects.withStroke(linewidth=1.5 + 1.0 * weight, foreground=(0, 0, 0, 0.1 + 0.2 * weight))
            ax.add_collection(LineCollection(segments, colors=[(1, 1, 1, 0.3 + 0.55 * weight)],
                                             linewidths=0.5 + 1.0 * weight, zorder=2, path_effects=[halo]))


def _outline(box: Box) -> tuple[list[float], list[float]]:
    """x and y of a box's closed outline, for ``ax.plot`` (lighter to draw than a Rectangle patch)."""
    x0, y0, x1, y1 = box
    return [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0]


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def _draw_path(ax: Axes, pred: ClassExplanation, colour: str) -> None:
    """Dots at visited node centres (root to leaf) joined by lines, the leaf outlined, child scores written.

    Each child score is written just right of its block's centre, where the diagonal path lines
    never pass (moved left as far as needed to stay inside the panel).
    """
    nodes = sorted(pred.path or [], key=lambda n: -n.level)
    xs, ys = zip(*(_centre(n.box) for n in nodes))
    ax.plot(xs, ys, color=colour, linewidth=2.2, marker="o", markersize=6.5, markeredgecolor="black",
            markeredgewidth=1.0, path_effects=_OUTLINE, zorder=5, gid="gradcat-path")
    ax.plot(*_outline(nodes[-1].box), color=colour, linewidth=2.2, path_effects=_OUTLINE, zorder=4,
            gid="gradcat-leaf")
    text_on_colour = "black" if _luminance(colour) > 0.4 else "white"
    vx1 = ax.get_xlim()[1]
    pt_per_x = ax.bbox.width / (vx1 - ax.get_xlim()[0]) * 72 / DPI
    for node in nodes:
        if not node.child_scores:
            continue
        x0, y0, x1, y1 = node.box
        mx, my = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        for q, score in enumerate(node.child_scores):
            cx = (x0 + mx) / 2.0 if q % 2 == 0 else (mx + x1) / 2.0
            cy = (y0 + my) / 2.0 if q < 2 else (my + y1) / 2.0
            chosen, text = q == node.chosen_child, _compact(score)
            width_pt = (len(text) * 0.62 + 0.6) * SCORE_PT  # text and box, roughly
            shift = min(8.0, (vx1 - cx) * pt_per_x - width_pt - 2.0)  # 8 pt right of the centre, or less at the edge
            beside = transforms.offset_copy(ax.transData, fig=ax.get_figure(), x=shift, y=0, units="points")
            ax.text(cx, cy, text, transform=beside, ha="left", va="center",
                    fontsize=SCORE_PT, fontweight="bold" if chosen else "normal",
                    color=text_on_colour if chosen else "white",
                    zorder=7 if chosen else 6, gid="gradcat-score-chosen" if chosen else "gradcat-score",
                    bbox={"boxstyle": "round,pad=0.18", "linewidth": 0.6 if chosen else 0,
                          "facecolor": colour if chosen else (0, 0, 0, 0.6), "edgecolor": "black"})


def _title(ax: Axes, pred: ClassExplanation, colour: str) -> None:
    """Frame the panel in the class colour; title 'rank. label p%', the label cut with an ellipsis to fit."""
    for spine in ax.spines.values():
        spine.set(color=colour, linewidth=2.5, zorder=7)
    width_pt = ax.get_position().width * ax.figure.get_figwidth() * 72.0
    prefix, suffix = f"{pred.rank}. ", f" {pred.probability * 100:.1f}%"
    room = max(4, int(width_pt / (TITLE_PT * 0.6)) - len(prefix) - len(suffix))
    label = pred.label if len(pred.label) <= room else pred.label[: room - 1].rstrip() + "\u2026"
    ax.set_title(f"{prefix}{label}{suffix}", fontsize=TITLE_PT, loc="left", pad=4)


def _compact(v: float) -> str:
    """3 significant digits, short exponents: 0.0123, 1.23, -45.6, 1.2e-05 -> 1.2e-5."""
    s = f"{v:.3g}"
    return s.replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


def _luminance(colour: str) -> float:
    r, g, b = to_rgb(colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
