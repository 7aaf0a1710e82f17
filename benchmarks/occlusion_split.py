"""Why GradCAT's root choice disagrees with occlusion: what hiding a quadrant takes from the class score.

    python benchmarks/occlusion_split.py IMAGES [--weights W] [--boxes BOXES]

For each image and its true class, each of the four root quadrants (96 px at 192) is set to the
mean, as ``nestviz metrics`` occludes. The change of the contrastive class score (the class logit
minus the mean logit, in the CAM's exact split over the top map's cells) is split into what the
quadrant's own cells lose and what the other cells lose. Printed: how often each term, and the
quadrant's share before occlusion (the default GradCAT root score), picks the quadrant whose
occlusion drops the class probability most. ``--boxes`` keeps the images that have boxes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nestviz.api import Nestviz  # noqa: E402
from nestviz.methods.cam import cam_maps  # noqa: E402
from nestviz.methods.perturb import occlusion_drops  # noqa: E402
from nestviz.evaluation.measure import find_samples  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--boxes", default=None)
    args = ap.parse_args()
    nv = Nestviz.load(args.weights, device="cpu")
    samples, _ = find_samples(args.images, nv.bundle.class_names, args.boxes)
    samples = [s for s in samples if s.boxes or not args.boxes]
    x = torch.stack([nv.prepare(s.path).tensor for s in samples])
    y = torch.tensor([s.class_index for s in samples])
    S, model = x.shape[-1], nv.model
    half = S // 2
    quads = [(c * half, r * half, (c + 1) * half, (r + 1) * half) for r in range(2) for c in range(2)]

    def class_map(images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            f = torch.cat([model.forward_features(images[i:i + 64]) for i in range(0, len(images), 64)])
            return cam_maps(model, f, y[:, None], "contrast")[:, 0].float()

    clean = class_map(x)
    g = clean.shape[-1]
    terms = {"the quadrant's share (GradCAT's root score)": [], "what its own cells lose": [],
             "what the other cells lose": [], "the whole change": []}
    for x0, y0, x1, y1 in quads:
        occluded = x.clone()
        occluded[:, :, y0:y1, x0:x1] = 0.0
        change = clean - class_map(occluded)
        inside = torch.zeros(g, g, dtype=torch.bool)
        inside[y0 * g // S:y1 * g // S, x0 * g // S:x1 * g // S] = True
        own, rest = change[:, inside].sum(1), change[:, ~inside].sum(1)
        for key, v in zip(terms, (clean[:, inside].sum(1), own, rest, own + rest)):
            terms[key].append(v)
    drops = occlusion_drops(model, x, y, quads)
    print(f"{len(samples)} images, weights {nv.bundle.source}: agreement with the quadrant whose occlusion "
          f"drops the class probability most")
    for key, v in terms.items():
        pick = torch.stack(v, 1).argmax(1)
        print(f"{key:>45}: {(pick == drops.argmax(1)).float().mean():.3f}")


if __name__ == "__main__":
    main()
