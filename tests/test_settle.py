"""The relevance root's close calls settled by removal: where two or more of the root's children hold shares within
the margin of the best, the child whose removal costs the class most is followed; everywhere else the shares decide,
and no removal runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nestviz.methods import variants
from nestviz.methods.ablation import ablation_gradcat, reference_maps, settle_root
from nestviz.methods.gradcat import walk
from nestviz.methods.relevance import relevance_gradcat
from .model_helpers import TINY_JX, tiny_model

torch.set_num_threads(1)


def _pair(scores: list[float], margin: float) -> tuple[int, int] | None:
    """The root's best two children if the second's share is within ``margin`` of the total's size of the best's."""
    s = np.asarray(scores)
    best, second = np.argsort(-s, kind="stable")[:2]
    return tuple(sorted((int(best), int(second)))) if s[second] >= s[best] - margin * abs(s.sum()) else None


def _pairs(out, margin: float) -> dict[tuple[int, int], tuple[int, int]]:
    """(image, rank) -> the two children whose removal decides, worked out from the shares as the docstring says."""
    pairs = {}
    for i, row in enumerate(out.paths):
        first = None
        for j, path in enumerate(row):
            pair = _pair(path[0].child_scores, margin)
            if j == 0:
                first = pair  # only the first class's close call is settled; the others share its removals
            if pair is not None and pair == first:
                pairs[(i, j)] = pair
    return pairs


@pytest.mark.parametrize("cfg", [None, TINY_JX], ids=["plain", "same-padding"])
def test_close_calls_follow_the_removal_and_clear_ones_the_shares(cfg) -> None:  # noqa: ANN001
    model = tiny_model(3) if cfg is None else tiny_model(3, cfg)
    x = torch.randn(12, 3, 32, 32)
    margin = 0.3
    first = relevance_gradcat(model, x, top_k=2)
    got = settle_root(model, first, margin)
    pairs = _pairs(first, margin)
    removal = ablation_gradcat(model, x, classes=first.classes)  # its root scores: each child's removal, by hand
    changed = kept = 0
    for i in range(12):
        for j in range(2):
            root, shares = got.paths[i][j][0], first.paths[i][j][0].child_scores
            assert root.child_scores == shares and root.score == first.paths[i][j][0].score  # the scores stay
            if (i, j) in pairs:
                drops = np.asarray(removal.paths[i][j][0].child_scores)
                pair = list(pairs[(i, j)])
                assert root.chosen_child == pair[int(np.argmax(drops[pair]))]
                assert root.removal_drops == pytest.approx([drops[q] if q in pair else None for q in range(4)], abs=1e-6)
            else:
                assert root.chosen_child == int(np.argmax(shares)) and root.removal_drops is None
                kept += 1
            # below the root: relevance's own walk from the chosen child
            want = walk([None if h is None else h[j, i] for h in first.heat], model.cfg, first=root.chosen_child)
            assert [(n.node, n.chosen_child, n.score) for n in got.paths[i][j][1:]] == \
                   [(n.node, n.chosen_child, n.score) for n in want[1:]]
            changed += root.chosen_child != first.paths[i][j][0].chosen_child
    assert changed > 0 and kept > 0  # both cases are in the test
    assert all(p[0].removal_drops is None for row in first.paths for p in row)  # the input is left as it was


def test_an_image_pays_at_most_two_removals_shared_by_its_classes() -> None:
    model = tiny_model(4)
    x = torch.randn(24, 3, 32, 32)
    first = relevance_gradcat(model, x, top_k=3)
    reference_maps(model, x)  # the mean-filled image's maps, kept per model: the removals' fill
    rows = []
    hook = model.levels[-1].register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape[0]))
    try:
        got = settle_root(model, first, 0.5)
        pairs = _pairs(first, 0.5)
        per_image = {i: pair for (i, _), pair in pairs.items()}
        assert sum(rows) == 2 * len(per_image) > 0  # two removals per image with a close call, whatever k
        shared = sum(got.paths[i][j][0].removal_drops is not None for i in range(24) for j in range(1, 3))
        assert shared > 0  # some lower-ranked class reused its image's removals
        own = [(i, j) for i in range(24) for j in range(1, 3)
               if (i, j) not in pairs and _pair(first.paths[i][j][0].child_scores, 0.5)]
        assert own and all(got.paths[i][j][0].removal_drops is None for i, j in own)  # a close call of its own: shares
        rows.clear()
        assert settle_root(model, first, 1e-12) is first and rows == []  # no close call: nothing runs
    finally:
        hook.remove()


def test_the_default_settles_in_batch_as_alone_and_the_control_is_not_settled() -> None:
    model = tiny_model(5)
    x = torch.randn(5, 3, 32, 32)
    batch = variants.paths(model, x, "relevance", top_k=2)
    for i in range(5):
        one = variants.paths(model, x[i:i + 1], "relevance", top_k=2)
        for j in range(2):
            assert [(n.node, n.chosen_child) for n in one.paths[0][j]] == [(n.node, n.chosen_child) for n in batch.paths[i][j]]
    flipped = variants.paths(model, x, "relevance", top_k=2, sign=-1.0)  # the pointing game's control: shares only
    assert all(int(np.argmax(p[0].child_scores)) == p[0].chosen_child and p[0].removal_drops is None
               for row in flipped.paths for p in row)


def test_the_api_and_the_json_carry_the_drops_of_a_settled_root(tmp_path) -> None:  # noqa: ANN001
    import nestviz
    from .helpers import TINY_CLASSES, write_image

    nv = nestviz.load(tiny_model(6), class_names=TINY_CLASSES, device="cpu")
    settled = 0
    for seed in range(8):
        image = write_image(tmp_path / f"{seed}.png", (40, 36), seed=seed)
        [res] = nv.explain(image, top_k=3)
        want = variants.paths(nv.model, nv.prepare(image, "crop").tensor[None], "relevance", top_k=3).paths[0]
        for pred, path in zip(res.predictions, want):
            root = pred.path[0]
            assert root.removal_drops == path[0].removal_drops and root.chosen_child == path[0].chosen_child
            assert root.to_json()["removal_drops"] == root.removal_drops
            settled += root.removal_drops is not None
    assert settled > 0


def test_relevance_shares_is_the_pass_without_the_settle() -> None:
    model = tiny_model(3)
    x = torch.randn(12, 3, 32, 32)
    shares, settled = variants.paths(model, x, "relevance-shares", top_k=2), variants.paths(model, x, "relevance", top_k=2)
    plain = relevance_gradcat(model, x, top_k=2)
    assert [[[(n.node, n.chosen_child) for n in p] for p in row] for row in shares.paths] == \
           [[[(n.node, n.chosen_child) for n in p] for p in row] for row in plain.paths]
    assert all(p[0].removal_drops is None for row in shares.paths for p in row)
    assert any(p[0].removal_drops is not None for row in settled.paths for p in row)  # the default settles some
