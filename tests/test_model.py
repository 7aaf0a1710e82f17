"""The NesT model: numerical parity with timm, state-dict layout, config checks, sizes, blocks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nestviz.model.layers import blockify, deblockify
from nestviz.model.nest import NAMED_CONFIGS, Nest, NestConfig, count_params, named_config, resize_state_dict
from .model_helpers import TINY, tiny_model


FIXTURE = Path(__file__).parent / "fixtures" / "timm_parity.pt"


@pytest.fixture(scope="module")
def timm_cases() -> dict:
    """timm's outputs for tiny random NesTs (scripts/make_timm_fixture.py); tensors only, loaded weights-only."""
    return torch.load(FIXTURE, map_location="cpu", weights_only=True)


def test_fixture_covers_both_poolings_and_odd_blocks(timm_cases: dict) -> None:
    configs = [NestConfig(**case["config"]) for case in timm_cases.values()]
    assert {c.pad_type for c in configs} == {"", "same"}
    assert {c.block_size % 2 for c in configs} == {0, 1}


@pytest.mark.parametrize("name", ["tiny3_plain", "tiny3_jx", "odd2_jx", "odd3_plain"])
def test_state_dict_layout_is_timms(timm_cases: dict, name: str) -> None:
    case = timm_cases[name]
    ours = Nest(NestConfig(**case["config"])).state_dict()
    assert list(ours) == list(case["state_dict"])
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in case["state_dict"].items()}


@pytest.mark.parametrize("name", ["tiny3_plain", "tiny3_jx", "odd2_jx", "odd3_plain"])
def test_every_level_and_logits_match_timm(timm_cases: dict, name: str) -> None:
    case = timm_cases[name]
    model = Nest(NestConfig(**case["config"])).eval()
    model.load_state_dict(case["state_dict"], strict=True)
    with torch.no_grad():
        levels = model.forward_intermediates(case["input"], intermediates_only=True)
        logits = model(case["input"])
    assert len(levels) == len(case["levels"])
    for ours, theirs in zip(levels, case["levels"]):
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, case["logits"], atol=1e-5, rtol=0)


def test_padding_mode_changes_the_output(timm_cases: dict) -> None:
    """The _jx pooling is not the plain one: loading a 'same' checkpoint as plain gives other logits."""
    case = timm_cases["tiny3_jx"]
    plain = Nest(NestConfig(**{**case["config"], "pad_type": ""})).eval()
    plain.load_state_dict(case["state_dict"])
    with torch.no_grad():
        assert (plain(case["input"]) - case["logits"]).abs().max() > 1e-3


@pytest.mark.parametrize(("changes", "message"), [
    (dict(num_heads=(2, 3, 4)), "embed dim 16 is not divisible by 3 heads"),
    (dict(num_heads=(2, 0, 4)), "embed dim 16 is not divisible by 0 heads"),
    (dict(num_heads=(2, 2)), "num_heads needs 3 entries (one per level), got (2, 2)"),
    (dict(depths=(1, 1, 1, 1)), "depths needs 3 entries (one per level), got (1, 1, 1, 1)"),
    (dict(img_size=30), "img_size 30 is not a multiple of patch_size 4"),
    (dict(img_size=24), "6x6 patches do not split into 4x4 leaf blocks; check img_size, patch_size and num_levels"),
    (dict(num_levels=0, embed_dims=(), num_heads=(), depths=()), "num_levels must be >= 1, got 0"),
    (dict(pad_type="valid"), "pad_type must be '' or 'same', got 'valid'"),
])
def test_config_validation_messages(changes: dict, message: str) -> None:
    with pytest.raises(ValueError) as e:
        TINY.with_(**changes)
    assert str(e.value) == message


def test_unknown_config_key_and_name() -> None:
    with pytest.raises(ValueError) as e:
        NestConfig.from_dict({**TINY.to_dict(), "drop_rate": 0.1})
    assert str(e.value) == "unknown config keys: ['drop_rate']"
    with pytest.raises(ValueError) as e:
        named_config("nest_huge")
    assert str(e.value) == f"unknown architecture 'nest_huge'; known: {', '.join(NAMED_CONFIGS)}"


def test_named_config_accepts_hub_names() -> None:
    assert named_config("timm/nest_tiny_jx.goog_in1k") == NAMED_CONFIGS["nest_tiny_jx"]
    assert named_config("NEST_BASE").pad_type == ""
    assert named_config("nest_small_jx", num_classes=10).num_classes == 10


def test_config_dict_round_trip() -> None:
    assert NestConfig.from_dict(TINY.to_dict()) == TINY


def expected_params(cfg: NestConfig) -> int:
    """Parameter count of a NesT, written out layer by layer from the architecture (not from the code)."""
    dims, tokens = cfg.embed_dims, cfg.img_size // cfg.patch_size
    hidden = [int(d * cfg.mlp_ratio) for d in dims]
    total = cfg.in_chans * cfg.patch_size ** 2 * dims[0] + dims[0]  # patch embedding conv
    for i, d in enumerate(dims):
        total += (tokens >> i) ** 2 * d  # one position embedding per token of the level
        if i > 0:
            total += 9 * dims[i - 1] * d + d + 2 * d  # conv 3x3 + LayerNorm of the block aggregation
        layer = 2 * d + (d * 3 * d + (3 * d if cfg.qkv_bias else 0)) + (d * d + d) + 2 * d
        layer += d * hidden[i] + hidden[i] + hidden[i] * d + d
        total += cfg.depths[i] * layer
    return total + 2 * dims[-1] + dims[-1] * cfg.num_classes + cfg.num_classes  # final norm + head


@pytest.mark.parametrize("name", ["nest_tiny", "nest_tiny_jx", "nestviz_imagenette"])
def test_named_configs_build_with_the_expected_size(name: str) -> None:
    assert count_params(Nest(named_config(name))) == expected_params(named_config(name))


def test_nest_tiny_has_the_published_size() -> None:
    assert round(expected_params(named_config("nest_tiny")) / 1e6, 2) == 17.06  # the NesT paper / timm: 17M
    assert round(expected_params(named_config("nest_base")) / 1e6, 1) == 67.7


def test_formula_matches_on_a_tiny_model_without_qkv_bias() -> None:
    cfg = TINY.with_(qkv_bias=False, mlp_ratio=3.0, num_levels=2, embed_dims=(8, 12), num_heads=(2, 3),
                     depths=(2, 1), img_size=16)
    assert count_params(Nest(cfg)) == expected_params(cfg)


def test_level_shapes() -> None:
    model = tiny_model()
    with torch.no_grad():
        levels = model.forward_intermediates(torch.zeros(2, 3, 32, 32), intermediates_only=True)
    assert [tuple(x.shape) for x in levels] == [(2, 8, 8, 8), (2, 16, 4, 4), (2, 16, 2, 2)]


def test_batch_and_single_logits_agree() -> None:
    model = tiny_model()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        batch = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=0)
    assert (batch[0] - batch[1]).abs().max() > 1e-3  # the inputs are told apart


def test_wrong_input_size_is_refused() -> None:
    with pytest.raises(ValueError) as e:
        tiny_model()(torch.zeros(1, 3, 16, 16))
    assert str(e.value) == "input is (16, 16), the model expects 32x32"


def test_blockify_layout_and_round_trip() -> None:
    x = torch.arange(4 * 4, dtype=torch.float32).reshape(1, 4, 4, 1)  # pixel value = row * 4 + col
    blocks = blockify(x, 2)
    assert blocks.shape == (1, 4, 4, 1)
    assert blocks[0, :, :, 0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    y = torch.randn(2, 6, 6, 5)
    assert torch.equal(deblockify(blockify(y, 3), 3), y)
    assert torch.equal(deblockify(blockify(y, 2), 2), y)


@pytest.mark.parametrize("name", ["tiny3_plain", "tiny3_jx"])
def test_timms_feature_interface(timm_cases: dict, name: str) -> None:
    """forward_features (with the final norm), forward_head and forward_intermediates, as timm's Nest has them."""
    case = timm_cases[name]
    model = Nest(NestConfig(**case["config"])).eval()
    model.load_state_dict(case["state_dict"], strict=True)
    x = case["input"]
    with torch.no_grad():
        feats = model.forward_features(x)
        final, inter = model.forward_intermediates(x)
        normed = model.forward_intermediates(x, indices=[-1], norm=True, intermediates_only=True)
        early = model.forward_intermediates(x, indices=[0], stop_early=True)
        pooled = model.forward_head(feats, pre_logits=True)
        logits = model.forward_head(feats)
    top = case["levels"][-1]
    expected = model.norm(top.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(feats, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(final, feats)
    assert len(inter) == len(case["levels"])
    for ours, theirs in zip(inter, case["levels"]):  # intermediates come before the final norm
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(normed[0], feats)
    torch.testing.assert_close(early[0], case["levels"][0], atol=1e-5, rtol=0)  # stopped: not the features
    assert len(early[1]) == 1
    assert pooled.shape == (x.shape[0], model.cfg.embed_dims[-1])
    torch.testing.assert_close(logits, case["logits"], atol=1e-5, rtol=0)
    assert model.get_classifier() is model.head
    assert [t.shape for t in model.forward_intermediates(x, indices=2, intermediates_only=True)] == \
        [t.shape for t in case["levels"][-2:]]


def test_resized_position_embeddings_keep_constant_grids_and_the_rest() -> None:
    model = tiny_model(2)
    per_block = torch.arange(4 * 16.0).view(1, 4, 1, 16) / 10  # level 2: 4 blocks of 2x2 tokens, 16 channels
    with torch.no_grad():
        model.levels[1].pos_embed.copy_(per_block.expand(1, 4, 4, 16))
    big = TINY.with_(img_size=48)  # 2x2 -> 3x3 tokens per block
    state = resize_state_dict(model.state_dict(), big)
    assert state["levels.0.pos_embed"].shape == (1, 16, 9, 8)
    # a grid that is constant within each block stays so, block by block and channel by channel
    torch.testing.assert_close(state["levels.1.pos_embed"], per_block.expand(1, 4, 9, 16))
    assert torch.equal(state["head.weight"], model.state_dict()["head.weight"])
    same = resize_state_dict(model.state_dict(), TINY)
    assert all(torch.equal(same[k], v) for k, v in model.state_dict().items())
    resized = Nest(big)
    resized.load_state_dict(state)
    assert resized(torch.randn(1, 3, 48, 48)).shape == (1, 3)
