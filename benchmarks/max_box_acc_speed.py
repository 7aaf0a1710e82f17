"""Time ``max_box_acc`` (MaxBoxAccV2 and V1) on 225 random 224x224 score maps with 100 thresholds.

CAM-like maps are uniform noise at 14x14 (or 7x7) upsampled bilinearly, as NesT's maps are;
``--iid`` adds per-pixel noise, the worst case (hundreds of regions per threshold).

    python benchmarks/max_box_acc_speed.py [--iid]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nestviz.evaluation.scoring.localization import max_box_acc  # noqa: E402


def smooth_maps(n: int, cells: int, size: int = 224, seed: int = 0) -> list[np.ndarray]:
    """Uniform noise at ``cells`` x ``cells`` upsampled bilinearly to ``size``."""
    rng = np.random.default_rng(seed)
    return [np.asarray(Image.fromarray(rng.random((cells, cells), np.float32)).resize((size, size), Image.Resampling.BILINEAR))
            for _ in range(n)]


def main() -> None:
    rng = np.random.default_rng(1)
    gts = [np.array([[x, y, x + 100, y + 120]], float) for x, y in rng.integers(0, 100, size=(225, 2))]
    sets = {"14x14 upsampled": smooth_maps(225, 14), "7x7 upsampled": smooth_maps(225, 7)}
    if "--iid" in sys.argv:
        sets["per-pixel noise"] = [rng.random((224, 224)) for _ in range(225)]
    for name, maps in sets.items():
        for label, kw in (("V2", {}), ("V1", {"iou_levels": (0.5,), "multi_contour": False})):
            wall, cpu = time.perf_counter(), time.process_time()
            r = max_box_acc(maps, gts, **kw)
            print(f"{name:>16} {label}: {time.perf_counter() - wall:5.2f} s wall, {time.process_time() - cpu:5.2f} s CPU"
                  f" (value {r.value:.3f})")


if __name__ == "__main__":
    main()
