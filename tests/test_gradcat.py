"""GradCAT: known answers on hand-built NesTs, gradient parity, batching, model state, sanity checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nestviz.methods.gradcat import BlockNode, block_box, gradcat, walk
from nestviz.model import Nest, NestConfig
from .model_helpers import expected_nodes, hand_built, random_model

torch.set_num_threads(1)


@pytest.mark.parametrize("pad_type", ["", "same"])
@pytest.mark.parametrize("leaf", range(16))
def test_path_ends_at_the_bright_leaf_block(leaf: int, pad_type: str) -> None:
    # Each pooling step leaks the bright region one position past its edge; with 8 tokens per
    # block the bright block still holds most of every quadrant it feeds, so the answer is exact.
    b = 8
    model = hand_built(b, pad_type)
    x = torch.zeros(1, 1, 4 * b, 4 * b)
    r, c = divmod(leaf, 4)
    x[0, 0, r * b:(r + 1) * b, c * b:(c + 1) * b] = 1.0
    out = gradcat(model, x, top_k=1)
    assert out.classes.tolist() == [[0]]
    path = out.paths[0][0]
    assert [n.level for n in path] == [3, 2, 1]
    assert [n.node for n in path] == expected_nodes(leaf)
    assert path[-1].box == (c * b, r * b, (c + 1) * b, (r + 1) * b)


@pytest.mark.parametrize("pad_type", ["", "same"])
def test_odd_block_size_single_bright_pixel(pad_type: str) -> None:
    # A pixel at a token t = 0 (plain) or 3 ("same") mod 4 is seen by exactly one pooling window at
    # each aggregation, centred on it, so nothing leaks. With 5 tokens per block the middle
    # position of a block goes to the first child (plain) or the second ("same"): the leaves in
    # the middle rows and columns fail under the other rule.
    b, t_mod = 5, {"": 0, "same": 3}[pad_type]
    model = hand_built(b, pad_type)
    x = torch.zeros(16, 1, 4 * b, 4 * b)
    for leaf in range(16):
        r, c = divmod(leaf, 4)
        ty, tx = (next(t for t in range(i * b, (i + 1) * b) if t % 4 == t_mod) for i in (r, c))
        x[leaf, 0, ty, tx] = 1.0
    out = gradcat(model, x, classes=[0])
    assert [[n.node for n in p[0]] for p in out.paths] == [expected_nodes(leaf) for leaf in range(16)]


def traverse(acts: list, grads: list, cfg: NestConfig) -> list[BlockNode]:
    """The GradCAT path of one image and one class, root first, from per-level (C, H, W) maps and their
    gradients (the top map after the final norm; the leaves' read only when they are the root): the paper's rule."""
    heat = [None if g is None or (i == 0 and cfg.num_levels > 1) else (a * g).sum(0).float().cpu().numpy()
            for i, (a, g) in enumerate(zip(acts, grads))]
    return walk(heat, cfg)


@pytest.mark.parametrize("pad_type, chosen", [("", 0), ("same", 3)])
def test_quadrant_rule_for_odd_blocks(pad_type: str, chosen: int) -> None:
    # Root of 3x3 tokens: the centre was pooled from a window centred at 2 (plain) or 3 ("same")
    # of the 6x6 leaf level, i.e. in leaf block 0 (top-left) or 1 (bottom-right) along each axis.
    cfg = NestConfig(img_size=6, patch_size=1, num_levels=2, embed_dims=(1, 1), num_heads=(1, 1),
                     depths=(1, 1), num_classes=1, pad_type=pad_type)
    heat = torch.zeros(1, 3, 3)
    heat[0, 1, 1] = 1.0
    root, leaf = traverse([None, torch.ones(1, 3, 3)], [None, heat], cfg)
    expected = [0.0] * 4
    expected[chosen] = 0.25  # the quadrant holding the centre has 2x2 positions
    assert root.child_scores == pytest.approx(expected)
    assert root.chosen_child == chosen and root.score == pytest.approx(1 / 9)
    assert (leaf.node, leaf.score, leaf.child_scores, leaf.chosen_child) == (chosen, pytest.approx(0.25), None, None)
    assert leaf.box == ((3.0, 3.0, 6.0, 6.0) if chosen else (0.0, 0.0, 3.0, 3.0))


def test_even_blocks_split_in_halves_for_both_paddings() -> None:
    heat = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(0))
    halves = [float(heat[0, r:r + 2, c:c + 2].mean()) for r in (0, 2) for c in (0, 2)]
    for pad_type in ("", "same"):
        cfg = NestConfig(img_size=8, patch_size=1, num_levels=2, embed_dims=(1, 1), num_heads=(1, 1),
                         depths=(1, 1), num_classes=1, pad_type=pad_type)
        root = traverse([None, torch.ones(1, 4, 4)], [None, heat], cfg)[0]
        assert root.child_scores == pytest.approx(halves)
        assert root.chosen_child == int(np.argmax(halves))


def reference_paths(model: Nest, x: torch.Tensor, classes: torch.Tensor) -> list[list[list]]:
    """GradCAT paths from one explicit backward per (class rank), through the full graph."""
    feats, acts = model.forward_intermediates(x)  # parameters require grad, so every level is in the graph
    logits = model.forward_head(feats)
    feats = feats.detach()
    hw = feats.shape[-2] * feats.shape[-1]
    paths = [[None] * classes.shape[1] for _ in range(len(x))]
    for j in range(classes.shape[1]):
        grads = torch.autograd.grad(logits.gather(1, classes[:, j:j + 1]).sum(), acts[1:-1], retain_graph=True)
        g_top = model.head.weight[classes[:, j]].detach()[:, :, None, None] / hw  # dY/df: the head is linear on mean(f)
        for i in range(len(x)):
            maps = [acts[0][i].detach(), *(a[i].detach() for a in acts[1:-1]), feats[i]]
            paths[i][j] = traverse(maps, [None, *(g[i] for g in grads), g_top[i].expand_as(feats[i])], model.cfg)
    return paths


def assert_same_paths(a: list, b: list) -> None:
    for pa, pb in zip(a, b, strict=True):
        assert [(n.level, n.node, n.chosen_child, n.box) for n in pa] == [(n.level, n.node, n.chosen_child, n.box)
                                                                         for n in pb]
        for na, nb in zip(pa, pb):
            assert na.score == pytest.approx(nb.score, rel=1e-4, abs=1e-7)
            if na.child_scores is not None:
                assert na.child_scores == pytest.approx(nb.child_scores, rel=1e-4, abs=1e-7)


def test_batched_gradients_equal_one_class_at_a_time() -> None:
    model = random_model(1)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = gradcat(model, x, top_k=3)
    ref = reference_paths(model, x, out.classes)
    for i in range(len(x)):
        assert_same_paths(out.paths[i], ref[i])


def test_loop_fallback_gives_the_batched_result(monkeypatch: pytest.MonkeyPatch) -> None:
    model = random_model(2)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    batched = gradcat(model, x, top_k=4)
    grad = torch.autograd.grad
    calls = []

    def no_batching(*args, **kwargs):
        calls.append(kwargs.get("is_grads_batched", False))
        if kwargs.get("is_grads_batched"):
            raise RuntimeError("no batching rule")
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_batching)
    looped = gradcat(model, x, top_k=4)
    assert calls == [True, False, False, False, False]
    assert torch.equal(looped.classes, batched.classes)
    for i in range(len(x)):
        assert_same_paths(looped.paths[i], batched.paths[i])


def test_batch_equals_single_images() -> None:
    model = random_model(3)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    out = gradcat(model, x, top_k=2)
    for i in range(len(x)):
        one = gradcat(model, x[i:i + 1], top_k=2)
        assert torch.equal(one.classes[0], out.classes[i])
        torch.testing.assert_close(one.logits[0], out.logits[i], rtol=1e-5, atol=1e-6)
        assert_same_paths(one.paths[0], out.paths[i])


def test_logits_top_and_root_score_match_the_model() -> None:
    model = random_model(4)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    out = gradcat(model, x, classes=[4, 0])
    with torch.no_grad():
        top = model.forward_intermediates(x, intermediates_only=True)[-1]
        torch.testing.assert_close(out.logits, model(x), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.top, top)
    assert out.classes.tolist() == [[4, 0], [4, 0]]
    hw = top.shape[-2] * top.shape[-1]
    for i in range(2):
        for j, c in enumerate((4, 0)):  # root: mean of w_c . f / HW over the top map = (logit - bias) / HW
            expected = (out.logits[i, c] - model.head.bias[c]).item() / hw
            assert out.paths[i][j][0].score == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_top_k_and_class_validation() -> None:
    model = random_model(5)
    x = torch.randn(2, 3, 32, 32)
    out = gradcat(model, x, top_k=9)
    assert out.classes.shape == (2, 5)
    assert torch.equal(out.classes, out.logits.topk(5, dim=1).indices)
    with pytest.raises(ValueError, match="^class index 7 is out of range for a model with 5 classes$"):
        gradcat(model, x, classes=[1, 7])
    with pytest.raises(ValueError, match="^top_k must be >= 1, got 0$"):
        gradcat(model, x, top_k=0)


def test_sign_flips_the_scores() -> None:
    model = random_model(6)
    x = torch.randn(1, 3, 32, 32)
    pos = gradcat(model, x, classes=[2]).paths[0][0][0]
    neg = gradcat(model, x, classes=[2], sign=-1.0).paths[0][0][0]
    assert neg.child_scores == pytest.approx([-s for s in pos.child_scores])
    assert neg.chosen_child == int(np.argmin(pos.child_scores))


@pytest.mark.parametrize("cfg", [
    dict(img_size=16, patch_size=2, num_levels=1, embed_dims=(8,), num_heads=(2,), depths=(1,)),
    dict(img_size=24, patch_size=2, num_levels=2, embed_dims=(8, 8), num_heads=(2, 2), depths=(1, 1)),
    dict(img_size=24, patch_size=2, num_levels=3, embed_dims=(8, 8, 8), num_heads=(2, 2, 2), depths=(1, 1, 1),
         pad_type="same"),
    dict(img_size=32, patch_size=1, num_levels=4, embed_dims=(4, 8, 8, 8), num_heads=(1, 2, 2, 2),
         depths=(1, 1, 1, 1)),
], ids=["L1", "L2", "L3-b3-same", "L4"])
def test_path_structure(cfg: dict) -> None:
    model = random_model(7, **cfg)
    c = model.cfg
    out = gradcat(model, torch.randn(2, 3, c.img_size, c.img_size), top_k=2)
    for path in (p for img in out.paths for p in img):
        assert [n.level for n in path] == list(range(c.num_levels, 0, -1))
        assert (path[0].node, path[0].box) == (0, (0.0, 0.0, float(c.img_size), float(c.img_size)))
        assert path[-1].child_scores is None and path[-1].chosen_child is None
        for parent, child in zip(path, path[1:]):
            assert parent.chosen_child == int(np.argmax(parent.child_scores))
            assert child.score == parent.child_scores[parent.chosen_child]
            x0, y0, x1, y1 = parent.box
            half = (x1 - x0) / 2
            dx, dy = parent.chosen_child % 2, parent.chosen_child // 2
            assert child.box == (x0 + dx * half, y0 + dy * half, x0 + (dx + 1) * half, y0 + (dy + 1) * half)
            level = child.level - 1
            row, col = int(child.box[1] // half), int(child.box[0] // half)
            assert child.node == row * c.grid(level) + col
            assert block_box(c, level, row, col) == child.box


def test_sanity_rerandomized_top_level_changes_the_explanation() -> None:
    # Adebayo et al.: an explanation must depend on the weights it claims to explain.
    model = random_model(8)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    before = gradcat(model, x, classes=[1]).paths
    torch.manual_seed(123)
    with torch.no_grad():
        for p in [*model.levels[-1].parameters(), *model.norm.parameters()]:
            p.copy_(torch.randn_like(p) * 0.3)
    after = gradcat(model, x, classes=[1]).paths
    for b, a in zip(before, after):
        for level in (0, 1):  # the root's and level 2's child scores both move
            assert not np.allclose(b[0][level].child_scores, a[0][level].child_scores, rtol=1e-2, atol=1e-6)


def model_state(model: Nest) -> tuple:
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [p.detach().clone() for p in model.parameters()], [id(p) for p in model.parameters()])


def assert_state(model: Nest, state: tuple) -> None:
    modes, flags, values, ids = state
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert [id(p) for p in model.parameters()] == ids
    assert all(torch.equal(p, v) for p, v in zip(model.parameters(), values))
    assert all(p.grad is None for p in model.parameters())
    for m in model.modules():
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)


def test_model_state_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    model = random_model(9).train()
    model.levels[0].eval()  # a mixed state must come back as it was, not as model.train()
    model.head.bias.requires_grad_(False)
    state = model_state(model)
    seen = []
    forward_head = model.forward_head

    def spy(features):
        seen.append(model.training or any(m.training for m in model.modules()))
        return forward_head(features)

    monkeypatch.setattr(model, "forward_head", spy)
    gradcat(model, torch.randn(2, 3, 32, 32), top_k=2)
    assert seen == [False]  # explained in eval mode
    monkeypatch.undo()
    assert_state(model, state)


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_model_state_is_restored_after_an_error(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = random_model(10).train()
    model.levels[1].requires_grad_(False)
    state = model_state(model)

    def boom(*args, **kwargs):
        raise KeyError("boom")

    if where == "forward":  # after the levels ran, before the logits
        monkeypatch.setattr(model, "forward_head", boom)
    else:
        monkeypatch.setattr(torch.autograd, "grad", boom)
    with pytest.raises(KeyError, match="boom"):
        gradcat(model, torch.randn(1, 3, 32, 32))
    monkeypatch.undo()
    assert_state(model, state)


def test_works_inside_inference_mode() -> None:
    model = random_model(11)
    x = torch.randn(1, 3, 32, 32)
    expected = gradcat(model, x, top_k=2).paths
    with torch.inference_mode():
        got = gradcat(model, x, top_k=2).paths
    assert_same_paths(got[0], expected[0])
