"""NesT (Nested Hierarchical Transformer), interchangeable with timm's ``Nest``.

Read top to bottom: config, blockify helpers, attention, transformer layer, block
aggregation (ConvPool), one level, the whole model. State-dict keys, shapes and
numerics match ``timm.models.nest.Nest`` so checkpoints load in either direction.

Every level's output (C x H x W, before the final norm for the top level) is exposed
through :meth:`Nest.forward_levels`: GradCAT and CAM are built on those maps.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LN_EPS = 1e-6


@dataclass(frozen=True)
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


def named_config(name: str, **overrides: Any) -> NestConfig:
    """Look up a named architecture (``nest_tiny``, ``nest_base_jx``...), optionally overriding fields."""
    key = name.strip().lower().split("/")[-1]
    key = key.removeprefix("timm/").split(".")[0]  # "nest_tiny_jx.goog_in1k" -> "nest_tiny_jx"
    if key not in NAMED_CONFIGS:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(NAMED_CONFIGS)}")
    return NAMED_CONFIGS[key].with_(**overrides) if overrides else NAMED_CONFIGS[key]


def blockify(x: Tensor, block_size: int) -> Tensor:
    """(B, H, W, C) image -> (B, T, N, C) blocks, blocks row-major, tokens row-major inside."""
    B, H, W, C = x.shape
    gh, gw = H // block_size, W // block_size
    x = x.reshape(B, gh, block_size, gw, block_size, C).transpose(2, 3)
    return x.reshape(B, gh * gw, block_size * block_size, C)


def deblockify(x: Tensor, block_size: int) -> Tensor:
    """(B, T, N, C) blocks -> (B, H, W, C) image; inverse of :func:`blockify` for square grids."""
    B, T, _, C = x.shape
    g = math.isqrt(T)
    x = x.reshape(B, g, g, block_size, block_size, C).transpose(2, 3)
    return x.reshape(B, g * block_size, g * block_size, C)


class Attention(nn.Module):
    """Multi-head self-attention inside each block, batched over blocks.

    qkv output channels are [q | k | v], head h at h*d..h*d+d-1; the heads are merged
    interleaved (proj input channel c*H + h), the layout of the JAX checkpoints.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        B, T, N, C = x.shape
        H = self.num_heads
        qkv = self.qkv(x).reshape(B, T, N, 3, H, C // H).permute(3, 0, 4, 1, 2, 5)
        q, k, v = qkv.unbind(0)  # each (B, H, T, N, d)
        drop = self.attn_drop if self.training else 0.0
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        x = x.permute(0, 2, 3, 4, 1).reshape(B, T, N, C)  # (B, T, N, d, H): channel c*H + h
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact erf form, as timm
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer applied to every block independently."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ConvPool(nn.Module):
    """Block aggregation: conv 3x3 -> LayerNorm over channels -> max-pool 3x3 stride 2.

    Pooling pads 1 on every side for the plain variants; for ``pad_type='same'`` (the _jx
    checkpoints) it pads TensorFlow-style, 0 before and 1 after, with -inf.
    """

    def __init__(self, in_dim: int, out_dim: int, pad_type: str = ""):
        super().__init__()
        self.pad_type = pad_type
        self.conv = nn.Conv2d(in_dim, out_dim, kernel_size=3, padding=1, bias=True)
        self.norm = nn.LayerNorm(out_dim, eps=LN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % 2 or x.shape[-1] % 2:
            raise ValueError(f"block aggregation needs even spatial dims, got {tuple(x.shape[-2:])}")
        x = self.conv(x)
        x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.pad_type == "same":
            x = F.pad(x, (0, 1, 0, 1), value=float("-inf"))
            return F.max_pool2d(x, kernel_size=3, stride=2)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class NestLevel(nn.Module):
    """One level: (optional) aggregation of the previous level, position embedding, transformer layers."""

    def __init__(self, num_blocks: int, block_size: int, dim: int, prev_dim: int | None, num_heads: int,
                 depth: int, mlp_ratio: float, qkv_bias: bool, pad_type: str, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_paths: list[float] | None = None):
        super().__init__()
        self.block_size = block_size
        self.pos_embed = nn.Parameter(torch.zeros(1, num_blocks, block_size * block_size, dim))
        self.pool = ConvPool(prev_dim, dim, pad_type) if prev_dim is not None else nn.Identity()
        drop_paths = drop_paths or [0.0] * depth
        self.transformer_encoder = nn.Sequential(*[
            TransformerLayer(dim, num_heads, mlp_ratio, qkv_bias, drop, attn_drop, drop_paths[i])
            for i in range(depth)
        ])

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_prev, H, W) -> (B, C, H', W')."""
        x = self.pool(x).permute(0, 2, 3, 1)
        x = blockify(x, self.block_size) + self.pos_embed
        x = self.transformer_encoder(x)
        return deblockify(x, self.block_size).permute(0, 3, 1, 2)


class PatchEmbed(nn.Module):
    def __init__(self, cfg: NestConfig):
        super().__init__()
        self.img_size = cfg.img_size
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dims[0], kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"input is {tuple(x.shape[-2:])}, the model expects {self.img_size}x{self.img_size}")
        return self.proj(x)


class Nest(nn.Module):
    """NesT classifier; ``state_dict()`` is key-for-key timm's ``Nest``."""

    def __init__(self, cfg: NestConfig, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        dprs = torch.linspace(0, drop_path_rate, sum(cfg.depths)).split(list(cfg.depths))
        levels, prev = [], None
        for i in range(cfg.num_levels):
            levels.append(NestLevel(
                cfg.grid(i) ** 2, cfg.block_size, cfg.embed_dims[i], prev, cfg.num_heads[i], cfg.depths[i],
                cfg.mlp_ratio, cfg.qkv_bias, cfg.pad_type, drop_rate, attn_drop_rate, dprs[i].tolist(),
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

    def forward_levels(self, x: Tensor) -> list[Tensor]:
        """Images (B, 3, S, S) -> every level's output (B, C_l, H_l, W_l), leaves first, root last."""
        x = self.patch_embed(x)
        outs = []
        for level in self.levels:
            x = level(x)
            outs.append(x)
        return outs

    def top_features(self, top: Tensor) -> Tensor:
        """Final LayerNorm over channels of the top map: (B, C, H, W) -> (B, H, W, C)."""
        return self.norm(top.permute(0, 2, 3, 1))

    def classify(self, features: Tensor) -> Tensor:
        """Normalized top map (B, H, W, C) -> logits: mean over all tokens, then the linear head."""
        return self.head(self.head_drop(features.mean(dim=(1, 2))))

    def forward_head(self, top: Tensor) -> Tensor:
        """Top-level map -> logits: final norm, mean over all tokens, linear."""
        return self.classify(self.top_features(top))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_levels(x)[-1])


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


__all__ = [
    "NestConfig", "NAMED_CONFIGS", "named_config", "Nest", "blockify", "deblockify", "param_groups",
    "count_params",
]
