"""nestviz: GradCAT and CAM explanations for NesT (Nested Hierarchical Transformer) models.

    import nestviz
    [r] = nestviz.explain("cat.jpg", top_k=4)     # GradCAT paths, original-image pixels
    [r] = nestviz.class_maps("cat.jpg")           # CAM maps, boxes and peaks
    nv = nestviz.load("nest_tiny_jx.safetensors")  # or keep a loaded model and call nv.explain(...)

The pure computation lives in the modules ``nestviz.gradcat`` and ``nestviz.cam``.
Importing the package is cheap: torch and the model code load on first use, so
``nestviz --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load": "api", "Nestviz": "api", "predict": "api", "explain": "api", "class_maps": "api",
    "Nest": "model", "NestConfig": "model", "named_config": "model",
    "load_weights": "weights", "save_nestviz": "weights",
    "ImageResult": "results", "ClassExplanation": "results", "PathNode": "results", "CamResult": "results",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'nestviz' has no attribute {name!r}")
