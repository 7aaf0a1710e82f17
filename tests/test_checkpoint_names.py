"""Which NesT a bare checkpoint is: --arch, config.json, timm's file names, else one warning line;
a named architecture that the shapes contradict is refused, naming the shapes."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from nestviz.cli.app import app
from nestviz.model.bundle import WeightsError, WeightsWarning
from nestviz.model.checkpoints import load_weights
from nestviz.model.convert import arch_from_file_name
from .helpers import write_image
from .model_helpers import TINY_JX, tiny_model


SMALL_JX = TINY_JX.with_(depths=(1, 1, 3))
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def write(path: Path, cfg=TINY_JX) -> Path:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = tiny_model(cfg=cfg).state_dict()
    save_file(sd, path) if path.suffix == ".safetensors" else torch.save(sd, path)
    return path


def quiet_load(path: Path, arch: str | None = None):  # noqa: ANN201
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeightsWarning)
        return load_weights(path, arch)


def same_logits(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    with torch.no_grad():
        return torch.equal(a(X), b(X))


@pytest.mark.parametrize("name, arch", [
    ("jx_nest_tiny-e3428fb9.pth", "nest_tiny_jx"),
    ("jx_nest_small-422eaded.pth", "nest_small_jx"),
    ("nest_tiny_jx.goog_in1k.safetensors", "nest_tiny_jx"),
    ("nest_tiny_jx.goog_in1k/model.safetensors", "nest_tiny_jx"),
    ("models--timm--nest_small_jx.goog_in1k/snapshots/0a1b2c/model.safetensors", "nest_small_jx"),
    ("my_nest_tiny_run/epoch-3.pth", "nest_tiny"),
    ("weights.pth", None),
    ("honest_tiny.pth", None),
])
def test_timms_file_names_say_the_architecture(name: str, arch: str | None) -> None:
    assert arch_from_file_name(Path("/data") / name) == arch


@pytest.mark.parametrize("name, cfg", [("jx_nest_tiny-e3428fb9.pth", TINY_JX),
                                       ("jx_nest_small-422eaded.pth", SMALL_JX),
                                       ("nest_tiny_jx.goog_in1k/model.safetensors", TINY_JX)])
def test_a_timm_file_loads_as_its_variant_without_a_warning(tmp_path: Path, tiny_named: dict, name: str,
                                                            cfg) -> None:  # noqa: ANN001
    b = quiet_load(write(tmp_path / name, cfg))
    assert b.config == cfg
    assert b.provenance["architecture"].endswith("_jx (from the file name)")
    assert same_logits(b.model, tiny_model(cfg=cfg))


def test_a_bare_checkpoint_of_a_known_size_is_taken_for_jx_with_one_warning_line(tmp_path: Path,
                                                                                 tiny_named: dict) -> None:
    path = write(tmp_path / "weights.pth")
    with pytest.warns(WeightsWarning) as caught:
        guessed = load_weights(path)
    [warning] = [str(w.message) for w in caught]
    assert warning == (f"{path}: the checkpoint does not say whether it is nest_tiny or nest_tiny_jx (their pooling "
                       "padding differs); assuming nest_tiny_jx like timm's published weights: pass --arch nest_tiny "
                       "for the plain variant, --arch nest_tiny_jx to silence this")
    assert guessed.config == TINY_JX and guessed.provenance["assumed"] in warning
    jx, plain = quiet_load(path, "nest_tiny_jx"), quiet_load(path, "timm/nest_tiny.some_tag")
    assert jx.config == TINY_JX and plain.config == TINY_JX.with_(pad_type="")
    assert same_logits(jx.model, tiny_model(cfg=TINY_JX))
    assert not torch.allclose(jx.model(X), plain.model(X), atol=1e-3)  # padding matters: why it is asked


def test_a_file_name_the_shapes_contradict_is_only_a_hint(tmp_path: Path, tiny_named: dict) -> None:
    path = write(tmp_path / "jx_nest_small-422eaded.pth", TINY_JX)  # named small, shaped tiny
    with pytest.warns(WeightsWarning, match="nest_tiny or nest_tiny_jx"):
        assert load_weights(path).config == TINY_JX


def test_a_named_architecture_the_shapes_contradict_is_refused_naming_them(tmp_path: Path, tiny_named: dict) -> None:
    path = write(tmp_path / "jx_nest_tiny-e3428fb9.pth")
    with pytest.raises(WeightsError) as e:
        load_weights(path, "nest_small")
    assert str(e.value) == (f"{path}: is not a nest_small checkpoint: depths (1, 1, 2) vs (1, 1, 3) "
                            "(checkpoint vs nest_small); the shapes fit nest_tiny")


def test_the_cli_prints_one_warning_line_or_refuses_with_exit_2(tmp_path: Path, tiny_named: dict) -> None:
    path = write(tmp_path / "weights.pth")
    image = write_image(tmp_path / "a.png")
    result = CliRunner().invoke(app, ["predict", str(image), "--weights", str(path), "--json"])
    assert result.exit_code == 0, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"nestviz: warning: {path}: the checkpoint does not say") and "--arch nest_tiny" in line
    result = CliRunner().invoke(app, ["predict", str(image), "--weights", str(path), "--arch", "nest_tiny_jx"])
    assert result.exit_code == 0 and result.stderr == ""
    result = CliRunner().invoke(app, ["predict", str(image), "--weights", str(path), "--arch", "nest_small_jx"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"nestviz: error: {path}: is not a nest_small_jx checkpoint: depths (1, 1, 2) "
                                     "vs (1, 1, 3) (checkpoint vs nest_small_jx); the shapes fit nest_tiny_jx")


def test_custom_shapes_warn_what_was_assumed(tmp_path: Path) -> None:
    from .model_helpers import TINY

    with pytest.warns(WeightsWarning, match=r"none of nestviz's named sizes: heads \(1, 1, 1\) and plain pooling"):
        load_weights(write(tmp_path / "model.safetensors", TINY))
