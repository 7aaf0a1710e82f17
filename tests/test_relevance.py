"""GradCAT scored by conservative relevance: known answers on a hand-built model, shares that add up to the class
score where the plain gradient's add up to nothing, the held factors by hand, and the pass's by-products."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nestviz.methods.flow import forward_flow
from nestviz.methods.gradcat import child_of, gradcat
from nestviz.methods.common import explaining
from nestviz.methods.relevance import held_gelu, held_layer, held_norm, held_pass, held_top, relevance_gradcat
from .model_helpers import expected_nodes, hand_built, random_model

torch.set_num_threads(1)


def test_each_path_ends_at_its_images_bright_leaf_block_in_one_batch() -> None:
    b = 8
    x = torch.zeros(16, 1, 4 * b, 4 * b)
    for leaf in range(16):  # image i has leaf block i bright
        r, c = divmod(leaf, 4)
        x[leaf, 0, r * b:(r + 1) * b, c * b:(c + 1) * b] = 1.0
    out = relevance_gradcat(hand_built(b), x, classes=[0])
    for leaf in range(16):
        path = out.paths[leaf][0]
        r, c = divmod(leaf, 4)
        assert [n.node for n in path] == expected_nodes(leaf)
        assert path[-1].box == (c * b, r * b, (c + 1) * b, (r + 1) * b)
        assert path[-1].score > 0 and path[-2].child_scores is not None
        assert sorted(path[-2].child_scores)[-2] == pytest.approx(0.0, abs=1e-6)  # the dark leaves hold nothing


def _without_offsets(model: nn.Module) -> nn.Module:
    """Every bias, LayerNorm shift and position embedding zeroed: the levels above a map are then linear in it
    once the held factors are held, so its shares must add up to the class score exactly."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("bias", "pos_embed")):
                p.zero_()
    return model


@pytest.mark.parametrize("pad_type", ["", "same"])  # the plain variants and the _jx checkpoints' padding
def test_the_shares_add_up_to_the_class_score_where_the_papers_gradient_shares_add_up_to_nothing(pad_type: str) -> None:
    model = _without_offsets(random_model(3, pad_type=pad_type))
    x = torch.randn(4, 3, 32, 32)
    held = held_pass(model, x, top_k=3, kind="contrast")
    out = relevance_gradcat(model, x, top_k=3, kind="contrast")
    with torch.no_grad():
        logits = model(x)
    plain = gradcat(model, x, top_k=3)
    assert plain.heat is not None and torch.equal(held.classes, plain.classes) and torch.equal(out.classes, plain.classes)
    for i in range(4):
        for j in range(3):
            c = int(held.classes[i, j])
            contrast = float(logits[i, c] - logits[i].mean())
            assert float(held.share[j, i].sum()) == pytest.approx(contrast, abs=1e-4)
            path = out.paths[i][j]
            assert path[0].score == pytest.approx(contrast, abs=1e-4)
            for parent, child in zip(path, path[1:]):
                assert sum(parent.child_scores) == pytest.approx(parent.score, abs=1e-4)
                assert child.score == pytest.approx(parent.child_scores[parent.chosen_child], abs=1e-6)
            # The plain gradient through the top level's pooling LayerNorm, which is scale-invariant: the map's
            # A * dY/dA sums to zero, the break Ali et al. point at (here for the logit, as the paper's score reads).
            assert abs(float(plain.heat[1][j, i].sum())) < 1e-4 * max(1.0, abs(float(logits[i, c])))


@pytest.mark.parametrize("size", [32, 24])  # blocks of 4 positions, and of 3: a pooled position then straddles two
def test_the_roots_children_are_the_blocks_below_it_and_the_leaves_their_quarters(size: int) -> None:
    model = random_model(4, img_size=size)
    b = model.cfg.block_size
    assert b == size // 8
    x = torch.randn(2, 3, size, size)
    held = held_pass(model, x, top_k=2)
    out = relevance_gradcat(model, x, top_k=2)
    for i in range(2):
        for j in range(2):
            root, middle, leaf = out.paths[i][j]
            share = held.share[j, i]
            blocks = share.reshape(2, b, 2, b).sum(dim=(1, 3)).flatten()  # each middle block's output's total
            assert root.child_scores == pytest.approx(blocks.tolist(), rel=1e-5, abs=1e-6)
            r, c = divmod(root.chosen_child, 2)
            mine = share[r * b:(r + 1) * b, c * b:(c + 1) * b].numpy()  # where its four leaves' pools centre
            rows, cols = child_of(r, b, 0), child_of(c, b, 0)
            quarters = [float(mine[np.ix_(rows == qr, cols == qc)].sum()) for qr in (0, 1) for qc in (0, 1)]
            assert middle.child_scores == pytest.approx(quarters, rel=1e-5, abs=1e-6)
            assert leaf.node == (2 * r + middle.chosen_child // 2) * 4 + 2 * c + middle.chosen_child % 2


def test_the_pass_gives_the_models_logits_and_the_cams_flow() -> None:
    model = random_model(5)
    x = torch.randn(3, 3, 32, 32)
    out = relevance_gradcat(model, x, top_k=2)
    with torch.no_grad():
        logits = model(x)
        features, _, flow = forward_flow(model, x)
    torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.features, features, rtol=1e-5, atol=1e-5)
    assert out.flow is not None and out.heat is not None
    directions = torch.randn(3, 2, features.shape[1])
    torch.testing.assert_close(out.flow.matrix(directions), flow.matrix(directions), rtol=1e-5, atol=1e-6)
    assert [len(p) for row in out.paths for p in row] == [3] * 6


def test_a_layer_rule_changes_the_backward_and_never_the_top_levels_output() -> None:
    model = random_model(7)
    with explaining(model), torch.no_grad():
        below = model.levels[:-1](model.patch_embed(torch.randn(2, 3, 32, 32)))
    outputs, grads = [], []
    for rule in (None, held_layer, lambda layer, t: layer.forward_with_attention(t)):  # the default, it, no factor held
        b = below.clone().requires_grad_(True)
        with explaining(model), torch.enable_grad():
            top, _ = held_top(model, b, rule)
            outputs.append(top.detach())
            grads.append(torch.autograd.grad(top.square().sum(), b)[0])
    torch.testing.assert_close(outputs[1], outputs[0])
    torch.testing.assert_close(outputs[2], outputs[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0])
    assert not torch.allclose(grads[2], grads[0], rtol=1e-3, atol=1e-4)  # the held factors are what differs


def test_it_runs_inside_inference_mode_on_inference_tensors() -> None:
    model = random_model(6)
    x = torch.randn(2, 3, 32, 32)
    want = relevance_gradcat(model, x, top_k=2)
    with torch.inference_mode():
        got = relevance_gradcat(model, x.clone(), top_k=2)
    assert [[n.node for n in p] for p in got.paths[0]] == [[n.node for n in p] for p in want.paths[0]]
    assert got.paths[1][1][0].score == pytest.approx(want.paths[1][1][0].score, rel=1e-5)


def test_the_sign_flips_every_score_and_the_model_comes_back_as_it_was() -> None:
    model = random_model(8).train()
    x = torch.randn(2, 3, 32, 32)
    up, down = relevance_gradcat(model, x, top_k=2), relevance_gradcat(model, x, top_k=2, sign=-1.0)
    assert model.training and all(p.requires_grad for p in model.parameters())
    for i in range(2):
        for j in range(2):
            root_up, root_down = up.paths[i][j][0], down.paths[i][j][0]
            assert root_down.score == pytest.approx(-root_up.score, abs=1e-5)
            assert root_down.child_scores == pytest.approx([-s for s in root_up.child_scores], abs=1e-5)
            assert root_down.chosen_child == min(range(4), key=root_up.child_scores.__getitem__)


def test_held_layernorm_keeps_the_value_and_holds_the_scale_for_the_backward() -> None:
    torch.manual_seed(0)
    norm = nn.LayerNorm(6, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(6))
        norm.bias.copy_(torch.randn(6))
    x = torch.randn(3, 6, requires_grad=True)
    v = torch.randn(3, 6)
    out = held_norm(norm, x)
    torch.testing.assert_close(out, norm(x), rtol=0, atol=0)
    (grad,) = torch.autograd.grad((out * v).sum(), x)
    sd = (x.detach().var(dim=-1, unbiased=False, keepdim=True) + 1e-6).sqrt()
    gv = norm.weight.detach() * v  # the centring's transpose is the centring: (gv - mean(gv)) / sd
    torch.testing.assert_close(grad, (gv - gv.mean(dim=-1, keepdim=True)) / sd)
    # So x . grad is the output's shift-free part (out - bias) . v: the share the norm passes on, all of it.
    torch.testing.assert_close((x.detach() * grad).sum(-1), ((out - norm.bias).detach() * v).sum(-1))


def test_held_gelu_keeps_the_value_and_its_gradient_is_the_gate() -> None:
    z = torch.tensor([-2.0, -0.5, 0.0, 1e-8, 0.5, 3.0], requires_grad=True)
    out = held_gelu(z)
    torch.testing.assert_close(out, F.gelu(z), rtol=0, atol=0)
    (grad,) = torch.autograd.grad(out.sum(), z)
    zd = z.detach()
    want = torch.tensor([float(F.gelu(t)) / float(t) if abs(float(t)) > 1e-6 else 0.5 for t in zd])
    torch.testing.assert_close(grad, want)
    torch.testing.assert_close(zd * grad, F.gelu(zd))  # z times its gate is the value: nothing is lost


def test_held_attention_keeps_the_value_and_its_gradient_only_flows_through_the_values() -> None:
    attn = random_model(4).levels[-1].transformer_encoder[0].attn
    x = torch.randn(2, 1, 5, attn.qkv.in_features, requires_grad=True)
    v = torch.randn(2, 1, 5, attn.proj.out_features)
    out, weights, values = attn.forward_with_weights(x, hold=True)
    plain, plain_weights, plain_values = attn.forward_with_weights(x)
    torch.testing.assert_close(out, plain)
    torch.testing.assert_close(weights, plain_weights)
    torch.testing.assert_close(values, plain_values)
    (grad,) = torch.autograd.grad((out * v).sum(), x)
    # by hand: the weights constant, the output is linear in x through the values' rows of qkv
    C = x.shape[-1]
    w_v = attn.qkv.weight[2 * C:].detach()
    heads = lambda t: t.reshape(2, 1, 5, attn.num_heads, -1).permute(0, 3, 1, 2, 4)  # noqa: E731
    xd = x.detach().requires_grad_(True)
    by_hand = attn._merge(weights.detach() @ heads(xd @ w_v.T + attn.qkv.bias[2 * C:].detach()))
    (want,) = torch.autograd.grad((by_hand * v).sum(), xd)
    torch.testing.assert_close(grad, want)
    assert not torch.allclose(grad, torch.autograd.grad((plain * v).sum(), x)[0])  # the softmax's gradient is held
