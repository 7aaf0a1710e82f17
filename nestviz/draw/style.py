"""How figures look, shared by both renderers: sizes, colours, the class-map style, file settings.

The raster (``raster.py``) and vector (``vector.py``) renderers read these, so the two outputs
of one result look alike; ``layout.py`` says where things go.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DPI = 100
PT = DPI / 72.0  # pixels per typographic point
# Okabe & Ito's colour-blind-safe palette (black left out: it vanishes on dark images), grey, then two of
# Paul Tol's (indigo, wine): ten distinct panel colours.
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#BBBBBB", "#332288",
           "#882255")
TITLE_PT, SCORE_PT, HEADER_PT = 10.0, 7.0, 8.0
PATH_PT, DOT_PT, PEAK_PT = 2.2, 6.5, 9.0  # GradCAT path line width, node dot and CAM peak marker sizes
DIM = 0.55  # brightness of the image parts the model did not see
CMAP = "inferno"
SETTLED = "\u2020"  # after the chosen child's score where its removal decided a close call (figures and gallery)
HEAT_ALPHA = 0.55  # opacity of the class map over the image
CBAR_LABEL = {"logit": "class score (logit)", "contrast": "class score - mean class (logit)",
              "flow": "class - mean class, at its source (logit)"}  # by CAM kind
# Vector files for papers: TrueType (Type 42) fonts in PDF and PostScript, never Type 3 bitmaps-as-glyphs;
# SVG text stays <text> (editable, searchable), not outlined paths.
VECTOR_FONTS = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none"}
JPEG_QUALITY = 90
COMPACT_JPEG_QUALITY = 80  # compact figures (folder runs' default): smaller panels, this quality
TREE_EDGE = "#999999"  # the tree diagram's edges and boxes off the path


@dataclass(frozen=True)
class GridStyle:
    """One level's block grid: white lines over a faint black halo, finer levels fainter and thinner."""

    weight: float  # 0 for the leaves, 1 for the root

    @property
    def alpha(self) -> float:
        return 0.3 + 0.55 * self.weight

    @property
    def halo_alpha(self) -> float:
        return 0.1 + 0.2 * self.weight

    @property
    def width_pt(self) -> float:
        return 0.5 + 1.0 * self.weight


def grid_style(level: int, levels: int) -> GridStyle:
    """The grid style of 0-based ``level`` of ``levels``."""
    return GridStyle(level / max(levels - 1, 1))


def compact(v: float) -> str:
    """3 significant digits, short exponents: 0.0123, 1.23, -45.6, 1.2e-05 -> 1.2e-5."""
    s = f"{v:.3g}"
    return s.replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


def rgb(colour: str) -> tuple[int, int, int]:
    """'#RRGGBB' -> (r, g, b) in 0..255."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def luminance(colour: str) -> float:
    r, g, b = (v / 255.0 for v in rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def class_colour(rank_index: int) -> str:
    """The colour of the ``rank_index``-th explained class (0-based) of a figure."""
    return PALETTE[rank_index % len(PALETTE)]


@lru_cache(maxsize=4)
def colormap(name: str = CMAP) -> "np.ndarray":
    """matplotlib's colour map ``name`` (default ``CMAP``) as a (256, 3) uint8 lookup table: the Pillow figures'
    and the gallery's."""
    import numpy as np
    from matplotlib import colormaps

    return (colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


def colormap_hex(name: str) -> str | None:
    """:func:`colormap` as 256 hex RGB triples (the gallery's lookup tables); None for a name matplotlib lacks."""
    try:
        return colormap(name).tobytes().hex()
    except (KeyError, ValueError):
        return None


def web_style() -> dict[str, str]:
    """What the gallery page draws with, taken from here rather than re-typed in its JavaScript: the class
    map's colour map (``CMAP``) as a 256-entry lookup table of hex RGB, the GradCAT path's and the CAM box's
    colours, and the mark of a child chosen by removal."""
    return {"cmap": CMAP, "cmap_lut": colormap_hex(CMAP) or "", "path": PALETTE[0], "cam": PALETTE[1],
            "settled": SETTLED}
