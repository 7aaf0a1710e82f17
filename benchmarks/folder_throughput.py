"""Folder-mode throughput and memory, in one run, on a generated folder of images.

    python benchmarks/folder_throughput.py [--images 1000] [--rss-images 5000] [--weights W]

Prints images/s for predict, explain --no-render, explain (rendered PNGs) and annotate,
each as a real ``nestviz`` subprocess on the same folder; the ratio of rendered to
no-render explain throughput (target >= 60%); and the resident memory of an in-process
explain --no-render run after 1,000 and after ``--rss-images`` images (target <= 10% growth).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_folder(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` JPEGs of 320x240 smooth colour fields in 10 subfolders (made once, reused)."""
    marker = root / f".complete-{n}"
    if marker.exists():
        return root
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = root / f"part{i % 10}"
        d.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        Image.fromarray(small).resize((320, 240), Image.Resampling.BICUBIC).save(d / f"img{i:05d}.jpg", quality=90)
    marker.touch()
    return root


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--rss-images", type=int, default=5000)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "nestviz-bench"))
    args = ap.parse_args()
    work = Path(args.work)
    folder = make_folder(work / f"images-{args.images}", args.images)
    nestviz = [sys.executable, "-m", "nestviz"]
    wopt = ["--weights", args.weights] if args.weights else []
    runs = {
        "predict": nestviz + ["predict", str(folder), "--json"] + wopt,
        "explain --no-render": nestviz + ["explain", str(folder), "--no-render", "-q", "--out"],
        "explain (png)": nestviz + ["explain", str(folder), "-q", "--format", "png", "--full-size", "--out"],
        "annotate (png)": nestviz + ["annotate", str(folder), "-q", "--format", "png", "--full-size", "--out"],
    }
    rates = {}
    for name, cmd in runs.items():
        if cmd[-1] == "--out":
            out = work / ("out-" + name.split()[0] + ("-norender" if "no-render" in name else ""))
            shutil.rmtree(out, ignore_errors=True)
            cmd = cmd + [str(out)] + wopt
        rates[name] = args.images / timed(cmd)
    print(f"folder of {args.images} generated 320x240 JPEGs, {os.cpu_count()} cores, batch 16, "
          "whole-command wall time (model load included)")
    print(f"{'command':<24}{'images/s':>10}")
    for name, r in rates.items():
        print(f"{name:<24}{r:>10.2f}")
    print(f"rendered / no-render explain throughput: {rates['explain (png)'] / rates['explain --no-render']:.0%}"
          " (target >= 60%)")

    # Memory: one in-process run, RSS sampled as images finish.
    from nestviz.api import Nestviz
    from nestviz.batch.discover import discover
    from nestviz.batch.runner import RunOptions, run_folder

    big = make_folder(work / f"images-{args.rss_images}", args.rss_images, seed=1)
    items, _ = discover([big])
    out = work / "out-rss"
    shutil.rmtree(out, ignore_errors=True)
    samples: dict[int, float] = {}
    marks = {1000, args.rss_images}

    def tick(done: int, total: int) -> None:
        if done in marks and done not in samples:
            samples[done] = rss_mb()

    nv = Nestviz.load(args.weights, device="cpu")
    run_folder(items, RunOptions("explain", out, render=False), lambda: nv, "bench", progress=tick)
    a, b = samples.get(1000), samples.get(args.rss_images)
    print(f"RSS (explain --no-render, in-process): {a:.0f} MB after 1,000 images, {b:.0f} MB after "
          f"{args.rss_images:,}: {100 * (b - a) / a:+.1f}% (target <= 10%)")


if __name__ == "__main__":
    main()
