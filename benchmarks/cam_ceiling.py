"""Is it the map's resolution or the model? CAM MaxBoxAccV2 beside the best a map of that size could reach.

    python benchmarks/cam_ceiling.py IMAGES --boxes BOXES [--weights W] [--cam-kind flow]

For each photo with object boxes this builds the *box oracle*: the object boxes drawn as a mask
on the model's input, averaged down to the top map's cells (6 x 6 for the default model) and
laid over the image exactly as a CAM is (``nestviz.evaluation.trust.image_map``). Its MaxBoxAccV2 is the
ceiling of any explanation at that resolution and that fit: if the CAM is far below it, the
map's *shape* is what fails, not its size. It also prints, at the threshold that maximises the
IoU-0.5 rate, how the CAM's best box compares in area with the object box it matches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nestviz.api import Nestviz  # noqa: E402
from nestviz.methods.cam import cam  # noqa: E402
from nestviz.evaluation.measure import find_samples  # noqa: E402
from nestviz.evaluation.scoring import localization as lo  # noqa: E402
from nestviz.evaluation.trust import image_map  # noqa: E402


def box_oracle(gt: np.ndarray, geo, cells: int) -> torch.Tensor:  # noqa: ANN001
    """The object boxes (original pixels) as a mask on the model input, averaged to ``cells`` x ``cells``."""
    mask = torch.zeros(geo.size, geo.size)
    for x0, y0, x1, y1 in gt:
        u0, v0 = x0 * geo.scale_x - geo.left, y0 * geo.scale_y - geo.top
        u1, v1 = x1 * geo.scale_x - geo.left, y1 * geo.scale_y - geo.top
        mask[max(0, int(v0)):max(0, int(np.ceil(v1))), max(0, int(u0)):max(0, int(np.ceil(u1)))] = 1.0
    return F.adaptive_avg_pool2d(mask[None, None], cells)[0, 0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--boxes", required=True)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--cam-kind", default="flow")
    args = ap.parse_args()
    nv = Nestviz.load(args.weights, device="cpu")
    samples, _ = find_samples(args.images, nv.bundle.class_names, args.boxes)
    samples = [s for s in samples if s.boxes]
    maps: dict[str, list[np.ndarray]] = {"CAM": [], "box oracle at the top map's size": [], "centred box": []}
    gts = []
    for s in samples:
        p = nv.prepare(s.path)
        geo = p.geometry
        with torch.inference_mode():
            raw = cam(nv.model, p.tensor[None], classes=[s.class_index], kind=args.cam_kind).maps[0, 0]
        gt = np.array([o.scaled_to(geo.width, geo.height) for o in s.boxes])
        frame = (geo.width, geo.height)
        maps["CAM"].append(image_map(raw, geo, frame))
        maps["box oracle at the top map's size"].append(image_map(box_oracle(gt, geo, raw.shape[-1]), geo, frame))
        maps["centred box"].append(lo.centred_map(geo.height, geo.width))
        gts.append(gt)
    print(f"{len(samples)} photos with boxes, top map {raw.shape[-1]} x {raw.shape[-1]}, CAM kind {args.cam_kind}")
    for name, m in maps.items():
        r = lo.max_box_acc(m, gts)
        per = " / ".join(f"{v:.3f}" for v in r.per_iou.values())
        print(f"{name:>34}: MaxBoxAccV2 {r.value:.3f}  (IoU 0.3 / 0.5 / 0.7: {per})")
    t = lo.max_box_acc(maps["CAM"], gts).best_threshold[0.5]
    ratios = []
    for m, gt in zip(maps["CAM"], gts):
        boxes = lo.boxes_at_thresholds(m, [t])[0]
        if len(boxes):
            i, j = np.unravel_index(np.argmax(lo.box_iou(boxes, gt)), (len(boxes), len(gt)))
            area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
            ratios.append(area(boxes[i]) / area(gt[j]))
    ratios_a = np.array(ratios)
    print(f"CAM at threshold {t:.2f}: its best box has {np.median(ratios_a):.2f}x the object box's area (median); "
          f"{np.mean(ratios_a > 1.5):.0%} over 1.5x, {np.mean(ratios_a < 1 / 1.5):.0%} under 1/1.5x")


if __name__ == "__main__":
    main()
