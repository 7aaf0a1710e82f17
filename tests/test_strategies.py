"""nestviz strategies: clustering, flags and records on synthetic data whose right grouping is known by construction,
and the evidence that explain / cam / annotate runs record, on tiny hand-built NesTs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nestviz.methods.evidence import EVIDENCE_CELLS, PassTaps, evidence_vectors
from nestviz.results.records import decode_vector, encode_vector, leaf_maximum
from nestviz.strategies import cluster as C, summary_lines
from nestviz.strategies.flags import THRESHOLDS, border_mass, flags_of, place_mass, tightness
from nestviz.strategies.records import WHERE_GRID, decision_of, spot_share_of, where_map
from nestviz.strategies.report import PATTERN_OVERLAP, find_strategies, merge_patterns, split_patterns

from .strategies_synth import LEAF, TOP, decision_record, planted_records
from .model_helpers import TINY, tiny_model


def blobs(sizes: list[int], dim: int = 12, spread: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (len(sizes), dim))
    x = np.concatenate([c + spread * rng.normal(0, 1, (n, dim)) for c, n in zip(centres, sizes)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return x / np.linalg.norm(x, axis=1, keepdims=True), truth


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len({(i, j) for i, j in zip(a, b)}) == len(set(a)) == len(set(b))


# -- clustering ------------------------------------------------------------------------------------------------
def test_eigengap_chooses_the_number_of_well_separated_groups() -> None:
    for sizes in ([40, 30], [30, 25, 20], [20, 20, 20, 20, 15]):
        x, truth = blobs(sizes)
        result = C.cluster(x)
        assert result.k == len(sizes)
        assert same_partition(result.labels, truth)
        assert list(np.bincount(result.labels)) == sorted(sizes, reverse=True)  # largest first


def test_one_group_stays_one_and_tiny_classes_are_not_split() -> None:
    x, _ = blobs([80], spread=1.0)
    assert C.cluster(x).k == 1
    few, _ = blobs([3, 2])
    result = C.cluster(few)
    assert result.k == 1 and len(result.eigenvalues) == 0 and list(result.labels) == [0] * 5


def test_choose_k_reads_the_largest_gap_and_needs_min_gap() -> None:
    assert C.choose_k(np.array([1.0, 0.99, 0.98, 0.5, 0.45])) == 3
    assert C.choose_k(np.array([1.0, 0.6, 0.55])) == 1
    assert C.choose_k(np.array([1.0, 0.99, 0.98, 0.97])) == 1  # no gap reaches MIN_GAP
    assert C.choose_k(np.array([1.0])) == 1
    assert C.choose_k(np.array([1.0, 0.999, 0.97, 0.96, 0.95])) == 2  # two barely connected groups, small gap after


def test_large_classes_cluster_a_sample_and_assign_the_rest_deterministically() -> None:
    x, truth = blobs([1500, 900, 600], seed=3)
    a, b = C.cluster(x, seed=5), C.cluster(x, seed=5)
    assert len(a.labels) == 3000 and a.k == 3 and same_partition(a.labels, truth)
    assert np.array_equal(a.labels, b.labels)


def test_small_clusters_join_their_nearest_neighbour() -> None:
    x, truth = blobs([20, 20, 1], seed=1)
    merged = C.merge_small(x, truth, 2)
    assert sorted(np.bincount(merged)) == [20, 21]


# -- flags -----------------------------------------------------------------------------------------------------
def test_tightness_is_the_mean_pairwise_cosine() -> None:
    rng = np.random.default_rng(0)
    u = rng.normal(0, 1, (7, 5))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    s = u @ u.T
    assert tightness(u) == pytest.approx((s.sum() - 7) / 42)
    assert tightness(np.tile(u[:1], (4, 1))) == pytest.approx(1.0)


def test_border_and_place_mass() -> None:
    uniform = np.full((8, 8), 1 / 64)
    assert border_mass(uniform, 0.125) == pytest.approx(28 / 64)  # the outer ring of an 8 x 8 grid
    corner = np.zeros((8, 8))
    corner[7, 7] = 1.0
    assert border_mass(corner, 0.125) == 1.0 and place_mass(corner, 4) == 1.0
    assert place_mass(uniform, 4) == pytest.approx(4 / 64)


def test_flags_follow_the_thresholds() -> None:
    base = {"tightness": 0.9, "class_tightness": 0.1, "extent": 0.01, "place_mass": 0.1, "border_mass": 0.2,
            "known": 10, "wrong": 6}
    assert flags_of(base, 10) == ["recurring_pattern", "errors"]
    assert flags_of({**base, "extent": 0.5}, 10) == ["errors"]  # everywhere in its image: not a small pattern
    assert flags_of({**base, "extent": 0.5, "place_mass": 0.9}, 10) == ["errors"]
    assert flags_of({**base, "extent": None}, 10) == ["recurring_pattern", "errors"]  # not recorded: not a gate
    assert flags_of({**base, "tightness": 0.3}, 10) == ["errors"]
    assert flags_of({**base, "tightness": 0.35, "place_mass": 0.9}, 10) == ["recurring_pattern", "errors"]
    assert flags_of({**base, "border_mass": 0.7, "wrong": 5}, 10) == ["recurring_pattern", "border"]
    assert flags_of(base, THRESHOLDS["min_members"] - 1) == []
    spot = {**base, "tightness": 0.2, "wrong": 0}  # no pattern, no errors: only the leaf's share can flag it
    assert flags_of({**spot, "spot_share": THRESHOLDS["spot_share"]}, 10) == ["single_spot"]
    assert flags_of({**spot, "spot_share": THRESHOLDS["spot_share"] - 0.01}, 10) == []
    assert flags_of({**spot, "spot_share": None}, 10) == []  # not known (a gradient or ablation run): not a flag
    assert flags_of({**base, "spot_share": 1.2}, 10) == ["recurring_pattern", "single_spot", "errors"]


# -- records ---------------------------------------------------------------------------------------------------
def test_vectors_survive_the_manifest_as_float16() -> None:
    v = np.array([0.5, -2.25, 1e-3, 300.0], dtype=np.float32)
    assert np.allclose(decode_vector(encode_vector(v)), v, rtol=1e-3)
    with pytest.raises(ValueError):
        decode_vector("not base64!")


def test_where_map_places_the_cam_map_in_image_coordinates() -> None:
    cam = np.zeros((2, 2))
    cam[1, 0] = 5.0  # bottom-left cell of a map over the right half of the image
    w = where_map({"cam_map": cam.tolist(), "cam_region": [50, 0, 100, 100]}, (100, 100), (0, 0, 1, 1))
    g = w.reshape(WHERE_GRID, WHERE_GRID)
    assert g.sum() == pytest.approx(1.0)
    assert g[4:, 4:6].sum() == pytest.approx(1.0)  # x 0.5-0.75, y 0.5-1 of the image
    leaf = where_map({"path": [{"box": [0, 0, 25, 25]}]}, (100, 100), (0, 0, 1, 1)).reshape(WHERE_GRID, WHERE_GRID)
    assert leaf[:2, :2].sum() == pytest.approx(1.0)


def test_spot_share_is_the_sixteenth_blocks_part_of_the_root_score_where_scores_split() -> None:
    root, mid = {"score": 4.0}, {"score": 3.5}
    assert spot_share_of([root, mid, {"score": 3.0}], "relevance") == 0.75
    assert spot_share_of([root, mid, {"score": 5.0}], "relevance") == 1.25  # the rest argues against the class
    assert spot_share_of([root, mid, {"score": -1.0}], "relevance") == -0.25
    assert spot_share_of([root, mid, {"score": 1.0}, {"score": 0.5}], "relevance") == 0.25  # four levels: 1/16 block
    for path, score in (([root, mid, {"score": 3.0}], "gradient"),  # not a share of the root's
                        ([root, mid, {"score": 3.0}], "ablation"), ([root, mid, {"score": 3.0}], None),
                        ([root, mid, {"score": 3.0}], "cam"),  # shares of the flow CAM, which spreads a patch's
                        ([root, {"score": 3.0}], "relevance"),  # two levels: no block of 1/16 of the view
                        ([{"score": 0.0}, mid, {"score": 3.0}], "relevance"),  # nothing to share
                        ([root, mid, {"score": None}], "relevance"), ("path", "relevance")):
        assert np.isnan(spot_share_of(path, score))
    rec = planted_records(1, 0, command="annotate", shares=(0.3, 0.9))[0]
    assert decision_of(rec).spot_share == pytest.approx(rec["predictions"][0]["path"][-1]["score"] / 2.0)
    assert np.isnan(decision_of({k: v for k, v in rec.items() if k != "options"}).spot_share)  # an older record


def test_records_without_evidence_or_failed_say_why() -> None:
    rec = planted_records(1, 0)[0]
    assert decision_of({**rec, "status": "error", "error": "boom"}) == "val/horse/n00000.png: failed in the run: boom"
    bare = {k: v for k, v in rec.items() if k != "evidence"}
    assert decision_of(bare) == "val/horse/n00000.png: no evidence recorded (made by an older nestviz)"
    bad = {**rec, "evidence": {**rec["evidence"], "leaf": "###"}}
    assert decision_of(bad).startswith("val/horse/n00000.png: unreadable evidence record (ValueError")


# -- known answers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("place", ["random", "corner"])
@pytest.mark.parametrize("command", ["cam", "explain"])
@pytest.mark.parametrize("planted", [20, 40])
def test_a_planted_pattern_is_one_flagged_strategy(place: str, command: str, planted: int) -> None:
    records = planted_records(100 - planted, planted, place, command, seed=planted, other=15)
    classes, _ = find_strategies([decision_of(r) for r in records])
    horse = next(c for c in classes if c["label"] == "horse")
    best = max(horse["strategies"], key=lambda s: sum(i.startswith("planted/") for i in s["images"]))
    hits = sum(i.startswith("planted/") for i in best["images"])
    assert hits / len(best["images"]) >= 0.9 and hits / planted >= 0.8
    assert "recurring_pattern" in best["flags"] and "errors" in best["flags"]
    assert all("recurring_pattern" not in s["flags"] for c in classes for s in c["strategies"] if s is not best)
    assert sum(s["share"] for s in horse["strategies"]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("place", ["random", "corner"])
def test_a_small_pattern_is_found_by_its_maximum_not_its_mean(place: str) -> None:
    """A pattern that covers a small part of its evidence cells fires the same channels' maximum wherever it is,
    while the mean over the cells is mostly the photo's: strategies compare the maximum half."""
    def best(small: str) -> dict:
        records = planted_records(70, 30, place, "explain", seed=5, other=15, small=small)
        horse = next(c for c in find_strategies([decision_of(r) for r in records])[0] if c["label"] == "horse")
        return max(horse["strategies"], key=lambda s: sum(i.startswith("planted/") for i in s["images"]))

    found = best("max")
    hits = sum(i.startswith("planted/") for i in found["images"])
    assert hits / len(found["images"]) >= 0.9 and hits / 30 >= 0.8 and "recurring_pattern" in found["flags"]
    control = best("mean")  # the same pattern, shown only by the half strategies do not read
    assert "recurring_pattern" not in control["flags"]
    assert control["measures"]["tightness"] < THRESHOLDS["place_tightness"] < found["measures"]["tightness"]


@pytest.mark.parametrize("place", ["random", "corner"])
def test_a_planted_pattern_that_carries_its_decisions_is_flagged_single_spot(place: str) -> None:
    """Planted decisions whose leaf holds about all of the class score, natural ones about a quarter (as a pasted
    patch and an object do on a real model): only the planted strategy is flagged single_spot, and only where the
    run's GradCAT score splits the root's."""
    def horse(score: str) -> dict:
        records = planted_records(70, 30, place, "annotate", seed=7, other=15, shares=(0.25, 1.0), score=score)
        return next(c for c in find_strategies([decision_of(r) for r in records])[0] if c["label"] == "horse")

    found = horse("relevance")
    best = max(found["strategies"], key=lambda s: sum(i.startswith("planted/") for i in s["images"]))
    assert "single_spot" in best["flags"] and best["measures"]["spot_share"] >= THRESHOLDS["spot_share"]
    assert all("single_spot" not in s["flags"] and s["measures"]["spot_share"] < 0.4
               for s in found["strategies"] if s is not best)
    unknown = horse("gradient")
    assert all("single_spot" not in s["flags"] and s["measures"]["spot_share"] is None for s in unknown["strategies"])


def test_merge_patterns_joins_one_pattern_split_by_place_and_keeps_two_patterns_apart() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 16), rng.normal(0, 1, 16)
    rows = [a + 0.1 * rng.normal(0, 1, 16) for _ in range(12)] + [b + 0.1 * rng.normal(0, 1, 16) for _ in range(8)]
    rows += list(rng.normal(0, 1, (30, 16)))  # natural decisions
    units = np.array(rows) / np.linalg.norm(rows, axis=1, keepdims=True)
    labels = np.array([0] * 6 + [1] * 6 + [2] * 8 + [3] * 30)  # pattern a split in two, pattern b, the rest
    merged = merge_patterns(labels, units, lambda members: members.max() < 20)
    assert list(merged) == [1] * 12 + [2] * 8 + [0] * 30  # a joined; b apart; renumbered by size
    assert list(merge_patterns(labels, units, lambda members: False)) == [2] * 6 + [3] * 6 + [1] * 8 + [0] * 30


def test_split_patterns_gives_a_buried_pattern_its_own_strategy_once() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, 16)
    rows = [a + 0.2 * rng.normal(0, 1, 16) for _ in range(12)] + list(rng.normal(0, 1, (60, 16)))
    units = np.array(rows) / np.linalg.norm(rows, axis=1, keepdims=True)
    pattern = lambda members: tightness(units[members]) >= THRESHOLDS["pattern_tightness"]  # noqa: E731
    assert pattern(np.arange(12)) and not pattern(np.arange(12, 72)) and not pattern(np.arange(72))
    buried = np.array([0] * 6 + [1] * 6 + [0] * 30 + [1] * 30)  # the joint clustering split it into two big ones
    split = split_patterns(buried, units, pattern)
    assert list(split[:12]) == [2] * 12 and set(split[12:]) == {0, 1}  # its own strategy, the smallest
    assert same_partition(split[12:], buried[12:])  # the rest keep theirs
    found = np.array([1] * 12 + [0] * 60)  # already its own pattern strategy: nothing new
    assert list(split_patterns(found, units, pattern)) == list(found)
    natural = units[12:]  # no pattern in the class: no change
    assert list(split_patterns(buried[12:], natural, lambda m: tightness(natural[m]) >= 0.45)) == list(buried[12:])
    assert 0 < PATTERN_OVERLAP < 1


def test_a_pattern_inside_a_larger_group_is_found_at_a_finer_count_when_it_is_a_decided_spot() -> None:
    """Two natural groups of 60 and 48 rows and a pattern of 12 rows close to the second: the eigengap splits the class
    in two, the pattern inside the second half (too loose as a whole to be a pattern); a finer count isolates it, and
    takes it where the run's removal says one spot carries its decisions."""
    rng = np.random.default_rng(5)
    a, b, p = rng.normal(0, 1, 16), rng.normal(0, 1, 16), rng.normal(0, 1, 16)
    rows = ([a + 0.6 * rng.normal(0, 1, 16) for _ in range(60)] + [b + 0.6 * rng.normal(0, 1, 16) for _ in range(48)]
            + [b + 0.5 * p + 0.25 * rng.normal(0, 1, 16) for _ in range(12)])
    units = np.array(rows) / np.linalg.norm(rows, axis=1, keepdims=True)
    pattern = lambda members: tightness(units[members]) >= 0.9  # noqa: E731
    spot = lambda members: (members >= 100).mean() >= 0.75  # noqa: E731  (the planted rows' spot carries them)
    gap = C.cluster(units)
    assert gap.k == 2 and (gap.labels == gap.labels[108]).sum() == 60  # buried at the eigengap
    assert pattern(np.arange(108, 120)) and not pattern(np.flatnonzero(gap.labels == gap.labels[108]))
    halves = np.array([0] * 60 + [1] * 60)
    split = split_patterns(halves, units, pattern, spot)
    own = split == split[108]
    assert (split[108:] == split[108]).all() and own.sum() <= 14 and set(split[:60]) == {0}  # its own, nearly alone
    assert list(split_patterns(halves, units, pattern, lambda m: False)) == list(halves)  # no decided spot: no split
    assert list(split_patterns(halves, units, pattern)) == list(halves)  # the removal not run: the eigengap only
    finer = C.cluster(units, every_k=True).finer
    assert len(finer) == C.MAX_K - 1 and all(len(part) == 120 and part.max() + 1 <= k for k, part in
                                              zip(range(2, C.MAX_K + 1), finer))
    assert (C.cluster(units, every_k=True).labels == gap.labels).all() and C.cluster(units).finer == []
    again = C.cluster(units, seed=1, every_k=True).finer
    assert all((a == b).all() for a, b in zip(again, C.cluster(units, seed=1, every_k=True).finer))  # deterministic


def test_a_few_decisions_carrying_a_pattern_are_found_where_their_evidence_is_not_one_place() -> None:
    """Twelve planted decisions among 150 natural ones, their evidence anywhere (the where view spread as the
    natural ones'): a strategy of their own, flagged, with a few natural decisions the leaf view finds alike."""
    rng = np.random.default_rng(4)
    records = planted_records(150, 0, command="annotate", seed=4, other=15)
    pattern = rng.normal(0, 1, LEAF)
    for i in range(12):
        spot = tuple(np.clip((0.5 + 0.15 * rng.normal(), 0.5 + 0.15 * rng.normal()), 0.05, 0.95))
        records.append(decision_record(f"planted/cat/p{i:05d}.png", "horse", 0, "cat",
                                       pattern + 0.3 * rng.normal(0, 1, LEAF), rng.normal(0, 1, TOP), spot, 0.25,
                                       "annotate", rng, 0.02))
    horse = next(c for c in find_strategies([decision_of(r) for r in records])[0] if c["label"] == "horse")
    flagged = [s for s in horse["strategies"] if "recurring_pattern" in s["flags"]]
    assert len(flagged) == 1  # the joint descriptor alone buries them (no flag in this class without the split)
    planted = [i for i in flagged[0]["images"] if i.startswith("planted/")]
    assert len(planted) == 12 and len(planted) / len(flagged[0]["images"]) >= 0.7


def test_a_pattern_pasted_in_two_places_is_one_strategy_two_patterns_are_two() -> None:
    """The where view splits decisions whose evidence lies in two corners; the same pattern in both is one finding."""
    rng = np.random.default_rng(2)
    pattern, other = rng.normal(0, 1, LEAF), rng.normal(0, 1, LEAF)
    records = planted_records(80, 0, command="annotate", seed=2, other=15)

    def run(same: bool) -> list[dict]:
        recs = list(records)
        for i in range(40):
            spot = (0.1, 0.1) if i % 2 else (0.9, 0.9)
            leaf = (pattern if same or i % 2 else other) + 0.3 * rng.normal(0, 1, LEAF)
            recs.append(decision_record(f"planted/cat/p{i:05d}.png", "horse", 0, "cat", leaf, rng.normal(0, 1, TOP),
                                        spot, 0.08, "annotate", rng, 0.02))
        horse = next(c for c in find_strategies([decision_of(r) for r in recs])[0] if c["label"] == "horse")
        return [s for s in horse["strategies"] if "recurring_pattern" in s["flags"]]

    one = run(same=True)
    assert len(one) == 1 and sorted(one[0]["images"]) == sorted(f"planted/cat/p{i:05d}.png" for i in range(40))
    two = run(same=False)  # one pattern in each corner
    planted = [sorted(i for i in s["images"] if i.startswith("planted/")) for s in two]
    assert sorted(planted) == [[f"planted/cat/p{i:05d}.png" for i in range(k, 40, 2)] for k in (0, 1)]


def test_natural_decisions_carry_no_flag() -> None:
    classes, _ = find_strategies([decision_of(r) for r in planted_records(120, 0, other=30)])
    assert [s["flags"] for c in classes for s in c["strategies"] if s["flags"]] == []


def test_a_class_with_one_image_is_one_strategy_with_a_note() -> None:
    classes, _ = find_strategies([decision_of(r) for r in planted_records(30, 0, other=1)])
    cat = next(c for c in classes if c["label"] == "cat")
    assert cat["images"] == 1 and len(cat["strategies"]) == 1 and cat["strategies"][0]["share"] == 1.0
    assert cat["note"] == "1 decision: too few to split (fewer than 6)"
    report = {"classes": classes, "run": "out"}
    lines = summary_lines(report)
    assert "cat: 1 decision, 1 strategy" in lines and lines[-1] == "wrote out/strategies.html"
    assert any(line.startswith("horse: 30 decisions, ") for line in lines)


# -- the evidence a run records --------------------------------------------------------------------------------
def test_the_taps_hear_the_pass_and_the_vectors_read_the_chosen_cells() -> None:
    model = tiny_model()
    x = torch.rand(2, 3, 32, 32)
    with PassTaps(model) as taps, torch.no_grad():
        feats, acts = model.forward_intermediates(x)
    assert torch.equal(taps.leaf, acts[0]) and torch.allclose(taps.features, feats)
    assert not model.levels[0]._forward_hooks and not model.norm._forward_hooks  # removed on exit
    H = feats.shape[-1]
    maps = torch.zeros(2, H, H)
    maps[0, 1, 0], maps[0, 0, 1] = 5.0, 4.0  # image 0: cells (1, 0) then (0, 1)
    maps[1, 0, 0], maps[1, 1, 1] = 5.0, 4.0
    boxes = [None, (16.0, 16.0, 32.0, 32.0)]  # image 1: only cells whose centre lies in the bottom-right quarter
    ev = evidence_vectors(model, taps, torch.tensor([0, 2]), 32, maps, boxes)
    assert ev[0].cells == [H, 1][:EVIDENCE_CELLS] and ev[1].cells[0] == H + 1
    k = acts[0].shape[-1] // H
    tokens = torch.cat([acts[0][0, :, k:2 * k, 0:k].reshape(TINY.embed_dims[0], -1),
                        acts[0][0, :, 0:k, k:2 * k].reshape(TINY.embed_dims[0], -1)], dim=1)
    assert np.allclose(ev[0].leaf, torch.cat([tokens.mean(1), tokens.amax(1)]).numpy(), atol=1e-6)
    assert np.allclose(leaf_maximum(ev[0].leaf), tokens.amax(1).numpy(), atol=1e-6)  # what strategies compare
    assert np.allclose(ev[0].top, feats[0][:, [1, 0], [0, 1]].mean(1).numpy(), atol=1e-6)
    cell = 32 / H
    assert ev[0].box == (0.0, 0.0, 2 * cell, 2 * cell) and 0.0 < ev[0].extent <= 1.0


def test_every_explaining_mode_records_evidence_from_its_own_pass(tiny_weights, tmp_path) -> None:  # noqa: ANN001
    import nestviz
    from .helpers import write_image

    nv = nestviz.load(tiny_weights, device="cpu")
    calls = []
    hook = nv.model.patch_embed.register_forward_hook(lambda *a: calls.append(1))
    try:
        image = write_image(tmp_path / "a.png", (40, 30))
        batch = next(nv.prepared_batches([str(image)], fit="crop"))
        for mode in ("predict", "explain", "cam", "annotate"):
            calls.clear()
            [res] = nv.run(batch, mode, top_k=2)
            if mode == "predict":
                assert res.evidence is None
                continue
            assert calls == [1]  # one forward pass: the evidence adds none
            e = res.evidence
            assert e.class_index == res.predictions[0].class_index and len(e.cells) == EVIDENCE_CELLS
            assert e.leaf.shape == (2 * TINY.embed_dims[0],) and e.top.shape == (TINY.embed_dims[-1],)
            x0, y0, x1, y1 = e.box
            assert 0 <= x0 < x1 <= 40 and 0 <= y0 < y1 <= 30
            assert "evidence" in res.to_json(maps=True) and "evidence" not in res.to_json()
    finally:
        hook.remove()
