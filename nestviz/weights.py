"""nestviz's weights format: one .safetensors file, architecture and card in its metadata.

The metadata (string -> string, JSON values) carries ``config`` (NestConfig), ``class_names``,
``preprocessing`` and ``provenance``, so a file is a complete, self-describing model.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .model import Nest, NestConfig
from .preprocess import Preprocessing

FORMAT_NAME = "nestviz"
FORMAT_VERSION = "1"


class WeightsError(Exception):
    """A weights file that cannot be used; ``str(e)`` names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class ModelBundle:
    """A ready model with everything needed to use and describe it."""

    model: Nest
    config: NestConfig
    class_names: list[str]
    preprocessing: Preprocessing
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def label(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else str(index)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename: never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_nestviz(path: str | os.PathLike[str], model: Nest, class_names: list[str],
                 preprocessing: Preprocessing, provenance: dict[str, Any] | None = None,
                 dtype: torch.dtype | None = None) -> None:
    """Write a nestviz weights file atomically; ``dtype=torch.float16`` halves the size."""
    from safetensors.torch import save

    if len(class_names) != model.cfg.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {model.cfg.num_classes}-class head")
    tensors = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
               for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": json.dumps(model.cfg.to_dict()),
        "class_names": json.dumps(list(class_names)),
        "preprocessing": json.dumps(preprocessing.to_dict()),
        "provenance": json.dumps(provenance or {}),
    }
    atomic_write_bytes(path, save(tensors, metadata=meta))


def read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a .safetensors file, with a readable error for a bad one."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(path, "no such file") from None
    except IsADirectoryError:
        raise WeightsError(path, "is a directory, not a weights file") from None
    except OSError as e:
        raise WeightsError(path, f"cannot read: {e.strerror or e}") from None
    if len(data) < 8:
        raise WeightsError(path, "not a safetensors file (too short)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise WeightsError(path, "truncated or not a safetensors file (header runs past the end)")
    try:
        header = json.loads(data[8:8 + header_len])
        tensors = load(data)
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise WeightsError(path, f"corrupt or truncated safetensors file ({' '.join(str(e).split())})") from None
    return tensors, dict(header.get("__metadata__") or {})


def load_nestviz_file(path: Path, tensors: dict[str, Tensor], meta: dict[str, str]) -> ModelBundle:
    """Build the model described by a nestviz file's metadata and load its tensors."""
    try:
        cfg = NestConfig.from_dict(json.loads(meta["config"]))
        class_names = list(json.loads(meta.get("class_names", "[]")))
        pre = Preprocessing.from_dict(json.loads(meta.get("preprocessing", "{}")))
        provenance = json.loads(meta.get("provenance", "{}"))
    except (KeyError, ValueError, TypeError) as e:
        raise WeightsError(path, f"invalid nestviz metadata ({e})") from None
    model = build_and_load(path, cfg, tensors)
    if len(class_names) != cfg.num_classes:
        class_names = [str(i) for i in range(cfg.num_classes)]
    return ModelBundle(model, cfg, class_names, pre, provenance, str(path))


def build_and_load(path: Path, cfg: NestConfig, tensors: dict[str, Tensor]) -> Nest:
    """Instantiate ``cfg`` and load ``tensors`` strictly, summarizing any mismatch in one line."""
    model = Nest(cfg)
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    conflicts = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                 if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or conflicts:
        raise WeightsError(path, "does not match the architecture: " + summarize_mismatch(missing, unexpected, conflicts))
    model.load_state_dict({k: tensors[k].to(torch.float32) for k in expected}, strict=True)
    return model.eval()


def summarize_mismatch(missing: list[str], unexpected: list[str], conflicts: list[str], shown: int = 3) -> str:
    def part(title: str, items: list[str]) -> str:
        more = f", ... (+{len(items) - shown} more)" if len(items) > shown else ""
        return f"{len(items)} {title} ({', '.join(items[:shown])}{more})"

    parts = [part(t, items) for t, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                             ("shape conflicts", conflicts)) if items]
    return "; ".join(parts)
