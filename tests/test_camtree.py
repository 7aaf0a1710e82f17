"""GradCAT scored by the CAM's logit share: known answers, the root equal to the paper's, shares that add up."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nestviz.methods.cam import place
from nestviz.methods.camtree import cam_gradcat, logit_share_heat
from nestviz.methods.gradcat import gradcat
from .model_helpers import expected_nodes, hand_built, random_model


torch.set_num_threads(1)


@pytest.mark.parametrize("leaf", range(16))
def test_path_ends_at_the_bright_leaf_block(leaf: int) -> None:
    b = 8
    model = hand_built(b)
    x = torch.zeros(1, 1, 4 * b, 4 * b)
    r, c = divmod(leaf, 4)
    x[0, 0, r * b:(r + 1) * b, c * b:(c + 1) * b] = 1.0
    path = cam_gradcat(model, x, classes=[0]).paths[0][0]
    assert [n.node for n in path] == expected_nodes(leaf)
    assert path[-1].box == (c * b, r * b, (c + 1) * b, (r + 1) * b)


def test_the_root_choice_and_its_scores_are_the_papers_gradient_ones() -> None:
    # At the top level the paper's A * dY/dA is (w_c . f) / cells per cell; placed where the cells see (sums
    # kept), its quadrant sums are the cam score's root scores.
    model = random_model(4)
    x = torch.randn(6, 3, 32, 32)
    grad, share = gradcat(model, x, top_k=3), cam_gradcat(model, x, top_k=3, kind="logit")
    assert torch.equal(grad.classes, share.classes)
    b, half = model.cfg.block_size, model.cfg.block_size // 2
    assert grad.heat is not None
    for i in range(6):
        for j in range(3):
            top = place(torch.from_numpy(grad.heat[-1][j, i]).double(), model.cfg.top_shift(), keep_sum=True)
            quads = [float(top[r * half:(r + 1) * half, c * half:(c + 1) * half].sum()) for r in (0, 1) for c in (0, 1)]
            root = share.paths[i][j][0]
            assert root.child_scores == pytest.approx(quads, rel=1e-4, abs=1e-6)
            assert root.chosen_child == int(np.argmax(quads))
    assert b == 2 * half


def test_shares_add_up_from_the_logit_down_to_the_leaf() -> None:
    model = random_model(7)
    x = torch.randn(3, 3, 32, 32)
    out = cam_gradcat(model, x, top_k=2, kind="logit")
    for i in range(3):
        for j in range(2):
            cls = int(out.classes[i, j])
            path = out.paths[i][j]
            assert path[0].score == pytest.approx(float(out.logits[i, cls] - model.head.bias[cls].detach()), abs=1e-4)
            for parent, child in zip(path, path[1:]):
                assert sum(parent.child_scores) == pytest.approx(parent.score, abs=1e-4)
                assert child.score == pytest.approx(parent.child_scores[parent.chosen_child], abs=1e-6)


def test_batch_equals_single_images_and_the_sign_flips_the_choice() -> None:
    model = random_model(2)
    x = torch.randn(4, 3, 32, 32)
    batch = cam_gradcat(model, x, top_k=2)
    for i in range(4):
        single = cam_gradcat(model, x[i:i + 1], top_k=2)
        assert [[n.node for n in p] for p in single.paths[0]] == [[n.node for n in p] for p in batch.paths[i]]
    flipped = cam_gradcat(model, x, top_k=1, sign=-1.0)
    for p, q in zip(batch.paths, flipped.paths):
        assert p[0][0].child_scores == pytest.approx([-v for v in q[0][0].child_scores], abs=1e-6)


def test_each_level_spreads_the_top_share_evenly_and_keeps_sums() -> None:
    share = torch.arange(4.0).reshape(1, 1, 2, 2)  # a 2x2 top map of a 3-level model with 2x2 blocks
    heat = logit_share_heat(share, levels=3, block=2)
    assert heat[0] is None and heat[1].shape == (1, 1, 4, 4) and heat[2].shape == (1, 1, 2, 2)
    assert heat[2][0, 0].tolist() == [[0.0, 1.0], [2.0, 3.0]]  # one position per child quadrant: the share itself
    assert heat[1][0, 0, 2:, 2:].tolist() == [[0.75, 0.75], [0.75, 0.75]]  # cell 3 spread over 4 positions
    assert float(heat[1].sum()) == pytest.approx(6.0)


@pytest.mark.parametrize("kind", ["contrast", "flow"])  # the flow moves shares between cells and keeps their sum
def test_the_contrastive_shares_add_up_to_the_logit_minus_the_mean_logit(kind: str) -> None:
    model = random_model(5)
    x = torch.randn(3, 3, 32, 32)
    out = cam_gradcat(model, x, top_k=2, kind=kind)
    bias = model.head.bias.detach()
    for i in range(3):
        for j in range(2):
            cls = int(out.classes[i, j])
            path = out.paths[i][j]
            want = float(out.logits[i, cls] - out.logits[i].mean() - (bias[cls] - bias.mean()))
            assert path[0].score == pytest.approx(want, abs=1e-4)
            for parent, child in zip(path, path[1:]):
                assert sum(parent.child_scores) == pytest.approx(parent.score, abs=1e-4)


def test_the_contrast_can_change_the_path_and_an_unknown_kind_is_refused() -> None:
    model = hand_built(8)
    with torch.no_grad():  # class 1 gains everywhere what class 0 gains: the contrast of class 0 is then flat
        model.head.weight[1] = model.head.weight[0]
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, :8, :8] = 1.0
    logit = cam_gradcat(model, x, classes=[0], kind="logit").paths[0][0]
    contrast = cam_gradcat(model, x, classes=[0], kind="contrast").paths[0][0]
    assert logit[0].child_scores[0] > max(logit[0].child_scores[1:])
    assert contrast[0].child_scores == [0.0, 0.0, 0.0, 0.0]  # no evidence that sets class 0 apart from class 1
    with pytest.raises(ValueError, match="unknown CAM kind 'prob'; known: flow, contrast, logit"):
        cam_gradcat(model, x, classes=[0], kind="prob")
