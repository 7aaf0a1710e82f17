"""The top level's attention flow: a hand-worked layer, parity with the model, kept sums, the flow CAM and path."""

from __future__ import annotations

import pytest
import torch

from nestviz.methods.cam import cam, cam_cells, cam_maps
from nestviz.methods.camtree import cam_gradcat
from nestviz.methods.flow import Flow, class_shares, forward_flow, layer_flow, redistribute
from nestviz.model.layers import TransformerLayer
from .model_helpers import hand_built, random_model


torch.set_num_threads(1)


def test_one_layer_mixes_as_worked_out_by_hand() -> None:
    # q = k = 0: each cell attends to both equally; v = (0, 5) everywhere, projected as is; no MLP.
    layer = TransformerLayer(dim=2, num_heads=1, mlp_ratio=1.0, qkv_bias=True).eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
        layer.attn.qkv.bias[4:] = torch.tensor([0.0, 5.0])
        layer.attn.proj.weight.copy_(torch.eye(2))
    x = torch.tensor([[3.0, 4.0], [0.0, 1.0]]).view(1, 1, 2, 2)
    out, mixing = layer_flow(layer, x)
    # residual shares |x| / (|x| + |update|): 5 / (5 + 5) = 1/2 and 1 / (1 + 5) = 1/6
    want = torch.tensor([[0.5 + 0.5 * 0.5, 0.5 * 0.5], [5 / 6 * 0.5, 1 / 6 + 5 / 6 * 0.5]])
    torch.testing.assert_close(mixing[0, 0], want)
    torch.testing.assert_close(out, x + torch.tensor([0.0, 5.0]))
    torch.testing.assert_close(out, layer(x))
    _, rollout = layer_flow(layer, x, residual=0.5)  # attention rollout's fixed half
    torch.testing.assert_close(rollout[0, 0], torch.tensor([[0.75, 0.25], [0.25, 0.75]]))


def test_the_forward_is_the_models_and_every_flow_row_is_a_distribution() -> None:
    model = random_model(3, depths=(1, 1, 3))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features, acts, flow = forward_flow(model, x)
        want, want_acts = model.forward_intermediates(x)
    torch.testing.assert_close(features, want, atol=1e-5, rtol=0)
    for a, b in zip(acts, want_acts):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    n = features.shape[-1] * features.shape[-2]
    f = flow.matrix(torch.randn(2, 3, features.shape[1]))  # three class directions per image
    assert len(flow.steps) == 3 and f.shape == (2, 3, n, n) and bool((f >= 0).all())
    torch.testing.assert_close(f.sum(-1), torch.ones(2, 3, n))


def _one_layer(x: torch.Tensor) -> TransformerLayer:
    """q = k = 0 (every cell attends to every cell equally), values and projection the identity, no norm before."""
    layer = TransformerLayer(dim=x.shape[-1], num_heads=1, mlp_ratio=1.0, qkv_bias=False).eval()
    layer.norm1 = torch.nn.Identity()
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
        c = x.shape[-1]
        layer.attn.qkv.weight[2 * c:].copy_(torch.eye(c))
        layer.attn.proj.weight.copy_(torch.eye(c))
    return layer


def test_a_sink_that_carries_nothing_of_the_class_gets_no_share() -> None:
    """Worked by hand: three cells attend equally to all three; cells 0 and 2 carry the class's direction (1, 0),
    cell 1 a large value across it (0, 10), an attention sink. Weighed by the class, each cell's attention share
    is (1/2, 0, 1/2); weighed by the norm of what is carried (Kobayashi, the release before) the sink took 10/12."""
    x = torch.tensor([[1.0, 0.0], [0.0, 10.0], [1.0, 0.0]]).view(1, 1, 3, 2)
    layer = _one_layer(x)
    with torch.no_grad():
        _, weights, values = layer.attn.forward_with_weights(x)
        shares = class_shares(weights[:, :, 0], values[:, :, 0], layer.attn, torch.tensor([[[1.0, 0.0]]]))
        _, blind = layer_flow(layer, x, residual=0.0)
    torch.testing.assert_close(shares[0, 0], torch.tensor([[0.5, 0.0, 0.5]] * 3))
    torch.testing.assert_close(blind[0, 0], torch.tensor([[1 / 12, 10 / 12, 1 / 12]] * 3))
    against = torch.tensor([[1.0, 0.0], [-5.0, 0.0], [3.0, 0.0]]).view(1, 1, 3, 2)  # cell 1 argues against
    with torch.no_grad():
        _, weights, values = layer.attn.forward_with_weights(against)
        shares = class_shares(weights[:, :, 0], values[:, :, 0], layer.attn, torch.tensor([[[1.0, 0.0]]]))
    torch.testing.assert_close(shares[0, 0], torch.tensor([[0.25, 0.0, 0.75]] * 3))


def test_redistribution_moves_values_to_their_sources_and_keeps_sums() -> None:
    """The same layer as a Flow, residual shares (1/2, 0, 1/2) given: cell 1 keeps nothing of its own, and the
    class evidence that reached it goes back half to cell 0 and half to cell 2."""
    x = torch.tensor([[1.0, 0.0], [0.0, 10.0], [1.0, 0.0]]).view(1, 1, 3, 2)
    layer = _one_layer(x)
    with torch.no_grad():
        _, weights, values = layer.attn.forward_with_weights(x)
    flow = Flow([(torch.tensor([[0.5, 0.0, 0.5]]), weights[:, :, 0], values[:, :, 0], layer.attn)])
    u = torch.tensor([[[1.0, 0.0]]])
    # M = [[3/4, 0, 1/4], [1/2, 0, 1/2], [1/4, 0, 3/4]]; m' = M' m for m = (1, 2, 3)
    out = redistribute(torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 1, 3), flow, u)
    torch.testing.assert_close(out.view(3), torch.tensor([0.75 + 1.0 + 0.75, 0.0, 0.25 + 1.0 + 2.25]))
    torch.testing.assert_close(flow.matrix(u)[0, 0], torch.tensor([[0.75, 0.0, 0.25], [0.5, 0.0, 0.5],
                                                                   [0.25, 0.0, 0.75]]))
    model = random_model(7)
    with torch.no_grad():
        features, _, f = forward_flow(model, torch.randn(3, 3, 32, 32))
        m, d = torch.randn(3, 2, 4, 4), torch.randn(3, 2, features.shape[1])
        moved = redistribute(m, f, d)
    torch.testing.assert_close(moved.sum((2, 3)), m.sum((2, 3)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(moved.flatten(2), torch.einsum("bkij,bki->bkj", f.matrix(d), m.flatten(2)), rtol=1e-5,
                               atol=1e-5)


def test_without_attention_the_flow_cam_is_the_contrast_cam() -> None:
    model = random_model(4)
    with torch.no_grad():
        for layer in model.levels[-1].transformer_encoder:
            layer.attn.proj.weight.zero_()
            layer.attn.proj.bias.zero_()
    x = torch.randn(2, 3, 32, 32)
    flow = cam(model, x, top_k=2, kind="flow")
    contrast = cam(model, x, top_k=2, kind="contrast")
    torch.testing.assert_close(flow.maps, contrast.maps)


def test_the_flow_cam_keeps_the_contrast_mean_and_moves_the_evidence() -> None:
    model = random_model(5)
    x = torch.randn(3, 3, 32, 32)
    flow, contrast = cam(model, x, top_k=2, kind="flow"), cam(model, x, top_k=2, kind="contrast")
    assert torch.equal(flow.classes, contrast.classes)
    with torch.no_grad():
        features, _, f = forward_flow(model, x)
        cells = {k: cam_cells(model, features, flow.classes, k, f) for k in ("flow", "contrast")}
    torch.testing.assert_close(cells["flow"].mean((2, 3)), cells["contrast"].mean((2, 3)), atol=1e-5, rtol=0)
    assert (flow.maps - contrast.maps).abs().max() > 1e-3
    with pytest.raises(ValueError, match="^the flow CAM needs the top level's attention flow"), torch.no_grad():
        cam_maps(model, model.forward_features(x), flow.classes, "flow")


def test_the_flow_path_batches_and_keeps_its_flow() -> None:
    # That its shares add up to the contrast score is tested with the contrast kind's (test_camtree).
    model = random_model(6)
    x = torch.randn(3, 3, 32, 32)
    out = cam_gradcat(model, x, top_k=2, kind="flow")
    single = cam_gradcat(model, x[1:2], top_k=2, kind="flow")
    for j in range(2):
        assert [n.node for n in single.paths[0][j]] == [n.node for n in out.paths[1][j]]
        assert single.paths[0][j][0].score == pytest.approx(out.paths[1][j][0].score, abs=1e-5)
    assert isinstance(out.flow, Flow) and out.flow.steps[0][1].shape == (3, model.cfg.num_heads[-1], 16, 16)
    assert cam_gradcat(model, x, top_k=2, kind="contrast").flow is None


def test_the_hand_built_model_still_points_at_the_bright_block() -> None:
    # Its transformer layers are identities, so the flow is the identity and the path the contrast one.
    model = hand_built(8)
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 16:24, 8:16] = 1.0
    flow = cam_gradcat(model, x, classes=[0], kind="flow").paths[0][0]
    contrast = cam_gradcat(model, x, classes=[0], kind="contrast").paths[0][0]
    assert [n.node for n in flow] == [n.node for n in contrast]


def _layer_flow_by_hand(layer: TransformerLayer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """flow.layer_flow's maths re-derived here, head by head: what head h carries from token j is the output
    projection (without its bias) of head h's value alone, merged as the layer merges heads."""
    attn = layer.attn
    B, T, N, C = x.shape
    H = attn.num_heads
    q, k, v = attn.qkv(layer.norm1(x)).reshape(B, T, N, 3, H, C // H).permute(3, 0, 4, 1, 2, 5).unbind(0)
    weights = ((q @ k.transpose(-1, -2)) * (C // H) ** -0.5).softmax(dim=-1)
    update = attn.proj((weights @ v).permute(0, 2, 3, 4, 1).reshape(B, T, N, C))
    carried = torch.zeros(B, H, T, N)
    for h in range(H):
        alone = torch.zeros_like(v)
        alone[:, h] = v[:, h]
        merged = alone.permute(0, 2, 3, 4, 1).reshape(B, T, N, C)  # interleaved: channel c*H + h
        carried[:, h] = (merged @ attn.proj.weight.T).norm(dim=-1)
    share = (weights * carried[:, :, :, None, :]).sum(dim=1)
    share = share / share.sum(dim=-1, keepdim=True)
    keep = x.norm(dim=-1) / (x.norm(dim=-1) + update.norm(dim=-1)).clamp(min=1e-12)
    mixing = (1 - keep)[..., None] * share + torch.diag_embed(keep)
    x = x + update
    return x + layer.mlp(layer.norm2(x)), mixing


def test_the_flow_reads_the_layers_attention_as_the_explicit_maths_does() -> None:
    torch.manual_seed(3)
    layer = TransformerLayer(dim=12, num_heads=3, mlp_ratio=2.0, qkv_bias=True).eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x = torch.randn(2, 4, 9, 12)
    with torch.no_grad():
        out, mixing = layer_flow(layer, x)
        old_out, old_mixing = _layer_flow_by_hand(layer, x)
        fused, (explicit, weights, values) = layer.attn(x), layer.attn.forward_with_weights(x)
    torch.testing.assert_close(out, old_out, rtol=0, atol=1e-6)
    torch.testing.assert_close(mixing, old_mixing, rtol=0, atol=1e-6)
    torch.testing.assert_close(out, layer(x), rtol=1e-5, atol=1e-5)  # the fused path, same layer
    torch.testing.assert_close(explicit, fused, rtol=1e-5, atol=1e-5)
    assert weights.shape == (2, 3, 4, 9, 9) and values.shape == (2, 3, 4, 9, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 4, 9))


def test_a_token_whose_value_carries_nothing_gets_no_share() -> None:
    """Kobayashi et al.'s point, worked by hand: a token attended to but with a zero value vector (here: its
    input is zero and the value projection has no bias) contributes nothing to the attention output, so it
    gets no share of the mixing, whatever its attention weight."""
    torch.manual_seed(0)
    layer = TransformerLayer(dim=8, num_heads=2, mlp_ratio=2.0, qkv_bias=False).eval()
    layer.norm1 = torch.nn.Identity()  # so that a zero input token stays a zero value vector
    x = torch.randn(1, 1, 5, 8)
    x[0, 0, 3] = 0.0
    with torch.no_grad():
        _, mixing = layer_flow(layer, x)
        weights = layer.attn.forward_with_weights(x)[1]
    assert float(weights[0, :, 0, :, 3].min()) > 0  # it is attended to ...
    off_diagonal = mixing[0, 0, [0, 1, 2, 4], 3]
    torch.testing.assert_close(off_diagonal, torch.zeros(4))  # ... yet no other cell's content came from it
    torch.testing.assert_close(mixing.sum(-1), torch.ones(1, 1, 5))
