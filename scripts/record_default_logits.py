"""Record the default model's logits on a small committed input (a regression guard).

    python scripts/record_default_logits.py

Writes tests/fixtures/default_input.png (the 192x192 model-input crop of examples/mosaic.jpg,
before normalization) and tests/fixtures/default_logits.json (the logits on it). Run it
whenever nestviz/resources/nestviz-imagenette.safetensors is retrained, never to paper over a change
in the model code.
"""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nestviz.images import load_rgb
from nestviz.preprocess import normalize, plan_geometry, _RESAMPLE
from nestviz.model.checkpoints import default_weights_path, load_weights

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    bundle = load_weights(default_weights_path())
    pre = bundle.preprocessing
    im = load_rgb(REPO / "examples" / "mosaic.jpg")
    geo = plan_geometry(im.width, im.height, pre)
    crop = im.resize((geo.resized_width, geo.resized_height), _RESAMPLE[pre.interpolation]).crop(
        (geo.left, geo.top, geo.left + geo.size, geo.top + geo.size))
    fixtures = REPO / "tests" / "fixtures"
    crop.save(fixtures / "default_input.png")
    x = normalize(torch.from_numpy(np.asarray(Image.open(fixtures / "default_input.png").convert("RGB")).copy())
                  .permute(2, 0, 1), pre)
    with torch.no_grad():
        logits = bundle.model(x[None])[0]
    (fixtures / "default_logits.json").write_text(json.dumps({
        "weights": default_weights_path().name, "input": "default_input.png", "logits": logits.tolist(),
        "class_names": bundle.class_names}, indent=1) + "\n")
    print("recorded", [round(v, 4) for v in logits.tolist()])


if __name__ == "__main__":
    main()
