"""Removing a decision's evidence (``nestviz.methods.removal``): the regions, the pass, what a folder run records,
and how ``nestviz strategies`` keeps a finding's members to the decisions the removal changed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nestviz.methods.cam import peak_of
from nestviz.methods.removal import evidence_regions, remove_evidence
from nestviz.recording import explain_with_evidence
from nestviz.strategies.records import decision_of, decisive_of
from nestviz.strategies.report import find_strategies, split_undecided

from .strategies_synth import planted_records, write_run


def test_the_regions_are_the_leaf_and_a_leaf_sized_window_on_the_peak_kept_inside() -> None:
    assert evidence_regions(224, 56, (56.0, 112.0, 112.0, 168.0), (112.0, 112.0)) == [(56, 112, 112, 168),
                                                                                        (84, 84, 140, 140)]
    assert evidence_regions(224, 56, None, (5.0, 220.0)) == [(0, 168, 56, 224)]  # moved inside, not cut
    assert evidence_regions(224, 56, (-0.4, 0.0, 56.4, 56.0), None) == [(0, 0, 56, 56)]  # rounded, clipped
    assert evidence_regions(32, 64, None, (16.0, 16.0)) == [(0, 0, 32, 32)]  # a window larger than the input
    assert evidence_regions(32, 8) == []


class Corner(nn.Module):
    """Class 1's logit is 10x the mean of the top-left 8 x 8 pixels (all channels); class 0's is 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        corner = 10.0 * x[:, :, :8, :8].mean(dim=(1, 2, 3))
        return torch.stack([torch.full_like(corner, 0.5), corner], dim=1)


def test_removing_the_corner_a_hand_built_model_reads_changes_its_decision() -> None:
    x = torch.zeros(2, 3, 32, 32)
    x[:, :, :8, :8] = 1.0  # both images: class 1 (logit 10 against 0.5)
    after, prob = remove_evidence(Corner(), x, torch.tensor([1, 1]), [[(0, 0, 8, 8)], [(16, 16, 32, 32)]])
    assert after.tolist() == [0, 1]  # the corner removed: class 0; a region elsewhere: still class 1
    assert prob[0].item() == pytest.approx(1 / (1 + math.exp(0.5)), abs=1e-6)  # softmax of (0.5, 0)
    assert prob[1].item() == pytest.approx(1 / (1 + math.exp(0.5 - 10.0)), abs=1e-6)
    half, _ = remove_evidence(Corner(), x, torch.tensor([1, 1]), [[(0, 0, 8, 4)], [(0, 0, 4, 8), (4, 0, 8, 8)]])
    assert half.tolist() == [1, 0]  # half the corner left: logit 5, still class 1; two regions make it whole
    assert torch.equal(x[:, :, :8, :8], torch.ones(2, 3, 8, 8))  # the input is not changed


def test_a_checked_pass_removes_the_leaf_and_the_peak_window_and_asks_the_model_once_more(tiny_weights, tmp_path) -> None:  # noqa: ANN001, E501
    import nestviz
    from .helpers import write_image

    nv = nestviz.load(tiny_weights, device="cpu")
    batch = next(nv.prepared_batches([str(write_image(tmp_path / f"{n}.png", (40, 30), seed=n)) for n in range(3)],
                                     fit="crop"))
    x = torch.stack([p.tensor for p in batch])
    calls, leaf_runs = [], []
    hook = nv.model.head.register_forward_hook(lambda *a: calls.append(len(a[1][0])))
    leaf_level = nv.model.levels[0].transformer_encoder
    leaf_hook = leaf_level.register_forward_hook(lambda m, a, o: leaf_runs.append(a[0].shape))
    try:
        out, found = explain_with_evidence(nv, x, "annotate", 2, None, 1.0, check=True)
        assert calls == [3, 3]  # the explaining pass, then one pass of the three removed images
        runs = [tuple(s[:2]) for s in leaf_runs]
        window = 32 // nv.grid_sizes[0]
        removed = x.clone()
        for i in range(3):
            leaf, peak = out.paths[i][0][-1].box, peak_of(out.maps[i, 0].numpy(), 32)
            (l0, l1), (w0, w1, w2, w3) = found.regions[i][0][:2], found.regions[i][1]
            assert found.regions[i][0] == tuple(int(round(v)) for v in leaf)
            assert w2 - w0 == w3 - w1 == window and w0 <= peak[0] <= w2 and w1 <= peak[1] <= w3
            for a, b, c, d in found.regions[i]:
                removed[i, :, b:d, a:c] = 0.0
        with torch.no_grad():
            probs = nv.model(removed).softmax(dim=1)
        first = out.classes[:, 0]
        assert torch.equal(found.after, probs.argmax(dim=1))
        assert torch.allclose(found.after_probability, probs[torch.arange(3), first], atol=1e-6)
        # The removal pass ran the leaf level only where a leaf is neither the image's own nor all fill: the
        # explaining pass's leaf outputs served the rest (after it: the blank image's leaves, then those leaves).
        g, side = nv.grid_sizes[0], 32 // nv.grid_sizes[0]
        cell = lambda t, r, c: t[:, r * side:(r + 1) * side, c * side:(c + 1) * side]  # noqa: E731
        own = lambda i, r, c, img: torch.equal(cell(removed[i], r, c), cell(img, r, c))  # noqa: E731
        changed = sum(not own(i, r, c, x[i]) and not own(i, r, c, torch.zeros_like(x[i]))
                      for i in range(3) for r in range(g) for c in range(g))
        assert runs == [(3, g * g), (1, g * g)] + ([(changed, 1)] if changed else [])
        calls.clear()
        [res] = nv.run(batch[:1], "annotate", top_k=2, check_evidence=True)
        r = res.evidence.removal
        assert calls == [1, 1] and r.after == int(found.after[0])
        assert r.before_probability == pytest.approx(float(out.probs[0, first[0]]), abs=1e-6)
        assert r.after_probability == pytest.approx(float(found.after_probability[0]), abs=1e-6)
        assert r.boxes == [batch[0].geometry.box_to_original(tuple(map(float, b))) for b in found.regions[0]]
        assert res.to_json(maps=True)["evidence"]["removal"]["after"] == r.after
        for mode, n in (("explain", 1), ("cam", 1)):  # only the leaf; only the window
            [res] = nv.run(batch[:1], mode, top_k=1, check_evidence=True)
            assert len(res.evidence.removal.boxes) == n
        calls.clear()
        [res] = nv.run(batch[:1], "annotate", top_k=2)
        assert calls == [1] and res.evidence.removal is None  # not asked: no pass, nothing recorded
    finally:
        hook.remove()
        leaf_hook.remove()


def test_a_decision_is_decisive_when_the_removal_took_the_top_class_away() -> None:
    pred = {"rank": 1, "class_index": 3}
    assert decisive_of({"after": 5}, pred) is True
    assert decisive_of({"after": 3}, pred) is False
    assert decisive_of(None, pred) is None  # not checked (an older run)
    assert decisive_of({"after": 5}, {"rank": 2, "class_index": 3}) is None  # not the model's decision


def test_split_undecided_moves_a_findings_standing_members_out_only() -> None:
    labels = np.array([0] * 10 + [1] * 10)
    decisive = [True] * 7 + [False] * 2 + [None] + [False] * 5 + [True] * 5
    finding = lambda members: members.max() < 10  # noqa: E731 - cluster 0 is the finding
    split = split_undecided(labels, decisive, finding)
    assert list(split[:10]) == [1] * 7 + [2] * 2 + [1]  # the finding keeps its changed and unchecked members
    assert list(split[10:]) == [0] * 10  # not a finding: kept whole, though five stood
    few = [True] * 2 + [False] * 8 + [None] * 10  # fewer changed than a flag needs: not split
    assert list(split_undecided(labels, few, finding)) == list(labels)
    assert list(split_undecided(labels, [None] * 20, finding)) == list(labels)  # nothing checked: as before


def test_split_parts_names_the_finding_each_standing_part_left() -> None:
    from nestviz.strategies.report import split_parts

    before = np.array([0] * 6 + [1] * 4)
    after = np.array([0] * 4 + [2] * 2 + [1] * 4)  # cluster 0 split: its members 4, 5 stood
    decisive = [True] * 4 + [False] * 2 + [None] * 4
    assert split_parts(before, after, decisive) == {2: 0}
    assert split_parts(before, before, decisive) == {}  # nothing split


def _with_removal(records: list[dict], stood: set[str]) -> list[dict]:
    """Each record with a removal: the named images' decisions stood, every other one changed."""
    for r in records:
        index = r["predictions"][0]["class_index"]
        r["evidence"]["removal"] = {"boxes": [], "after": index if r["image"] in stood else index + 7,
                                    "probability": [0.9, 0.1]}
    return records


def test_a_finding_keeps_the_decisions_its_removal_changed() -> None:
    """Planted decisions that the removal changed stay the flagged strategy; three planted ones it left standing
    (the patch did not decide them) leave it, and the class's natural decisions, all standing, are not touched."""
    def horse(stood: set[str] | None) -> dict:
        records = planted_records(70, 30, "corner", "annotate", seed=7, other=15)
        if stood is not None:
            natural = {r["image"] for r in records if not r["image"].startswith("planted/")}
            records = _with_removal(records, stood | natural)
        return next(c for c in find_strategies([decision_of(r) for r in records])[0] if c["label"] == "horse")

    def flagged(c: dict) -> dict:
        return max(c["strategies"], key=lambda s: sum(i.startswith("planted/") for i in s["images"]))

    before = flagged(horse(None))
    assert "recurring_pattern" in before["flags"] and before["measures"]["decisive"] is None
    stood = set(sorted(i for i in before["images"] if i.startswith("planted/"))[:3])
    c = horse(stood)
    after = flagged(c)
    assert "recurring_pattern" in after["flags"] and after["measures"]["decisive"] == 1.0
    natural_in = {i for i in before["images"] if i.startswith("val/")}
    assert set(after["images"]) == set(before["images"]) - stood - natural_in
    rest = next(s for s in c["strategies"] if stood <= set(s["images"]))
    assert set(rest["images"]) == stood | natural_in and rest["measures"]["decisive"] == 0.0
    assert rest["split_from"] == after["id"] and "split_from" not in after  # the look-alikes name their finding
    from nestviz.strategies.page import strategies_html

    page = strategies_html({"run": "run", "command": "annotate", "decisions": c["images"], "classes": [c]}, None)
    assert f'Split from strategy <a href="#s-{after["id"]}">{after["id"]}</a>' in page
    assert (f'(look-alikes of {after["id"]})' in page) == bool(rest["flags"])  # in Read first when it is flagged


def test_the_command_says_what_removing_a_findings_evidence_did(tmp_path) -> None:  # noqa: ANN001
    from nestviz.strategies import find, summary_lines

    records = planted_records(70, 30, "corner", "annotate", seed=7, other=15)
    natural = {r["image"] for r in records if not r["image"].startswith("planted/")}
    out = write_run(tmp_path / "run", _with_removal(records, natural))
    lines = summary_lines(find(out, montages=False))
    flagged = [line for line in lines if "flags: recurring_pattern" in line]
    assert len(flagged) == 1 and flagged[0].endswith("; removing the evidence changed 100% of the decisions")
    page = (out / "strategies.html").read_text()
    assert page.count("removing the evidence changed 100% of the decisions") == 2  # Read first, and the strategy
    assert "Split from strategy" not in page  # nothing stood: no look-alikes
    first = page[page.index('id="first"'):page.index("</section>", page.index('id="first"'))]
    assert first.count("removing the evidence changed 100% of the decisions") == 1  # the Read first row says it too
