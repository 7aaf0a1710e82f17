"""The known-answer check (``nestviz metrics --evidence``): scores worked by hand, and a tiny NesT taught a planted patch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import nestviz
from nestviz.cli.app import app
from nestviz.evaluation.known_answers import (EvidenceOptions, aggregate, evidence_batch, leaf_edges, removed,
                                             to_model)
from nestviz.model.checkpoints import save_nestviz
from nestviz.model.nest import NestConfig
from nestviz.preprocess import Preprocessing, plan_geometry
from nestviz.evaluation.scoring import known_answers as ev
from .helpers import TINY_CLASSES
from .model_helpers import tiny_model


runner = CliRunner()
# blocks of 4 x 4 tokens of 2 px: 16 leaf blocks of 8 x 8 px, so a 6 px patch fits inside one
LEAFY = NestConfig(img_size=32, patch_size=2, num_levels=3, embed_dims=(8, 16, 16), num_heads=(2, 2, 4),
                      depths=(1, 1, 2), num_classes=3, mlp_ratio=2.0)
PRE = Preprocessing(input_size=32, crop_pct=1.0)  # the image is the input: no resize, no crop


def test_scores_worked_by_hand() -> None:
    assert ev.covered([0, 0, 10, 10], [5, 5, 15, 15]) == 0.25  # a quarter of the evidence in the region
    assert ev.covered([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0 and ev.covered([0, 0, 9, 9], [1, 1, 1, 5]) == 0.0
    assert ev.region_scores(np.array([0, 0, 10, 10]), np.array([5, 5, 15, 15])) == {"holds_centre": False, "covers": True}
    assert ev.region_scores(np.array([8, 8, 16, 16]), np.array([5, 5, 15, 15])) == {"holds_centre": True, "covers": True}
    assert ev.holds([0, 0, 10, 10], [0, 0]) and not ev.holds([0, 0, 10, 10], [10, 5])  # right edge excluded
    assert ev.near([18, 10], [0, 0, 10, 20]) and not ev.near([18.1, 10], [0, 0, 10, 20])  # 8 px tolerance
    assert ev.near([13, 24], [0, 0, 10, 20], tolerance=5.0) and not ev.near([13, 24.1], [0, 0, 10, 20], 5.0)  # 3-4-5
    assert ev.box_at([50, 50], [0, 0, 10, 20]).tolist() == [45, 40, 55, 60]
    assert ev.clearance([10, 30], [8, 16], [16]) == 2.0 and ev.clearance([12, 30], [8, 16], [29]) == 1.0
    assert ev.clearance([10, 30], [], []) == np.inf and ev.clearance([10, 30], [], [16]) == 14.0


def test_image_boxes_reach_the_model_input_through_the_crop() -> None:
    geo = plan_geometry(224, 224, Preprocessing(input_size=256, crop_pct=0.875), "crop")  # 224 -> 292, crop 256
    assert (geo.resized_width, geo.left) == (292, 18)
    xs, ys = leaf_edges(geo, NestConfig(img_size=256, patch_size=8, num_levels=3))  # leaves of 64 model px
    assert xs == pytest.approx([(64 + 18) * 224 / 292, (128 + 18) * 224 / 292, (192 + 18) * 224 / 292])
    assert ys == pytest.approx(xs)
    # 20 * 292 / 224 - 18 = 8.07 -> 8 (outwards); 60 * 292 / 224 - 18 = 60.21 -> 61
    assert to_model(geo, (20, 20, 60, 60)) == (8, 8, 61, 61)
    assert to_model(geo, (0, 0, 224, 224)) == (0, 0, 256, 256)  # clipped to the input
    x = torch.ones(1, 3, 4, 4)
    assert removed(x, [[(1, 0, 3, 2)]])[0, 0].tolist() == [[1, 0, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1], [1, 1, 1, 1]]


def checker(size: int = 6) -> np.ndarray:
    cells = (np.add.outer(np.arange(size) // 2, np.arange(size) // 2) % 2).astype(np.float32)
    return np.repeat(cells[..., None], 3, axis=2)


def photo(rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour field, 32 x 32, values 0..1."""
    small = torch.from_numpy(rng.random((1, 3, 4, 4), dtype=np.float32))
    return torch.nn.functional.interpolate(small, size=(32, 32), mode="bilinear")[0].permute(1, 2, 0).numpy()


def paste(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A 6 px checkerboard inside one random 8 px leaf block: the evidence lies in exactly one leaf."""
    x, y = (8 * int(v) + int(o) for v, o in zip(rng.integers(0, 4, 2), rng.integers(0, 3, 2)))
    out = img.copy()
    out[y:y + 6, x:x + 6] = checker()
    return out, (x, y, x + 6, y + 6)


@pytest.fixture(scope="module")
def shortcut_model() -> nestviz.Nestviz:
    """A tiny NesT taught that a checkerboard means class 1, whatever the picture (a planted shortcut)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = tiny_model(0, LEAFY).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    nv = nestviz.load(model, class_names=TINY_CLASSES, preprocessing=PRE, device="cpu")
    for _ in range(150):
        imgs = [photo(rng) for _ in range(32)]
        labels = torch.tensor([i % 2 for i in range(32)])
        imgs = [paste(im, rng)[0] if y else im for im, y in zip(imgs, labels.tolist())]
        x = torch.stack([nv.prepare((im * 255).astype(np.uint8)).tensor for im in imgs])
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return nestviz.load(model, class_names=TINY_CLASSES, preprocessing=PRE, device="cpu", gradcat_score="ablation")


def patched_set(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = [paste(photo(rng), rng) for _ in range(n)]
    return [(im * 255).astype(np.uint8) for im, _ in pairs], [np.array([b], dtype=np.float64) for _, b in pairs]


def test_the_planted_patch_is_found_on_the_decisions_it_causes(shortcut_model: nestviz.Nestviz) -> None:
    nv = shortcut_model
    images, boxes = patched_set(24, seed=1)
    records = evidence_batch(nv, [nv.prepare(im) for im in images], boxes, EvidenceOptions(tolerance=1.0))
    summary = aggregate(records)
    assert summary["decisions"] >= 20  # the patch decides the class: removing it changes the top class
    assert all(r.before == 1 for r in records if r.caused)
    m = summary["methods"]
    # the patch lies inside one leaf: removing that leaf (occlusion, the ablation score) finds it every time
    assert m["occlusion"]["holds_centre"] >= 0.95 and m["gradcat"]["holds_centre"] >= 0.9
    assert m["centre"]["covers"] <= 0.3 and m["random"]["covers"] <= 0.3
    assert m["gradcat"]["deletion"] > m["random"]["deletion"] + 0.1
    paper = nestviz.load(nv.model, class_names=TINY_CLASSES, preprocessing=PRE, device="cpu", gradcat_score="gradient")
    worse = aggregate(evidence_batch(paper, [paper.prepare(im) for im in images], boxes))["methods"]["gradcat"]
    assert worse["holds_centre"] < m["gradcat"]["holds_centre"] - 0.5  # the check tells a blind score apart


def test_decisions_with_the_evidence_centre_near_a_leaf_edge_are_also_reported_apart(
        shortcut_model: nestviz.Nestviz) -> None:
    nv = shortcut_model
    images, boxes = patched_set(24, seed=1)
    records = evidence_batch(nv, [nv.prepare(im) for im in images], boxes, EvidenceOptions(tolerance=3.5))
    caused = [r for r in records if r.caused]
    clear = []
    for r, b in ((r, b) for r, b in zip(records, boxes) if r.caused):
        cx, cy = (b[0, 0] + b[0, 2]) / 2, (b[0, 1] + b[0, 3]) / 2  # leaf edges at 8, 16 and 24 px: no resize
        assert r.clearance == pytest.approx(min(abs(v - e) for v in (cx, cy) for e in (8, 16, 24)))
        for name, v in r.values.items():
            assert ("holds_centre_clear" in v) == ("holds_centre" in v and r.clearance >= 3.5), name
            assert v.get("holds_centre_clear", v.get("holds_centre")) == v.get("holds_centre")
        clear += [r] if r.clearance >= 3.5 else []
    summary = aggregate(records, tolerance=3.5)
    assert 0 < summary["clear_decisions"] == len(clear) < len(caused)  # a 6 px patch in an 8 px leaf: 3 px or 4 px from an edge
    assert summary["methods"]["gradcat"]["holds_centre_clear"] == \
        pytest.approx(np.mean([r.values["gradcat"]["holds_centre"] for r in clear]))


def test_only_decisions_for_the_evidences_class_count_when_it_is_known(shortcut_model: nestviz.Nestviz) -> None:
    nv = shortcut_model
    images, boxes = patched_set(12, seed=4)
    preps = [nv.prepare(im) for im in images]
    free = evidence_batch(nv, preps, boxes)
    fed = evidence_batch(nv, preps, boxes, EvidenceOptions(target=(1,)))  # the class the patch was taught to mean
    other = evidence_batch(nv, preps, boxes, EvidenceOptions(target=(0,)))
    assert sum(r.caused for r in free) >= 8 and all(r.before == 1 for r in free if r.caused)
    assert [r.caused for r in fed] == [r.caused for r in free] and [r.values for r in fed] == [r.values for r in free]
    assert [(r.before, r.after) for r in other] == [(r.before, r.after) for r in free]
    assert not any(r.caused or r.values for r in other) and aggregate(other)["decisions"] == 0


def test_batch_equals_single(shortcut_model: nestviz.Nestviz) -> None:
    nv = shortcut_model
    images, boxes = patched_set(6, seed=2)
    preps = [nv.prepare(im) for im in images]
    together = evidence_batch(nv, preps, boxes)
    alone = [evidence_batch(nv, [p], [b])[0] for p, b in zip(preps, boxes)]
    for a, b in zip(together, alone):
        assert (a.before, a.after, a.caused) == (b.before, b.after, b.caused)
        assert a.evidence_drop == pytest.approx(b.evidence_drop, abs=1e-5)
        assert a.values.keys() == b.values.keys()
        for k in a.values:
            assert {n: v for n, v in a.values[k].items() if n != "deletion"} == \
                   {n: v for n, v in b.values[k].items() if n != "deletion"}


def test_the_command_reports_and_refuses_in_one_line(shortcut_model: nestviz.Nestviz, tmp_path: Path) -> None:
    weights = tmp_path / "shortcut.safetensors"
    save_nestviz(weights, shortcut_model.model, TINY_CLASSES, PRE, {"trained_with": "test_evidence"})
    images, boxes = patched_set(8, seed=3)
    (tmp_path / "ev").mkdir()
    for i, (im, b) in enumerate(zip(images, boxes)):
        Image.fromarray(im).save(tmp_path / "imgs" / f"p{i}.png") if (tmp_path / "imgs").exists() else \
            ((tmp_path / "imgs").mkdir(), Image.fromarray(im).save(tmp_path / "imgs" / f"p{i}.png"))
        x0, y0, x1, y1 = b[0].astype(int)
        (tmp_path / "ev" / f"p{i}.xml").write_text(
            f"<annotation><size><width>32</width><height>32</height></size><object><name>patch</name><bndbox>"
            f"<xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object></annotation>")
    Image.fromarray(images[0]).save(tmp_path / "imgs" / "no_box.png")
    res = runner.invoke(app, ["metrics", str(tmp_path / "imgs"), "--evidence", str(tmp_path / "ev"), "--weights",
                              str(weights), "--gradcat-score", "ablation", "--json", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["protocol"]["target_classes"] is None
    fed = runner.invoke(app, ["metrics", str(tmp_path / "imgs"), "--evidence", str(tmp_path / "ev"), "--weights",
                              str(weights), "--evidence-class", TINY_CLASSES[0], "--json"])
    assert fed.exit_code == 0, fed.output
    assert json.loads(fed.stdout)["protocol"]["target_classes"] == [0] and json.loads(fed.stdout)["decisions"] == 0
    unknown = runner.invoke(app, ["metrics", str(tmp_path / "imgs"), "--evidence", str(tmp_path / "ev"), "--weights",
                                  str(weights), "--evidence-class", "zebra"])
    assert unknown.exit_code == 2 and unknown.output.strip().splitlines()[-1] == \
        "nestviz: error: --evidence-class: class 'zebra' matches no class"
    assert got["images"] == 8 and got["decisions"] >= 6 and got["protocol"]["gradcat_score"] == "ablation"
    assert [s["kind"] for s in got["skipped"]] == ["not measured"] and got["skipped"][0]["image"].endswith("no_box.png")
    assert set(got["methods"]) == {"gradcat", "cam", "centre", "random", "occlusion"}
    assert json.loads((tmp_path / "out" / "evidence.json").read_text())["decisions"] == got["decisions"]
    lines = [json.loads(line) for line in (tmp_path / "out" / "evidence.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and all((r["centre_clearance"] is None) != r["caused"] for r in lines)
    # edges at 8, 16 and 24 px, and a 6 px patch's centre at least 3 px inside the image: no centre lies 8 px (the
    # default tolerance) from every edge, so none is clear, and the table leaves out the row it has no figure for
    assert got["clear_decisions"] == 0 and 0 < max(r["centre_clearance"] or 0 for r in lines) <= 5.0
    table = runner.invoke(app, ["metrics", str(tmp_path / "imgs"), "--evidence", str(tmp_path / "ev"), "--weights",
                                str(weights), "-q"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "leaf holds the evidence's centre" in table.output
    assert "centre clear of the leaf edges" not in table.output
    assert "clear of the leaf edges (by the point tolerance) in 0 of them" in table.output
    both = runner.invoke(app, ["metrics", str(tmp_path / "imgs"), "--evidence", str(tmp_path / "ev"),
                               "--boxes", str(tmp_path / "ev"), "--weights", str(weights)])
    assert both.exit_code == 2 and both.output.strip().splitlines()[-1] == \
        "nestviz: error: --boxes and --evidence are two protocols: give one"
    missing = runner.invoke(app, ["metrics", str(tmp_path / "imgs"), "--evidence", str(tmp_path / "nope"),
                                  "--weights", str(weights)])
    assert missing.exit_code == 2 and f"{tmp_path / 'nope'}: no such evidence box file or folder" in missing.output
