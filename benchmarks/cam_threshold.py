"""Choose the CAM box threshold: GT-known localization and whole-view boxes at each threshold.

    python benchmarks/cam_threshold.py IMAGES --boxes BOXES [--weights W] [--cam-kind flow] [--fit crop]

The default box is the largest region of the CAM (of the true class) above a threshold, as a
fraction of the map's range (``nestviz.methods.cam.localize``). The standard WSOL protocol
(Choe et al. 2020) allows a small labelled set for choosing it; this prints, for each threshold,
the share of images whose box reaches IoU 0.5 with an object box and the share whose box covers
more than 95% of the model's view.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nestviz.api import Nestviz  # noqa: E402
from nestviz.methods.cam import cam, localize  # noqa: E402
from nestviz.evaluation.measure import find_samples  # noqa: E402
from nestviz.evaluation.scoring.localization import box_iou, covers_view  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--boxes", required=True)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--cam-kind", default="flow")
    ap.add_argument("--fit", default=None, help="crop, pad or squash (default: the tool's default)")
    args = ap.parse_args()
    nv = Nestviz.load(args.weights, device="cpu")
    samples, _ = find_samples(args.images, nv.bundle.class_names, args.boxes)
    samples = [s for s in samples if s.boxes]
    kw = {"fit": args.fit} if args.fit else {}
    thresholds = np.round(np.arange(0.05, 0.96, 0.05), 2)
    hits = np.zeros(len(thresholds))
    covers = np.zeros(len(thresholds))
    for s in samples:
        p = nv.prepare(s.path, **kw)
        geo = p.geometry
        raw = cam(nv.model, p.tensor[None], classes=[s.class_index], kind=args.cam_kind).maps[0, 0]
        gt = np.array([o.scaled_to(geo.width, geo.height) for o in s.boxes])
        view = np.array(geo.box_to_original((0.0, 0.0, float(geo.size), float(geo.size))))
        for j, t in enumerate(thresholds):
            box = np.array(geo.box_to_original(localize(raw, geo.size, float(t))[0]))
            hits[j] += box_iou(box, gt).max() >= 0.5
            covers[j] += covers_view(box, view)[0]
    n = len(samples)
    print(f"{n} images with boxes, CAM kind {args.cam_kind}")
    print(f"{'threshold':>9} {'GT-known loc':>13} {'covers view':>12}")
    for t, h, c in zip(thresholds, hits / n, covers / n):
        print(f"{t:>9.2f} {h:>13.3f} {c:>12.3f}")
    best = int(np.argmax(hits))
    print(f"best: {thresholds[best]:.2f} ({hits[best] / n:.3f})")


if __name__ == "__main__":
    main()
