"""GradCAT and CAM figures as PNG or JPEG, drawn straight with Pillow: the fast renderer for folder runs.

The same panels, colours and marks as the matplotlib figures of ``vector.py`` (both place things
with ``layout.py`` and style them with ``style.py``), at about a tenth of the cost: a figure is a few pastes, blends and Pillow
drawing calls. Diagonal lines and dots are drawn at twice the size and shrunk, so their edges are
smooth; everything else lies on whole pixels. Output is deterministic: no dates, no versions.
"""

from __future__ import annotations

import io
import struct
import weakref
import zlib
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from ..results.records import Box, ClassExplanation, ImageResult
from .layout import (CBAR_LABELS, Panel, centre, figure_layout, nice_ticks, panel_picture, score_labels,
                     threshold_value, title_text, view)
from .pixels import (BLACK, WHITE, Marks, colormap as _colormap, font as _font, outline as _box, rounded_box, text,
                     text_lines)
from .pixels import tree as draw_tree
from .style import (CBAR_LABEL, COMPACT_JPEG_QUALITY, DOT_PT, DPI, HEAT_ALPHA, JPEG_QUALITY, PATH_PT,
                    PEAK_PT, PT, SCORE_PT, TITLE_PT, class_colour, compact as compact_number, grid_style, luminance, rgb)

try:  # Intel ISA-L's deflate: 2.7x faster than zlib level 1 on figures, and smaller
    from isal.isal_zlib import compress as deflate
except ImportError:  # pragma: no cover - platforms without an isal wheel
    from zlib import compress as deflate


def _canvas(image: Image.Image, result: ImageResult, kind: str, explained: list[ClassExplanation], tree: bool,
            compact: bool):  # noqa: ANN202
    """The white canvas with its header, the layout and the panels' picture, for ``explained`` panels."""
    lay = figure_layout(result, len(explained), colorbars=kind == "cam", tree=tree, compact=compact, kind=kind)
    canvas = Image.new("RGB", (lay.width, lay.height), WHITE)
    text_lines(canvas, list(lay.header_text), *lay.header)
    return canvas, lay, _picture(image, result, (lay.panels[0].width, lay.panels[0].height))


_LAST_PICTURE: list[tuple] = []  # (weak reference to the image, key, picture) of the last figure drawn


def _picture(image: Image.Image, result: ImageResult, size: tuple[int, int]) -> Image.Image:
    """:func:`layout.panel_picture`, kept for the next figure of the same image (a folder run draws its GradCAT
    then its CAM figure of one image): resizing the photo is about a tenth of a figure. An image changed in
    place between two figures is not noticed: pass a new image. The picture is shared: only read it."""
    key = (image.mode, image.size, result.width, result.height, result.fit, tuple(result.region),
           tuple(result.pad_rgb), size)
    if _LAST_PICTURE and _LAST_PICTURE[0][0]() is image and _LAST_PICTURE[0][1] == key:
        return _LAST_PICTURE[0][2]
    picture = panel_picture(image, result, size)
    _LAST_PICTURE[:] = [(weakref.ref(image), key, picture)]
    return picture


def gradcat_image(image: Image.Image, result: ImageResult, tree: bool = False, compact: bool = False) -> Image.Image:
    """One panel per explained class: block grids, the root-to-leaf path, each visited node's child shares
    (and with ``tree``, the tree diagram beside the panel)."""
    explained = [p for p in result.predictions if p.path]
    canvas, lay, picture = _canvas(image, result, "gradcat", explained, tree, compact)
    for i, (panel, pred) in enumerate(zip(lay.panels, explained)):
        colour = class_colour(i)
        to_px = _mapping(result, panel)
        canvas.paste(picture, (panel.left, panel.top))
        _draw_grids(canvas, result, panel, to_px)
        _draw_path(canvas, pred, panel, to_px, colour)
        _frame_and_title(canvas, pred, panel, colour)
        if tree:
            draw_tree(canvas, pred, panel, colour)
    return canvas


def cam_image(image: Image.Image, result: ImageResult, tree: bool = False, compact: bool = False) -> Image.Image:
    """One panel per explained class: the class map over the image (inferno, min to max), its box, peak and colour bar.
    (``tree`` is for GradCAT figures: a CAM figure has none.)"""
    explained = [p for p in result.predictions if p.cam is not None]
    canvas, lay, picture = _canvas(image, result, "cam", explained, False, compact)
    pixels = np.asarray(picture)
    under = pixels.astype(np.float32) * (1 - HEAT_ALPHA)  # the picture's part of every panel's blend
    for i, (panel, pred) in enumerate(zip(lay.panels, explained)):
        colour = class_colour(i)
        cam = pred.cam
        assert cam is not None
        to_px = _mapping(result, panel)
        raw = np.asarray(cam.raw, dtype=np.float32)
        lo, hi = float(raw.min()), float(raw.max())
        (rx0, ry0), (rx1, ry1) = to_px(*cam.region[:2]), to_px(*cam.region[2:])
        rect = (rx0 - panel.left, ry0 - panel.top, rx1 - panel.left, ry1 - panel.top)
        canvas.paste(_with_heat(pixels, under, raw, lo, hi, rect), (panel.left, panel.top))
        draw = ImageDraw.Draw(canvas)
        _box(draw, [*to_px(*cam.box[:2]), *to_px(*cam.box[2:])], WHITE, 2, halo=1)
        peak, size = to_px(*cam.peak), PEAK_PT * PT + 2
        marks = Marks(canvas, panel, [peak], size)
        marks.cross(*peak, size, rgb(colour))
        marks.paste()
        _colorbar(canvas, panel, lo, hi, cam.threshold, cam.kind)
        _frame_and_title(canvas, pred, panel, colour)
    return canvas


def encode_image(canvas: Image.Image, fmt: str, compact: bool = False) -> bytes:
    """PNG (see :func:`png_bytes`) or JPEG (quality 90; compact: 80) file bytes of an RGB image."""
    if fmt == "png":
        return png_bytes(np.asarray(canvas))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=COMPACT_JPEG_QUALITY if compact else JPEG_QUALITY, dpi=(DPI, DPI),
                optimize=compact)
    return buf.getvalue()


def png_bytes(pixels: np.ndarray) -> bytes:
    """An RGB uint8 array as a PNG file: 'Up' filter rows (numpy), deflate level 1 (ISA-L when installed).

    Pillow's encoder tries every row filter (adaptive filtering, not switchable) and uses zlib,
    which made PNG encoding the slowest step of a figure: this is about 5x faster, files alike.
    """
    h, w, _ = pixels.shape
    rows = pixels.reshape(h, w * 3)
    filtered = np.empty((h, w * 3 + 1), np.uint8)
    filtered[:, 0] = 2  # filter type 'Up': each byte minus the one above
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    dpi = struct.pack(">IIB", round(DPI / 0.0254), round(DPI / 0.0254), 1)  # pixels per metre
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"pHYs", dpi)
            + chunk(b"IDAT", deflate(filtered, 1)) + chunk(b"IEND", b""))  # the array's buffer: no copy to bytes


# -- placing -------------------------------------------------------------------------------------------
def _mapping(result: ImageResult, panel: Panel):  # noqa: ANN202 - a small closure
    """Original-image pixels -> figure pixels (float) for this panel."""
    vx0, vy0, vx1, vy1 = view(result)
    sx, sy = panel.width / (vx1 - vx0), panel.height / (vy1 - vy0)

    def to_px(x: float, y: float) -> tuple[float, float]:
        return panel.left + (x - vx0) * sx, panel.top + (y - vy0) * sy

    return to_px


# -- GradCAT -------------------------------------------------------------------------------------------
def _draw_grids(canvas: Image.Image, result: ImageResult, panel: Panel, to_px) -> None:  # noqa: ANN001
    """Each level's block grid over the model's region (clipped to the panel); finer levels fainter and thinner."""
    seen = result.region
    (x0, y0), (x1, y1) = to_px(*seen[:2]), to_px(*seen[2:])
    px0, py0, px1, py1 = panel.left, panel.top, panel.left + panel.width - 1, panel.top + panel.height - 1
    cx0, cy0, cx1, cy1 = max(x0, px0), max(y0, py0), min(x1, px1), min(y1, py1)
    draw = ImageDraw.Draw(canvas, "RGBA")
    levels = len(result.grid_sizes)
    for i in range(levels):
        style = grid_style(i, levels)
        line = (255, 255, 255, round(255 * style.alpha))
        halo = (0, 0, 0, round(255 * style.halo_alpha))
        width = 1 if style.weight < 0.5 else 2
        cuts = [to_px(x, y) for x, y in zip(*result.block_edges(i))]
        if i == levels - 1:  # the root block: the region's outline
            cuts += [(x0, y0), (x1 - 1, y1 - 1)]
        for fill, extra in ((halo, 2), (line, 0)):
            for gx, gy in cuts:
                gx, gy = round(gx), round(gy)
                if px0 <= gx <= px1:
                    draw.rectangle((gx - (width + extra) // 2, cy0, gx - (width + extra) // 2 + width + extra - 1, cy1),
                                   fill=fill)
                if py0 <= gy <= py1:
                    draw.rectangle((cx0, gy - (width + extra) // 2, cx1, gy - (width + extra) // 2 + width + extra - 1),
                                   fill=fill)


def _draw_path(canvas: Image.Image, pred: ClassExplanation, panel: Panel, to_px, colour: str) -> None:  # noqa: ANN001
    """Dots at visited node centres (root to leaf) joined by lines, the leaf outlined, child shares written
    where ``layout.score_labels`` places them (never overlapping)."""
    nodes = sorted(pred.path or [], key=lambda n: -n.level)
    c = rgb(colour)
    leaf = nodes[-1].box
    _box(ImageDraw.Draw(canvas), [*to_px(*leaf[:2]), *to_px(*leaf[2:])], c, 3, halo=1)
    points = [to_px(*centre(n.box)) for n in nodes]
    marks = Marks(canvas, panel, points, DOT_PT * PT + 4)
    marks.polyline(points, c, PATH_PT * PT)
    for x, y in points:
        marks.dot(x, y, DOT_PT * PT + 2, c)
    marks.paste()

    on_colour = BLACK if luminance(colour) > 0.4 else WHITE
    pad = round(0.18 * SCORE_PT * PT)
    for label in score_labels(pred, to_px, panel):
        box = (label.x, round(label.y - label.height / 2), round(label.x + label.width), round(label.y + label.height / 2))
        if label.chosen:
            rounded_box(canvas, box, pad, c, outline=BLACK)
        else:
            rounded_box(canvas, box, pad, (0, 0, 0, 153))
        text(canvas, ((box[0] + box[2]) / 2, label.y), label.text, SCORE_PT, bold=label.chosen, anchor="mm",
             fill=on_colour if label.chosen else WHITE)


def _frame_and_title(canvas: Image.Image, pred: ClassExplanation, panel: Panel, colour: str) -> None:
    """Frame the panel in the class colour; title '#rank label p%' above it, left-aligned."""
    draw = ImageDraw.Draw(canvas)
    x0, y0, x1, y1 = panel.left, panel.top, panel.left + panel.width - 1, panel.top + panel.height - 1
    draw.rectangle((x0 - 2, y0 - 2, x1 + 2, y1 + 2), outline=rgb(colour), width=3)
    draw.text((x0, y0 - round(4 * PT) - 2), title_text(pred, panel.width), font=_font(TITLE_PT), anchor="ls",
              fill=BLACK)


# -- CAM -----------------------------------------------------------------------------------------------
def _with_heat(pixels: np.ndarray, under: np.ndarray, raw: np.ndarray, lo: float, hi: float, rect: Box) -> Image.Image:
    """The panel picture (``pixels``; ``under``: them as float32 times 1 - HEAT_ALPHA) with the class map over
    ``rect`` (panel pixels): bilinear, inferno, alpha HEAT_ALPHA.

    The colour scale runs from the map's minimum to its maximum; parts of ``rect`` outside the panel are cut.
    """
    unit = Image.fromarray(((raw - lo) / (hi - lo if hi > lo else 1e-6)).astype(np.float32), mode="F")
    x, y = round(rect[0]), round(rect[1])
    size = (max(1, round(rect[2]) - x), max(1, round(rect[3]) - y))
    hx0, hy0, x0, y0 = max(0, -x), max(0, -y), max(0, x), max(0, y)
    w, h = min(pixels.shape[1] - x0, size[0] - hx0), min(pixels.shape[0] - y0, size[1] - hy0)
    if w <= 0 or h <= 0:
        return Image.fromarray(pixels)
    index = np.clip(np.asarray(unit.resize(size, Image.Resampling.BILINEAR))[hy0:hy0 + h, hx0:hx0 + w] * 255 + 0.5,
                    0, 255).astype(np.uint8)
    blend = _heat_part().take(index, axis=0)  # take: several times faster than indexing with an array
    blend += under[y0:y0 + h, x0:x0 + w]
    blend += 0.5
    out = pixels.copy()
    out[y0:y0 + h, x0:x0 + w] = blend  # truncates, as astype(np.uint8) does
    return Image.fromarray(out)


@lru_cache(maxsize=1)
def _heat_part() -> np.ndarray:
    """Each colour of the map times HEAT_ALPHA (float32): the map's part of the blend, looked up, not multiplied."""
    return _colormap().astype(np.float32) * HEAT_ALPHA


def _colorbar(canvas: Image.Image, panel: Panel, lo: float, hi: float, threshold: float, kind: str) -> None:
    """The colour scale of the panel in raw logit units (min at the bottom); the box threshold as a white
    tick labelled 'box' (ticks too near it are left out)."""
    assert panel.colorbar is not None
    left, top, width, height = panel.colorbar
    canvas.paste(_ramp(width, height), (left, top))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((left - 1, top - 1, left + width, top + height), outline=BLACK, width=1)
    span = hi - lo if hi > lo else 1e-6

    def y_of(v: float) -> float:
        return top + (hi - v) / span * (height - 1)

    ty = round(y_of(threshold_value(lo, hi, threshold)))
    draw.rectangle((left, ty - 1, left + width - 1, ty), fill=WHITE)
    draw.line((left + width, ty, left + width + 4, ty), fill=BLACK, width=1)
    text(canvas, (left + width + 6, ty), "box", SCORE_PT, bold=True, anchor="lm")
    for v in nice_ticks(lo, hi):
        y = round(y_of(v))
        if abs(y - ty) < 1.2 * SCORE_PT * PT:  # the labelled threshold tick wins
            continue
        draw.line((left + width, y, left + width + 2, y), fill=BLACK, width=1)
        text(canvas, (left + width + 4, y), compact_number(v).replace("-", "\u2212"), SCORE_PT, anchor="lm")
    strip = _upright_label(CBAR_LABEL.get(kind, CBAR_LABEL["logit"]))
    x = left + width + CBAR_LABELS - strip.width - 12
    canvas.paste(BLACK, (x, top + (height - strip.height) // 2), strip)


@lru_cache(maxsize=8)
def _ramp(width: int, height: int) -> Image.Image:
    """The colour bar's colours, top (max) to bottom (min): the same for every panel of a size."""
    ramp = _colormap()[np.linspace(255, 0, height).round().astype(np.intp)]
    return Image.fromarray(np.repeat(ramp[:, None, :], width, axis=1))


@lru_cache(maxsize=8)
def _upright_label(label: str) -> Image.Image:
    """The colour bar's label as a mask (L) read bottom to top: one per CAM kind, kept."""
    font = _font(SCORE_PT + 0.5)
    l, t, r, b = font.getbbox(label)
    strip = Image.new("L", (r - l + 2, b - t + 2), 0)
    ImageDraw.Draw(strip).text((1 - l, 1 - t), label, font=font, fill=255)
    return strip.rotate(90, expand=True)
