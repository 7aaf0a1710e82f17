"""Weights: nestviz's format, every timm / Hugging Face checkpoint form, inference, and bad files."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from nestviz.model import checkpoints as weights
from nestviz.model import NAMED_CONFIGS, Nest, NestConfig
from nestviz.preprocess import Preprocessing
from nestviz.model.checkpoints import (
    WeightsError, load_weights, load_weights_identity, read_safetensors, save_nestviz,
)
from nestviz.model.classes import imagenet_class_names, imagenet_wnids
from nestviz.model.convert import infer_config, shape_fields
from .helpers import TINY_CLASSES
from .model_helpers import TINY, TINY_JX, tiny_model


# One head per level: exactly what shape inference assumes (head dim 32), so a bare state dict
# is recovered completely and logits can be compared bit for bit.
PLAIN = TINY.with_(num_heads=(1, 1, 1))
JX = TINY_JX  # nest_tiny_jx's heads and padding at a tiny size (the tiny_named fixture's nest_tiny_jx)
# Bare checkpoints here name no architecture on purpose; the warning that says so is tested in
# test_checkpoint_names.py.
pytestmark = pytest.mark.filterwarnings("ignore::nestviz.model.bundle.WeightsWarning")
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))


def logits(model: Nest) -> torch.Tensor:
    with torch.no_grad():
        return model(X)


def error(path: str | Path | None, arch: str | None = None) -> str:
    with pytest.raises(WeightsError) as e:
        load_weights(path, arch)
    message = str(e.value)
    assert "\n" not in message
    return message


# -- nestviz's own format ---------------------------------------------------------------------------

def test_nestviz_round_trip_is_lossless(tmp_path: Path) -> None:
    model = tiny_model()
    pre = Preprocessing(input_size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.4), interpolation="bilinear",
                        crop_pct=0.9)
    path = tmp_path / "m.safetensors"
    save_nestviz(path, model, TINY_CLASSES, pre, {"trained_with": "a test", "epochs": 3})
    b = load_weights(path)
    assert b.config == TINY and b.class_names == TINY_CLASSES and b.preprocessing == pre
    assert b.provenance == {"trained_with": "a test", "epochs": 3, "source_format": "nestviz safetensors",
                            "source_path": str(path)}
    assert b.source == str(path)
    for k, v in model.state_dict().items():
        assert torch.equal(b.model.state_dict()[k], v), k
    tensors, meta = read_safetensors(path)
    assert set(tensors) == set(model.state_dict())
    assert meta["format"] == "nestviz" and json.loads(meta["config"]) == TINY.to_dict()


def test_half_precision_file_rounds_each_weight_once(tmp_path: Path) -> None:
    model = tiny_model()
    path = tmp_path / "half.safetensors"
    save_nestviz(path, model, TINY_CLASSES, Preprocessing(input_size=32), dtype=torch.float16)
    loaded = load_weights(path).model.state_dict()
    for k, v in model.state_dict().items():
        assert loaded[k].dtype == torch.float32
        assert torch.equal(loaded[k], v.half().float()), k


def test_class_name_count_is_checked_on_save(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as e:
        save_nestviz(tmp_path / "m.safetensors", tiny_model(), ["one"], Preprocessing(input_size=32))
    assert str(e.value) == "1 class names for a 3-class head"


# -- timm / Hugging Face checkpoint forms ----------------------------------------------------------

def state_dict(cfg: NestConfig = PLAIN) -> dict[str, torch.Tensor]:
    return tiny_model(cfg=cfg).state_dict()


def write_nestviz(d: Path) -> Path:
    save_nestviz(d / "m.safetensors", tiny_model(cfg=PLAIN), TINY_CLASSES, Preprocessing(input_size=32))
    return d / "m.safetensors"


def write_bare_safetensors(d: Path) -> Path:
    save_file(state_dict(), d / "model.safetensors", metadata={"format": "pt"})
    return d / "model.safetensors"


def write_hub_folder(d: Path) -> Path:
    write_bare_safetensors(d)
    (d / "config.json").write_text(json.dumps({"architecture": "nest_custom", "num_classes": 3}))
    return d


def write_pytorch_model_bin(d: Path) -> Path:
    torch.save(state_dict(), d / "pytorch_model.bin")
    return d / "pytorch_model.bin"


def write_wrapped(key: str) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        torch.save({key: state_dict(), "epoch": 7, "optimizer": {"lr": torch.tensor(0.1)}}, d / "ckpt.pth")
        return d / "ckpt.pth"
    return write


def write_module_prefixed(d: Path) -> Path:
    torch.save({"state_dict": {f"module.{k}": v for k, v in state_dict().items()}}, d / "ddp.pt")
    return d / "ddp.pt"


def write_legacy_serialization(d: Path) -> Path:
    torch.save(state_dict(), d / "old.pth", _use_new_zipfile_serialization=False)
    return d / "old.pth"


FORMS = {
    "nestviz": write_nestviz,
    "model.safetensors": write_bare_safetensors,
    "hub folder": write_hub_folder,
    "pytorch_model.bin": write_pytorch_model_bin,
    "pth state_dict": write_wrapped("state_dict"),
    "pth model": write_wrapped("model"),
    "pth state_dict_ema": write_wrapped("state_dict_ema"),
    "module. prefix": write_module_prefixed,
    "legacy torch.save": write_legacy_serialization,
}


@pytest.mark.parametrize("form", list(FORMS))
def test_every_checkpoint_form_loads_with_identical_logits(tmp_path: Path, form: str) -> None:
    path = FORMS[form](tmp_path)
    b = load_weights(path)
    assert b.config == PLAIN
    assert torch.equal(logits(b.model), logits(tiny_model(cfg=PLAIN)))
    assert b.provenance["source_path"] == str(path if path.is_file() else path / "model.safetensors")


def test_timm_training_checkpoint_with_args_and_arch(tmp_path: Path, tiny_named: dict) -> None:
    """timm's train.py saves argparse args and the model name beside the weights."""
    import argparse

    path = tmp_path / "checkpoint-7.pth.tar"
    torch.save({"arch": "nest_tiny_jx", "args": argparse.Namespace(model="nest_tiny_jx", lr=0.1),
                "state_dict": state_dict(JX), "epoch": 7}, path)
    b = load_weights(path)
    assert b.config == JX and b.provenance["architecture"] == "nest_tiny_jx"
    assert b.provenance["source_format"] == "PyTorch state dict (under 'state_dict')"
    assert torch.equal(logits(b.model), logits(tiny_model(cfg=JX)))


def test_hub_config_sets_architecture_labels_and_preprocessing(tmp_path: Path, tiny_named: dict) -> None:
    save_file(state_dict(JX), tmp_path / "model.safetensors")
    labels = [f"label {i}" for i in range(5)]
    (tmp_path / "config.json").write_text(json.dumps({
        "architecture": "nest_tiny_jx", "num_classes": 5, "label_names": labels,
        "model_args": {"img_size": [32, 32], "global_pool": "avg"},
        "pretrained_cfg": {"input_size": [3, 32, 32], "interpolation": "bilinear", "mean": [0.5, 0.5, 0.5],
                           "std": [0.25, 0.25, 0.25], "crop_pct": 0.9, "crop_mode": "center"},
    }))
    for given in (tmp_path, tmp_path / "model.safetensors"):
        b = load_weights(given)
        assert b.config == JX and b.class_names == labels
        assert b.preprocessing == Preprocessing(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                                                interpolation="bilinear", crop_pct=0.9)
        assert b.provenance["config_json"] == str(tmp_path / "config.json")
        assert torch.equal(logits(b.model), logits(tiny_model(cfg=JX)))


def test_model_args_in_config_json_set_the_heads(tmp_path: Path) -> None:
    save_file(state_dict(TINY), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "nest_custom",
                                                      "model_args": {"num_heads": [2, 2, 4]}}))
    b = load_weights(tmp_path)
    assert b.config == TINY and "num_heads" not in b.provenance
    assert torch.equal(logits(b.model), logits(tiny_model()))


def test_unknown_jx_name_in_config_means_same_padding(tmp_path: Path) -> None:
    save_file(state_dict(PLAIN.with_(pad_type="same")), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "nest_micro_jx"}))
    assert load_weights(tmp_path).config == PLAIN.with_(pad_type="same")


@pytest.mark.parametrize("cfg", [
    NestConfig(img_size=60, patch_size=3, num_levels=3, embed_dims=(8, 16, 24), num_heads=(1, 1, 1),
               depths=(1, 2, 1), num_classes=4, mlp_ratio=3.0, qkv_bias=False),
    NestConfig(img_size=40, patch_size=4, num_levels=2, embed_dims=(12, 24), num_heads=(1, 1), depths=(2, 1),
               num_classes=3, in_chans=1),
    NestConfig(img_size=16, patch_size=16, num_levels=1, embed_dims=(8,), num_heads=(1,), depths=(0,),
               num_classes=2),
])
def test_shape_inference_recovers_the_config(cfg: NestConfig) -> None:
    fields = shape_fields(Nest(cfg).state_dict())
    assert NestConfig(**fields, num_heads=cfg.num_heads) == cfg


def meta_state_dict(cfg: NestConfig) -> dict[str, torch.Tensor]:
    """A state dict of the right shapes without memory: tensors on the meta device."""
    d = cfg.embed_dims
    sd = {"patch_embed.proj.weight": torch.empty(d[0], 3, cfg.patch_size, cfg.patch_size, device="meta"),
          "head.weight": torch.empty(cfg.num_classes, d[-1], device="meta")}
    for i, dim in enumerate(d):
        sd[f"levels.{i}.pos_embed"] = torch.empty(1, cfg.grid(i) ** 2, cfg.block_size ** 2, dim, device="meta")
        for j in range(cfg.depths[i]):
            sd[f"levels.{i}.transformer_encoder.{j}.mlp.fc1.weight"] = torch.empty(4 * dim, dim, device="meta")
            sd[f"levels.{i}.transformer_encoder.{j}.attn.qkv.bias"] = torch.empty(3 * dim, device="meta")
    return sd


@pytest.mark.parametrize("name", ["nest_tiny", "nest_base"])
def test_a_known_size_gets_its_heads_and_timms_published_variant_jx(name: str) -> None:
    provenance: dict = {}
    cfg = infer_config(meta_state_dict(NAMED_CONFIGS[name]), None, {}, None, provenance)
    assert cfg == NAMED_CONFIGS[name + "_jx"]
    assert "num_heads" not in provenance
    assert infer_config(meta_state_dict(NAMED_CONFIGS[name]), name, {}, None, {}) == NAMED_CONFIGS[name]


def test_a_1000_class_head_gets_imagenet_labels(tmp_path: Path) -> None:
    cfg = PLAIN.with_(num_classes=1000)
    save_file(state_dict(cfg), tmp_path / "model.safetensors")
    b = load_weights(tmp_path / "model.safetensors")
    rows = [line.split("\t") for line in (Path(weights.__file__).parent.parent / "resources" / "imagenet1k_classes.tsv")
            .read_text().splitlines()[1:]]
    assert b.class_names == imagenet_class_names() == [name.split(",")[0] for _, _, name in rows]
    assert b.class_names[:3] == ["tench", "goldfish", "great white shark"]
    assert imagenet_wnids()[0] == "n01440764" and len(set(imagenet_wnids())) == 1000
    assert b.preprocessing == Preprocessing(input_size=32)  # timm's NesT defaults at the model's size


def test_other_heads_get_numbered_labels(tmp_path: Path) -> None:
    assert load_weights(write_bare_safetensors(tmp_path)).class_names == ["class 0", "class 1", "class 2"]


def test_hugging_face_cache_folder_is_found_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = tmp_path / "hub" / "models--someone--nest_custom" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    write_hub_folder(snapshot)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    b = load_weights("someone/nest_custom")
    assert b.source == str(snapshot / "model.safetensors") and b.config == PLAIN


# -- the default model and identity ------------------------------------------------------------------

def test_default_model_from_the_environment(tiny_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTVIZ_WEIGHTS", str(tiny_weights))
    assert load_weights().source == str(tiny_weights)
    monkeypatch.setenv("NESTVIZ_WEIGHTS", str(tiny_weights.parent / "gone.safetensors"))
    assert error(None) == f"{tiny_weights.parent / 'gone.safetensors'}: no such file (named by NESTVIZ_WEIGHTS)"


def test_no_default_model_says_to_pass_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NESTVIZ_WEIGHTS", raising=False)
    monkeypatch.setattr(weights, "__file__", str(tmp_path / "pkg" / "nestviz" / "model" / "checkpoints.py"))
    packaged = tmp_path / "pkg" / "nestviz" / "resources" / "nestviz-imagenette.safetensors"
    assert error(None) == (f"{packaged}: no default model found (the package was built without it, and "
                           "NESTVIZ_WEIGHTS is not set); pass --weights with a nestviz, timm or Hugging Face "
                           "checkpoint")
    packaged.parent.mkdir(parents=True)
    write_nestviz(tmp_path).rename(packaged)
    assert weights.default_weights_path() == packaged


def test_the_default_model_is_package_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """It lives inside the package, so editable installs, wheels and `pip install .` all have it."""
    monkeypatch.delenv("NESTVIZ_WEIGHTS", raising=False)
    import nestviz

    assert weights.default_weights_path() == Path(nestviz.__file__).parent / "resources" / weights.DEFAULT_WEIGHTS_NAME


def test_identity_follows_content_and_arch(tmp_path: Path) -> None:
    path = write_bare_safetensors(tmp_path)
    first = load_weights_identity(path)
    assert first == load_weights_identity(tmp_path) and first.startswith("model.safetensors:")
    assert load_weights_identity(path, arch="nest_tiny") != first
    save_file(state_dict(PLAIN.with_(num_classes=4)), path)
    assert load_weights_identity(path) != first


# -- bad files ---------------------------------------------------------------------------------------

class RunsCode:
    """Unpickling this calls os.system: a checkpoint that would run a command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickles_are_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"x": RunsCode(marker)}}, tmp_path / "evil.pth")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"x": RunsCode(marker)}, protocol=2))
    system = f"{os.system.__module__}.system"
    assert error(tmp_path / "evil.pth") == (
        f"{tmp_path / 'evil.pth'}: refused: not a plain weights file (it references {system}; pickles are "
        "loaded weights-only and never run code)")
    assert error(tmp_path / "evil.pkl").startswith(f"{tmp_path / 'evil.pkl'}: refused: not a plain weights file (")
    assert not marker.exists()
    pickle.loads(pickle.dumps(RunsCode(marker)))  # the payload is real: plain unpickling runs it
    assert marker.exists()


def truncate(path: Path, keep: float | int) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:keep] if isinstance(keep, int) else data[:int(len(data) * keep)])
    return path


def resnet_like(d: Path) -> Path:
    torch.save({"conv1.weight": torch.zeros(4, 3, 7, 7), "bn1.weight": torch.ones(4), "bn1.bias": torch.zeros(4),
                "fc.weight": torch.zeros(10, 4)}, d / "resnet.pth")
    return d / "resnet.pth"


def vit_like(d: Path) -> Path:
    save_file({"cls_token": torch.zeros(1, 1, 8), "patch_embed.proj.weight": torch.zeros(8, 3, 4, 4)},
              d / "vit.safetensors")
    return d / "vit.safetensors"


def with_tensor(name: str, value: torch.Tensor | None) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        sd = state_dict()
        if value is None:
            del sd[name]
        else:
            sd[name] = value
        save_file(sd, d / "model.safetensors")
        return d / "model.safetensors"
    return write


def hub_with_wrong_class_count(d: Path) -> Path:
    write_hub_folder(d)
    (d / "config.json").write_text(json.dumps({"architecture": "nest_custom", "num_classes": 10}))
    return d


def two_checkpoints(d: Path) -> Path:
    torch.save(state_dict(), d / "a.pth")
    torch.save(state_dict(), d / "b.pth")
    return d


def image_file(d: Path) -> Path:
    Image.new("RGB", (8, 8)).save(d / "photo.jpg")
    return d / "photo.jpg"


def truncated_header(d: Path) -> Path:
    save_file(state_dict(), d / "model.safetensors")
    return truncate(d / "model.safetensors", 100)


def truncated_safetensors(d: Path) -> Path:
    save_file(state_dict(), d / "model.safetensors")
    return truncate(d / "model.safetensors", 0.5)


def truncated_nestviz(d: Path) -> Path:
    return truncate(write_nestviz(d), 0.9)


def truncated_pth(d: Path) -> Path:
    torch.save(state_dict(), d / "ckpt.pth")
    return truncate(d / "ckpt.pth", 0.5)


def truncated_legacy_pth(d: Path) -> Path:
    return truncate(write_legacy_serialization(d), 0.5)


def text_file(d: Path) -> Path:
    (d / "notes.pth").write_text("these are not weights\n")
    return d / "notes.pth"


def empty_file(d: Path) -> Path:
    (d / "empty.safetensors").write_bytes(b"")
    return d / "empty.safetensors"


def pickled_list(d: Path) -> Path:
    torch.save([torch.zeros(2)], d / "list.pt")
    return d / "list.pt"


def no_tensors(d: Path) -> Path:
    torch.save({"epoch": 3, "lr": 0.1}, d / "meta.pt")
    return d / "meta.pt"


BAD = {
    "missing file": (lambda d: d / "nope.safetensors", "no such file"),
    "empty folder": (lambda d: d, "folder has no checkpoint (expected model.safetensors, pytorch_model.bin, "
                                  "or one .safetensors/.pth/.pt/.bin file)"),
    "two checkpoints": (two_checkpoints, "folder holds 2 checkpoints (a.pth, b.pth); pass one file"),
    "empty file": (empty_file, "empty file (0 bytes)"),
    "truncated header": (truncated_header, "truncated or not a safetensors file (header runs past the end)"),
    "truncated safetensors": (truncated_safetensors, None),  # byte counts vary: checked below
    "truncated nestviz": (truncated_nestviz, None),
    "truncated pth": (truncated_pth, "truncated or corrupt PyTorch checkpoint (cannot read its zip archive)"),
    "truncated legacy pth": (truncated_legacy_pth, "truncated PyTorch checkpoint (the data ends early)"),
    "text file": (text_file, "not a checkpoint (looks like a text file; expected safetensors or a PyTorch file)"),
    "image": (image_file, "not a checkpoint (looks like an image; expected safetensors or a PyTorch file)"),
    "list": (pickled_list, "not a state dict (the file holds a list)"),
    "no tensors": (no_tensors, "no tensors in the checkpoint (keys: epoch, lr)"),
    "resnet": (resnet_like, "not a NesT checkpoint (no patch_embed.proj.weight; found keys like "
                            "bn1.bias, bn1.weight, conv1.weight)"),
    "vit": (vit_like, "not a NesT checkpoint (no levels.0.pos_embed; found keys like "
                      "cls_token, patch_embed.proj.weight)"),
    "shape conflict": (with_tensor("levels.1.pool.conv.weight", torch.zeros(16, 9, 3, 3)),
                       "does not match the architecture: 1 shape conflicts "
                       "(levels.1.pool.conv.weight (16, 9, 3, 3) vs (16, 8, 3, 3))"),
    "missing key": (with_tensor("levels.2.pool.norm.bias", None),
                    "does not match the architecture: 1 missing keys (levels.2.pool.norm.bias)"),
    "extra key": (with_tensor("levels.0.extra", torch.zeros(2)),
                  "does not match the architecture: 1 unexpected keys (levels.0.extra)"),
    "config disagrees": (hub_with_wrong_class_count, "does not match the architecture: 2 shape conflicts "
                                                     "(head.weight (3, 16) vs (10, 16), head.bias (3,) vs (10,))"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_give_one_line_errors(tmp_path: Path, case: str) -> None:
    make, problem = BAD[case]
    path = make(tmp_path)
    message = error(path)
    if problem is None:
        size = path.stat().st_size
        assert message.startswith(f"{path}: truncated safetensors file ({size} of ")
        assert int(message.split(" of ")[1].split(" ")[0]) > size
    else:
        shown = path / "model.safetensors" if case == "config disagrees" else path
        assert message == f"{shown}: {problem}"


def test_invalid_config_json(tmp_path: Path) -> None:
    write_bare_safetensors(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    assert error(tmp_path).startswith(f"{tmp_path / 'config.json'}: unreadable config.json (")
    (tmp_path / "config.json").write_text(json.dumps({"pretrained_cfg": {"interpolation": "sinc"}}))
    assert error(tmp_path) == (f"{tmp_path / 'config.json'}: invalid pretrained_cfg (unknown interpolation 'sinc'; "
                               "known: bicubic, bilinear, nearest, lanczos, box)")


def test_unknown_or_unfitting_arch(tmp_path: Path) -> None:
    path = write_bare_safetensors(tmp_path)
    assert error(path, arch="nest_huge") == (
        f"{path}: unknown architecture 'nest_huge'; known: {', '.join(NAMED_CONFIGS)} (--arch)")
    assert error(path, arch="nest_small") == (
        f"{path}: is not a nest_small checkpoint: img_size 32 vs 224, embed_dims (8, 16, 16) vs (96, 192, 384), "
        "depths (1, 1, 1) vs (2, 2, 20), mlp_ratio 2.0 vs 4.0 (checkpoint vs nest_small); leave out --arch to "
        "read the shapes")
