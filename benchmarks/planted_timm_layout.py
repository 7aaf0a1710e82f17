"""A planted-shortcut model with timm's NesT layout, trained from scratch: the known-answer check on the geometry
timm and Hugging Face checkpoints have (4 px patches, 224 px, blocks of 14 x 14 tokens: 56 px leaves and a 14 x 14
top map), where the default model has 8 px patches and 8 x 8 blocks.

    python benchmarks/planted_timm_layout.py --cache CACHE --from SET_CACHE [--per-class 400]
    python benchmarks/planted_shortcut.py score --cache CACHE --weights CACHE/model2.safetensors --limit 225

``SET_CACHE`` is a ``planted_shortcut.py make`` cache (its ``train/`` and ``heldout/``, e.g. ``--set fresh``). The
model is small (dims 48 / 96 / 192, depths 1 / 1 / 2: no pretrained weights of this layout exist offline), trained
on ``--per-class`` images of each class (links under ``CACHE/train``): 5 epochs from scratch (lr 1e-3, warm-up
0.5 epoch; ``model.safetensors``), then 6 more from those weights (warm-up 0.3; ``model2.safetensors``). About
20 + 23 min on 2 cores. Each stage is skipped when its weights exist; a cut-off stage resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAYOUT = dict(img_size=224, patch_size=4, num_levels=3, embed_dims=(48, 96, 192), num_heads=(2, 4, 8),
              depths=(1, 1, 2), num_classes=10)


def subset(src: Path, dst: Path, per_class: int) -> None:
    """The first ``per_class`` images of each class folder of ``src``, linked under ``dst``."""
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / cls.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(cls.iterdir())[:per_class]:
            link = dst / cls.name / f.name
            if not link.exists():
                link.symlink_to(f.resolve())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--from", dest="source", type=Path, required=True, help="a planted_shortcut.py make cache")
    ap.add_argument("--per-class", type=int, default=400)
    args = ap.parse_args()
    from nestviz.model.nest import NestConfig
    from nestviz.train.loop import TrainOptions, train

    cache = args.cache
    subset(args.source / "train", cache / "train", args.per_class)
    for name in ("heldout", "set.txt"):
        if not (cache / name).exists():
            (cache / name).symlink_to((args.source / name).resolve())
    cfg = NestConfig(**LAYOUT)

    def report(epoch: int, i: int, n: int, loss: float, ips: float) -> None:
        print(f"epoch {epoch} step {i}/{n} loss {loss:.3f} {ips:.0f} img/s", flush=True)

    for out, epochs, warmup, init in (("model.safetensors", 5, 0.5, None), ("model2.safetensors", 6, 0.3, "model.safetensors")):
        if (cache / out).exists():
            continue
        ckpt = cache / (out + ".ckpt")
        opts = TrainOptions(epochs=epochs, lr=1e-3, warmup_epochs=warmup, drop_path=0.0, mix_prob=0.0, eval_every=100)
        train(cache / "train", cache / out, cfg, opts, cache_dir=cache / "decoded", on_step=report, on_epoch=print,
              init=None if init is None or ckpt.exists() else cache / init, resume=ckpt if ckpt.exists() else None)


if __name__ == "__main__":
    main()
