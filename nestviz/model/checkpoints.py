"""Finding, reading and saving NesT weight files: nestviz files, timm and Hugging Face checkpoints.

nestviz's own format is one .safetensors file whose metadata (string -> string, JSON values)
carries ``config`` (NestConfig), ``class_names``, ``preprocessing`` and ``provenance``, so a
file is a complete, self-describing model.

:func:`load_weights` also reads timm / Hugging Face checkpoints (``model.safetensors``,
``pytorch_model.bin``, ``.pth``/``.pt``, alone or in a hub folder with ``config.json``).
Pickle-based files go through ``torch.load(weights_only=True)`` only: a checkpoint never runs
code. Without a config the architecture is read from the tensor shapes. Every problem is a
:class:`WeightsError` whose message is one line naming the file.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import hashlib
import json
import os
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._files import atomic_write_bytes
from ..preprocess import Preprocessing
from .bundle import ModelBundle, WeightsError, bundle_from_state_dict, build_and_load
from .classes import default_class_names
from .convert import unwrap_state_dict
from .hub import HUB_FILES, hub_cache_folder, hub_download, is_hub_spec
from .nest import Nest, NestConfig, named_config

FORMAT_NAME = "nestviz"
FORMAT_VERSION = "1"
DEFAULT_WEIGHTS_NAME = "nestviz-imagenette.safetensors"
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


# -- nestviz's own format --------------------------------------------------------------------------

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
    return parse_safetensors(path, read_file(path))


def parse_safetensors(path: Path, data: bytes) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of the .safetensors bytes ``data`` read from ``path`` (named in the errors)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if len(data) < 8:
        raise WeightsError(path, "not a safetensors file (too short)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise WeightsError(path, "truncated or not a safetensors file (header runs past the end)")
    try:
        header = json.loads(data[8:8 + header_len])
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        end = 8 + header_len + max(ends, default=0)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, IndexError, AttributeError):
        raise WeightsError(path, "not a safetensors file (unreadable header)") from None
    if end > len(data):
        raise WeightsError(path, f"truncated safetensors file ({len(data)} of {end} bytes)")
    try:
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
    if pre.input_size != cfg.img_size:  # the model takes its img_size only: another input size is a bad file
        raise WeightsError(path, f"invalid nestviz metadata (preprocessing input_size {pre.input_size} is not the "
                                 f"model's img_size {cfg.img_size})")
    model = build_and_load(path, cfg, tensors)
    if len(class_names) != cfg.num_classes:
        class_names = default_class_names(cfg.num_classes)
    provenance = {**provenance, "source_format": "nestviz safetensors", "source_path": str(path)}
    return ModelBundle(model, cfg, class_names, pre, provenance, str(path))


# -- entry point -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read once (:func:`read_checkpoint`): its file and bytes, its config.json and bytes, if any.
    A folder run hashes these bytes (:meth:`identity`) and loads the model from them: the file is read once."""

    file: Path
    data: bytes
    config_json: Path | None = None
    config: bytes | None = None

    def identity(self, arch: str | None = None) -> str:
        """A short content hash of the checkpoint (and its config.json) and ``arch``: changes when the model does."""
        h = hashlib.sha256(f"{arch or ''}\n".encode())
        h.update(self.data)
        if self.config is not None:
            h.update(self.config)
        return f"{self.file.name}:{h.hexdigest()[:16]}"


def read_checkpoint(path: str | os.PathLike[str] | None = None) -> Checkpoint:
    """The checkpoint ``path`` names (as :func:`load_weights` finds it; None: the default model), read once."""
    file, config_json = find_checkpoint(Path(path) if path is not None else default_weights_path())
    return Checkpoint(file, read_file(file), config_json, read_file(config_json) if config_json else None)


def read_file(path: Path) -> bytes:
    """The bytes of a weights (or config) file, WeightsError naming it if they cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise WeightsError(path, "no such file") from None
    except IsADirectoryError:
        raise WeightsError(path, "is a directory, not a weights file") from None
    except OSError as e:
        raise WeightsError(path, f"cannot read: {e.strerror or e}") from None


def load_weights(path: str | os.PathLike[str] | Checkpoint | None = None, arch: str | None = None) -> ModelBundle:
    """Load a nestviz, timm or Hugging Face checkpoint (file, hub folder, ``hf-hub:org/name``, or a
    :class:`Checkpoint` already read) as a ready model.

    ``arch`` (``nest_tiny_jx``...) supplies what tensor shapes cannot: heads and pooling padding.
    ``path=None`` loads the default model (see :func:`default_weights_path`).
    """
    given = path.file if isinstance(path, Checkpoint) else Path(path) if path is not None else default_weights_path()
    if arch is not None:
        try:
            named_config(arch)
        except ValueError as e:
            raise WeightsError(given, f"{e} (--arch)") from None
    ckpt = path if isinstance(path, Checkpoint) else read_checkpoint(given)
    file, kind = ckpt.file, sniff(ckpt.file, ckpt.data[:16])
    if kind == "safetensors":
        tensors, meta = parse_safetensors(file, ckpt.data)
        if meta.get("format") == FORMAT_NAME:
            return load_nestviz_file(file, tensors, meta)
        wrapper: dict[str, Any] = {}
        source_format = "safetensors state dict"
    else:
        try:
            tensors, wrapper = unwrap_state_dict(torch_load(file, ckpt.data, kind))
        except ValueError as e:
            raise WeightsError(file, str(e)) from None
        source_format = "PyTorch state dict" + (f" (under {wrapper['key']!r})" if wrapper.get("key") else "")
    hints = parse_hub_config(ckpt.config_json, ckpt.config) if ckpt.config_json and ckpt.config is not None else {}
    return bundle_from_state_dict(file, tensors, arch, hints, wrapper, source_format, ckpt.config_json)


def default_weights_path() -> Path:
    """The default model: $NESTVIZ_WEIGHTS, else the file shipped in the package (nestviz/resources/)."""
    env = os.environ.get("NESTVIZ_WEIGHTS")
    if env:
        if not Path(env).exists():
            raise WeightsError(env, "no such file (named by NESTVIZ_WEIGHTS)")
        return Path(env)
    packaged = Path(__file__).resolve().parent.parent / "resources" / DEFAULT_WEIGHTS_NAME
    if not packaged.is_file():
        raise WeightsError(packaged, "no default model found (the package was built without it, and "
                                     "NESTVIZ_WEIGHTS is not set); pass --weights with a nestviz, timm or "
                                     "Hugging Face checkpoint")
    return packaged


def load_weights_identity(path: str | os.PathLike[str] | None = None, arch: str | None = None) -> str:
    """A short content hash of the checkpoint (and its config.json) and ``arch``: changes when the model does."""
    return read_checkpoint(path).identity(arch)


# -- finding and reading checkpoint files ----------------------------------------------------------

def find_checkpoint(path: Path) -> tuple[Path, Path | None]:
    """The checkpoint file for ``path`` (a file, a hub folder or cache folder, ``hf-hub:org/name``) and its config.json."""
    if is_hub_spec(str(path)):
        path = hub_download(str(path))
    if not path.exists():
        cached = hub_cache_folder(str(path))
        if cached is None:
            raise WeightsError(path, "no such file")
        path = cached
    if path.is_file():
        config = path.parent / "config.json"
        return path, (config if path.name in HUB_FILES and config.is_file() else None)
    if not path.is_dir():
        raise WeightsError(path, "not a regular file")
    config = path / "config.json" if (path / "config.json").is_file() else None
    for name in HUB_FILES:
        if (path / name).is_file():
            return path / name, config
    try:
        snapshots = sorted((d for d in (path / "snapshots").glob("*") if d.is_dir()), key=lambda d: d.stat().st_mtime)
        found = sorted(f.name for f in path.iterdir() if f.suffix in CHECKPOINT_SUFFIXES and f.is_file())
    except OSError as e:
        raise WeightsError(path, f"cannot read the folder: {e.strerror or e}") from None
    if snapshots:  # a Hugging Face cache folder (models--org--name): the newest snapshot
        return find_checkpoint(snapshots[-1])
    if len(found) == 1:
        return path / found[0], config
    if found:
        raise WeightsError(path, f"folder holds {len(found)} checkpoints ({', '.join(found[:4])}); pass one file")
    raise WeightsError(path, "folder has no checkpoint (expected model.safetensors, pytorch_model.bin, "
                             "or one .safetensors/.pth/.pt/.bin file)")


def sniff(file: Path, head: bytes) -> str:
    """'safetensors', 'zip' (torch.save) or 'pickle' (legacy torch.save) from the leading bytes of ``file``,
    else WeightsError."""
    if not head:
        raise WeightsError(file, "empty file (0 bytes)")
    if head[8:9] == b"{":  # an 8-byte header length, then the JSON header
        return "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[:1] == b"\x80":  # pickle protocol 2+
        return "pickle"
    if file.suffix == ".safetensors":
        return "safetensors"  # read_safetensors names the damage
    raise WeightsError(file, f"not a checkpoint ({describe_bytes(head)}; expected safetensors or a PyTorch file)")


def describe_bytes(head: bytes) -> str:
    """A few words on what a non-checkpoint file looks like, from its first bytes."""
    images = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
    if head.startswith(images) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "looks like an image"
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head)
    except UnicodeDecodeError:
        return "unrecognized binary data"
    return "looks like a text file" if all(c.isprintable() or c.isspace() for c in text) else "unrecognized binary data"


def torch_load(file: Path, data: bytes, kind: str = "zip") -> Any:
    """``torch.load`` of ``data``, the bytes of ``file``, restricted to tensors and plain containers
    (``weights_only``), errors made readable."""
    if kind == "zip" and not zipfile.is_zipfile(BytesIO(data)):  # torch's own message for this is an OSError
        raise WeightsError(file, "truncated or corrupt PyTorch checkpoint (cannot read its zip archive)")
    safe_globals = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    allowed = safe_globals([argparse.Namespace]) if safe_globals else contextlib.nullcontext()  # timm's saved args
    try:
        with warnings.catch_warnings(), allowed:
            warnings.simplefilter("ignore")
            return torch.load(BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        why = f"it references {found.group(1)}" if found else "it uses pickle features beyond tensors and containers"
        raise WeightsError(file, f"refused: not a plain weights file ({why}; pickles are loaded weights-only "
                                 "and never run code)") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for damaged files
        msg = str(e)
        if isinstance(e, EOFError) or "unexpected EOF" in msg:
            raise WeightsError(file, "truncated PyTorch checkpoint (the data ends early)") from None
        if "zip archive" in msg or "PytorchStreamReader" in msg:
            raise WeightsError(file, "truncated or corrupt PyTorch checkpoint (cannot read its zip archive)") from None
        first = " ".join(msg.split(". ")[0].split())[:200]
        raise WeightsError(file, f"corrupt or unreadable PyTorch checkpoint ({type(e).__name__}: {first})") from None


def parse_hub_config(path: Path, data: bytes) -> dict[str, Any]:
    """The bytes ``data`` of the ``config.json`` at ``path`` as a dict."""
    try:
        config = json.loads(data.decode("utf-8"))
    except ValueError as e:
        raise WeightsError(path, f"unreadable config.json ({' '.join(str(e).split())})") from None
    if not isinstance(config, dict):
        raise WeightsError(path, "invalid config.json (not a JSON object)")
    return config


__all__ = ["WeightsError", "ModelBundle", "Checkpoint", "read_checkpoint", "load_weights", "default_weights_path",
           "load_weights_identity", "save_nestviz", "read_safetensors", "parse_safetensors", "find_checkpoint", "sniff",
           "torch_load"]
