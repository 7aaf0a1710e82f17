"""hf-hub:org/name through huggingface_hub and its cache, offline: the tests build the cache folder
themselves (refs/main, snapshots/<sha>/) and never touch the network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from nestviz.model.bundle import WeightsError
from nestviz.model.checkpoints import load_weights, load_weights_identity
from .model_helpers import TINY_JX, tiny_model


REPO = Path(__file__).resolve().parents[1]
SPEC = "hf-hub:timm/nest_tiny_jx.goog_in1k"
SHA = "3f6c1d3d0e2a4b5c6d7e8f9a0b1c2d3e4f5a6b7c"
LABELS = [f"label {i}" for i in range(5)]


def hub_cache(root: Path) -> Path:
    """A Hugging Face cache holding timm/nest_tiny_jx.goog_in1k as huggingface_hub lays it out:
    the config.json names the architecture and, in model_args, the tiny size of these weights."""
    repo = root / "models--timm--nest_tiny_jx.goog_in1k"
    snapshot = repo / "snapshots" / SHA
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    save_file(tiny_model(cfg=TINY_JX).state_dict(), snapshot / "model.safetensors")
    model_args = {k: v for k, v in TINY_JX.to_dict().items() if k not in ("pad_type", "num_classes")}
    (snapshot / "config.json").write_text(json.dumps({
        "architecture": "nest_tiny_jx", "num_classes": 5, "label_names": LABELS, "model_args": model_args,
        "pretrained_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "crop_pct": 0.875}}))
    return snapshot


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # read when called, like the env var
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return tmp_path / "hub"


def test_the_suite_runs_offline_in_its_own_cache() -> None:
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE and os.environ["HF_HUB_OFFLINE"] == "1"
    assert not Path(constants.HF_HUB_CACHE).is_relative_to(Path.home())


def test_a_cached_hub_model_loads_offline_with_its_config(offline_cache: Path) -> None:
    snapshot = hub_cache(offline_cache)
    for spec in (SPEC, f"{SPEC}@{SHA}"):
        b = load_weights(spec)
        assert b.source == str(snapshot / "model.safetensors")
        assert b.config == TINY_JX and b.class_names == LABELS and b.preprocessing.mean == (0.5, 0.5, 0.5)
        assert b.provenance["config_json"] == str(snapshot / "config.json")
        with torch.no_grad():
            x = torch.randn(1, 3, 32, 32)
            assert torch.equal(b.model(x), tiny_model(cfg=TINY_JX)(x))
    assert load_weights_identity(SPEC).startswith("model.safetensors:")


@pytest.mark.parametrize("spec, problem", [
    (SPEC, "not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set; download it once online, or set "
           "HF_HOME/HF_HUB_CACHE to a cache that has it"),
    (f"{SPEC}@v2", "not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set; download it once online, "
                   "or set HF_HOME/HF_HUB_CACHE to a cache that has it"),
    ("hf-hub:nest_tiny_jx", "expected hf-hub:ORG/NAME[@REVISION], e.g. hf-hub:timm/nest_tiny_jx.goog_in1k"),
])
def test_what_is_not_cached_fails_offline_in_one_line(offline_cache: Path, spec: str, problem: str) -> None:
    if "@" in spec:
        hub_cache(offline_cache)  # cached, but not that revision
    with pytest.raises(WeightsError) as e:
        load_weights(spec)
    assert str(e.value) == f"{spec}: {problem.format(cache=offline_cache)}"


def test_the_cli_uses_the_cache_under_hf_home_offline(tmp_path: Path) -> None:
    hub_cache(tmp_path / "hf" / "hub")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_CACHE", None)

    def info(spec: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nestviz", "info", "--weights", spec, "--json"], cwd=REPO,
                              env=env, capture_output=True, text=True)

    ok = info(SPEC)
    assert ok.returncode == 0, ok.stderr
    card = json.loads(ok.stdout)
    assert card["class_names"] == LABELS and card["provenance"]["architecture"] == "nest_tiny_jx"
    missing = info("hf-hub:timm/nest_base_jx.goog_in1k")
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"nestviz: error: hf-hub:timm/nest_base_jx.goog_in1k: not in the Hugging Face cache ({tmp_path / 'hf' / 'hub'})"
        " and HF_HUB_OFFLINE is set; download it once online, or set HF_HOME/HF_HUB_CACHE to a cache that has it"]


def test_an_unreachable_hub_is_one_line_in_seconds(tmp_path: Path) -> None:
    """Issue 22: without a network, --weights hf-hub:... spent 50 s and printed 12 lines of retries first."""
    hub_cache(tmp_path / "hf" / "hub")  # cached: used first, online too, without the network
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update({"HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"})
    env.pop("HF_HUB_CACHE", None)

    def info(spec: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nestviz", "info", "--weights", spec, "--json"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=60)

    ok = info(SPEC)
    assert ok.returncode == 0 and json.loads(ok.stdout)["class_names"] == LABELS, ok.stderr
    import time

    t0 = time.monotonic()
    missing = info("hf-hub:timm/nest_base_jx.goog_in1k")  # port 9 refuses at once, as a dead network does
    assert time.monotonic() - t0 < 20
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == (f"nestviz: error: hf-hub:timm/nest_base_jx.goog_in1k: cannot reach the Hugging Face Hub "
                              f"(127.0.0.1:9: Connection refused) and not in the cache ({tmp_path / 'hf' / 'hub'}); "
                              "set HF_HUB_OFFLINE=1 to use the cache only\n")
