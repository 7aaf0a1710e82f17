"""nestviz metrics end to end: explanation variants, the shared passes, batch parity, inputs, the command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nestviz.api import Nestviz
from nestviz.cli.app import app
from nestviz.defaults import Variants
from nestviz.methods.ablation import ablation_block_scores, ablation_gradcat, reference_maps
from nestviz.methods.cam import cam_cells, cam_maps
from nestviz.methods.gradcat import block_box, block_scores, gradcat, leaf_order
from nestviz.methods.perturb import class_probs, occlusion_drops
from nestviz.evaluation.measure import find_samples, run_metrics
from nestviz.model.nest import NestConfig
from nestviz.preprocess import Geometry
from nestviz.evaluation.trust import MetricsOptions, image_map, leaf_pixel_order, score_batch
from .helpers import class_folders, TINY_CLASSES, write_image
from .model_helpers import hand_built, random_model, tiny_model



def bright_leaf(leaf: int, b: int = 8) -> torch.Tensor:
    x = torch.zeros(1, 1, 4 * b, 4 * b)
    r, c = divmod(leaf, 4)
    x[0, 0, r * b:(r + 1) * b, c * b:(c + 1) * b] = 1.0
    return x


def test_contrast_cam_mean_is_the_logit_minus_the_mean_logit() -> None:
    model = random_model(1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model.forward_head(features)
        classes = torch.tensor([[0, 3], [4, 1]])
        maps = cam_cells(model, features, classes, "contrast")
    expected = logits.gather(1, classes) - logits.mean(dim=1, keepdim=True)
    assert torch.allclose(maps.mean(dim=(2, 3)), expected, atol=1e-5)
    with pytest.raises(ValueError, match="unknown CAM kind 'nope'"):
        cam_maps(model, features, classes, "nope")


def test_ablation_scores_are_the_probability_drops_of_children_replaced_by_a_blank_images() -> None:
    model = random_model(2)
    x = torch.randn(1, 3, 32, 32)
    out = ablation_gradcat(model, x, top_k=1)
    c = int(out.classes[0, 0])
    root = out.paths[0][0][0]
    with torch.no_grad():
        _, acts = model.forward_intermediates(x)
        _, blank = model.forward_intermediates(torch.zeros(1, 3, 32, 32))
        p = model(x).softmax(1)[0, c]
        b = model.cfg.block_size
        drops = []
        for q in range(4):
            a = acts[1].clone()
            rows, cols = slice((q // 2) * b, (q // 2 + 1) * b), slice((q % 2) * b, (q % 2 + 1) * b)
            a[:, :, rows, cols] = blank[1][:, :, rows, cols]
            top = model.levels[2](a)
            drops.append(float(p - model.forward_head(model.final_norm(top)).softmax(1)[0, c]))
    assert root.child_scores == pytest.approx(drops, abs=1e-6)
    assert root.chosen_child == int(np.argmax(drops))
    tree = ablation_block_scores(model, x, out.classes[:, 0])[0]
    assert tree[1].flatten().tolist() == pytest.approx(drops, abs=1e-6)
    mid = out.paths[0][0][1]
    r, col = divmod(mid.node, 2)
    assert tree[0][2 * r:2 * r + 2, 2 * col:2 * col + 2].flatten().tolist() == pytest.approx(mid.child_scores, abs=1e-6)


def test_removing_a_leaf_is_occluding_its_pixels() -> None:
    # The levels below the top are block-local, so a leaf replaced by a blank image's leaf is the leaf's pixels
    # set to the mean: the ablation score of every leaf is occlusion's drop for the leaf's box, exactly.
    model = random_model(3)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([1, 3])
    g = model.cfg.grid(0)
    boxes = [[int(v) for v in block_box(model.cfg, 0, r, c)] for r in range(g) for c in range(g)]
    occluded = occlusion_drops(model, x, classes, boxes)
    tree = ablation_block_scores(model, x, classes)
    for i in range(2):
        assert torch.allclose(torch.as_tensor(tree[i][0]).flatten(), occluded[i], atol=1e-6)
    assert occluded.abs().max() > 1e-3  # the leaves matter to these classes


def test_the_blank_images_maps_are_kept_until_a_weight_changes() -> None:
    model, other = random_model(5), random_model(6)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        first = reference_maps(model, x)
        assert reference_maps(model, x) is first  # one forward pass per model, not per call
        assert not torch.equal(reference_maps(other, x)[0], first[0])  # each model its own
        made_here = random_model(7)  # inference tensors carry no version: computed each time, never stale
        assert reference_maps(made_here, x) is not reference_maps(made_here, x)
    with torch.no_grad():
        model.patch_embed.proj.bias.add_(1.0)  # what a training step or load_state_dict does (a blank image
        # reads no patch weight, only the bias)
    with torch.inference_mode():
        again = reference_maps(model, x)
        fresh = model.forward_intermediates(torch.zeros(1, 3, 32, 32))[1]
    assert again is not first and not torch.allclose(again[0], first[0])
    assert all(torch.equal(a, b) for a, b in zip(again, fresh))


@pytest.mark.parametrize("score", ["gradient", "ablation"])
@pytest.mark.parametrize("leaf", [0, 6, 15])
def test_path_agreement_and_pointing_on_the_hand_built_nest(leaf: int, score: str) -> None:
    # The class-0 logit is "how bright": occluding the bright leaf (and its parent) drops it most,
    # so both GradCATs agree with occlusion at every level, and the leaf lies in a box drawn on it.
    model = hand_built(8)
    x = bright_leaf(leaf)
    r, c = divmod(leaf, 4)
    geo = Geometry(32, 32, 32, 32, 0, 0, 32)
    gt = np.array([[c * 8, r * 8, c * 8 + 8, r * 8 + 8]], float)
    [rec] = score_batch(model, x, torch.tensor([0]), [geo], [gt], ["x"], ["bright"],
                        MetricsOptions(variants=Variants(gradcat_score=score), sanity=False, tolerance=0.0))
    assert rec.values["gradcat"]["path_agreement"] == {"level_3": 1.0, "level_2": 1.0}
    assert rec.values["gradcat"]["pointing"] is True
    assert rec.values["occlusion"]["pointing"] is True
    assert rec.values["gradcat"]["deletion_auc"] < rec.values["random"]["deletion_auc"]


def test_leaf_order_starts_with_the_path_leaf() -> None:
    model = random_model(3)
    x = torch.randn(2, 3, 32, 32)
    g = gradcat(model, x, top_k=2)
    for i in range(2):
        for j in range(2):
            tree = block_scores([None if h is None else h[j, i] for h in g.heat], model.cfg)
            order = leaf_order(tree, model.cfg)
            assert order[0] == g.paths[i][j][-1].node
            assert sorted(order.tolist()) == list(range(16))


def test_leaf_pixel_order_takes_whole_blocks_in_turn() -> None:
    cfg = NestConfig(img_size=8, patch_size=1, num_levels=2, embed_dims=(4, 4), num_heads=(1, 1), depths=(1, 1),
                     num_classes=2)  # 2x2 leaves of 4x4 px
    order = leaf_pixel_order(np.array([3, 0, 2, 1]), cfg)
    first = order[:16] // 8, order[:16] % 8  # leaf 3 is the bottom-right block
    assert set(first[0].tolist()) == {4, 5, 6, 7} and set(first[1].tolist()) == {4, 5, 6, 7}
    assert order[16] == 0  # then leaf 0 from its top-left pixel, row-major
    assert sorted(order.tolist()) == list(range(64))


def test_image_map_lays_the_map_over_the_crop() -> None:
    # A 40x20 image, shorter side resized to 20 and centre-cropped: the model saw x in [10, 30).
    geo = Geometry(40, 20, 40, 20, 10, 0, 20)
    m = image_map(torch.tensor([[1.0, 3.0]]), geo, (40, 20))
    assert m[:, :10].max() == 1.0 and m[:, 30:].max() == 1.0  # unseen: the map's minimum
    assert m[5, 10] == pytest.approx(1.0) and m[5, 29] == pytest.approx(3.0)  # border pixels of the two cells
    assert np.all(np.diff(m[5, 10:30]) >= 0)


def test_batch_and_single_give_the_same_scores(tmp_path: Path) -> None:
    nv = Nestviz.load(tiny_model(), class_names=TINY_CLASSES, device="cpu")
    samples, skipped = find_samples([class_folders(tmp_path)], TINY_CLASSES)
    assert len(samples) == 6 and [s["kind"] for s in skipped] == ["not measured"]
    opts = MetricsOptions(steps=4)
    together = run_metrics(nv, samples, opts, batch_size=6)
    alone = run_metrics(nv, samples, opts, batch_size=1)
    for a, b in zip(together.records, alone.records):
        assert a.image == b.image
        assert _close(a.values, b.values), (a.values, b.values)


def _close(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)  # type: ignore[union-attr]
    if isinstance(a, float):
        return a == pytest.approx(b, abs=1e-5)
    return a == b


def test_wordnet_folders_name_their_class(tmp_path: Path) -> None:
    write_image(tmp_path / "n01440764" / "a.png")
    samples, skipped = find_samples([tmp_path], ["goldfish", "tench"])
    assert [s.class_index for s in samples] == [1] and not skipped


def test_metrics_command_json_contract_and_box_errors(tmp_path: Path, tiny_weights: Path) -> None:
    data = class_folders(tmp_path / "data", n=1)
    csv = tmp_path / "boxes.csv"
    csv.write_text("image,xmin,ymin,xmax,ymax,label\nred0.png,2,2,20,20,red thing\ngre0.png,a,2,20,20,\n")
    res = CliRunner().invoke(app, ["metrics", str(data), "--boxes", str(csv), "--weights", str(tiny_weights),
                                   "--json", "--steps", "2", "--device", "cpu"])
    assert res.exit_code == 3, res.output  # the bad row is an error; the rest was measured
    d = json.loads(res.stdout.strip().splitlines()[-1])
    assert d["images"] == 3
    m = d["metrics"]
    for key in ("maxboxacc_v2", "gt_known_loc", "box_covers_view", "pointing", "deletion_auc", "insertion_auc"):
        assert key in m["cam"]
    assert set(m["gradcat"]["path_agreement"]) == {"level_3", "level_2"}
    assert {"pointing", "deletion_auc", "insertion_auc"} <= set(m["gradcat"])
    assert {"maxboxacc_v2", "pointing"} <= set(m["centre"])
    assert m["cam"]["images_with_boxes"] == 1
    kinds = {s["kind"] for s in d["skipped"]}
    assert kinds == {"error", "not measured", "partial"}
    assert any("boxes.csv:3" in s["image"] for s in d["skipped"])


def test_a_run_without_boxes_says_which_metrics_it_skipped_and_the_time_per_image(tmp_path: Path,
                                                                                   tiny_weights: Path) -> None:
    """Issue 22: a no-box run was silent about the metrics it left out."""
    data = class_folders(tmp_path / "data", n=1)
    res = CliRunner().invoke(app, ["metrics", str(data), "--weights", str(tiny_weights), "--steps", "2",
                                   "--device", "cpu", "--no-sanity", "-q"])
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines()[0] == ("nestviz: no --boxes: the localization metrics (MaxBoxAccV2, GT-known loc, "
                                          "box covers view, pointing game) are skipped; faithfulness and sanity only")
    assert re.search(r"3 images, top-1 \d+\.\d%, \d+ s \(\d+\.\d s per image\)", res.stdout)


def test_metrics_command_refuses_unknown_methods(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["metrics", str(tmp_path), "--methods", "gradcat,magic"])
    assert res.exit_code == 2
    assert "--methods takes gradcat, cam; got 'gradcat,magic'" in res.output


def test_images_without_boxes_are_one_line_when_many(tmp_path: Path, tiny_weights: Path) -> None:
    data = class_folders(tmp_path / "data", n=3)  # 9 images of the model's classes, one box among them
    csv = tmp_path / "boxes.csv"
    csv.write_text("image,xmin,ymin,xmax,ymax,label\nred0.png,2,2,20,20,red thing\n")
    res = CliRunner().invoke(app, ["metrics", str(data), "--boxes", str(csv), "--weights", str(tiny_weights),
                                   "--json", "--steps", "2", "--device", "cpu", "--no-sanity"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if line.startswith("nestviz: ")]
    assert lines[-1].startswith(f"nestviz: 8 images have no box in {csv}: faithfulness only (e.g. ")
    assert sum("no box" in line for line in lines) == 1
    d = json.loads(res.stdout.strip().splitlines()[-1])
    assert sum(s["kind"] == "partial" for s in d["skipped"]) == 8


def test_cam_alone_is_measured(tmp_path: Path) -> None:
    """``--methods cam`` ended in KeyError 'gradcat': the path agreement was written for a method not asked for."""
    nv = Nestviz.load(tiny_model(), class_names=TINY_CLASSES, device="cpu")
    samples, _ = find_samples([class_folders(tmp_path)], TINY_CLASSES)
    report = run_metrics(nv, samples, MetricsOptions(methods=("cam",), steps=4, sanity=False))
    assert "gradcat" not in report.metrics and report.metrics["cam"]["deletion_auc"] >= 0
    assert "path_agreement" not in report.metrics["random"]  # no path asked for: no agreement, not even random's


def test_copies_reuse_the_known_images_leaves_and_give_the_same_probabilities() -> None:
    # The leaf level is block-local: a copy's leaf equal to a known image's takes that leaf's output, and only the
    # changed leaves run. Leaves removed whole, leaves from a second known image, and a box cutting leaves in part.
    model = random_model(11)
    g, side = model.cfg.grid(0), model.cfg.block_size * model.cfg.patch_size
    gen = torch.Generator().manual_seed(2)
    image, other = torch.randn(2, 3, 32, 32, generator=gen)
    copies = image.repeat(5, 1, 1, 1)
    copies[1, :, :side, :side] = 0.0  # one leaf removed whole
    copies[2, :, side:, :] = other[:, side:, :]  # the lower three rows of leaves from the other image
    copies[3, :, 3:13, 5:11] = 0.0  # a box cutting four leaves in part
    copies[4] = other
    classes = torch.tensor([0, 1, 2, 3, 4])
    ran = []
    hook = model.levels[0].transformer_encoder.register_forward_hook(lambda mod, args, out: ran.append(args[0].shape))
    got = class_probs(model, copies, classes, batch_size=3, known=torch.stack([image, torch.zeros_like(image), other]))
    hook.remove()
    want = class_probs(model, copies, classes, batch_size=3)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert want[1] != want[0] and want[3] != want[0]  # the changes matter to the probabilities
    # the known images' leaf level once, whole; then only the four leaves the box cut, one block each; no other
    assert [tuple(s[:2]) for s in ran] == [(3, g * g), (4, 1)]
