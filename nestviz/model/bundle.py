"""A ready model with what it takes to use and describe it (:class:`ModelBundle`), built from
a state dict or a model object; :class:`WeightsError`, the one error of weights that cannot be used."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..preprocess import Preprocessing
from .classes import class_names_for
from .convert import arch_from_file_name, check_nest_keys, infer_config, preprocessing_from, unknown_variant_note
from .nest import Nest, NestConfig, count_params, default_preprocessing


class WeightsWarning(UserWarning):
    """A checkpoint that loads but leaves something to assume (which NesT variant); one line naming the file."""


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

    def card(self) -> dict[str, Any]:
        """The model card (``nestviz info --json``): source, config, parameters, classes, preprocessing, provenance."""
        return {"source": self.source, "config": self.config.to_dict(), "parameters": count_params(self.model),
                "num_classes": self.config.num_classes, "class_names": self.class_names,
                "preprocessing": self.preprocessing.to_dict(), "provenance": self.provenance}

    def card_rows(self) -> list[tuple[str, str]]:
        """The model card as (field, text) rows for people."""
        cfg, p, names = self.config, self.preprocessing, self.class_names
        rows = [
            ("weights", self.source),
            ("architecture", f"NesT, {cfg.num_levels} levels, {cfg.img_size}px, patch {cfg.patch_size}, "
                             f"blocks {cfg.block_size}x{cfg.block_size} tokens, "
                             f"pooling {'same (_jx)' if cfg.pad_type else 'plain'}"),
            ("dims / heads / depths", f"{list(cfg.embed_dims)} / {list(cfg.num_heads)} / {list(cfg.depths)}"),
            ("parameters", f"{count_params(self.model) / 1e6:.2f} M"),
            ("top-level map", f"{cfg.block_size}x{cfg.block_size}"),
            ("classes", f"{len(names)}: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")),
            ("preprocessing", f"resize shorter side to {p.resize_to} ({p.interpolation}), centre crop "
                              f"{p.input_size} (crop_pct {p.crop_pct}), mean {list(p.mean)}, std {list(p.std)}"),
        ]
        return rows + [(k, str(v)) for k, v in self.provenance.items() if k not in ("options", "class_folders")]


def bundle_from_model(model: nn.Module, class_names: list[str] | None = None,
                      preprocessing: Preprocessing | None = None, arch: str | None = None) -> ModelBundle:
    """A bundle around a model object: a nestviz ``Nest`` as it is, any other NesT (timm's) through its state dict."""
    if isinstance(model, Nest):
        check_finite(f"<{type(model).__name__}>", model.state_dict())
    else:
        tensors = {k: v.detach() for k, v in model.state_dict().items()}
        timm_cfg = getattr(model, "pretrained_cfg", None)  # a timm model knows its name: nest_tiny_jx
        hub = {"architecture": timm_cfg.get("architecture")} if isinstance(timm_cfg, dict) else {}
        converted = bundle_from_state_dict(Path(f"<{type(model).__name__}>"), tensors, arch, hub, {},
                                           "in-memory model", None)
        model = converted.model
    cfg = model.cfg
    names = class_names_for(cfg.num_classes, list(class_names) if class_names is not None else None)
    if class_names is not None and len(class_names) != cfg.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {cfg.num_classes}-class head")
    pre = preprocessing or default_preprocessing(cfg)
    return ModelBundle(model, cfg, names, pre, {"source_format": "in-memory model"}, f"<{type(model).__name__}>")


def bundle_from_state_dict(file: Path, tensors: dict[str, Tensor], arch: str | None, hub: dict[str, Any],
                           wrapper: dict[str, Any], source_format: str, config_json: Path | None) -> ModelBundle:
    """Work out config, class names and preprocessing for a bare state dict, then load it."""
    try:
        check_nest_keys(tensors)
    except ValueError as e:
        raise WeightsError(file, str(e)) from None
    provenance: dict[str, Any] = {"source_format": source_format, "source_path": str(file)}
    if config_json is not None:
        provenance["config_json"] = str(config_json)
    if isinstance(wrapper.get("config"), dict) and arch is None:  # a nestviz training checkpoint
        try:
            cfg = NestConfig.from_dict(wrapper["config"])
        except (ValueError, TypeError) as e:
            raise WeightsError(file, f"invalid config in the checkpoint ({e})") from None
    else:
        cfg = config_from_names(file, tensors, arch, hub, wrapper, provenance)
    model = build_and_load(file, cfg, tensors)
    pretrained_cfg = hub.get("pretrained_cfg") if isinstance(hub.get("pretrained_cfg"), dict) else {}
    names = hub.get("label_names") or pretrained_cfg.get("label_names") or wrapper.get("classes")
    try:
        pre = preprocessing_from(pretrained_cfg, cfg.img_size)
    except ValueError as e:
        raise WeightsError(config_json or file, str(e)) from None
    return ModelBundle(model, cfg, class_names_for(cfg.num_classes, names), pre, provenance, str(file))


def config_from_names(file: Path, tensors: dict[str, Tensor], arch: str | None, hub: dict[str, Any],
                      wrapper: dict[str, Any], provenance: dict[str, Any]) -> NestConfig:
    """The config of a bare state dict: named by ``--arch``, config.json, the checkpoint or timm's file name,
    checked against the shapes; when nothing names it, what was assumed is a :class:`WeightsWarning`."""
    name = next((n for n in (arch, hub.get("architecture"), wrapper.get("arch")) if isinstance(n, str) and n), None)
    model_args = hub.get("model_args") if arch is None and isinstance(hub.get("model_args"), dict) else {}
    try:
        by_file = arch_from_file_name(file) if name is None else None
        if by_file is not None:
            try:
                cfg = infer_config(tensors, by_file, model_args, hub.get("num_classes"), provenance)
                provenance["architecture"] = f"{by_file} (from the file name)"
                return cfg
            except ValueError:
                pass  # a file name is a hint: not this architecture, so read the shapes
        cfg = infer_config(tensors, name, model_args, hub.get("num_classes"), provenance)
    except ValueError as e:
        raise WeightsError(file, str(e)) from None
    if name is None and "num_heads" not in model_args:
        note = unknown_variant_note(cfg)
        provenance["assumed"] = note
        warnings.warn(WeightsWarning(f"{file}: {note}"), stacklevel=2)
    return cfg


def build_and_load(path: Path, cfg: NestConfig, tensors: dict[str, Tensor]) -> Nest:
    """Instantiate ``cfg`` and load ``tensors`` strictly, summarizing any mismatch in one line; tensors with NaN or
    infinite values are refused, naming the first."""
    with torch.device("meta"):  # shapes first, no memory: a config that asks for gigabytes is a mismatch, not an OOM
        expected = Nest(cfg).state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = sorted(k for k in tensors if k not in expected)
    conflicts = [f"{k} {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                 if k in tensors and tensors[k].shape != v.shape]
    if missing or unexpected or conflicts:
        summary = summarize_mismatch(missing, unexpected, conflicts)
        raise WeightsError(path, f"does not match the architecture: {summary}")
    state = {k: tensors[k].to(torch.float32) for k in expected}
    check_finite(path, state)
    model = Nest(cfg)
    model.load_state_dict(state, strict=True)
    return model.eval()


def check_finite(path: Path | str, state: dict[str, Tensor]) -> None:
    """WeightsError naming the first floating-point tensor of ``state`` with NaN or infinite values."""
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            nan, inf = int(torch.isnan(t).sum()), int(torch.isinf(t).sum())
            raise WeightsError(path, f"tensor {name} has non-finite values ({nan} NaN, {inf} infinite of {t.numel()})")


def summarize_mismatch(missing: list[str], unexpected: list[str], conflicts: list[str], shown: int = 3) -> str:
    def part(title: str, items: list[str]) -> str:
        more = f", ... (+{len(items) - shown} more)" if len(items) > shown else ""
        return f"{len(items)} {title} ({', '.join(items[:shown])}{more})"

    parts = [part(t, items) for t, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                             ("shape conflicts", conflicts)) if items]
    return "; ".join(parts)


__all__ = ["check_finite", "WeightsError", "WeightsWarning", "config_from_names", "ModelBundle", "bundle_from_model", "bundle_from_state_dict", "build_and_load",
           "summarize_mismatch"]
