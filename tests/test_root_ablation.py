"""GradCAT's root-ablation score: the ablation score at the root, the cam score inside the chosen child."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nestviz
from nestviz.methods import variants
from nestviz.methods.ablation import ablation_gradcat
from nestviz.methods.camtree import cam_gradcat
from .helpers import TINY_CLASSES, write_image
from .model_helpers import TINY_JX, tiny_model



@pytest.mark.parametrize("cfg", [None, TINY_JX], ids=["plain", "same-padding"])
def test_the_root_follows_ablation_and_the_rest_follows_cam(cfg) -> None:  # noqa: ANN001
    model = tiny_model(7) if cfg is None else tiny_model(7, cfg)
    x = torch.randn(5, 3, 32, 32)
    got = variants.paths(model, x, "root-ablation", top_k=2)
    abl = ablation_gradcat(model, x, top_k=2)
    cam = cam_gradcat(model, x, top_k=2)
    assert torch.equal(got.classes, abl.classes) and torch.equal(got.classes, cam.classes)
    disagree = 0
    for i in range(5):
        for j in range(2):
            root, want = got.paths[i][j][0], abl.paths[i][j][0]
            assert root.child_scores == pytest.approx(want.child_scores, abs=1e-6)  # the drop of each child's removal
            assert root.chosen_child == want.chosen_child
            # below the root: the cam score's walk, from the child ablation chose
            below, share = got.paths[i][j][1:], cam.paths[i][j]
            if share[0].chosen_child == root.chosen_child:
                assert [(n.node, n.chosen_child) for n in below] == [(n.node, n.chosen_child) for n in share[1:]]
            else:
                disagree += 1
            assert below[0].score == pytest.approx(root.child_scores[root.chosen_child])
    assert disagree > 0  # the case where it matters is in the test


def test_batch_equals_single_and_the_metrics_tree_reads_the_same_root() -> None:
    model = tiny_model(8)
    x = torch.randn(4, 3, 32, 32)
    classes = torch.tensor([0, 2, 1, 1])
    batch = variants.paths(model, x, "root-ablation", classes=classes[:, None])
    tree = variants.tree(model, x, classes, "root-ablation", batch)
    for i in range(4):
        one = variants.paths(model, x[i:i + 1], "root-ablation", classes=classes[i:i + 1, None])
        assert [(n.node, n.chosen_child) for n in one.paths[0][0]] == [(n.node, n.chosen_child) for n in batch.paths[i][0]]
        root = batch.paths[i][0][0]
        assert tree[i][-1].ravel() == pytest.approx(np.asarray(root.child_scores), abs=1e-6)


def test_the_api_and_the_sign(tmp_path) -> None:  # noqa: ANN001
    image = write_image(tmp_path / "a.png", (40, 36), seed=9)
    nv = nestviz.load(tiny_model(9), class_names=TINY_CLASSES, device="cpu", gradcat_score="root-ablation")
    [res] = nv.explain(image, top_k=2)
    want = variants.paths(nv.model, nv.prepare(image, "crop").tensor[None], "root-ablation", top_k=2).paths[0]
    assert [[n.node for n in p.path] for p in res.predictions] == [[n.node for n in p] for p in want]
    with pytest.raises(ValueError, match="the root-ablation score has no sign"):
        nv.run([nv.prepare(image)], "explain", sign=-1.0)
