"""Pointing game on 2x2 mosaics of Imagenette validation images from four different classes.

For every mosaic and each of its four classes: does the GradCAT leaf centre, and the CAM
peak, fall in that class's quadrant? Random guessing scores 25%. Both GradCAT signs are
measured (+: A * dY/dA, the positive contribution, the default; -: the paper's
alpha * (-dY/dalpha) as we read it), so the README's choice rests on a number.

    python benchmarks/pointing_game.py [--mosaics 250] [--weights W] [--data ../shared/data/imagenette.tar]

Needs the Imagenette archive (../shared/data/imagenette.tar, extracted to a cache dir).
"""

from __future__ import annotations

import argparse
import random
import sys
import tarfile
import time
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nestviz.api import Nestviz  # noqa: E402
from nestviz.cam import cam_maps, localize  # noqa: E402
from nestviz.data import scan_class_folders  # noqa: E402
from nestviz.evaluate import folder_to_class  # noqa: E402
from nestviz.gradcat import gradcat  # noqa: E402


def imagenette_val(tar: Path, cache: Path) -> Path:
    """Extract the archive once into ``cache`` and return its val folder."""
    val = cache / "imagenette" / "val"
    if not val.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar) as t:
            t.extractall(cache, filter="data")
    return val


def mosaic(paths: list[Path], tile: int = 224) -> Image.Image:
    """Four images as a 2x2 grid: top-left, top-right, bottom-left, bottom-right."""
    canvas = Image.new("RGB", (2 * tile, 2 * tile))
    for q, p in enumerate(paths):
        im = Image.open(p).convert("RGB").resize((tile, tile), Image.Resampling.BICUBIC)
        canvas.paste(im, ((q % 2) * tile, (q // 2) * tile))
    return canvas


def quadrant(x: float, y: float, size: int) -> int:
    return int(y >= size / 2) * 2 + int(x >= size / 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mosaics", type=int, default=250)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "imagenette.tar"))
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "nestviz" / "imagenette"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"{args.data}: Imagenette archive not found")
    val = imagenette_val(Path(args.data), Path(args.cache))
    ds = scan_class_folders(val)
    nv = Nestviz.load(args.weights, device="cpu")
    model_class = folder_to_class(ds.classes, nv)
    by_class: dict[int, list[Path]] = {}
    for p, c in zip(ds.paths, ds.labels):
        by_class.setdefault(c, []).append(p)
    rng = random.Random(args.seed)
    hits = {"gradcat+": 0, "gradcat-": 0, "cam": 0}
    trials = 0
    t0 = time.perf_counter()
    for _ in range(args.mosaics):
        folders = rng.sample(sorted(by_class), 4)
        paths = [rng.choice(by_class[f]) for f in folders]
        classes = [model_class[f] for f in folders]
        im = mosaic(paths)
        prep = nv.prepare(im)
        x = prep.tensor[None]
        geo = prep.geometry
        for sign, name in ((1.0, "gradcat+"), (-1.0, "gradcat-")):
            out = gradcat(nv.model, x, classes=classes, sign=sign)
            for q, path in enumerate(out.paths[0]):
                x0, y0, x1, y1 = geo.box_to_original(path[-1].box)
                hits[name] += quadrant((x0 + x1) / 2, (y0 + y1) / 2, im.width) == q
        with torch.inference_mode():
            top = nv.model.forward_levels(x)[-1]
            maps = cam_maps(nv.model, top, torch.tensor([classes]))
        for q in range(4):
            _, peak = localize(maps[0, q], geo.size)
            px, py = geo.point_to_original(*peak)
            hits["cam"] += quadrant(px, py, im.width) == q
        trials += 4
    dt = time.perf_counter() - t0
    print(f"pointing game: {args.mosaics} mosaics, {trials} class-quadrant trials, weights {nv.bundle.source}")
    print(f"{'method':<28}{'hits':>8}{'rate':>9}")
    labels = {"gradcat+": "GradCAT leaf (A*dY/dA)", "gradcat-": "GradCAT leaf (-A*dY/dA)", "cam": "CAM peak"}
    for k, v in hits.items():
        print(f"{labels[k]:<28}{v:>8}{v / trials:>9.1%}")
    print(f"random: 25.0%   ({dt:.0f} s)")


if __name__ == "__main__":
    main()
