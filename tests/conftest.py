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

import pytest
import torch

from nestviz.model import NAMED_CONFIGS, NestConfig
from nestviz.preprocess import Preprocessing
from nestviz.model.checkpoints import save_nestviz
from .helpers import TINY_CLASSES, write_image
from .model_helpers import tiny_model, TINY_NAMED


torch.set_num_threads(1)


# nest_tiny_jx's heads and padding at a tiny size; with TINY_NAMED, tiny stand-ins for timm's named
# sizes (nest_tiny alone has 17M parameters), so named architectures are tested on tiny random weights.


@pytest.fixture
def tiny_named(monkeypatch: pytest.MonkeyPatch) -> dict[str, NestConfig]:
    """nest_tiny(_jx) and nest_small(_jx) replaced by the tiny stand-ins for one test."""
    for name, cfg in TINY_NAMED.items():
        monkeypatch.setitem(NAMED_CONFIGS, name, cfg)
    return TINY_NAMED


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-level, 3-class NesT at 32 px saved in nestviz's format."""
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_nestviz(path, tiny_model(), TINY_CLASSES, Preprocessing(input_size=32, crop_pct=0.875),
                 {"trained_with": "conftest"})
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
