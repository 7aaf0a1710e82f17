"""Gallery thumbnails: the photo, small, with the top class's GradCAT path and CAM box drawn on it.

Drawn from a manifest record alone (coordinates in original-image pixels), with Pillow only: no
torch, no matplotlib, so the runner can make one per image at next to no cost. The marks are
drawn at twice the size on a transparent layer and shrunk, so diagonal lines stay smooth.

Marks (colours of ``layout.PALETTE``, each with a dark halo so it shows on any photo):
- GradCAT: every visited node's box as a thin white outline, the leaf box thick orange, an orange
  line through the node centres (root to leaf) with a dot at each;
- CAM: the weakly-supervised box as a sky-blue outline and the peak as a cross.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from .._files import atomic_write_bytes

JPEG_QUALITY = 80
SS = 2  # supersampling of the marks

PATH_RGB = (230, 159, 0)  # PALETTE[0], the first class's colour in the figures
CAM_RGB = (86, 180, 233)  # PALETTE[1]
NODE_RGB = (255, 255, 255)
HALO = (0, 0, 0, 170)


def top_prediction(record: dict[str, Any]) -> dict[str, Any] | None:
    """The record's most probable prediction (lowest rank, then highest probability), or None."""
    preds = [p for p in record.get("predictions") or [] if isinstance(p, dict)]
    if not preds:
        return None

    def key(p: dict[str, Any]) -> tuple[float, float]:
        rank = p.get("rank")
        prob = p.get("probability")
        return (float(rank) if _number(rank) else float("inf"), -float(prob) if _number(prob) else 0.0)

    return min(preds, key=key)


def thumbnail(image: Image.Image, record: dict[str, Any], max_side: int = 256) -> Image.Image:
    """``image`` scaled to fit ``max_side`` (never enlarged), RGB, with the top prediction's marks.

    ``record`` is a manifest record (or merged record): its ``width`` / ``height`` give the
    coordinate frame of the boxes (default: the image's own size); missing or malformed fields
    simply draw nothing.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    small = image.convert("RGB") if image.mode != "RGB" else image.copy()
    small.thumbnail((max_side, max_side), Image.Resampling.BICUBIC, reducing_gap=2.0)
    width = record.get("width") if _number(record.get("width")) and record.get("width") > 0 else image.width
    height = record.get("height") if _number(record.get("height")) and record.get("height") > 0 else image.height
    sx, sy = small.width / float(width), small.height / float(height)
    pred = top_prediction(record)
    if pred is None:
        return small

    layer = Image.new("RGBA", (small.width * SS, small.height * SS), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    k = SS * max(1.0, max(small.size) / 256.0)  # line widths grow a little with bigger thumbnails

    def px(x: float, y: float) -> tuple[float, float]:
        return x * sx * SS, y * sy * SS

    def rect(box: list[float], colour: tuple[int, ...], w: float) -> None:
        (x0, y0), (x1, y1) = px(box[0], box[1]), px(box[2], box[3])
        lw = max(1, round(w))
        draw.rectangle((x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)), outline=HALO, width=lw + 2 * SS)
        draw.rectangle((x0 + SS, y0 + SS, max(x0 + SS, x1 - 1 - SS), max(y0 + SS, y1 - 1 - SS)), outline=colour,
                       width=lw)

    nodes = [n for n in pred.get("path") or [] if isinstance(n, dict) and _box(n.get("box"))]
    nodes.sort(key=lambda n: -n["level"] if _number(n.get("level")) else 0)
    for n in nodes[:-1]:
        rect(n["box"], NODE_RGB + (200,), 0.5 * k)
    if nodes:
        rect(nodes[-1]["box"], PATH_RGB, 2.0 * k)

    if _box(pred.get("box")):
        rect(pred["box"], CAM_RGB, 1.0 * k)

    if len(nodes) > 1:
        centres = [px((n["box"][0] + n["box"][2]) / 2, (n["box"][1] + n["box"][3]) / 2) for n in nodes]
        draw.line(centres, fill=HALO, width=round(2.6 * k), joint="curve")
        draw.line(centres, fill=PATH_RGB, width=round(1.4 * k), joint="curve")
        for i, (cx, cy) in enumerate(centres):
            r = (2.4 if i == len(centres) - 1 else 1.8) * k
            draw.ellipse((cx - r - SS, cy - r - SS, cx + r + SS, cy + r + SS), fill=HALO)
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=PATH_RGB)

    peak = pred.get("peak")
    if isinstance(peak, (list, tuple)) and len(peak) == 2 and all(_number(v) for v in peak):
        _cross(draw, *px(*peak), k)

    marks = layer.resize(small.size, Image.Resampling.BOX)
    small.paste(marks, (0, 0), marks)
    return small


def thumbnail_bytes(image: Image.Image, record: dict[str, Any], max_side: int = 256,
                    quality: int = JPEG_QUALITY) -> bytes:
    """The thumbnail as JPEG bytes (progressive off, optimized Huffman tables, no metadata)."""
    buf = io.BytesIO()
    thumbnail(image, record, max_side).save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def write_thumbnail(image: Image.Image, record: dict[str, Any], path: str | os.PathLike[str],
                    max_side: int = 256, quality: int = JPEG_QUALITY) -> Path:
    """Write the thumbnail JPEG to ``path`` atomically (temporary file, fsync, rename); return the path."""
    path = Path(path)
    atomic_write_bytes(path, thumbnail_bytes(image, record, max_side, quality))
    return path


def _cross(draw: ImageDraw.ImageDraw, cx: float, cy: float, k: float) -> None:
    """The CAM peak: a sky-blue x over a dark one."""
    r = 4.5 * k
    for colour, w in ((HALO, 2.6 * k), (CAM_RGB + (255,), 1.2 * k)):
        draw.line((cx - r, cy - r, cx + r, cy + r), fill=colour, width=round(w))
        draw.line((cx - r, cy + r, cx + r, cy - r), fill=colour, width=round(w))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


def _box(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 4 and all(_number(x) for x in v)


__all__ = ["thumbnail", "thumbnail_bytes", "write_thumbnail", "top_prediction"]
