"""nestviz: GradCAT and CAM explanations for NesT (Nested Hierarchical Transformer) models.

    import nestviz
    [r] = nestviz.explain("cat.jpg", top_k=4)     # GradCAT paths, original-image pixels
    [r] = nestviz.class_maps("cat.jpg")           # CAM maps, boxes and peaks
    report = nestviz.metrics("val/", boxes="boxes/")  # how far to trust them: localization, faithfulness
    report = nestviz.check_evidence("patched/", "patch_boxes/")  # do they find what the model is known to use?
    nv = nestviz.load("nest_tiny_jx.safetensors")  # or a model object: nestviz.load(model, class_names=...)

The pure computation lives in ``nestviz.methods.gradcat`` and ``nestviz.methods.cam``
(``nestviz.explain`` is that package, and calling it is the one-call helper above; ``nestviz.metrics``
likewise is the metrics package and its helper).
Importing the package is cheap: torch and the model code load on first use, so
``nestviz --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "explain": "api", "class_maps": "api", "predict": "api", "load": "api", "Nestviz": "api", "clear_cache": "api",
    "metrics": "evaluation.measure", "MetricsReport": "evaluation.measure",
    "Nest": "model.nest", "NestConfig": "model.nest", "named_config": "model.nest",
    "load_weights": "model.checkpoints", "save_nestviz": "model.checkpoints",
    "check_evidence": "evaluation.known_answers",
    "EvidenceReport": "evaluation.known_answers", "ImageResult": "results.records", "ClassExplanation": "results.records",
    "PathNode": "results.records", "CamResult": "results.records", "Result": "results.display",
    "write_figure": "draw", "FITS": "defaults",
}
__all__ = ["__version__", *_LAZY]


def __dir__() -> list[str]:
    """The entry points (lazy names included), so that ``dir(nestviz)`` and tab completion show them."""
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'nestviz' has no attribute {name!r}")
