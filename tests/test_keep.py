"""GradCAT's keep score: every block as a set of top cells, the top level run on each set alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nestviz
from nestviz.explain.camtree import cam_gradcat
from nestviz.explain.keep import block_cells, cell_blocks, keep_block_scores, keep_gradcat, keep_scores, kept_logits, \
    resolvable, top_tokens, walk_tree
from nestviz.model.nest import Nest, NestConfig

from .conftest import TINY, TINY_CLASSES, tiny_model, write_image

# blocks of 4 x 4 tokens: the top map is 4 x 4 cells, a leaf holds one, a level-2 block four
KEEPABLE = NestConfig(img_size=32, patch_size=2, num_levels=3, embed_dims=(8, 16, 16), num_heads=(2, 2, 4),
                      depths=(1, 1, 2), num_classes=3, mlp_ratio=2.0)


def test_cell_membership_worked_by_hand() -> None:
    plain = cell_blocks(NestConfig(img_size=224, patch_size=4, num_levels=3, embed_dims=(8, 8, 8),
                                   num_heads=(1, 1, 1), depths=(1, 1, 1)))  # timm's 224 px: 14 x 14 top cells
    # cell p sits at 2p a level down (block 2p // 14) and 4p two levels down (block 4p // 14)
    assert plain[1].tolist() == [0] * 7 + [1] * 7
    assert plain[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3]
    same = cell_blocks(NestConfig(img_size=224, patch_size=4, num_levels=3, embed_dims=(8, 8, 8),
                                  num_heads=(1, 1, 1), depths=(1, 1, 1), pad_type="same"))
    # "same" pooling is centred one position later: 2p + 1, then 2(2p + 1) + 1 = 4p + 3
    assert same[1].tolist() == [0] * 7 + [1] * 7
    assert same[0].tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3]
    cells = block_cells(KEEPABLE)
    assert [c.tolist() for c in cells[1]] == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    assert [c.tolist() for c in cells[0]] == [[k] for k in range(16)]
    assert resolvable(KEEPABLE) and not resolvable(TINY)  # TINY's 2 x 2 top map cannot tell 16 leaves apart


def test_keeping_every_cell_is_the_model_itself() -> None:
    model = tiny_model(1, KEEPABLE)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        _, acts = model.forward_intermediates(x)
        kept = kept_logits(model, top_tokens(model, acts[-2]), [np.arange(16), np.array([5]), np.arange(8)])
        want = model(x)
    assert torch.allclose(kept[:, 0], want, atol=1e-5)
    assert not torch.allclose(kept[:, 1], want, atol=1e-3)  # a subset is another question


def test_a_planted_cell_is_found_at_every_level() -> None:
    """Top level without layers: keeping a set of its input tokens is the head on the mean of their normalized
    values. One cell points along class 2's weights, the rest along class 0's: the walk must end in its leaf."""
    cfg = NestConfig(**{**KEEPABLE.__dict__, "depths": (1, 1, 0)})
    model = tiny_model(2, cfg)
    w = model.head.weight.detach()
    tokens = w[0].repeat(1, 16, 1).clone()
    planted = 14  # row 3, column 2 of the 4 x 4 top map: leaf 14, under level-2 block 3
    tokens[0, planted] = w[2] * 3
    with torch.no_grad():
        scores = [kept_logits(model, tokens, cells) for cells in block_cells(cfg)]
    assert int(scores[0][0, :, 2].argmax()) == planted and int(scores[1][0, :, 2].argmax()) == 3
    path = walk_tree([s[0, :, 2] for s in scores], 0.0, cfg)
    assert [(n.level, n.node) for n in path] == [(3, 0), (2, 3), (1, planted)]
    assert path[0].chosen_child == 3 and path[1].chosen_child == 2  # bottom-right quadrant, then its bottom-left
    assert path[1].box == (16.0, 16.0, 32.0, 32.0) and path[2].box == (16.0, 24.0, 24.0, 32.0)


def test_batch_equals_single_and_tree_scores_agree_with_the_path() -> None:
    model = tiny_model(3, KEEPABLE)
    x = torch.randn(4, 3, 32, 32)
    batch = keep_gradcat(model, x, top_k=2)
    for i in range(4):
        single = keep_gradcat(model, x[i:i + 1], top_k=2)
        assert [[(n.node, n.chosen_child) for n in p] for p in single.paths[0]] == \
               [[(n.node, n.chosen_child) for n in p] for p in batch.paths[i]]
        assert single.paths[0][0][-1].score == pytest.approx(batch.paths[i][0][-1].score, abs=1e-5)
    tree = keep_block_scores(model, x, batch.classes[:, 0])
    for i in range(4):
        leaf = batch.paths[i][0][-1]
        assert tree[i][0].ravel()[leaf.node] == pytest.approx(leaf.score, abs=1e-5)


def test_the_api_uses_keep_and_falls_back_where_the_top_map_is_too_coarse(tmp_path) -> None:  # noqa: ANN001
    image = write_image(tmp_path / "a.png", (40, 36), seed=4)
    fine = nestviz.load(tiny_model(4, KEEPABLE), class_names=TINY_CLASSES, device="cpu", gradcat_score="keep")
    x = fine.prepare(image, "crop").tensor[None]
    [res] = fine.explain(image, top_k=2)
    want = keep_gradcat(fine.model, x, top_k=2).paths[0]
    assert [[n.node for n in p.path] for p in res.predictions] == [[n.node for n in p] for p in want]
    coarse = nestviz.load(tiny_model(4), class_names=TINY_CLASSES, device="cpu", gradcat_score="keep")
    [res] = coarse.explain(image, top_k=2)
    want = cam_gradcat(coarse.model, coarse.prepare(image, "crop").tensor[None], top_k=2).paths[0]
    assert [[n.node for n in p.path] for p in res.predictions] == [[n.node for n in p] for p in want]
    with pytest.raises(ValueError, match="the keep score has no sign"):
        fine.run([fine.prepare(image)], "explain", sign=-1.0)


def test_keep_leaves_the_model_as_it_was() -> None:
    model: Nest = tiny_model(5, KEEPABLE).train()
    keep_gradcat(model, torch.randn(1, 3, 32, 32), top_k=1)
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_alone_logits_equal_one_block_at_a_time_by_hand() -> None:
    """The batched climb against a plain loop: leaf k's positions at level 2, its outputs on a zero map,
    aggregated, its top cells alone through the top level, the head."""
    from nestviz.explain.keep import alone_logits, block_positions, level_tokens

    for cfg in (KEEPABLE, NestConfig(**{**KEEPABLE.__dict__, "img_size": 48, "pad_type": "same"})):  # 6 x 6 blocks
        model = tiny_model(6, cfg)
        x = torch.randn(2, 3, cfg.img_size, cfg.img_size)
        with torch.no_grad():
            _, acts = model.forward_intermediates(x)
            got = alone_logits(model, acts, 0)
            owned = block_positions(cfg, 0)
            t1 = level_tokens(model, 1, acts[0])  # (B, H, W, C)
            side = t1.shape[1]
            for k in range(cfg.grid(0) ** 2):
                z = model.levels[1].transformer_encoder(t1.flatten(1, 2)[:, owned[0][k]][:, None])[:, 0]
                blank = torch.zeros(2, side * side, z.shape[-1])
                blank[:, owned[0][k]] = z
                t2 = level_tokens(model, 2, blank.view(2, side, side, -1).permute(0, 3, 1, 2)).flatten(1, 2)
                top = model.levels[2].transformer_encoder(t2[:, owned[1][k]][:, None])[:, 0]
                want = model.head(model.norm(top).mean(dim=1))
                assert torch.allclose(got[:, k], want, atol=1e-5), (cfg.img_size, k)
            assert torch.allclose(alone_logits(model, acts, 1), kept_logits(model, level_tokens(model, 2, acts[1])
                                                                            .flatten(1, 2), block_cells(cfg)[1]))
