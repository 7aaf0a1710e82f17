"""Bytes per image that a folder run writes, for the output settings, on 100 generated photos.

    python benchmarks/output_bytes.py [--images 100] [--command annotate] [--weights W]

Each setting is a real ``nestviz`` subprocess into its own OUT; reported per image: the figures,
the thumbnail, the manifest line and the gallery files, and all of OUT. The images are 640x480
JPEGs of smooth colour fields with photo-like grain (flat fields would flatter the encoders).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {  # name -> extra options
    "compact jpg (default)": [],
    "compact png": ["--format", "png"],
    "full-size jpg": ["--full-size"],
    "full-size png (before)": ["--full-size", "--format", "png"],
}


def make_images(root: Path, n: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        field = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((640, 480),
                                                                                       Image.Resampling.BICUBIC)
        grain = rng.normal(0, 12, (480, 640, 3))
        pixels = np.clip(np.asarray(field, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"img{i:03d}.jpg", quality=90)
    return root


def sizes(out: Path) -> dict[str, int]:
    kinds = {"figures": 0, "thumbnails": 0, "manifest": 0, "gallery": 0, "all": 0}
    for p in out.rglob("*"):
        if not p.is_file():
            continue
        n = p.stat().st_size
        kinds["all"] += n
        if p.name.endswith(".thumb.jpg"):
            kinds["thumbnails"] += n
        elif p.name.startswith("manifest"):
            kinds["manifest"] += n
        elif p.name in ("index.html", "gallery-data.js", "gallery-details.js"):
            kinds["gallery"] += n
        else:
            kinds["figures"] += n
    return kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--command", default="annotate", choices=("explain", "cam", "annotate"))
    ap.add_argument("--weights", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "in").mkdir()
        src = make_images(Path(tmp) / "in", args.images)
        print(f"nestviz {args.command}, {args.images} generated 640x480 photos; kilobytes per image")
        print(f"{'setting':<24}{'figures':>9}{'thumb':>7}{'manifest':>10}{'gallery':>9}{'all':>8}")
        for name, extra in SETTINGS.items():
            out = Path(tmp) / name.split()[0].replace("-", "") / name.split()[1]
            cmd = [sys.executable, "-m", "nestviz", args.command, str(src), "--out", str(out), "-q", *extra]
            if args.weights:
                cmd += ["--weights", args.weights]
            subprocess.run(cmd, check=True, cwd=REPO)
            k = {key: v / args.images / 1024 for key, v in sizes(out).items()}
            print(f"{name:<24}{k['figures']:>9.1f}{k['thumbnails']:>7.1f}{k['manifest']:>10.1f}{k['gallery']:>9.1f}"
                  f"{k['all']:>8.1f}")


if __name__ == "__main__":
    main()
