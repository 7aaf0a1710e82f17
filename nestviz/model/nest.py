"""NesT (Nested Hierarchical Transformer), interchangeable with timm's ``Nest``.

The config and the named architectures (each with the preprocessing its checkpoints expect),
then the model, built from ``layers.py``. State-dict keys, shapes and numerics match
``timm.models.nest.Nest`` so checkpoints load in either direction, and so does the interface
GradCAT and CAM use: ``forward_features`` (through the final norm), ``forward_head`` and
``forward_intermediates`` (every level's output map).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from ..preprocess import Preprocessing
from .layers import LN_EPS, NestLevel, PatchEmbed


@dataclass(frozen=True, kw_only=True)
class NestConfig:
    """Architecture hyperparameters; the names follow timm's ``Nest.__init__``."""

    img_size: int = 224
    in_chans: int = 3
    patch_size: int = 4
    num_levels: int = 3
    embed_dims: tuple[int, ...] = (128, 256, 512)
    num_heads: tuple[int, ...] = (4, 8, 16)
    depths: tuple[int, ...] = (2, 2, 20)
    num_classes: int = 1000
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    pad_type: str = ""  # "" for the plain variants, "same" for the _jx (TensorFlow-style) ones

    def __post_init__(self) -> None:
        for name in ("embed_dims", "num_heads", "depths"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistency, so a bad config never builds."""
        n = self.num_levels
        if n < 1:
            raise ValueError(f"num_levels must be >= 1, got {n}")
        for name in ("embed_dims", "num_heads", "depths"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} needs {n} entries (one per level), got {getattr(self, name)}")
        for dim, heads in zip(self.embed_dims, self.num_heads):
            if heads < 1 or dim % heads:
                raise ValueError(f"embed dim {dim} is not divisible by {heads} heads")
        if self.pad_type not in ("", "same"):
            raise ValueError(f"pad_type must be '' or 'same', got {self.pad_type!r}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        grid = self.img_size // self.patch_size
        if grid % self.leaf_grid:
            raise ValueError(
                f"{grid}x{grid} patches do not split into {self.leaf_grid}x{self.leaf_grid} leaf blocks;"
                " check img_size, patch_size and num_levels"
            )

    @property
    def leaf_grid(self) -> int:
        """Blocks per side at level 1 (the leaves): 2 ** (num_levels - 1)."""
        return 2 ** (self.num_levels - 1)

    @property
    def block_size(self) -> int:
        """Tokens per block side; the same at every level."""
        return self.img_size // self.patch_size // self.leaf_grid

    def grid(self, level: int) -> int:
        """Blocks per side at ``level`` (0-based: 0 holds the leaves, num_levels-1 the root)."""
        return 2 ** (self.num_levels - 1 - level)

    @property
    def pool_offset(self) -> int:
        """Where an aggregation's max-pool window of output position p is centred, minus 2p: 0 with plain padding,
        1 with ``same`` padding (the _jx checkpoints). GradCAT assigns each position to the child holding that
        centre (``nestviz.methods.gradcat.child_of``)."""
        return 1 if self.pad_type == "same" else 0

    def top_shift(self) -> float:
        """Where the top map's cells see, relative to where they sit: each cell's receptive-field centre minus its
        cell's centre, in top cells along each axis (negative: up and left).

        Each aggregation's 3x3 / 2 max-pool window of output position p is centred on input position 2p with
        plain padding, half a position before the pair (2p, 2p + 1) that p stands for, and on 2p + 1 with
        ``same`` padding, half a position after it; the patch embedding and the 3x3 convolutions are centred.
        The levels' shifts add up at the top: -(1/2)(1/2 + 1/4 + ...) over num_levels - 1 pools, so -0.375 of a
        top cell (-12 px of 32) for three plain levels. ``nestviz.methods.cam.place`` moves the top maps by it.
        """
        sign = 1.0 if self.pad_type == "same" else -1.0
        return sign * 0.5 * (1.0 - 0.5 ** (self.num_levels - 1))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("embed_dims", "num_heads", "depths"):
            d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NestConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**d)

    def with_(self, **changes: Any) -> "NestConfig":
        return replace(self, **changes)


_TINY = dict(embed_dims=(96, 192, 384), num_heads=(3, 6, 12), depths=(2, 2, 8))
_SMALL = dict(embed_dims=(96, 192, 384), num_heads=(3, 6, 12), depths=(2, 2, 20))
_BASE = dict(embed_dims=(128, 256, 512), num_heads=(4, 8, 16), depths=(2, 2, 20))

NAMED_CONFIGS: dict[str, NestConfig] = {
    "nest_tiny": NestConfig(**_TINY),
    "nest_small": NestConfig(**_SMALL),
    "nest_base": NestConfig(**_BASE),
    "nest_tiny_jx": NestConfig(**_TINY, pad_type="same"),
    "nest_small_jx": NestConfig(**_SMALL, pad_type="same"),
    "nest_base_jx": NestConfig(**_BASE, pad_type="same"),
    # nestviz's embedded default model: 3 levels (16 leaf blocks), a 6x6 top map.
    "nestviz_imagenette": NestConfig(
        img_size=192, patch_size=8, num_levels=3, embed_dims=(64, 128, 256),
        num_heads=(2, 4, 8), depths=(2, 2, 4), num_classes=10,
    ),
}


def default_preprocessing(cfg: NestConfig) -> Preprocessing:
    """What every named architecture expects: timm's NesT eval transform (ImageNet mean/std,
    bicubic, crop_pct 0.875) at the config's input size; checkpoints may say otherwise."""
    return Preprocessing(input_size=cfg.img_size)


def named_config(name: str, **overrides: Any) -> NestConfig:
    """Look up a named architecture (``nest_tiny``, ``nest_base_jx``...), optionally overriding fields."""
    key = name.strip().lower().split("/")[-1]
    key = key.removeprefix("timm/").split(".")[0]  # "nest_tiny_jx.goog_in1k" -> "nest_tiny_jx"
    if key not in NAMED_CONFIGS:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(NAMED_CONFIGS)}")
    return NAMED_CONFIGS[key].with_(**overrides) if overrides else NAMED_CONFIGS[key]


class Nest(nn.Module):
    """NesT classifier; ``state_dict()`` is key-for-key timm's ``Nest``, and so are its forward methods."""

    def __init__(self, cfg: NestConfig, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.in_chans, cfg.embed_dims[0], cfg.patch_size)
        dprs = torch.linspace(0, drop_path_rate, sum(cfg.depths), device="cpu").split(list(cfg.depths))
        levels, prev = [], None
        for i in range(cfg.num_levels):
            levels.append(NestLevel(
                num_blocks=cfg.grid(i) ** 2, block_size=cfg.block_size, dim=cfg.embed_dims[i], prev_dim=prev,
                num_heads=cfg.num_heads[i], depth=cfg.depths[i], mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
                pad_type=cfg.pad_type, drop=drop_rate, attn_drop=attn_drop_rate, drop_paths=dprs[i].tolist(),
            ))
            prev = cfg.embed_dims[i]
        self.levels = nn.Sequential(*levels)
        self.norm = nn.LayerNorm(cfg.embed_dims[-1], eps=LN_EPS)
        self.head = nn.Linear(cfg.embed_dims[-1], cfg.num_classes)
        self.head_drop = nn.Dropout(drop_rate)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm-style init: truncated normal (std .02) for linears and position embeddings."""
        for level in self.levels:
            nn.init.trunc_normal_(level.pos_embed, std=0.02, a=-2.0, b=2.0)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
                nn.init.zeros_(m.bias) if m.bias is not None else None
            elif isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                nn.init.trunc_normal_(m.weight, std=math.sqrt(1.0 / fan_in) / 0.87962566103423978)
                nn.init.zeros_(m.bias)

    def final_norm(self, top: Tensor) -> Tensor:
        """The final LayerNorm over the channels of the top map, (B, C, H, W) -> (B, C, H, W)."""
        return self.norm(top.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward_features(self, x: Tensor) -> Tensor:
        """Images (B, 3, S, S) -> the normalized top map (B, C, H, W) the head reads."""
        return self.final_norm(self.levels(self.patch_embed(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """:meth:`forward_features`'s map -> logits: mean over all positions, then the linear head."""
        x = self.head_drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.head(x)

    def forward_intermediates(self, x: Tensor, indices: int | Sequence[int] | None = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """timm's feature API: the output map (B, C_l, H_l, W_l) of the levels in ``indices``, leaves first.

        ``indices``: None for every level, n for the last n, or level numbers (negative from the end).
        ``norm`` applies the final norm to the top level's map when it is taken; ``stop_early`` skips
        the levels above the last one taken. Returns the intermediates, or (the final features, as
        :meth:`forward_features` when the top level ran, and the intermediates).
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        n = len(self.levels)
        wanted = range(n - indices, n) if isinstance(indices, int) else range(n) if indices is None else indices
        take = sorted({i % n for i in wanted})
        last = n - 1
        x = self.patch_embed(x)
        intermediates = []
        for i, level in enumerate(self.levels[:take[-1] + 1] if stop_early and take else self.levels):
            x = level(x)
            if i in take:
                intermediates.append(self.final_norm(x) if norm and i == last else x)
        if intermediates_only:
            return intermediates
        return (self.final_norm(x) if i == last else x), intermediates

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def resize_state_dict(state: dict[str, Tensor], cfg: NestConfig) -> dict[str, Tensor]:
    """``state`` of a NesT at another ``img_size`` made loadable into one of ``cfg``: each level's position
    embedding (1, blocks, b * b, C), one b x b grid per block, resampled bicubically to cfg's block size
    (as timm resamples ViT position embeddings for a new input size). Every other tensor is kept as is."""
    out = dict(state)
    b = cfg.block_size
    for key, v in state.items():
        if not key.endswith("pos_embed") or v.shape[2] == b * b:
            continue
        _, blocks, n, c = v.shape
        old = math.isqrt(n)
        if old * old != n:
            raise ValueError(f"{key}: {n} positions per block are not a square grid")
        grid = v.reshape(blocks, old, old, c).permute(0, 3, 1, 2).float()
        grid = torch.nn.functional.interpolate(grid, size=(b, b), mode="bicubic", align_corners=False)
        out[key] = grid.permute(0, 2, 3, 1).reshape(1, blocks, b * b, c).to(v.dtype)
    return out


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no decay on biases, norms and position embeddings (as the paper)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith("pos_embed") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["NestConfig", "NAMED_CONFIGS", "named_config", "default_preprocessing", "Nest", "resize_state_dict",
           "param_groups", "count_params"]
