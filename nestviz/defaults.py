"""Defaults the CLI and the API share, importable without numpy or torch (``nestviz --help`` reads them).

``fit``: how an image of any shape becomes the model's square input (see ``nestviz.preprocess``):
``crop`` is timm's eval transform (resize the shorter side, centre-crop: the borders of a
non-square photo are not seen), ``pad`` letterboxes the whole image with the mean colour,
``squash`` resizes the whole image to the square (its aspect is not kept).
"""

from __future__ import annotations

FITS = ("crop", "pad", "squash")
EXPLAIN_FIT = "crop"  # the one default of explain / cam / annotate (CLI and API)
PREDICT_FIT = "crop"  # predict and evaluate: timm's eval transform, the one accuracy is measured with
TOP_K = {"predict": 5, "explain": 4, "cam": 1, "annotate": 4}  # classes shown / explained by default
THRESHOLD = 0.2  # CAM box threshold, a fraction of the map's range (as in the original CAM)


def check_fit(fit: str) -> str:
    """``fit`` if it is one of :data:`FITS` (any case), else ValueError naming them."""
    name = str(fit).lower()
    if name not in FITS:
        raise ValueError(f"fit must be {', '.join(FITS[:-1])} or {FITS[-1]}, got {fit!r}")
    return name


__all__ = ["FITS", "EXPLAIN_FIT", "PREDICT_FIT", "TOP_K", "THRESHOLD", "check_fit"]
