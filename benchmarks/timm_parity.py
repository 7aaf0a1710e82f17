"""Logits of nestviz versus timm's ``Nest`` on the same weights (run in a venv that has timm).

    python -m venv /tmp/timmvenv && /tmp/timmvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm safetensors
    /tmp/timmvenv/bin/python benchmarks/timm_parity.py

Checks the embedded default model (loaded into timm with the hyperparameters in its
metadata) and random-weight nest_tiny / nest_tiny_jx / nest_small_jx / nest_base at 224 px:
prints the largest absolute logit difference for each, float32 (goal: within 1e-5).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import timm.models.nest as tn
import torch
from safetensors.torch import load_file, safe_open

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nestviz.model import Nest, named_config  # noqa: E402


def timm_nest(cfg) -> tn.Nest:  # noqa: ANN001
    return tn.Nest(img_size=cfg.img_size, patch_size=cfg.patch_size, num_levels=cfg.num_levels,
                   embed_dims=cfg.embed_dims, num_heads=cfg.num_heads, depths=cfg.depths,
                   num_classes=cfg.num_classes, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias,
                   pad_type=cfg.pad_type, drop_path_rate=0.0).eval()


def main() -> None:
    torch.manual_seed(0)
    rows = []
    weights = REPO / "nestviz" / "resources" / "nestviz-imagenette.safetensors"
    from nestviz.model import NestConfig

    with safe_open(str(weights), "pt") as f:
        cfg = NestConfig.from_dict(json.loads(f.metadata()["config"]))
    sd = load_file(str(weights))
    ours, theirs = Nest(cfg).eval(), timm_nest(cfg)
    ours.load_state_dict(sd, strict=True)
    theirs.load_state_dict(sd, strict=True)
    x = torch.randn(8, 3, cfg.img_size, cfg.img_size)
    with torch.no_grad():
        rows.append(("default model (nestviz/resources/)", float((ours(x) - theirs(x)).abs().max())))
    for name in ("nest_tiny", "nest_tiny_jx", "nest_small_jx", "nest_base"):
        cfg = named_config(name)
        theirs = timm_nest(cfg)
        ours = Nest(cfg).eval()
        ours.load_state_dict(theirs.state_dict(), strict=True)
        x = torch.randn(2, 3, 224, 224)
        with torch.no_grad():
            rows.append((f"{name} (random weights)", float((ours(x) - theirs(x)).abs().max())))
    print(f"torch {torch.__version__}, float32")
    print(f"{'model':<32}{'max |logit diff|':>18}")
    for name, d in rows:
        print(f"{name:<32}{d:>18.2e}")


if __name__ == "__main__":
    main()
