"""Loading and saving NesT weights, offline: nestviz files, timm and Hugging Face checkpoints.

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
import functools
import hashlib
import json
import math
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .model import NAMED_CONFIGS, Nest, NestConfig, named_config
from .preprocess import Preprocessing

FORMAT_NAME = "nestviz"
FORMAT_VERSION = "1"
DEFAULT_WEIGHTS_NAME = "nestviz-imagenette.safetensors"
HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what a Hugging Face model folder holds
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema", "module")  # plain weights before EMA
KEY_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
ASSUMED_HEAD_DIM = 32


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


# -- nestviz's own format --------------------------------------------------------------------------

def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and a rename: never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs should be readable like any other file
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
    model = build_and_load(path, cfg, tensors)
    if len(class_names) != cfg.num_classes:
        class_names = default_class_names(cfg.num_classes)
    provenance = {**provenance, "source_format": "nestviz safetensors", "source_path": str(path)}
    return ModelBundle(model, cfg, class_names, pre, provenance, str(path))


# -- entry point -----------------------------------------------------------------------------------

def load_weights(path: str | os.PathLike[str] | None = None, arch: str | None = None) -> ModelBundle:
    """Load a nestviz, timm or Hugging Face checkpoint (file or hub folder) as a ready model, offline.

    ``arch`` (``nest_tiny_jx``...) supplies what tensor shapes cannot: heads and pooling padding.
    ``path=None`` loads the default model (see :func:`default_weights_path`).
    """
    given = Path(path) if path is not None else default_weights_path()
    if arch is not None:
        try:
            named_config(arch)
        except ValueError as e:
            raise WeightsError(given, f"{e} (--arch)") from None
    file, config_json = find_checkpoint(given)
    kind = sniff(file)
    if kind == "safetensors":
        tensors, meta = read_safetensors(file)
        if meta.get("format") == FORMAT_NAME:
            return load_nestviz_file(file, tensors, meta)
        wrapper: dict[str, Any] = {}
        source_format = "safetensors state dict"
    else:
        tensors, wrapper = unwrap_state_dict(file, torch_load(file, kind))
        source_format = "PyTorch state dict" + (f" (under {wrapper['key']!r})" if wrapper.get("key") else "")
    hints = read_hub_config(config_json) if config_json else {}
    return bundle_from_state_dict(file, tensors, arch, hints, wrapper, source_format, config_json)


def default_weights_path() -> Path:
    """The default model: $NESTVIZ_WEIGHTS, else <repo>/weights/, else the copy packaged in nestviz/resources/."""
    env = os.environ.get("NESTVIZ_WEIGHTS")
    if env:
        if not Path(env).exists():
            raise WeightsError(env, "no such file (named by NESTVIZ_WEIGHTS)")
        return Path(env)
    package = Path(__file__).resolve().parent
    repo_copy = package.parent / "weights" / DEFAULT_WEIGHTS_NAME
    for candidate in (repo_copy, package / "resources" / DEFAULT_WEIGHTS_NAME):
        if candidate.is_file():
            return candidate
    raise WeightsError(repo_copy, "no default model found (nor a packaged copy, nor NESTVIZ_WEIGHTS); "
                                  "pass --weights with a nestviz, timm or Hugging Face checkpoint")


def load_weights_identity(path: str | os.PathLike[str] | None = None, arch: str | None = None) -> str:
    """A short content hash of the checkpoint (and its config.json) and ``arch``: changes when the model does."""
    file, config_json = find_checkpoint(Path(path) if path is not None else default_weights_path())
    h = hashlib.sha256(f"{arch or ''}\n".encode())
    for f in (file, config_json):
        if f is not None:
            try:
                with open(f, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
            except OSError as e:
                raise WeightsError(f, f"cannot read: {e.strerror or e}") from None
    return f"{file.name}:{h.hexdigest()[:16]}"


# -- finding and reading checkpoint files ----------------------------------------------------------

def find_checkpoint(path: Path) -> tuple[Path, Path | None]:
    """The checkpoint file for ``path`` (a file, a hub folder, or a hub cache folder) and its config.json."""
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


def hub_cache_folder(repo_id: str) -> Path | None:
    """``org/name`` (e.g. ``timm/nest_tiny_jx.goog_in1k``) -> its folder in the local Hugging Face cache."""
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/")):
        return None
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    cache = Path(os.environ.get("HF_HUB_CACHE", hf_home / "hub"))
    folder = cache / ("models--" + repo_id.replace("/", "--"))
    return folder if folder.is_dir() else None


def sniff(file: Path) -> str:
    """'safetensors', 'zip' (torch.save) or 'pickle' (legacy torch.save) from the leading bytes, else WeightsError."""
    try:
        with open(file, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise WeightsError(file, f"cannot read: {e.strerror or e}") from None
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


def torch_load(file: Path, kind: str = "zip") -> Any:
    """``torch.load`` restricted to tensors and plain containers (``weights_only``), errors made readable."""
    if kind == "zip" and not zipfile.is_zipfile(file):  # torch's own message for this is an OSError
        raise WeightsError(file, "truncated or corrupt PyTorch checkpoint (cannot read its zip archive)")
    safe_globals = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
    allowed = safe_globals([argparse.Namespace]) if safe_globals else contextlib.nullcontext()  # timm's saved args
    try:
        with warnings.catch_warnings(), allowed:
            warnings.simplefilter("ignore")
            return torch.load(file, map_location="cpu", weights_only=True)
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


def unwrap_state_dict(file: Path, obj: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors of a loaded checkpoint: unwrapped from {"state_dict": ...} etc., ``module.`` stripped.

    Also returns the wrapper's hints: the key used, and ``arch``/``config``/``classes`` when present.
    """
    hints: dict[str, Any] = {}
    if isinstance(obj, dict):
        key = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
        if key is not None:
            hints = {k: obj[k] for k in ("arch", "config", "classes") if k in obj}
            hints["key"], obj = key, obj[key]
    if not isinstance(obj, dict):
        raise WeightsError(file, f"not a state dict (the file holds a {type(obj).__name__})")
    tensors = {strip_prefixes(str(k)): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:3])) or "none"
        raise WeightsError(file, f"no tensors in the checkpoint (keys: {keys})")
    return tensors, hints


def strip_prefixes(key: str) -> str:
    while key.startswith(KEY_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def read_hub_config(path: Path) -> dict[str, Any]:
    """A timm / Hugging Face ``config.json`` as a dict (architecture, num_classes, pretrained_cfg...)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WeightsError(path, f"unreadable config.json ({' '.join(str(e).split())})") from None
    if not isinstance(config, dict):
        raise WeightsError(path, "invalid config.json (not a JSON object)")
    return config


# -- architecture from a state dict ----------------------------------------------------------------

def bundle_from_state_dict(file: Path, tensors: dict[str, Tensor], arch: str | None, hub: dict[str, Any],
                           wrapper: dict[str, Any], source_format: str, config_json: Path | None) -> ModelBundle:
    """Work out config, class names and preprocessing for a bare state dict, then load it."""
    for required in ("patch_embed.proj.weight", "levels.0.pos_embed"):
        if required not in tensors:
            keys = ", ".join(sorted(tensors)[:3])
            raise WeightsError(file, f"not a NesT checkpoint (no {required}; found keys like {keys})")
    provenance: dict[str, Any] = {"source_format": source_format, "source_path": str(file)}
    if config_json is not None:
        provenance["config_json"] = str(config_json)
    if isinstance(wrapper.get("config"), dict) and arch is None:  # a nestviz training checkpoint
        try:
            cfg = NestConfig.from_dict(wrapper["config"])
        except (ValueError, TypeError) as e:
            raise WeightsError(file, f"invalid config in the checkpoint ({e})") from None
    else:
        name = next((n for n in (arch, hub.get("architecture"), wrapper.get("arch")) if isinstance(n, str) and n), None)
        model_args = hub.get("model_args") if arch is None and isinstance(hub.get("model_args"), dict) else {}
        cfg = infer_config(file, tensors, name, model_args, hub.get("num_classes"), provenance)
    model = build_and_load(file, cfg, tensors)
    pretrained_cfg = hub.get("pretrained_cfg") if isinstance(hub.get("pretrained_cfg"), dict) else {}
    names = hub.get("label_names") or pretrained_cfg.get("label_names") or wrapper.get("classes")
    if not (isinstance(names, list) and len(names) == cfg.num_classes):
        names = imagenet_class_names() if cfg.num_classes == 1000 else default_class_names(cfg.num_classes)
    pre = preprocessing_from(config_json or file, pretrained_cfg, cfg.img_size)
    return ModelBundle(model, cfg, [str(n) for n in names], pre, provenance, str(file))


def infer_config(file: Path, tensors: dict[str, Tensor], name: str | None, model_args: dict[str, Any],
                 num_classes: Any, provenance: dict[str, Any]) -> NestConfig:
    """Config from tensor shapes; heads and padding from ``name`` (or assumed, noted in ``provenance``)."""
    try:
        fields = shape_fields(tensors)
    except (ValueError, IndexError, KeyError) as e:
        raise WeightsError(file, f"not a complete NesT checkpoint (cannot read the architecture: {e})") from None
    named = NAMED_CONFIGS.get(name.lower().split("/")[-1].split(".")[0]) if name else None
    if named is not None:
        fields.update(num_heads=named.num_heads, pad_type=named.pad_type)
        provenance["architecture"] = name
    else:
        known = next((c for c in NAMED_CONFIGS.values() if c.embed_dims == fields["embed_dims"]), None)
        fields["num_heads"] = known.num_heads if known else tuple(assumed_heads(d) for d in fields["embed_dims"])
        fields["pad_type"] = "same" if name and name.split(".")[0].endswith("_jx") else ""
        provenance["architecture"] = name or "inferred from tensor shapes"
        if not known and "num_heads" not in model_args:
            provenance["num_heads"] = (f"assumed (head dim {ASSUMED_HEAD_DIM}): checkpoints do not store it; "
                                       "pass --arch if the outputs look wrong")
    for k, v in model_args.items():
        if k in NestConfig.__dataclass_fields__:
            fields[k] = v[-1] if k in ("img_size", "patch_size") and isinstance(v, list) and len(set(v)) == 1 else v
    if isinstance(num_classes, int) and num_classes > 0:
        fields["num_classes"] = num_classes
    try:
        return NestConfig(**fields)
    except (ValueError, TypeError) as e:
        raise WeightsError(file, f"does not fit architecture {name or 'inferred from the shapes'} ({e})") from None


def shape_fields(tensors: dict[str, Tensor]) -> dict[str, Any]:
    """Every NestConfig field but num_heads and pad_type, read from a timm-layout state dict's shapes."""
    proj = tensors["patch_embed.proj.weight"]  # (embed_dims[0], in_chans, patch, patch)
    if proj.ndim != 4:
        raise ValueError(f"patch_embed.proj.weight has shape {tuple(proj.shape)}, not a conv weight")
    levels = sorted({int(k.split(".")[1]) for k in tensors if re.match(r"levels\.\d+\.", k)})
    if levels != list(range(len(levels))):
        raise ValueError(f"levels are numbered {levels}")
    dims, depths = [], []
    for i in levels:
        pos = tensors.get(f"levels.{i}.pos_embed")
        if pos is None or pos.ndim != 4:
            raise ValueError(f"no (1, blocks, tokens, dim) levels.{i}.pos_embed")
        dims.append(int(pos.shape[-1]))
        layers = [int(k.split(".")[3]) for k in tensors if k.startswith(f"levels.{i}.transformer_encoder.")]
        depths.append(max(layers) + 1 if layers else 0)
    block_size = math.isqrt(int(tensors["levels.0.pos_embed"].shape[2]))
    fc1 = next((tensors[k] for k in sorted(tensors) if k.endswith("mlp.fc1.weight")), None)
    head = tensors.get("head.weight")
    has_qkv = any(k.endswith("attn.qkv.weight") for k in tensors)  # no layers at all: the default, True
    return dict(
        img_size=block_size * 2 ** (len(levels) - 1) * int(proj.shape[-1]),
        in_chans=int(proj.shape[1]),
        patch_size=int(proj.shape[-1]),
        num_levels=len(levels),
        embed_dims=tuple(dims),
        depths=tuple(depths),
        num_classes=int(head.shape[0]) if head is not None and head.ndim == 2 else 1000,
        mlp_ratio=fc1.shape[0] / fc1.shape[1] if fc1 is not None and fc1.ndim == 2 else 4.0,
        qkv_bias=any(k.endswith("attn.qkv.bias") for k in tensors) or not has_qkv,
    )


def assumed_heads(dim: int) -> int:
    """Heads for an embed dim when nothing says: head dim 32, rounded down to a divisor of ``dim``."""
    heads = max(1, dim // ASSUMED_HEAD_DIM)
    while dim % heads:
        heads -= 1
    return heads


def preprocessing_from(origin: Path, pretrained_cfg: dict[str, Any], img_size: int) -> Preprocessing:
    """timm's ``pretrained_cfg`` (mean, std, interpolation, crop_pct) for a model of ``img_size``."""
    try:
        known = {k: pretrained_cfg[k] for k in ("mean", "std", "interpolation", "crop_pct") if k in pretrained_cfg}
        return Preprocessing(input_size=img_size, **known)
    except (ValueError, TypeError) as e:
        raise WeightsError(origin, f"invalid pretrained_cfg ({e})") from None


# -- class names -----------------------------------------------------------------------------------

def default_class_names(n: int) -> list[str]:
    return [f"class {i}" for i in range(n)]


@functools.lru_cache(maxsize=1)
def _imagenet_table() -> tuple[tuple[str, str], ...]:
    text = resources.files("nestviz.resources").joinpath("imagenet1k_classes.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines()[1:] if line.strip()]
    return tuple((wnid, name) for _, wnid, name in rows)


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k labels in timm's index order, first lemma only ("tench")."""
    return [name.split(",")[0].strip() for _, name in _imagenet_table()]


def imagenet_wnids() -> list[str]:
    """The 1,000 ImageNet-1k WordNet ids (n01440764...) in timm's index order."""
    return [wnid for wnid, _ in _imagenet_table()]


# -- building --------------------------------------------------------------------------------------

def build_and_load(path: Path, cfg: NestConfig, tensors: dict[str, Tensor]) -> Nest:
    """Instantiate ``cfg`` and load ``tensors`` strictly, summarizing any mismatch in one line."""
    model = Nest(cfg)
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = sorted(k for k in tensors if k not in expected)
    conflicts = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                 if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or conflicts:
        summary = summarize_mismatch(missing, unexpected, conflicts)
        raise WeightsError(path, f"does not match the architecture: {summary}")
    model.load_state_dict({k: tensors[k].to(torch.float32) for k in expected}, strict=True)
    return model.eval()


def summarize_mismatch(missing: list[str], unexpected: list[str], conflicts: list[str], shown: int = 3) -> str:
    def part(title: str, items: list[str]) -> str:
        more = f", ... (+{len(items) - shown} more)" if len(items) > shown else ""
        return f"{len(items)} {title} ({', '.join(items[:shown])}{more})"

    parts = [part(t, items) for t, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                             ("shape conflicts", conflicts)) if items]
    return "; ".join(parts)


__all__ = [
    "WeightsError", "ModelBundle", "load_weights", "default_weights_path", "load_weights_identity", "save_nestviz",
    "read_safetensors", "atomic_write_bytes", "infer_config", "shape_fields", "imagenet_class_names",
    "imagenet_wnids", "build_and_load", "summarize_mismatch",
]
