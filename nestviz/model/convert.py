"""timm / Hugging Face checkpoints -> nestviz: unwrapping state dicts, and the architecture from key names and shapes.

Pure functions on tensors and dicts, no file access: problems are ValueErrors whose message
``checkpoints`` prefixes with the file's name.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from torch import Tensor

from ..preprocess import Preprocessing
from .nest import NAMED_CONFIGS, NestConfig

WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema", "module")  # plain weights before EMA
KEY_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile
ASSUMED_HEAD_DIM = 32


def unwrap_state_dict(obj: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
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
        raise ValueError(f"not a state dict (the file holds a {type(obj).__name__})")
    tensors = {strip_prefixes(str(k)): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:3])) or "none"
        raise ValueError(f"no tensors in the checkpoint (keys: {keys})")
    return tensors, hints


def strip_prefixes(key: str) -> str:
    while key.startswith(KEY_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def check_nest_keys(tensors: dict[str, Tensor]) -> None:
    """ValueError unless the state dict has the keys every NesT has."""
    for required in ("patch_embed.proj.weight", "levels.0.pos_embed"):
        if required not in tensors:
            keys = ", ".join(sorted(tensors)[:3])
            raise ValueError(f"not a NesT checkpoint (no {required}; found keys like {keys})")


def infer_config(tensors: dict[str, Tensor], name: str | None, model_args: dict[str, Any],
                 num_classes: Any, provenance: dict[str, Any]) -> NestConfig:
    """Config from tensor shapes; heads and padding from ``name`` (or assumed, noted in ``provenance``).

    A ``name`` of a known architecture must fit the shapes (ValueError naming the ones that differ);
    without a name, a checkpoint of a known size is taken for its ``_jx`` variant (timm's published
    NesT weights are all ``_jx``) and :func:`unknown_variant_note` says what was assumed.
    """
    try:
        fields = shape_fields(tensors)
    except (ValueError, IndexError, KeyError) as e:
        raise ValueError(f"not a complete NesT checkpoint (cannot read the architecture: {e})") from None
    named = NAMED_CONFIGS.get(short_name(name)) if name else None
    if named is not None:
        check_fits(fields, named.with_(**known_fields(model_args)), short_name(name))
        fields.update(num_heads=named.num_heads, pad_type=named.pad_type)
        provenance["architecture"] = name
    else:
        sizes = [c for n, c in NAMED_CONFIGS.items() if n.endswith("_jx") and not mismatches(fields, c)]
        fields["num_heads"] = sizes[0].num_heads if sizes else tuple(assumed_heads(d) for d in fields["embed_dims"])
        fields["pad_type"] = "same" if (name or "").split(".")[0].endswith("_jx") or (sizes and not name) else ""
        provenance["architecture"] = name or "inferred from tensor shapes"
        if not sizes and "num_heads" not in model_args:
            provenance["num_heads"] = (f"assumed (head dim {ASSUMED_HEAD_DIM}): checkpoints do not store it; "
                                       "pass --arch if the outputs look wrong")
    fields.update(known_fields(model_args))
    if isinstance(num_classes, int) and num_classes > 0:
        fields["num_classes"] = num_classes
    try:
        return NestConfig(**fields)
    except (ValueError, TypeError) as e:
        raise ValueError(f"does not fit architecture {name or 'inferred from the shapes'} ({e})") from None


SHAPE_FIELDS = ("img_size", "in_chans", "patch_size", "num_levels", "embed_dims", "depths", "mlp_ratio", "qkv_bias")
TIMM_FILE_NAME = re.compile(r"(?<![a-z0-9])(jx_)?nest_(tiny|small|base)(_jx)?(?![a-z0-9])")


def short_name(name: str | None) -> str:
    """``timm/nest_tiny_jx.goog_in1k`` -> ``nest_tiny_jx``."""
    return (name or "").lower().split("/")[-1].split(".")[0]


def known_fields(model_args: dict[str, Any]) -> dict[str, Any]:
    """The NestConfig fields of timm ``model_args`` (``img_size: [224, 224]`` -> 224)."""
    return {k: v[-1] if k in ("img_size", "patch_size") and isinstance(v, list) and len(set(v)) == 1 else v
            for k, v in model_args.items() if k in NestConfig.__dataclass_fields__}


def mismatches(fields: dict[str, Any], cfg: NestConfig) -> list[str]:
    """The shape-given fields where a checkpoint (``fields``) and ``cfg`` differ, as "name (here) vs (cfg)"."""
    def show(v: Any) -> str:
        return str(tuple(v)) if isinstance(v, (list, tuple)) else str(v)

    return [f"{k} {show(fields[k])} vs {show(getattr(cfg, k))}" for k in SHAPE_FIELDS
            if (tuple(fields[k]) if isinstance(fields[k], list) else fields[k]) != getattr(cfg, k)]


def check_fits(fields: dict[str, Any], cfg: NestConfig, name: str) -> None:
    """ValueError naming the shapes that differ when a checkpoint is not architecture ``name``."""
    differ = mismatches(fields, cfg)
    if differ:
        fits = [n for n, c in NAMED_CONFIGS.items()
                if not mismatches(fields, c) and n.endswith("_jx") == name.endswith("_jx")]
        hint = f"; the shapes fit {fits[0]}" if fits else "; leave out --arch to read the shapes"
        raise ValueError(f"is not a {name} checkpoint: {', '.join(differ)} (checkpoint vs {name}){hint}")


def arch_from_file_name(path: Path) -> str | None:
    """timm's names for NesT files and folders: ``jx_nest_tiny-e3428fb9.pth``, ``nest_small_jx.goog_in1k``,
    ``models--timm--nest_base_jx.goog_in1k/snapshots/<sha>/model.safetensors`` -> ``nest_..._jx``."""
    for part in (path.name, *(p.name for p in list(path.parents)[:3])):
        found = TIMM_FILE_NAME.search(part.lower())
        if found:
            return f"nest_{found.group(2)}" + ("_jx" if found.group(1) or found.group(3) else "")
    return None


def unknown_variant_note(cfg: NestConfig) -> str:
    """What was assumed about a checkpoint that names no architecture, and how to choose (one line)."""
    size = next((n for n, c in NAMED_CONFIGS.items()
                 if n.endswith("_jx") and c.with_(num_classes=cfg.num_classes) == cfg), None)
    if size is not None:
        plain = size.removesuffix("_jx")
        return (f"the checkpoint does not say whether it is {plain} or {size} (their pooling padding differs); "
                f"assuming {size} like timm's published weights: pass --arch {plain} for the plain variant, "
                f"--arch {size} to silence this")
    return (f"the checkpoint names no architecture and is none of nestviz's named sizes: heads {cfg.num_heads} "
            "and plain pooling are assumed; put a timm config.json (architecture, model_args) beside it to say")


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


def preprocessing_from(pretrained_cfg: dict[str, Any], img_size: int) -> Preprocessing:
    """timm's ``pretrained_cfg`` (mean, std, interpolation, crop_pct) for a model of ``img_size``."""
    try:
        known = {k: pretrained_cfg[k] for k in ("mean", "std", "interpolation", "crop_pct") if k in pretrained_cfg}
        return Preprocessing(input_size=img_size, **known)
    except (ValueError, TypeError) as e:
        raise ValueError(f"invalid pretrained_cfg ({e})") from None


__all__ = ["unwrap_state_dict", "strip_prefixes", "check_nest_keys", "infer_config", "shape_fields",
           "assumed_heads", "preprocessing_from", "arch_from_file_name", "check_fits", "mismatches",
           "unknown_variant_note"]
