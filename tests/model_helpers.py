"""Helpers the tests share that build NesTs: the tiny configs and a tiny random model, a random small NesT and a
hand-built one whose GradCAT answers are known, and a tiny training set with fast training options."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from nestviz.model import Nest, NestConfig
from nestviz.train.loop import TrainOptions

TINY = NestConfig(img_size=32, patch_size=4, num_levels=3, embed_dims=(8, 16, 16), num_heads=(2, 2, 4),
                  depths=(1, 1, 1), num_classes=3, mlp_ratio=2.0)

# nest_tiny_jx's heads and padding at a tiny size; with TINY_NAMED, tiny stand-ins for timm's named
# sizes (nest_tiny alone has 17M parameters), so named architectures are tested on tiny random weights.
TINY_JX = NestConfig(img_size=32, patch_size=4, num_levels=3, embed_dims=(12, 24, 24), num_heads=(3, 6, 12),
                     depths=(1, 1, 2), num_classes=5, mlp_ratio=2.0, pad_type="same")
TINY_NAMED = {"nest_tiny": TINY_JX.with_(pad_type=""), "nest_tiny_jx": TINY_JX,
              "nest_small": TINY_JX.with_(depths=(1, 1, 3), pad_type=""), "nest_small_jx": TINY_JX.with_(depths=(1, 1, 3))}


def tiny_model(seed: int = 0, cfg: NestConfig = TINY) -> Nest:
    torch.manual_seed(seed)
    model = Nest(cfg).eval()
    with torch.no_grad():  # larger random weights than the init, so outputs differ clearly between inputs
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def random_model(seed: int = 0, **cfg) -> Nest:
    """A small NesT with larger-than-init random weights, so explanations differ clearly between inputs."""
    base = dict(img_size=32, patch_size=2, num_levels=3, embed_dims=(8, 16, 16), num_heads=(2, 2, 4),
                depths=(1, 1, 1), num_classes=5, mlp_ratio=2.0)
    torch.manual_seed(seed)
    model = Nest(NestConfig(**{**base, **cfg})).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def hand_built(block: int, pad_type: str = "") -> Nest:
    """3-level, 1-channel NesT of 4x4 leaf blocks of ``block`` px whose class-0 logit is "how bright".

    Tokens carry [brightness, 1, 0, 0]: the transformer layers are identities (zero output
    projections), every aggregation copies the brightness (conv centre tap) and rebuilds the
    constant channel (conv bias), and its LayerNorm maps dark to 0 and is increasing in brightness.
    The constant channel matters: a LayerNorm fed by a single channel is scale-invariant, which
    would make every A . dY/dA below it vanish. The head reads the brightness channel.
    """
    cfg = NestConfig(img_size=4 * block, in_chans=1, patch_size=1, num_levels=3, embed_dims=(4, 4, 4),
                     num_heads=(1, 1, 1), depths=(1, 1, 1), num_classes=2, mlp_ratio=1.0, pad_type=pad_type)
    model = Nest(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.patch_embed.proj.weight[0, 0, 0, 0] = 1.0
        model.patch_embed.proj.bias[1] = 1.0
        for level in model.levels[1:]:
            level.pool.conv.weight[0, 0, 1, 1] = 1.0
            level.pool.conv.bias[1] = 1.0
            level.pool.norm.weight[0] = 1.0
            level.pool.norm.bias[:2] = torch.tensor([1 / math.sqrt(3), 1.0])  # LN of [0, 1, 0, 0] -> [0, 1, 0, 0]
        model.norm.weight[0] = 1.0
        model.norm.bias[0] = 1 / math.sqrt(3)
        model.head.weight[:, 0] = torch.tensor([1.0, -1.0])
    return model


def expected_nodes(leaf: int) -> list[int]:
    """Node ids root -> leaf of leaf ``leaf`` in a 3-level tree (4x4 leaves, 2x2 level-2 blocks)."""
    r, c = divmod(leaf, 4)
    return [0, (r // 2) * 2 + c // 2, leaf]


CFG = NestConfig(img_size=32, patch_size=4, num_levels=3, embed_dims=(8, 16, 16), num_heads=(2, 2, 4),
                 depths=(1, 1, 1), num_classes=3, mlp_ratio=2.0)
SHAPES = {"c0": "red square", "c1": "green disc", "c2": "blue bar"}


def make_shapes(root: Path, per_class: int = 12, seed: int = 0) -> Path:
    """Coloured shapes at random places on grey noise, one folder per class."""
    rng = np.random.default_rng(seed)
    for folder in SHAPES:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            bg = rng.integers(90, 160, (40, 40, 3), dtype=np.uint8)
            im = Image.fromarray(bg)
            d = ImageDraw.Draw(im)
            x, y = (int(v) for v in rng.integers(2, 20, 2))
            if folder == "c0":
                d.rectangle((x, y, x + 16, y + 16), fill=(230, 30, 30))
            elif folder == "c1":
                d.ellipse((x, y, x + 16, y + 16), fill=(30, 220, 30))
            else:
                d.rectangle((x, y, x + 18, y + 6), fill=(30, 30, 230))
            im.save(root / folder / f"{i:02d}.png")
    return root


def opts(**kw) -> TrainOptions:  # noqa: ANN003
    base = dict(epochs=6, batch_size=8, lr=3e-3, warmup_epochs=1, precision="fp32", mix_prob=0.0, eval_every=1,
                seed=3)
    base.update(kw)
    return TrainOptions(**base)
