"""The embedded default model: it loads, carries its class names, and reproduces recorded logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nestviz.preprocess import normalize
from nestviz.model.checkpoints import default_weights_path, load_weights, read_safetensors

FIXTURES = Path(__file__).parent / "fixtures"
IMAGENETTE = ["tench", "English springer", "cassette player", "chain saw", "church", "French horn",
              "garbage truck", "gas pump", "golf ball", "parachute"]


def test_default_weights_load_with_class_names() -> None:
    path = default_weights_path()
    assert path.stat().st_size <= 20e6
    bundle = load_weights(None)
    assert bundle.class_names == IMAGENETTE
    cfg = bundle.config
    assert cfg.num_levels >= 3 and cfg.block_size >= 6  # a real tree, a top map of 6x6 or more
    _, meta = read_safetensors(path)
    prov = json.loads(meta["provenance"])
    assert prov["command"].startswith("nestviz train")
    assert prov["val_top1"] >= 0.85


def test_default_model_reproduces_recorded_logits() -> None:
    recorded = json.loads((FIXTURES / "default_logits.json").read_text())
    bundle = load_weights(None)
    x = torch.from_numpy(np.asarray(Image.open(FIXTURES / recorded["input"]).convert("RGB")).copy()).permute(2, 0, 1)
    with torch.no_grad():
        logits = bundle.model(normalize(x, bundle.preprocessing)[None])[0]
    assert logits.tolist() == pytest.approx(recorded["logits"], abs=1e-4)


def test_default_model_records_no_absolute_paths() -> None:
    """Its provenance (nestviz info) names the data as the model card does, not the training machine's paths."""
    import shlex

    prov = json.loads(read_safetensors(default_weights_path())[1]["provenance"])
    assert prov["command"].startswith("nestviz train imagenette/train --val imagenette/val ")
    assert not [w for w in shlex.split(prov["command"]) if w.startswith("/")]
    assert (prov["train_data"], prov["val_data"], prov["init"]) == (
        "imagenette/train", "imagenette/val", "nestviz-imagenette.safetensors")  # run 10, the previous default
