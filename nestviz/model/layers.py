"""The building blocks of NesT, in timm's layout: blockify helpers, attention, transformer layer,
block aggregation (ConvPool), one level, the patch embedding. ``nest.py`` assembles them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LN_EPS = 1e-6


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
    interleaved (proj input channel c*H + h), the layout of the JAX checkpoints. ``forward`` is
    fused (scaled_dot_product_attention); ``forward_with_weights`` computes the softmax explicitly
    and returns it too, for readers of the attention (as timm keeps a non-fused path).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._qkv(x)
        drop = self.attn_drop if self.training else 0.0
        return self._merge(F.scaled_dot_product_attention(q, k, v, dropout_p=drop))

    def forward_with_weights(self, x: Tensor, hold: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """The output, the attention weights (B, H, T, N, N), each row a distribution over the block's tokens,
        and the values (B, H, T, N, d): the output at i is sum_h sum_j a_h,ij W_o,h v_h,j plus the projection's
        bias, W_o,h being :meth:`head_projections`' h. ``hold``: the output's gradient treats the weights as
        constants (``nestviz.methods.relevance``); its value is the same, and q and k are then computed off the
        graph, so that a backward pass skips two thirds of the qkv projection."""
        q, k, v = self._qkv(x, hold)
        weights = ((q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5).softmax(dim=-1)
        dropped = F.dropout(weights, self.attn_drop) if self.training and self.attn_drop else weights
        dropped = dropped.detach() if hold else dropped
        return self._merge(dropped @ v), weights, v

    def head_projections(self) -> Tensor:
        """The output projection per head (C, d, H): proj input channel c*H + h is head h's c-th."""
        return self.proj.weight.reshape(self.proj.weight.shape[0], -1, self.num_heads)

    def _qkv(self, x: Tensor, hold: bool = False) -> tuple[Tensor, ...]:
        """q, k, v of blocks (B, T, N, C), each (B, H, T, N, d); ``hold``: q and k off the graph (v on it)."""
        B, T, N, C = x.shape
        H = self.num_heads
        if not hold:
            return self.qkv(x).reshape(B, T, N, 3, H, C // H).permute(3, 0, 4, 1, 2, 5).unbind(0)
        w, b = self.qkv.weight, self.qkv.bias
        qk = F.linear(x.detach(), w[:2 * C], None if b is None else b[:2 * C])
        v = F.linear(x, w[2 * C:], None if b is None else b[2 * C:])
        q, k = qk.reshape(B, T, N, 2, H, C // H).permute(3, 0, 4, 1, 2, 5).unbind(0)
        return q, k, v.reshape(B, T, N, H, C // H).permute(0, 3, 1, 2, 4)

    def _merge(self, x: Tensor) -> Tensor:
        """Heads (B, H, T, N, d) merged interleaved (channel c*H + h), then the output projection."""
        B, H, T, N, d = x.shape
        return self.proj_drop(self.proj(x.permute(0, 2, 3, 4, 1).reshape(B, T, N, d * H)))


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

    def __init__(self, *, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop: float = 0.0,
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

    def forward_with_attention(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The layer's output, its attention branch's update (what it adds to ``x``), the attention weights
        (B, H, T, N, N) and the values (B, H, T, N, d), from the explicit (non-fused) attention
        (``Attention.forward_with_weights``)."""
        update, weights, values = self.attn.forward_with_weights(self.norm1(x))
        update = self.drop_path(update)
        x = x + update
        return x + self.drop_path(self.mlp(self.norm2(x))), update, weights, values


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
        return self.downsample(self.norm(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2))

    def downsample(self, x: Tensor) -> Tensor:
        """The max-pool 3x3 stride 2 of the normalized map (B, C, H, W), with this variant's padding."""
        if self.pad_type == "same":
            x = F.pad(x, (0, 1, 0, 1), value=float("-inf"))
            return F.max_pool2d(x, kernel_size=3, stride=2)
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class NestLevel(nn.Module):
    """One level: (optional) aggregation of the previous level, position embedding, transformer layers."""

    def __init__(self, *, num_blocks: int, block_size: int, dim: int, prev_dim: int | None, num_heads: int,
                 depth: int, mlp_ratio: float, qkv_bias: bool, pad_type: str, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_paths: list[float] | None = None):
        super().__init__()
        self.block_size = block_size
        self.pos_embed = nn.Parameter(torch.zeros(1, num_blocks, block_size * block_size, dim))
        self.pool = ConvPool(prev_dim, dim, pad_type) if prev_dim is not None else nn.Identity()
        drop_paths = drop_paths or [0.0] * depth
        self.transformer_encoder = nn.Sequential(*[
            TransformerLayer(dim=dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop,
                             attn_drop=attn_drop, drop_path=drop_paths[i])
            for i in range(depth)
        ])

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_prev, H, W) -> (B, C, H', W')."""
        x = self.pool(x).permute(0, 2, 3, 1)
        x = blockify(x, self.block_size) + self.pos_embed
        x = self.transformer_encoder(x)
        return deblockify(x, self.block_size).permute(0, 3, 1, 2)


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> channels: (B, in_chans, S, S) -> (B, dim, S / patch, S / patch)."""

    def __init__(self, img_size: int, in_chans: int, dim: int, patch_size: int):
        super().__init__()
        self.img_size = img_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ValueError(f"input is {tuple(x.shape[-2:])}, the model expects {self.img_size}x{self.img_size}")
        return self.proj(x)


__all__ = ["blockify", "deblockify", "Attention", "Mlp", "DropPath", "TransformerLayer", "ConvPool", "NestLevel", "PatchEmbed", "LN_EPS"]
