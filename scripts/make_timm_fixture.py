"""Generate tests/fixtures/timm_parity.pt with timm (run once, in a dev venv that has timm).

    python -m venv /tmp/timmvenv && /tmp/timmvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm
    /tmp/timmvenv/bin/python scripts/make_timm_fixture.py

For each tiny config (plain and _jx pooling, odd and even block sizes) it stores timm's
random-init state dict, an input batch, every level's output and the logits.
"""

from pathlib import Path

import timm.models.nest as tn
import torch

CONFIGS = {
    "tiny3_plain": dict(img_size=32, patch_size=4, num_levels=3, embed_dims=(16, 24, 32), num_heads=(2, 2, 4),
                        depths=(1, 1, 2), num_classes=7, mlp_ratio=2.0, qkv_bias=True, pad_type=""),
    "tiny3_jx": dict(img_size=32, patch_size=4, num_levels=3, embed_dims=(16, 24, 32), num_heads=(2, 4, 4),
                     depths=(1, 2, 1), num_classes=5, mlp_ratio=4.0, qkv_bias=False, pad_type="same"),
    "odd2_jx": dict(img_size=40, patch_size=4, num_levels=2, embed_dims=(12, 24), num_heads=(3, 4),
                    depths=(2, 1), num_classes=3, mlp_ratio=3.0, qkv_bias=True, pad_type="same"),
    "odd3_plain": dict(img_size=60, patch_size=3, num_levels=3, embed_dims=(8, 16, 24), num_heads=(2, 2, 3),
                       depths=(1, 1, 1), num_classes=4, mlp_ratio=4.0, qkv_bias=True, pad_type=""),
}


def main() -> None:
    torch.manual_seed(0)
    out = {}
    for name, cfg in CONFIGS.items():
        model = tn.Nest(drop_path_rate=0.0, **cfg).eval()
        # make biases, norms and position embeddings non-trivial so every parameter matters
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.ndim <= 1 or pname.endswith("pos_embed"):
                    p.add_(torch.randn_like(p) * 0.2)
        x = torch.randn(2, 3, cfg["img_size"], cfg["img_size"])
        with torch.no_grad():
            feats = model.patch_embed(x)
            levels = []
            for level in model.levels:
                feats = level(feats)
                levels.append(feats.clone())
            logits = model(x)
        out[name] = dict(config={k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
                         state_dict={k: v.clone() for k, v in model.state_dict().items()},
                         input=x, levels=levels, logits=logits)
    path = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "timm_parity.pt"
    torch.save(out, path)
    print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
