#!/usr/bin/env bash
# GPU readiness check (issue 21, item 15): one script, under 8 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh [DATA]        # DATA: a folder with train/ and val/ class folders (Imagenette);
#                                              # without it, 10 classes of generated pictures are used
#   DEVICE=cuda:1 PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh
#
# 1. the tests that take a device (tests/test_on_device.py: annotate with every variant, metrics and a training
#    step on the device, each against the CPU), 2. one epoch of `nestviz train`, 3. `explain`, `cam` and `metrics`
#    on the validation folder, 4. throughput (images/s) and peak GPU memory of predict / explain / cam / annotate.
# Every step has its own time limit; the script stops at the first failure (exit code of that step).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python}
DATA=${1:-}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)
step() { echo; echo "== $1 (at $(( $(date +%s) - START )) s)"; }
timed() {  # timed LABEL IMAGES COMMAND...: run it, then print images/s
  local label=$1 n=$2; shift 2
  local t0; t0=$(date +%s.%N)
  "$@"
  "$PY" -c "import sys; dt = float(sys.argv[2]) - float(sys.argv[1]); print(f'$label: {$n} images in {dt:.1f} s, {$n / dt:.1f} images/s')" "$t0" "$(date +%s.%N)"
}

step "device"
"$PY" -c "import torch; assert torch.cuda.is_available() or '$DEVICE' in ('mps', 'cpu'), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else '$DEVICE')"

step "tests that take a device (--device $DEVICE)"
timeout 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_on_device.py --device "$DEVICE"

step "data"
if [ -n "$DATA" ]; then
  TRAIN=$DATA/train VAL=$DATA/val
else
  TRAIN=$WORK/data/train VAL=$WORK/data/val
  "$PY" - "$WORK/data" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image, ImageDraw
root, rng = Path(sys.argv[1]), np.random.default_rng(0)
for split, n in (("train", 64), ("val", 16)):
    for c in range(10):
        folder = root / split / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            im = Image.fromarray(rng.integers(60, 200, (300, 360, 3), dtype=np.uint8))
            x, y = (int(v) for v in rng.integers(20, 200, 2))
            ImageDraw.Draw(im).ellipse((x, y, x + 90, y + 90), fill=tuple(int(v) for v in np.eye(3)[c % 3] * 200 + c * 5))
            im.save(folder / f"{i:03d}.jpg", quality=90)
PY
fi
NVAL=$(find "$VAL" -type f | wc -l)
echo "train: $TRAIN, val: $VAL ($NVAL images)"

step "train one epoch"
timed "train (1 epoch + decoding)" "$(find "$TRAIN" -type f | wc -l)" \
  timeout 240 "$PY" -m nestviz train "$TRAIN" --val "$VAL" --out "$WORK/w.safetensors" --epochs 1 --device "$DEVICE" \
  --cache-dir "$WORK/cache" --batch-size 128
W=$WORK/w.safetensors

step "explain, cam, metrics on $VAL"
timed explain "$NVAL" timeout 120 "$PY" -m nestviz explain "$VAL" --weights "$W" --device "$DEVICE" --out "$WORK/out" -q
timed cam "$NVAL" timeout 120 "$PY" -m nestviz cam "$VAL" --weights "$W" --device "$DEVICE" --out "$WORK/out" -q --save-maps
timed "metrics (--limit 64)" 64 timeout 150 "$PY" -m nestviz metrics "$VAL" --weights "$W" --device "$DEVICE" --limit 64 \
  --steps 4 -q --out "$WORK/metrics"

step "throughput and memory (the default model, batches of 32, no figures)"
timeout 120 "$PY" - "$VAL" "$DEVICE" <<'PY'
import sys, time
from pathlib import Path
import torch
import nestviz
files = sorted(str(p) for p in Path(sys.argv[1]).rglob("*") if p.is_file())[:int(sys.argv[3]) if len(sys.argv) > 3 else 128]
nv = nestviz.load(device=sys.argv[2])
batches = [b for b in nv.prepared_batches(files, 32, fit="crop")]  # decoded once: the model's speed alone
for mode in ("predict", "explain", "cam", "annotate"):
    nv.run(batches[0], mode)  # warm-up
    cuda = nv.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(nv.device); torch.cuda.reset_peak_memory_stats(nv.device)
    t0 = time.perf_counter()
    n = sum(len(nv.run(b, mode)) for b in batches)
    if cuda:
        torch.cuda.synchronize(nv.device)
    dt = time.perf_counter() - t0
    peak = f"{torch.cuda.max_memory_allocated(nv.device) / 2**20:8.1f} MiB" if cuda else "(not a CUDA device)"
    print(f"{mode:9s} {n / dt:8.1f} images/s   peak GPU memory {peak}")
PY
echo; echo "gpu_check: all steps passed in $(( $(date +%s) - START )) s"
