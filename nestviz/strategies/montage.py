"""One PNG per strategy (Pillow, no torch): its mean where map, its members' evidence crops, a few whole images.

Images are opened with JPEG draft decoding at about the size drawn, so a montage costs a few milliseconds per
picture. An image that cannot be read any more is a grey tile saying so: the montage never fails for it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from .._files import atomic_write_bytes
from ..draw.pixels import colormap, font
from ..images import to_rgb
from .records import Decision

CROP = 72  # px side of an evidence crop tile
WHOLE = 150  # px side of a whole-image tile
MAP = 108  # px side of the mean where map
GAP = 6
COLUMNS = 6  # crop tiles per row
CROP_MIN = 0.15  # an evidence crop is at least this fraction of the image's shorter side
BOX_COLOUR = (0, 220, 255)
HEAT_ALPHA = 0.5


def open_small(path: str, side: int, roots: list[Path]) -> Image.Image | None:
    """``path`` (as is, else under each of ``roots``) decoded at about ``side`` px for its shorter side, RGB and
    EXIF-rotated; None if it cannot be read."""
    for cand in [Path(path)] + [r / path for r in roots if not os.path.isabs(path)]:
        try:
            with Image.open(cand) as im:
                im.draft("RGB", (side, side))
                return to_rgb(ImageOps.exif_transpose(im))
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
            continue
    return None


def heat(where: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A where map (g, g) as an inferno RGB image of ``size``, scaled to its own maximum."""
    m = np.asarray(where, dtype=np.float64)
    m = m / m.max() if m.max() > 0 else m
    lut = colormap()[np.clip((m * 255).round().astype(int), 0, 255)].astype(np.uint8)
    return Image.fromarray(lut).resize(size, Image.Resampling.BILINEAR)


def _missing(side: tuple[int, int]) -> Image.Image:
    tile = Image.new("RGB", side, (150, 150, 150))
    ImageDraw.Draw(tile).text((4, 4), "not found", font=font(7), fill=(255, 255, 255))
    return tile


def crop_tile(d: Decision, roots: list[Path]) -> Image.Image:
    """The evidence box of ``d`` (grown to a square of at least ``CROP_MIN`` of the shorter side), CROP px."""
    w, h = d.size
    x0, y0, x1, y1 = d.box
    side = min(max(x1 - x0, y1 - y0, CROP_MIN * min(w, h)), min(w, h))
    cx = min(max((x0 + x1) / 2, side / 2), w - side / 2)  # the square kept inside the image
    cy = min(max((y0 + y1) / 2, side / 2), h - side / 2)
    im = open_small(d.image, max(CROP, round(CROP * min(w, h) / max(side, 1.0))), roots)
    if im is None:
        return _missing((CROP, CROP))
    s = im.width / max(w, 1)
    box = tuple(round(v * s) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    return im.crop(box).resize((CROP, CROP), Image.Resampling.BILINEAR)


def whole_tile(d: Decision, roots: list[Path]) -> Image.Image:
    """The whole image fitted in WHOLE px, its where map blended over it and its evidence box outlined."""
    w, h = d.size
    im = open_small(d.image, WHOLE, roots)
    if im is None:
        return _missing((WHOLE, WHOLE))
    im = ImageOps.contain(im, (WHOLE, WHOLE), Image.Resampling.BILINEAR)
    g = int(round(np.sqrt(d.where.size)))
    im = Image.blend(im, heat(d.where.reshape(g, g), im.size), HEAT_ALPHA)
    s = im.width / max(w, 1)
    ImageDraw.Draw(im).rectangle([round(v * s) for v in d.box], outline=BOX_COLOUR, width=2)
    return im


def draw_montage(title: str, lines: list[str], mean_map: np.ndarray, members: list[Decision], roots: list[Path],
                 crops: int, wholes: int) -> Image.Image:
    """The montage: title and lines, the mean where map, then ``crops`` evidence crops and ``wholes`` images."""
    crop_rows = max(1, -(-min(crops, len(members)) // COLUMNS))
    width = max(MAP + GAP + COLUMNS * (CROP + GAP), wholes * (WHOLE + GAP)) + 2 * GAP
    head = 22 + 14 * len(lines)
    height = head + max(MAP, crop_rows * (CROP + GAP)) + 2 * GAP + WHOLE + GAP + 16
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((GAP, 4), title, font=font(9, bold=True), fill=(0, 0, 0))
    for n, line in enumerate(lines):
        draw.text((GAP, 20 + 14 * n), line, font=font(7.5), fill=(40, 40, 40))
    canvas.paste(heat(mean_map, (MAP, MAP)), (GAP, head))
    draw.rectangle([GAP, head, GAP + MAP - 1, head + MAP - 1], outline=(0, 0, 0))
    for n, d in enumerate(members[:crops]):
        r, c = divmod(n, COLUMNS)
        canvas.paste(crop_tile(d, roots), (2 * GAP + MAP + c * (CROP + GAP), head + r * (CROP + GAP)))
    top = head + max(MAP, crop_rows * (CROP + GAP)) + GAP
    draw.text((GAP, top), "mean map | evidence crops (most typical first) | whole images, map and evidence box:",
              font=font(7), fill=(90, 90, 90))
    for n, d in enumerate(members[:wholes]):
        tile = whole_tile(d, roots)
        canvas.paste(tile, (GAP + n * (WHOLE + GAP), top + 14))
    return canvas


def write_montage(path: Path, image: Image.Image) -> None:
    """The montage as a PNG, written atomically."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    atomic_write_bytes(path, buf.getvalue())


__all__ = ["open_small", "heat", "crop_tile", "whole_tile", "draw_montage", "write_montage"]
