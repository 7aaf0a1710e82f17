"""Cost of explanations relative to a plain prediction, per image, batch 16, no rendering.

    python benchmarks/cost_ratios.py [--weights W] [--batch-size 16] [--repeats 5]

Times the model work of ``Nestviz.run`` (decoding excluded, same decoded batch for all):
predict, cam, explain --top-k 1 and explain --top-k 4. Targets: top-4 <= 4x, cam <= 1.15x.
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


def synthetic_images(n: int, seed: int = 0) -> list[Image.Image]:
    """Smooth random colour fields at 320x240: realistic decode-free inputs of a non-square size."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        out.append(Image.fromarray(small).resize((320, 240), Image.Resampling.BICUBIC))
    return out


def time_mode(nv: Nestviz, batch, mode: str, repeats: int, **kw) -> float:
    """Median seconds per image over ``repeats`` runs (after one warm-up)."""
    nv.run(batch, mode, **kw)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        nv.run(batch, mode, **kw)
        times.append((time.perf_counter() - t) / len(batch))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    nv = Nestviz.load(args.weights, device="cpu")
    batch = [nv.prepare(im) for im in synthetic_images(args.batch_size)]
    predict = time_mode(nv, batch, "predict", args.repeats, top_k=5)
    rows = [("predict", predict),
            ("cam --top-k 1", time_mode(nv, batch, "cam", args.repeats, top_k=1)),
            ("explain --top-k 1", time_mode(nv, batch, "explain", args.repeats, top_k=1)),
            ("explain --top-k 4", time_mode(nv, batch, "explain", args.repeats, top_k=4))]
    for score in ("gradient", "ablation", "relevance"):  # the other GradCAT node scores
        other = Nestviz.load(args.weights, device="cpu", gradcat_score=score)
        rows += [(f"explain -k 1 {score}", time_mode(other, batch, "explain", args.repeats, top_k=1)),
                 (f"explain -k 4 {score}", time_mode(other, batch, "explain", args.repeats, top_k=4))]
    print(f"weights {nv.bundle.source}, batch {args.batch_size}, {torch.get_num_threads()} threads, no rendering, "
          f"default GradCAT score {nv.gradcat_score}")
    print(f"{'mode':<26}{'ms/image':>10}{'x predict':>11}")
    for name, t in rows:
        print(f"{name:<26}{t * 1e3:>10.2f}{t / predict:>11.2f}")


if __name__ == "__main__":
    main()
