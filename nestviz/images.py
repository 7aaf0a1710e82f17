"""Read any image Pillow can open as 8-bit RGB, with one readable error for any bad file.

EXIF orientation is applied; grayscale, palette, RGBA/LA (composited on white), CMYK,
16-bit and float images are converted. Pillow's decompression-bomb guard stays on: an image of more than
:func:`max_pixels` pixels is refused, and the error says how to raise the limit (``--max-pixels``).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif",
    ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".j2k", ".avif", ".heic", ".qoi",
})


MAX_PIXELS_ENV = "NESTVIZ_MAX_PIXELS"


class ImageReadError(Exception):
    """An input file that could not be read as an image; ``str(e)`` is one line naming the file."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Open ``path`` fully decoded as an RGB image, or raise :class:`ImageReadError`."""
    p = Path(path)
    if p.is_dir():
        raise ImageReadError(p, "is a directory, not an image")
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise ImageReadError(p, "no such file") from None
    except OSError as e:
        raise ImageReadError(p, f"cannot access: {e.strerror or e}") from None
    if size == 0:
        raise ImageReadError(p, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            limit = max_pixels()
            if limit > (Image.MAX_IMAGE_PIXELS or limit):  # Pillow's own guard (a global) must not refuse it either
                Image.MAX_IMAGE_PIXELS = limit
            with Image.open(p) as im:
                if im.width * im.height > limit > 0:
                    raise ImageReadError(p, bomb_problem(im.width * im.height))
                im.seek(0)  # first frame of animations
                im.load()
                im = ImageOps.exif_transpose(im)
                return to_rgb(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        m = re.search(r"\((\d+) pixels\)", str(e))
        raise ImageReadError(p, bomb_problem(int(m[1]) if m else None)) from None
    except UnidentifiedImageError:
        raise ImageReadError(p, "not an image Pillow can read") from None
    except PermissionError:
        raise ImageReadError(p, "permission denied") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower() or isinstance(e, EOFError):
            msg = f"truncated or corrupt image data ({msg})"
        else:
            msg = f"corrupt image data ({msg})"
        raise ImageReadError(p, " ".join(msg.split())) from None


def max_pixels() -> int:
    """The most pixels an image may have before it is refused as a possible decompression bomb: ``$NESTVIZ_MAX_PIXELS``
    (set by the commands' ``--max-pixels``), else Pillow's ``Image.MAX_IMAGE_PIXELS`` (by default about 89.5 million)."""
    text = os.environ.get(MAX_PIXELS_ENV, "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else (Image.MAX_IMAGE_PIXELS or 0)


def set_max_pixels(limit: int) -> None:
    """Raise (or lower) the decompression-bomb limit for this process and the processes it starts."""
    if limit < 1:
        raise ValueError(f"the pixel limit must be at least 1, got {limit}")
    os.environ[MAX_PIXELS_ENV] = str(int(limit))


def bomb_problem(pixels: int | None) -> str:
    """The refusal of an image of ``pixels`` as one line that says how to let a trusted image through."""
    size = f"{pixels} pixels, " if pixels else ""
    return (f"refused as a possible decompression bomb ({size}the limit is {max_pixels()}); if you trust it, "
            f"raise the limit with --max-pixels {pixels or 'N'} (or ${MAX_PIXELS_ENV})")


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is composited on white."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16"):
            a = a / 65535.0
        elif im.mode == "I":
            a = a / (65535.0 if a.max(initial=0) > 255 else 255.0)
        elif a.size and (a.max() > 1.0 or a.min() < 0.0):  # float images: scale to their range
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        a = np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


ARRAY_RULE = "uint8 and other integer arrays are read as 0-255, float arrays as 0-1"


def array_pixels(a: np.ndarray) -> np.ndarray:
    """An image array as uint8 under :data:`ARRAY_RULE`; values outside the rule's range are a ValueError.

    A float array may stray by half a level (rounding, resampling), no more: one in 0-255 (say
    ``np.asarray(im).astype("float32")``) is refused, not clipped to white.
    """
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"an image array is uint8, integer or float ({ARRAY_RULE}); got dtype {a.dtype}")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if np.issubdtype(a.dtype, np.integer):
        if lo < 0 or hi > 255:
            raise ValueError(f"an integer image array holds 0-255; this one runs from {lo:g} to {hi:g}")
        return a.astype(np.uint8)
    half = 0.5 / 255.0
    if not (lo >= -half and hi <= 1.0 + half):  # also NaN
        hint = "divide it by 255" if lo >= 0 and hi <= 255 else "pass the image itself: nestviz normalizes"
        raise ValueError(f"a float image array holds values in 0-1 ({ARRAY_RULE}); this one runs from "
                         f"{lo:g} to {hi:g}: {hint}")
    return np.clip(np.round(a.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)


def array_to_image(a: np.ndarray | Any) -> Image.Image:
    """(H, W), (H, W, C) arrays or (C, H, W) tensors as an RGB PIL image; values as :data:`ARRAY_RULE` says."""
    if not isinstance(a, np.ndarray):  # a torch tensor (duck-typed: this module does not import torch)
        a = a.detach().cpu()
        a = a.float() if a.is_floating_point() else a  # half and bfloat16 have no numpy type
        a = (a.permute(1, 2, 0) if a.ndim == 3 else a).numpy()
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"an image array is (H, W), (H, W, 3|4) or a (3|4, H, W) tensor; got shape {a.shape}")
    return to_rgb(Image.fromarray(array_pixels(np.asarray(a))))


def looks_like_image(path: str | os.PathLike[str]) -> bool:
    """True when the extension is an image one, or (no/unknown extension) the leading bytes are."""
    p = Path(path)
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with open(p, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    signatures = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
    return head.startswith(signatures) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
