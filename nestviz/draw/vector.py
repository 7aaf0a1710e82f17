"""GradCAT and CAM figures as matplotlib figures: the vector (svg, pdf) renderer, headless and deterministic.

PNG and JPEG files come from the faster ``raster`` module, from the same layout (``layout.py``)
and style (``style.py``).

Figures are plain ``matplotlib.figure.Figure`` objects on a ``FigureCanvasAgg`` (never pyplot:
no global registry, no window, nothing kept between images). Each panel's axes run in original
image pixels, so the coordinates in the result records are drawn as they are; the picture under
them is resized once to the panel's pixel size, which keeps the cost per figure bounded for
any image size. Panels of very wide or tall images show the model's region with some context.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib import patheffects, rc_context, transforms
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from ..results.records import Box, ClassExplanation, ImageResult
from .layout import (CBAR, CBAR_LABELS, Panel, centre, figure_layout, header_line_y, nice_ticks, panel_picture, score_labels,
                     threshold_value, title_text, view)
from .style import (CBAR_LABEL, CMAP, DOT_PT, DPI, HEAT_ALPHA, PATH_PT, PEAK_PT, PT, SCORE_PT, TITLE_PT,
                    TREE_EDGE, VECTOR_FONTS, class_colour, grid_style, luminance)
from .tree import tree_diagram

FORMATS = ("svg", "pdf")
_OUTLINE = [patheffects.withStroke(linewidth=3.0, foreground="black")]
_METADATA = {"svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}


def gradcat_figure(image: Image.Image, result: ImageResult, tree: bool = False) -> Figure:
    """One panel per explained class: block grids, the root-to-leaf path, each visited node's child shares
    (and with ``tree``, the tree diagram beside the panel)."""
    explained = [p for p in result.predictions if p.path]
    fig, axes, _, lay = _layout(result, len(explained), "gradcat", tree=tree)
    picture = _picture(image, result, axes[0])
    for i, (ax, pred, panel) in enumerate(zip(axes, explained, lay.panels)):
        colour = class_colour(i)
        _show_image(ax, picture, result)
        _draw_grids(ax, result)
        _draw_path(ax, pred, colour, panel)
        _title(ax, pred, colour)
        if tree:
            _draw_tree(fig, pred, panel, colour)
    return fig


def cam_figure(image: Image.Image, result: ImageResult, tree: bool = False) -> Figure:  # noqa: ARG001
    """One panel per explained class: the class map over the image, its box and peak, and a colour bar.

    The colour scale of each panel runs from the map's minimum to its maximum (min-max normalized
    for display); its colour bar is labelled in raw logit units, where the map's mean is the logit.
    A white tick on the colour bar, labelled 'box', marks the box threshold. (``tree`` is for GradCAT
    figures: a CAM figure has none.)
    """
    explained = [p for p in result.predictions if p.cam is not None]
    fig, axes, cbar_axes, _ = _layout(result, len(explained), "cam")
    picture = _picture(image, result, axes[0])
    for i, (ax, cax, pred) in enumerate(zip(axes, cbar_axes, explained)):
        cam = pred.cam
        assert cam is not None
        _show_image(ax, picture, result)
        raw = np.asarray(cam.raw, dtype=np.float32)
        lo, hi = float(raw.min()), float(raw.max())
        x0, y0, x1, y1 = cam.region
        heat = ax.imshow(raw, cmap=CMAP, norm=Normalize(lo, hi if hi > lo else lo + 1e-6), alpha=HEAT_ALPHA,
                         extent=(x0, x1, y1, y0), interpolation="bilinear", aspect="auto", zorder=2)
        ax.plot(*_outline(cam.box), color="white", linewidth=1.8, path_effects=_OUTLINE, zorder=4, gid="cam-box")
        ax.plot([cam.peak[0]], [cam.peak[1]], marker="X", markersize=PEAK_PT, color=class_colour(i),
                markeredgecolor="black", markeredgewidth=1.0, linestyle="none", zorder=5, gid="cam-peak")
        bar = fig.colorbar(heat, cax=cax)
        bar.solids.set_alpha(1.0)
        tv = threshold_value(lo, hi, cam.threshold)
        px_per_unit = cax.bbox.height / (hi - lo if hi > lo else 1e-6)
        bar.set_ticks([v for v in nice_ticks(lo, hi) if abs(v - tv) * px_per_unit >= 1.2 * SCORE_PT * PT])
        bar.set_label(CBAR_LABEL.get(cam.kind, CBAR_LABEL["logit"]), fontsize=SCORE_PT + 0.5)
        # where the Pillow renderer puts it (right-aligned in the labels' room): clear of the "box" tick's text
        cax.yaxis.set_label_coords((CBAR + CBAR_LABELS - 12 - 1.2 * (SCORE_PT + 0.5) * PT) / CBAR, 0.5)
        bar.ax.tick_params(labelsize=SCORE_PT, length=2, pad=1.5)
        cax.axhline(tv, color="white", linewidth=1.2, gid="cam-threshold")
        cax.text(1.0, tv, "  box", transform=transforms.blended_transform_factory(cax.transAxes, cax.transData),
                 fontsize=SCORE_PT, fontweight="bold", va="center", ha="left")
        _title(ax, pred, class_colour(i))
    return fig


def encode_figure(fig: Figure, fmt: str) -> bytes:
    """The svg or pdf file bytes of ``fig``, the same for the same figure (no dates, no version strings)."""
    if fmt not in FORMATS:
        raise ValueError(f"the vector renderer writes {' or '.join(FORMATS)}, not {fmt!r}")
    buf = io.BytesIO()
    with rc_context({"svg.hashsalt": "nestviz", **VECTOR_FONTS}):
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    return buf.getvalue()


# -- layout -------------------------------------------------------------------------------------------
def _layout(result: ImageResult, n: int, kind: str, tree: bool = False):  # noqa: ANN202
    """A figure with ``n`` image panels placed by :func:`layout.figure_layout`, in whole pixels, and its header."""
    lay = figure_layout(result, n, colorbars=kind == "cam", tree=tree, kind=kind)
    fw, fh = lay.width, lay.height
    fig = Figure(figsize=(fw / DPI, fh / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    for i, (text, size, bold) in enumerate(lay.header_text):
        fig.text(lay.header[0] / fw, 1 - header_line_y(lay.header[1], i) / fh, text, va="baseline", ha="left",
                 fontsize=size, fontweight="bold" if bold else "normal", gid=f"header-{i}")
    axes, cbars = [], []
    for p in lay.panels:
        bottom = fh - p.top - p.height
        ax = fig.add_axes((p.left / fw, bottom / fh, p.width / fw, p.height / fh), xticks=[], yticks=[])
        ax.patch.set_visible(False)  # the picture lies under the axes (see _show_image)
        axes.append(ax)
        if p.colorbar:
            cl, _, cw, _ = p.colorbar
            cbars.append(fig.add_axes((cl / fw, bottom / fh, cw / fw, p.height / fh)))
    return fig, axes, cbars, lay


def _picture(image: Image.Image, result: ImageResult, ax: Axes) -> np.ndarray:
    """The panel's picture (see :func:`layout.panel_picture`) as RGBA: matplotlib copies RGBA as is (RGB is resampled)."""
    size = (round(ax.bbox.width), round(ax.bbox.height))
    return np.array(panel_picture(image, result, size).convert("RGBA"))


def _show_image(ax: Axes, picture: np.ndarray, result: ImageResult) -> None:
    """The picture from :func:`_picture` put pixel for pixel under the panel; the axes map original pixels onto it.

    (A figure image is copied as it is, which is much cheaper than resampling an ``imshow``.)
    """
    vx0, vy0, vx1, vy1 = view(result)
    ax.get_figure().figimage(picture, xo=round(ax.bbox.x0), yo=round(ax.bbox.y0), origin="upper", zorder=-1)
    ax.set_xlim(vx0, vx1)  # fixes the limits: later artists do not rescale the view
    ax.set_ylim(vy1, vy0)


def _draw_grids(ax: Axes, result: ImageResult) -> None:
    """Each level's block grid over the model's region; finer levels fainter and thinner."""
    x0, y0, x1, y1 = result.region
    levels = len(result.grid_sizes)
    for i in range(levels):
        style = grid_style(i, levels)
        segments = []
        for gx, gy in zip(*result.block_edges(i)):
            segments += [((gx, y0), (gx, y1)), ((x0, gy), (x1, gy))]
        if i == levels - 1:  # the root block: the region's outline
            segments += [((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)), ((x0, y1), (x0, y0))]
        if segments:
            halo = patheffects.withStroke(linewidth=style.width_pt + 1.0, foreground=(0, 0, 0, style.halo_alpha))
            ax.add_collection(LineCollection(segments, colors=[(1, 1, 1, style.alpha)],
                                             linewidths=style.width_pt, zorder=2, path_effects=[halo]))


def _outline(box: Box) -> tuple[list[float], list[float]]:
    """x and y of a box's closed outline, for ``ax.plot`` (lighter to draw than a Rectangle patch)."""
    x0, y0, x1, y1 = box
    return [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0]


def _draw_path(ax: Axes, pred: ClassExplanation, colour: str, panel: Panel) -> None:
    """Dots at visited node centres (root to leaf) joined by lines, the leaf outlined, child shares written
    where ``layout.score_labels`` places them (never overlapping), at the raster figure's pixels."""
    nodes = sorted(pred.path or [], key=lambda n: -n.level)
    xs, ys = zip(*(centre(n.box) for n in nodes))
    ax.plot(xs, ys, color=colour, linewidth=PATH_PT, marker="o", markersize=DOT_PT, markeredgecolor="black",
            markeredgewidth=1.0, path_effects=_OUTLINE, zorder=5, gid="gradcat-path")
    ax.plot(*_outline(nodes[-1].box), color=colour, linewidth=PATH_PT, path_effects=_OUTLINE, zorder=4,
            gid="gradcat-leaf")
    text_on_colour = "black" if luminance(colour) > 0.4 else "white"
    fig = ax.get_figure()
    fw, fh = fig.bbox.width, fig.bbox.height
    vx0, vy0, vx1, vy1 = view_limits(ax)

    def to_px(x: float, y: float) -> tuple[float, float]:
        return panel.left + (x - vx0) * panel.width / (vx1 - vx0), panel.top + (y - vy0) * panel.height / (vy1 - vy0)

    for label in score_labels(pred, to_px, panel):
        ax.text((label.x + label.width / 2) / fw, 1 - label.y / fh, label.text, transform=fig.transFigure,
                ha="center", va="center", fontsize=SCORE_PT, fontweight="bold" if label.chosen else "normal",
                color=text_on_colour if label.chosen else "white", zorder=7 if label.chosen else 6,
                gid="gradcat-score-chosen" if label.chosen else "gradcat-score",
                bbox={"boxstyle": "round,pad=0.18", "linewidth": 0.6 if label.chosen else 0,
                      "facecolor": colour if label.chosen else (0, 0, 0, 0.6), "edgecolor": "black"})


def view_limits(ax: Axes) -> Box:
    """The axes' view in original pixels (x0, y0, x1, y1), as :func:`_show_image` set it."""
    (x0, x1), (y1, y0) = ax.get_xlim(), ax.get_ylim()
    return x0, y0, x1, y1


def _draw_tree(fig: Figure, pred: ClassExplanation, panel: Panel, colour: str) -> None:
    """The tree diagram (``tree.tree_diagram``) on axes over ``panel.tree`` that run in figure pixels."""
    assert panel.tree is not None
    left, top, width, height = panel.tree
    fw, fh = fig.bbox.width, fig.bbox.height
    ax = fig.add_axes((left / fw, 1 - (top + height) / fh, width / fw, height / fh), gid="gradcat-tree")
    ax.set_xlim(left, left + width)
    ax.set_ylim(top + height, top)
    ax.set_axis_off()
    diagram = tree_diagram(pred, panel.tree)
    for e in diagram.edges:
        ax.plot([e.start[0], e.end[0]], [e.start[1], e.end[1]], color=colour if e.chosen else TREE_EDGE,
                linewidth=2.2 if e.chosen else 0.75, solid_capstyle="butt", gid="tree-edge")
    on_colour = "black" if luminance(colour) > 0.4 else "white"
    for n in diagram.nodes:
        x0, y0, x1, y1 = n.box
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, facecolor=colour if n.chosen else "white",
                               edgecolor="black" if n.chosen else TREE_EDGE, linewidth=0.75,
                               gid="tree-node-chosen" if n.chosen else "tree-node"))
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, n.text, ha="center", va="center", fontsize=SCORE_PT,
                fontweight="bold" if n.chosen else "normal", color=on_colour if n.chosen else "black")
    for text, x, y in diagram.rows:
        ax.text(x, y, text, ha="left", va="center", fontsize=SCORE_PT, color=TREE_EDGE)


def _title(ax: Axes, pred: ClassExplanation, colour: str) -> None:
    """Frame the panel in the class colour; title '#rank label p%' (see :func:`layout.title_text`)."""
    for spine in ax.spines.values():
        spine.set(color=colour, linewidth=2.5, zorder=7)
    width_px = ax.get_position().width * ax.figure.get_figwidth() * DPI
    ax.set_title(title_text(pred, width_px), fontsize=TITLE_PT, loc="left", pad=4)
