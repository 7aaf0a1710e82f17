"""Cost of explanations relative to a plain prediction, per image, batch 16, no rendering.

    python benchmarks/cost_ratios.py [--weights W] [--batch-size 16] [--repeats 5] [--images DIR]

Times the model work of ``Nestviz.run`` (decoding excluded, same decoded batch for all):
predict, cam, explain --top-k 1 and explain --top-k 4, and explain with each other GradCAT score; the ratio is
the median over rounds of each round's time over that round's predict. Targets: top-4 <= 3x, cam <= 1.15x.
The batch is smooth random colour fields, or with ``--images`` photos spread evenly over the sorted files under
DIR (e.g. Imagenette's val): the default GradCAT score's work depends on the image (a close call at the root is
settled by removal, ``nestviz.methods.ablation.settle_root``), and colour fields, which no class fits, have more
close calls than photos.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nestviz.api import Nestviz  # noqa: E402
from nestviz.batch.discover import discover  # noqa: E402


def synthetic_images(n: int, seed: int = 0) -> list[Image.Image]:
    """Smooth random colour fields at 320x240: realistic decode-free inputs of a non-square size."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        out.append(Image.fromarray(small).resize((320, 240), Image.Resampling.BICUBIC))
    return out


def photos(folder: Path, n: int) -> list[Path]:
    """``n`` image files spread evenly over the images under ``folder``, in a folder run's order (a class-per-folder
    set gets about as many of each class)."""
    files = [item.path for item in discover([folder])[0]]  # the images a folder run would take, in its order
    if len(files) < n:
        sys.exit(f"{folder}: {len(files)} images, fewer than the batch of {n}")
    return [files[i * len(files) // n] for i in range(n)]


def seconds(nv: Nestviz, batch, mode: str, **kw) -> float:
    """Seconds per image of one ``Nestviz.run`` of ``batch`` in ``mode``."""
    t = time.perf_counter()
    nv.run(batch, mode, **kw)
    return (time.perf_counter() - t) / len(batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--images", type=Path, default=None, help="time on photos under this folder instead")
    args = ap.parse_args()
    nv = Nestviz.load(args.weights, device="cpu")
    batch = [nv.prepare(im) for im in (photos(args.images, args.batch_size) if args.images
                                         else synthetic_images(args.batch_size))]
    runs = [("predict", nv, "predict", 5), ("cam --top-k 1", nv, "cam", 1), ("explain --top-k 1", nv, "explain", 1),
            ("explain --top-k 4", nv, "explain", 4)]
    for score in ("gradient", "root-ablation", "ablation", "relevance", "relevance-shares"):  # every GradCAT score
        other = Nestviz.load(args.weights, device="cpu", gradcat_score=score)
        runs += [(f"explain -k 1 {score}", other, "explain", 1), (f"explain -k 4 {score}", other, "explain", 4)]
    for _, model, mode, k in runs:  # warm-up
        seconds(model, batch, mode, top_k=k)
    # Rounds: every mode once per round, each ratio taken against the same round's predict, so that a machine
    # whose speed drifts during the run (shared cores) moves both sides of a ratio alike.
    times = [[seconds(model, batch, mode, top_k=k) for _, model, mode, k in runs] for _ in range(args.repeats)]
    print(f"weights {nv.bundle.source}, batch {args.batch_size} ({args.images or 'colour fields'}), "
          f"{torch.get_num_threads()} threads, no rendering, "
          f"default GradCAT score {nv.gradcat_score}, {args.repeats} rounds")
    print(f"{'mode':<32}{'ms/image':>10}{'x predict':>11}")
    for i, (name, *_) in enumerate(runs):
        ms = statistics.median(r[i] for r in times) * 1e3
        ratio = statistics.median(r[i] / r[0] for r in times)
        print(f"{name:<32}{ms:>10.2f}{ratio:>11.2f}")


if __name__ == "__main__":
    main()
