"""Training on a tiny generated dataset: the loss falls, resume is exact, the output is a complete weights file."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nestviz.train.augment import MosaicTiles, mosaic_batch, region_weights
from nestviz.model import Nest
from nestviz.train.loop import checkpoint_path, region_logits, region_loss, train
from nestviz.model.checkpoints import load_weights, read_safetensors
from .model_helpers import CFG, make_shapes, opts, SHAPES


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_shapes(tmp_path_factory.mktemp("shapes"))


def test_loss_falls_and_output_is_complete(shapes: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.tsv"
    labels.write_text("".join(f"{i}\t{k}\t{v}, extra lemma\n" for i, (k, v) in enumerate(SHAPES.items())))
    out = tmp_path / "m.safetensors"
    result = train(shapes, out, CFG, opts(), val_dir=shapes, labels_file=labels, cache_dir=tmp_path / "cache",
                   command="nestviz train test")
    losses = [h.loss for h in result.history]
    assert len(losses) == 6
    assert losses[-1] < 0.8 * losses[0]
    bundle = load_weights(out)
    assert bundle.class_names == list(SHAPES.values())  # first lemma of each label
    assert bundle.preprocessing.input_size == 32
    _, meta = read_safetensors(out)
    prov = json.loads(meta["provenance"])
    assert prov["command"] == "nestviz train test"
    assert prov["epochs"] == 6 and prov["train_images"] == 36
    assert prov["val_top1"] == result.history[-1].val_top1
    assert not checkpoint_path(out).exists()  # a completed run leaves no 49 MB .ckpt behind


def test_resume_continues_exactly(shapes: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    full = train(shapes, tmp_path / "full.safetensors", CFG, opts(epochs=4), cache_dir=cache)
    steps_per_epoch = 36 // 8
    cut = tmp_path / "cut.safetensors"
    train(shapes, cut, CFG, opts(epochs=4), cache_dir=cache, max_steps=2 * steps_per_epoch)  # "cut off" after 2 epochs
    resumed = train(shapes, cut, CFG, opts(epochs=4), cache_dir=cache, resume=checkpoint_path(cut))
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4]
    assert [h.loss for h in resumed.history] == pytest.approx([h.loss for h in full.history], rel=1e-5)
    a = load_weights(tmp_path / "full.safetensors").model.state_dict()
    b = load_weights(cut).model.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_same_seed_same_model(shapes: Path, tmp_path: Path) -> None:
    r1 = train(shapes, tmp_path / "a.safetensors", CFG, opts(epochs=2), cache_dir=tmp_path / "c")
    r2 = train(shapes, tmp_path / "b.safetensors", CFG, opts(epochs=2), cache_dir=tmp_path / "c")
    assert [h.loss for h in r1.history] == [h.loss for h in r2.history]


def test_resume_refuses_another_architecture(shapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    train(shapes, out, CFG, opts(epochs=1), cache_dir=tmp_path / "c", keep_checkpoint=True)
    other = CFG.with_(embed_dims=(8, 16, 24), num_heads=(2, 2, 4))
    with pytest.raises(ValueError, match="checkpoint is for another architecture or class list"):
        train(shapes, out, other, opts(epochs=2), cache_dir=tmp_path / "c", resume=checkpoint_path(out))


def test_unreadable_images_are_refused_by_name_or_skipped_and_recorded(tmp_path: Path) -> None:
    import shutil

    data = make_shapes(tmp_path / "data", per_class=4)
    (data / "c1" / "broken.png").write_bytes(b"not a png")
    (data / "c2" / "empty.jpg").write_bytes(b"")
    out = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match=r"2 unreadable image\(s\).*broken\.png.*empty\.jpg.*--skip-bad"):
        train(data, out, CFG, opts(epochs=1), cache_dir=tmp_path / "cache")
    assert not out.exists()
    result = train(data, out, CFG, opts(epochs=1, skip_bad=True), cache_dir=tmp_path / "cache")
    prov = load_weights(out).provenance
    assert prov["train_images"] == 12 and len(result.history) == 1
    assert [Path(s.split(":")[0]).name for s in prov["skipped_images"]] == ["broken.png", "empty.jpg"]
    shutil.rmtree(tmp_path / "cache")  # from the cache, the same answer
    train(data, out, CFG, opts(epochs=1, skip_bad=True), cache_dir=tmp_path / "cache")
    train(data, out, CFG, opts(epochs=1, skip_bad=True), cache_dir=tmp_path / "cache")
    assert load_weights(out).provenance["skipped_images"] == prov["skipped_images"]


def test_cache_follows_xdg_and_the_global_seed_is_left_alone(shapes: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    train(shapes, tmp_path / "m.safetensors", CFG, opts(epochs=1), max_steps=1)
    assert torch.equal(torch.rand(3), expected)  # training drew from its own seeds only
    assert list((tmp_path / "xdg" / "nestviz").glob("decoded-*.pt"))


def test_train_cli_errors(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nestviz.cli.app import app

    result = CliRunner().invoke(app, ["train", str(tmp_path / "nope"), "--out", str(tmp_path / "m.safetensors")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"nestviz: error: {tmp_path / 'nope'}: training folder not found"


# -- mosaic and the region loss ------------------------------------------------------------------------
def test_mosaic_tiles_cover_the_image_and_carry_the_area_weighted_labels() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 3, 32, 32), torch.eye(6)
    soft, tiles = mosaic_batch(x, y, gen, prob=1.0)
    assert tiles is not None and tiles.image.tolist() == list(range(6))
    for m in range(6):
        b = tiles.boxes[m].float()
        areas = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        assert float(areas.sum()) == 32 * 32
        assert torch.allclose(soft[m], (tiles.labels[m] * areas[:, None]).sum(0) / (32 * 32))


def test_region_weights_are_each_cells_share_of_the_box() -> None:
    w = region_weights(torch.tensor([[0, 0, 16, 16], [8, 4, 24, 12]]), image_size=32, grid=4)
    assert torch.allclose(w.sum(dim=(-2, -1)), torch.ones(2))
    assert torch.allclose(w[0], torch.tensor([[0.25, 0.25, 0, 0], [0.25, 0.25, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0.0]]))
    # rows 8..24 are cells 1 and 2 whole; columns 4..12 are half of cell 0 and half of cell 1
    expected = torch.zeros(4, 4)
    expected[1:3, 0:2] = 0.25
    assert torch.allclose(w[1], expected)


def test_tile_logits_are_the_mean_and_near_the_peak_of_the_class_map() -> None:
    model = Nest(CFG).eval()
    features = torch.randn(2, 2, 2, 16)  # CFG's top map: 2 x 2 cells of 16 channels
    quadrants = torch.tensor([[[0, 0, 16, 16], [0, 16, 16, 32], [16, 0, 32, 16], [16, 16, 32, 32]]])
    tiles = MosaicTiles(torch.tensor([1]), quadrants, torch.eye(3)[[0, 1, 2, 2]][None])
    with torch.no_grad():
        mean, peak = region_logits(model, features, tiles, image_size=32)
        cam = model.head(features[1]).reshape(4, 3)  # one cell per tile
    assert torch.allclose(mean[0], cam, atol=1e-6) and torch.allclose(peak[0], cam, atol=1e-5)
    right = region_loss((mean, peak), tiles.labels, eps=0.0)
    swapped = region_loss((mean.flip(1), peak.flip(1)), tiles.labels, eps=0.0)
    perfect = 20 * tiles.labels - 10
    assert float(region_loss((perfect, perfect), tiles.labels, eps=0.0)) < min(float(right), float(swapped))
    # class 2 fills two tiles: its 'where' target is half each, so the perfect loss is (ln 2) * 2/4
    assert float(region_loss((perfect, perfect), tiles.labels, eps=0.0)) == pytest.approx(np.log(2) / 2, abs=1e-3)


def test_mosaic_training_with_the_region_loss_runs_and_records_its_options(shapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    result = train(shapes, out, CFG, opts(epochs=1, mosaic_prob=0.5, region_loss=1.0, batch_size=12))
    assert np.isfinite(result.history[-1].loss)
    record = load_weights(out).provenance
    assert record["options"]["region_loss"] == 1.0 and record["options"]["mosaic_prob"] == 0.5


def test_peak_pooling_nears_the_maximum_as_the_temperature_falls() -> None:
    model = Nest(CFG).eval()
    features = torch.randn(1, 2, 2, 16)
    whole = MosaicTiles(torch.tensor([0]), torch.tensor([[[0, 0, 32, 32]] * 4]), torch.eye(3)[[0, 1, 2, 0]][None])
    with torch.no_grad():
        cam = model.head(features[0]).reshape(4, 3)
        mean, soft = region_logits(model, features, whole, 32, temperature=1.0)
        _, sharp = region_logits(model, features, whole, 32, temperature=0.01)
    assert torch.allclose(mean[0, 0], cam.mean(0), atol=1e-6)
    assert torch.all(soft[0, 0] >= cam.mean(0)) and torch.all(soft[0, 0] <= cam.max(0).values + 1e-6)
    assert torch.allclose(sharp[0, 0], cam.max(0).values, atol=0.02)


# -- before, after and around a run: the output, the checkpoint, class names, provenance, caches -----------
def test_an_unwritable_out_is_refused_before_any_work(shapes: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from nestviz.cli.app import app
    from nestviz.train import record

    def train_cli(out: Path):  # noqa: ANN202
        return CliRunner().invoke(app, ["train", str(shapes), "--out", str(out), "--cache-dir", str(tmp_path / "c"),
                                        "--epochs", "1", "--precision", "fp32"])

    (tmp_path / "a-file").write_text("")
    for out, problem in [(tmp_path / "gone" / "m.safetensors", f"{tmp_path / 'gone'} is not an existing folder"),
                         (tmp_path / "a-file" / "m.safetensors", f"{tmp_path / 'a-file'} is not an existing folder"),
                         (tmp_path, "is a folder; --out names the weights file to write (.safetensors)")]:
        result = train_cli(out)
        assert result.exit_code == 2 and result.stderr.strip() == f"nestviz: error: {out}: {problem}"

    def read_only(**kw):  # noqa: ANN003, ANN202
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(record.tempfile, "NamedTemporaryFile", read_only)  # root writes anywhere: feign it
    result = train_cli(tmp_path / "m.safetensors")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"nestviz: error: {tmp_path / 'm.safetensors'}: cannot write in {tmp_path} "
                                     "(Permission denied)")
    assert not (tmp_path / "c").exists()  # refused before decoding a single image


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write in a read-only folder")
def test_a_read_only_folder_is_refused(shapes: Path, tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(ValueError, match="cannot write in"):
        train(shapes, tmp_path / "ro" / "m.safetensors", CFG, opts(epochs=1), cache_dir=tmp_path / "c")


def test_a_completed_run_removes_its_checkpoint_unless_asked_to_keep_it(shapes: Path, tmp_path: Path) -> None:
    cut, kept, done = (tmp_path / f"{n}.safetensors" for n in ("cut", "kept", "done"))
    train(shapes, cut, CFG, opts(epochs=2), cache_dir=tmp_path / "c", max_steps=1)
    train(shapes, kept, CFG, opts(epochs=1), cache_dir=tmp_path / "c", keep_checkpoint=True)
    train(shapes, done, CFG, opts(epochs=1), cache_dir=tmp_path / "c")
    assert checkpoint_path(cut).exists() and checkpoint_path(kept).exists()
    assert not checkpoint_path(done).exists() and done.exists()


def test_imagenet_style_folders_get_their_class_names(shapes: Path, tmp_path: Path) -> None:
    import shutil

    for folder, wnid in zip(SHAPES, ["n01440764", "n02102040", "n03888257"]):
        shutil.copytree(shapes / folder, tmp_path / "data" / wnid)
    out = tmp_path / "m.safetensors"
    train(tmp_path / "data", out, CFG, opts(epochs=1), cache_dir=tmp_path / "c", max_steps=1)
    assert load_weights(out).class_names == ["tench", "English springer", "parachute"]


def test_provenance_paths_are_relative_to_the_data(shapes: Path, tmp_path: Path) -> None:
    import shutil

    train_dir, val_dir = (Path(shutil.copytree(shapes, tmp_path / "shapes" / s)) for s in ("train", "val"))
    (tmp_path / "runs").mkdir()
    out, labels = tmp_path / "runs" / "m.safetensors", tmp_path / "labels.tsv"
    labels.write_text("c0\tred square\n")
    command = (f"nestviz train {train_dir} --val {val_dir} --out {out} --labels={labels} "
               f"--cache-dir /elsewhere/cache --epochs 1")
    train(train_dir, out, CFG, opts(epochs=1), val_dir=val_dir, labels_file=labels, cache_dir=tmp_path / "c",
          command=command, max_steps=1)
    prov = load_weights(out).provenance
    assert prov["command"] == ("nestviz train shapes/train --val shapes/val --out runs/m.safetensors "
                               "--labels=labels.tsv --cache-dir cache --epochs 1")
    assert (prov["train_data"], prov["val_data"]) == ("shapes/train", "shapes/val")
    recorded = json.dumps({k: v for k, v in prov.items() if k != "source_path"})  # source_path: where it is now
    assert str(tmp_path) not in recorded


def test_the_suite_keeps_its_caches_out_of_the_home_folder() -> None:
    from nestviz.train.loop import default_cache_dir

    assert default_cache_dir() == Path(os.environ["XDG_CACHE_HOME"]) / "nestviz"
    assert not default_cache_dir().is_relative_to(Path.home())


def test_init_from_another_input_size_resamples_the_position_embeddings(shapes: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.safetensors"
    train(shapes, small, CFG, opts(epochs=1), cache_dir=tmp_path / "c", max_steps=1)
    big_cfg = CFG.with_(img_size=48)  # blocks of 3x3 tokens instead of 2x2
    out = tmp_path / "big.safetensors"
    train(shapes, out, big_cfg, opts(epochs=1, lr=0.0, warmup_epochs=0), init=small, cache_dir=tmp_path / "c",
          max_steps=1)
    before, after = load_weights(small).model, load_weights(out).model
    assert after.cfg.img_size == 48 and after.levels[0].pos_embed.shape == (1, 16, 9, 8)
    for (name, a), b in zip(before.state_dict().items(), after.state_dict().values()):
        if not name.endswith("pos_embed"):
            torch.testing.assert_close(a, b)  # lr 0: only the embeddings' grids were resampled
    other = CFG.with_(embed_dims=(8, 16, 24))
    with pytest.raises(ValueError, match="--init weights are for another architecture or class count"):
        train(shapes, tmp_path / "x.safetensors", other, opts(epochs=1), init=small, cache_dir=tmp_path / "c",
              max_steps=1)


def test_init_without_img_size_trains_at_the_init_size_and_resampling_says_so(shapes: Path, tmp_path: Path) -> None:
    """Issue 22: ``--init W`` without ``--img-size`` trained at the architecture's default size, silently."""
    from typer.testing import CliRunner

    from nestviz.cli.app import app
    from nestviz.model.nest import NAMED_CONFIGS

    small = tmp_path / "small.safetensors"
    train(shapes, small, CFG.with_(img_size=48), opts(epochs=1), cache_dir=tmp_path / "c", max_steps=1)
    base = ["train", str(shapes), "--arch", "tiny_test", "--init", str(small), "--epochs", "1", "--batch-size", "36",
            "--precision", "fp32", "--cache-dir", str(tmp_path / "c"), "--warmup-epochs", "0"]
    NAMED_CONFIGS["tiny_test"] = CFG  # 32 px
    try:
        same = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "same.safetensors")])
        assert same.exit_code == 0, same.output
        assert load_weights(tmp_path / "same.safetensors").config.img_size == 48  # the init's size, not 32
        assert "resampled" not in same.stderr
        other = CliRunner().invoke(app, [*base, "--img-size", "64", "--out", str(tmp_path / "other.safetensors")])
        assert other.exit_code == 0, other.output
        assert load_weights(tmp_path / "other.safetensors").config.img_size == 64
        assert [ln for ln in other.stderr.splitlines() if "resampled" in ln] == [
            f"nestviz: warning: {small}: position embeddings resampled from 48 px to 64 px (--img-size)"]
    finally:
        del NAMED_CONFIGS["tiny_test"]


def test_a_run_stopped_mid_epoch_resumes_exactly_from_its_timed_checkpoint(shapes: Path, tmp_path: Path) -> None:
    """Issue 22: the checkpoint was written only at an epoch's end, so an early Ctrl-C left nothing to resume."""
    cache, steps_seen = tmp_path / "c", []
    whole = train(shapes, tmp_path / "whole.safetensors", CFG, opts(epochs=2), cache_dir=cache)

    def stop_at_step_3_of_epoch_2(epoch: int, step: int, steps: int, loss: float, ips: float) -> None:
        steps_seen.append((epoch, step, steps))
        if (epoch, step) == (2, 3):
            raise KeyboardInterrupt

    cut = tmp_path / "cut.safetensors"
    with pytest.raises(KeyboardInterrupt):  # checkpoint_minutes 0: after every step
        train(shapes, cut, CFG, opts(epochs=2, checkpoint_minutes=0.0), cache_dir=cache,
              on_step=stop_at_step_3_of_epoch_2)
    assert steps_seen[-1] == (2, 3, 4) and not cut.exists()
    state = torch.load(checkpoint_path(cut), weights_only=True)
    assert state["epoch"] == 1 and state["mid_epoch"]["step"] == 3
    resumed = train(shapes, cut, CFG, opts(epochs=2), cache_dir=cache, resume=checkpoint_path(cut))
    for a, b in zip(load_weights(tmp_path / "whole.safetensors").model.state_dict().values(),
                    load_weights(cut).model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed.history[-1].loss == pytest.approx(whole.history[-1].loss, rel=1e-6)


def test_train_reports_progress_warns_of_a_long_warmup_and_says_how_to_resume(shapes: Path, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22: no progress within an epoch, Ctrl-C printed nothing, --warmup-epochs > --epochs was silent."""
    from typer.testing import CliRunner

    from nestviz.cli.app import app
    from nestviz.model.nest import NAMED_CONFIGS

    monkeypatch.setitem(NAMED_CONFIGS, "tiny_test", CFG)
    out = tmp_path / "m.safetensors"
    base = ["train", str(shapes), "--arch", "tiny_test", "--out", str(out), "--batch-size", "8", "--precision", "fp32",
            "--cache-dir", str(tmp_path / "c")]
    result = CliRunner().invoke(app, [*base, "--epochs", "1", "--warmup-epochs", "3", "--log-every", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == ("nestviz: warning: --warmup-epochs 3 exceeds --epochs 1: the learning rate rises for the "
                        "whole run and peaks at 0.000333, not --lr 0.001")
    assert re.fullmatch(r"epoch 1/1  step 2/4  loss \d+\.\d{4}  \d+ img/s", lines[1])  # not a terminal: every 2 steps
    assert lines[2].startswith("epoch 1/1  loss ") and lines[3].startswith("wrote")  # then the epoch's line

    import nestviz.train.loop as loop

    real_step = loop._train_step
    calls = []

    def interrupt_on_third(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "_train_step", interrupt_on_third)
    argv = [*base, "--epochs", "2", "--checkpoint-minutes", "0"]
    monkeypatch.setattr(sys, "argv", ["nestviz", *argv])  # what the resume line repeats
    stopped = CliRunner().invoke(app, argv)
    assert stopped.exit_code == 130
    ckpt = tmp_path / "m.safetensors.ckpt"
    last = stopped.stderr.splitlines()[-1]
    assert last.startswith(f"nestviz: interrupted in epoch 1 at step 2; {ckpt} (written ") and " s ago) resumes it: " in last
    assert last.endswith(f"--epochs 2 --checkpoint-minutes 0 --resume {ckpt}")
    assert torch.load(ckpt, weights_only=True)["mid_epoch"]["step"] == 2
