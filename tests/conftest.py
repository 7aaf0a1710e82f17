"""Shared fixtures: a tiny NesT saved as nestviz weights, and small images made on the fly; caches kept in a temp home."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# Keep the suite out of the user's home and off the network, before anything reads these: nestviz's
# decoded-image cache ($XDG_CACHE_HOME), huggingface_hub (read at its import), matplotlib, torch hub.
_HOME = tempfile.mkdtemp(prefix="nestviz-tests-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ.update({"XDG_CACHE_HOME": f"{_HOME}/cache", "XDG_CONFIG_HOME": f"{_HOME}/config",
                   "HF_HOME": f"{_HOME}/huggingface", "HF_HUB_CACHE": f"{_HOME}/huggingface/hub",
                   "HF_HUB_OFFLINE": "1", "MPLCONFIGDIR": f"{_HOME}/matplotlib", "TORCH_HOME": f"{_HOME}/torch"})

import numpy as np
import pytest
import torch
from PIL import Image

from nestviz.model import NAMED_CONFIGS, Nest, NestConfig
from nestviz.preprocess import Preprocessing
from nestviz.model.checkpoints import save_nestviz

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

torch.set_num_threads(1)

TINY = NestConfig(img_size=32, patch_size=4, num_levels=3, embed_dims=(8, 16, 16), num_heads=(2, 2, 4),
                  depths=(1, 1, 1), num_classes=3, mlp_ratio=2.0)
TINY_CLASSES = ["red thing", "green thing", "blue thing"]

# nest_tiny_jx's heads and padding at a tiny size; with TINY_NAMED, tiny stand-ins for timm's named
# sizes (nest_tiny alone has 17M parameters), so named architectures are tested on tiny random weights.
TINY_JX = NestConfig(img_size=32, patch_size=4, num_levels=3, embed_dims=(12, 24, 24), num_heads=(3, 6, 12),
                     depths=(1, 1, 2), num_classes=5, mlp_ratio=2.0, pad_type="same")
TINY_NAMED = {"nest_tiny": TINY_JX.with_(pad_type=""), "nest_tiny_jx": TINY_JX,
              "nest_small": TINY_JX.with_(depths=(1, 1, 3), pad_type=""), "nest_small_jx": TINY_JX.with_(depths=(1, 1, 3))}


@pytest.fixture
def tiny_named(monkeypatch: pytest.MonkeyPatch) -> dict[str, NestConfig]:
    """nest_tiny(_jx) and nest_small(_jx) replaced by the tiny stand-ins for one test."""
    for name, cfg in TINY_NAMED.items():
        monkeypatch.setitem(NAMED_CONFIGS, name, cfg)
    return TINY_NAMED


def tiny_model(seed: int = 0, cfg: NestConfig = TINY) -> Nest:
    torch.manual_seed(seed)
    model = Nest(cfg).eval()
    with torch.no_grad():  # larger random weights than the init, so outputs differ clearly between inputs
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-level, 3-class NesT at 32 px saved in nestviz's format."""
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_nestviz(path, tiny_model(), TINY_CLASSES, Preprocessing(input_size=32, crop_pct=0.875),
                 {"trained_with": "conftest"})
    return path


def write_image(path: Path, size: tuple[int, int] = (48, 40), seed: int = 0, fmt: str | None = None) -> Path:
    """A small random-colour image (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)
    return path


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    """Three small valid images of different sizes."""
    return [write_image(tmp_path / "in" / f"img{i}.png", (40 + 8 * i, 32 + 4 * i), seed=i) for i in range(3)]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="Device for the tests that take one (tests/test_on_device.py): "
                     "cpu (default: those tests are skipped), cuda, cuda:N or mps.")


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    """The accelerator named by ``--device``; tests that take it compare it with the CPU (skipped on the CPU)."""
    name = request.config.getoption("--device")
    if name == "cpu":
        pytest.skip("compares an accelerator with the CPU: run with --device cuda (benchmarks/gpu_check.sh)")
    from nestviz.devices import resolve_device

    try:
        return str(resolve_device(name))
    except ValueError as e:
        pytest.skip(str(e))
