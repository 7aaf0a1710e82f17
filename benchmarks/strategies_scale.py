"""How long ``nestviz strategies`` takes, and how much memory, on synthetic runs of 1,000 and 10,000 records.

Records are made like a folder run of the default model makes them (10 classes; an 8 x 8 CAM map; leaf evidence
128 floats, top 256; 640 x 480 JPEG photos, 50 distinct files shared by the records so that montages decode
real JPEGs); 30% of one class's decisions carry a planted pattern. Each record holds the removal check a folder run
records: a planted decision falls without its evidence, a natural one one time in five (as photos' do). Each size runs the real command in a fresh
process (``python -m nestviz strategies DIR -q``), timed from the outside, peak RSS from ``getrusage``.

    python benchmarks/strategies_scale.py [--sizes 1000,10000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.strategies_synth import decision_record  # noqa: E402

LABELS = ["tench", "English springer", "cassette player", "chain saw", "church", "French horn", "garbage truck",
          "gas pump", "golf ball", "parachute"]


def make_run(out: Path, n: int, seed: int = 0) -> None:
    """``n`` records in ``out/manifest.jsonl`` and their photos in ``out/../photos`` (links to 50 files)."""
    rng = np.random.default_rng(seed)
    photos = out.parent / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for i in range(50):
        arr = (rng.random((480, 640, 3)) * 60 + np.linspace(0, 190, 640)[None, :, None]).astype(np.uint8)
        Image.fromarray(arr).save(photos / f"p{i:02d}.jpg", quality=90)
    pattern_leaf, pattern_top = rng.normal(0, 1, 128), rng.normal(0, 1, 256)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            c = i % len(LABELS)
            planted = c == 8 and rng.random() < 0.3
            leaf = pattern_leaf + 0.3 * rng.normal(0, 1, 128) if planted else rng.normal(0, 1, 128) + c
            top = pattern_top + 0.8 * rng.normal(0, 1, 256) if planted else rng.normal(0, 1, 256)
            spot = tuple(rng.uniform(0.1, 0.9, 2)) if planted else tuple(np.clip(0.5 + 0.15 * rng.normal(size=2),
                                                                                  0.05, 0.95))
            name = photos / f"{i:06d}.jpg"  # one name per record, 50 distinct files behind them
            if not name.exists():
                name.symlink_to(f"p{i % 50:02d}.jpg")
            rec = decision_record(str(name), LABELS[c], c, LABELS[c], leaf, top, spot, 0.08 if planted else 0.25,
                                  "annotate", rng, float(rng.uniform(0.005, 0.05) if planted else
                                                         rng.uniform(0.05, 0.4)), size=(640, 480))
            falls = planted or rng.random() < 0.2
            rec["evidence"]["removal"] = {"boxes": [], "after": (c + 1) % len(LABELS) if falls else c,
                                          "probability": [0.9, 0.1 if falls else 0.8]}
            f.write(json.dumps(rec) + "\n")


CHILD = """import resource, runpy, sys
sys.argv = ["nestviz", "strategies", sys.argv[1], "-q"]
try:
    runpy.run_module("nestviz", run_name="__main__")
except SystemExit as e:
    assert not e.code, e.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_once(out: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one ``nestviz strategies`` process."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, str(out)], check=True, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    return time.perf_counter() - t0, int(done.stdout.split()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nestviz-strategies-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            out = Path(tmp) / f"run{n}" / "out"
            make_run(out, n)
            mb = (out / "manifest.jsonl").stat().st_size / 1e6
            for r in range(args.repeat):
                seconds, rss = run_once(out)
                report = json.loads((out / "strategies.json").read_text())
                k = sum(len(c["strategies"]) for c in report["classes"])
                flagged = sum(bool(s["flags"]) for c in report["classes"] for s in c["strategies"])
                print(f"{n:>6} records ({mb:.1f} MB manifest), run {r + 1}: {seconds:.2f} s, peak RSS {rss:.0f} MB, {k} strategies, {flagged} flagged", flush=True)


if __name__ == "__main__":
    main()
