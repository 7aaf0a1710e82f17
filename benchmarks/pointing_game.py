"""Pointing game on 2x2 mosaics of Imagenette validation images from four different classes.

For every mosaic and each of its four classes: does the GradCAT leaf centre, and the CAM
peak, fall in that class's quadrant? Random guessing scores 25%. Both signs of the GradCAT score
(``--gradcat-score``, default the tool's) are measured: with ``gradient``, + is A * dY/dA, the
positive contribution, and - the paper's alpha * (-dY/dalpha) as we read it, so the README's
choice rests on a number (the ablation scores have no sign).

    python benchmarks/pointing_game.py [--mosaics 250] [--weights W] [--gradcat-score S] [--data ../shared/data/imagenette.tar]

Needs the Imagenette archive (../shared/data/imagenette.tar, extracted to a cache dir).
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nestviz.api import Nestviz  # noqa: E402
from nestviz.defaults import CAM_KIND, GRADCAT_SCORE, SIGNED_SCORES  # noqa: E402
from nestviz.train.data import scan_class_folders  # noqa: E402
from nestviz.evaluation.evaluate import folder_to_class  # noqa: E402
from nestviz.evaluation.pointing import pointing_game  # noqa: E402


def imagenette_val(tar: Path, cache: Path) -> Path:
    """Extract the archive once into ``cache`` and return its val folder."""
    val = cache / "imagenette" / "val"
    if not val.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar) as t:
            t.extractall(cache, filter="data")
    return val


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mosaics", type=int, default=250)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--cam-kind", default=None, help="flow, contrast or logit (default: the tool's)")
    ap.add_argument("--gradcat-score", default=None, help="gradient, cam, root-ablation, ablation or relevance (default: the tool's)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "imagenette.tar"))
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "nestviz" / "imagenette"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not Path(args.data).exists():
        sys.exit(f"{args.data}: Imagenette archive not found")
    ds = scan_class_folders(imagenette_val(Path(args.data), Path(args.cache)))
    nv = Nestviz.load(args.weights, device="cpu", cam_kind=args.cam_kind or CAM_KIND,
                      gradcat_score=args.gradcat_score or GRADCAT_SCORE)
    model_class = folder_to_class(ds.classes, nv)
    by_class: dict[int, list[str]] = {}
    for p, c in zip(ds.paths, ds.labels):
        by_class.setdefault(model_class[c], []).append(str(p))
    t0 = time.perf_counter()
    result = pointing_game(nv, by_class, args.mosaics, seed=args.seed)
    dt = time.perf_counter() - t0
    print(f"pointing game: {args.mosaics} mosaics, {result.trials} class-quadrant trials, weights {nv.bundle.source}, "
          f"GradCAT score {nv.gradcat_score}")
    print(f"{'method':<28}{'hits':>8}{'rate':>9}")
    labels = {"gradcat+": f"GradCAT leaf ({nv.gradcat_score})", "gradcat-": f"GradCAT leaf (-{nv.gradcat_score})",
              "cam": "CAM peak"}
    for k, v in result.hits.items():
        if k == "gradcat-" and nv.gradcat_score not in SIGNED_SCORES:
            continue  # a causal score has no sign to flip
        print(f"{labels[k]:<28}{v:>8}{result.rate(k):>9.1%}")
    print(f"random: 25.0%   ({dt:.0f} s)")


if __name__ == "__main__":
    main()
