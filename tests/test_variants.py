"""The explanation variants (CAM kind, GradCAT node score) through the API, the folder commands and metrics."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import nestviz
from nestviz import api
from nestviz.api import Nestviz
from nestviz.batch.outputs import RunOptions
from nestviz.cli.app import app
from nestviz.defaults import (CAM_KIND, CAM_KINDS, EXPLAIN_FIT, GRADCAT_SCORE, GRADCAT_SCORES, TOP_K, Variants,
                              check_choice, check_fit)
from nestviz.methods.ablation import ablation_gradcat
from nestviz.methods.cam import cam
from nestviz.methods.camtree import cam_gradcat
from nestviz.methods import variants
from nestviz.methods.gradcat import gradcat
from nestviz.methods.relevance import relevance_gradcat
from nestviz.model.layers import PatchEmbed
from nestviz.evaluation.trust import MetricsOptions
from .helpers import class_folders, manifest, TINY_CLASSES, write_image
from .model_helpers import tiny_model


runner = CliRunner()
OTHER_CAM = next(k for k in CAM_KINDS if k != CAM_KIND)
OTHER_SCORE = next(s for s in GRADCAT_SCORES if s != GRADCAT_SCORE)


def invoke(*args: object):  # noqa: ANN201
    return runner.invoke(app, [str(a) for a in args])


def nodes(path: list) -> list[tuple]:
    """A path without its boxes (the API's are in original pixels, the method's in model-input pixels)."""
    return [(n.level, n.node, n.chosen_child, n.child_scores and [round(v, 5) for v in n.child_scores])
            for n in path]


def test_defaults_and_their_one_line_errors() -> None:
    assert CAM_KIND in CAM_KINDS and GRADCAT_SCORE in GRADCAT_SCORES
    assert check_choice("cam_kind", "Contrast", CAM_KINDS) == "contrast"
    with pytest.raises(ValueError, match=r"^cam_kind must be flow, contrast or logit, got 'nope'$"):
        check_choice("cam_kind", "nope", CAM_KINDS)
    with pytest.raises(ValueError, match=r"^fit must be crop, pad or squash, got 'x'$"):
        check_fit("x")
    with pytest.raises(ValueError, match="gradcat_score must be gradient, cam, root-ablation, ablation, relevance or relevance-shares"):
        nestviz.load(tiny_model(), class_names=TINY_CLASSES, device="cpu", gradcat_score="occlusion")


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_model(3)


def test_the_api_follows_its_gradcat_score(model: torch.nn.Module, tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.png", (40, 36), seed=5)
    assert nestviz.load(model, class_names=TINY_CLASSES, device="cpu").gradcat_score == GRADCAT_SCORE
    grad = nestviz.load(model, class_names=TINY_CLASSES, device="cpu", gradcat_score="gradient")
    abl = nestviz.load(model, class_names=TINY_CLASSES, device="cpu", gradcat_score="ablation")
    share = nestviz.load(model, class_names=TINY_CLASSES, device="cpu", gradcat_score="cam")
    held = nestviz.load(model, class_names=TINY_CLASSES, device="cpu", gradcat_score="relevance")
    assert (grad.gradcat_score, abl.gradcat_score, share.gradcat_score, held.gradcat_score) == \
        ("gradient", "ablation", "cam", "relevance")
    x = grad.prepare(image, "crop").tensor[None]
    want = {"gradient": gradcat(model, x, top_k=2), "ablation": ablation_gradcat(model, x, top_k=2),
            "cam": cam_gradcat(model, x, top_k=2), "relevance": relevance_gradcat(model, x, top_k=2)}
    for nv in (grad, abl, share, held):
        for mode in ("explain", "annotate"):
            [res] = getattr(nv, mode)(image, top_k=2)
            got = [nodes(p.path) for p in res.predictions]
            assert got == [nodes(p) for p in want[nv.gradcat_score].paths[0]], (nv.gradcat_score, mode)
    assert nodes(want["gradient"].paths[0][0]) != nodes(want["ablation"].paths[0][0])  # the test can tell them apart
    with pytest.raises(ValueError, match="sign=-1 needs gradcat_score 'gradient', 'cam', 'relevance' or 'relevance-shares': the ablation score has no sign"):
        abl.run([abl.prepare(image)], "explain", sign=-1.0)
    abl.run([abl.prepare(image)], "cam", sign=-1.0)  # no GradCAT: the sign does not matter
    assert len(grad.run([grad.prepare(image)], "explain", sign=-1.0)[0].predictions[0].path) == 3


@pytest.mark.parametrize("score", GRADCAT_SCORES)
def test_every_score_gives_a_batch_the_paths_of_its_images_one_by_one(model: torch.nn.Module, score: str) -> None:
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(9))
    batch = variants.paths(model, x, score, top_k=2)
    for i in range(4):
        alone = variants.paths(model, x[i:i + 1], score, top_k=2)
        assert torch.equal(alone.classes[0], batch.classes[i])
        for a, b in zip(alone.paths[0], batch.paths[i]):
            assert [n.node for n in a] == [n.node for n in b], (score, i)
            assert [n.score for n in a] == pytest.approx([n.score for n in b], rel=1e-4, abs=1e-5)


def test_the_api_follows_its_cam_kind(model: torch.nn.Module, tmp_path: Path) -> None:
    image = write_image(tmp_path / "a.png", (40, 36), seed=6)
    by_kind = {k: nestviz.load(model, class_names=TINY_CLASSES, device="cpu", cam_kind=k) for k in CAM_KINDS}
    x = by_kind["logit"].prepare(image, "crop").tensor[None]
    with torch.no_grad():
        logits = model(x)[0]
    for kind, nv in by_kind.items():
        for mode in ("cam", "annotate"):
            [res] = getattr(nv, mode)(image, top_k=2)
            for p in res.predictions:
                want = cam(model, x, classes=[p.class_index], kind=kind).maps[0, 0]
                torch.testing.assert_close(torch.as_tensor(p.cam.raw).float(), want, atol=1e-5, rtol=0, msg=(kind, mode))
    for mode in ("cam", "annotate"):  # annotate's flow comes from the GradCAT pass or, for other scores, its own
        for score in ("cam", "gradient"):
            nv = nestviz.load(model, class_names=TINY_CLASSES, device="cpu", cam_kind="flow", gradcat_score=score)
            [flow] = getattr(nv, mode)(image, top_k=2)
            [contrast] = getattr(by_kind["contrast"], mode)(image, top_k=2)
            assert not np.allclose(flow.predictions[0].cam.raw, contrast.predictions[0].cam.raw, atol=1e-4)
            [ref] = by_kind["flow"].cam(image, top_k=2)
            np.testing.assert_allclose(flow.predictions[1].cam.raw, ref.predictions[1].cam.raw, atol=1e-5)


def test_one_call_helpers_key_their_cache_on_the_variant(tiny_weights: Path, images: list[Path]) -> None:
    nestviz.clear_cache()
    [a] = nestviz.explain(images[0], weights=tiny_weights, device="cpu", top_k=1, gradcat_score="ablation")
    [g] = nestviz.explain(images[0], weights=tiny_weights, device="cpu", top_k=1)
    other = next(k for k in CAM_KINDS if k != CAM_KIND)
    [c] = nestviz.class_maps(images[0], weights=tiny_weights, device="cpu", cam_kind=other)
    assert len(api._cache) == 2  # the other-kind one pushed out the first
    keys = list(api._cache)
    assert [k[3] for k in keys] == [Variants(), Variants(cam_kind=other)]
    assert api._cache[keys[0]].model is api._cache[keys[1]].model  # a variant shares the loaded weights
    nv = Nestviz.load(tiny_weights, device="cpu", gradcat_score="ablation", cam_kind=other)
    [want] = nv.annotate(images[0], top_k=1)
    assert nodes(a.predictions[0].path) == nodes(want.predictions[0].path)
    assert np.allclose(c.predictions[0].cam.raw, want.predictions[0].cam.raw, atol=1e-5)
    assert g.predictions[0].path is not None
    with pytest.raises(ValueError, match="cam_kind must be"):
        nestviz.class_maps(images[0], weights=tiny_weights, device="cpu", cam_kind="nope")
    nestviz.clear_cache()


@pytest.mark.parametrize("args, message", [
    (("cam", "--cam-kind", "nope"), "--cam-kind must be flow, contrast or logit, got 'nope'"),
    (("explain", "--gradcat-score", "grad"), "--gradcat-score must be gradient, cam, root-ablation, ablation, relevance or relevance-shares, got 'grad'"),
    (("annotate", "--cam-kind", "logit", "--gradcat-score", "x"), "--gradcat-score must be gradient, cam, root-ablation, ablation, relevance or relevance-shares"),
])
def test_folder_commands_refuse_unknown_variants_in_one_line(args: tuple, message: str, images: list[Path],
                                                              tmp_path: Path) -> None:
    result = invoke(args[0], images[0], *args[1:], "--out", tmp_path / "out")
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"nestviz: error: {message}")
    assert not (tmp_path / "out").exists()


def test_only_the_command_that_uses_a_variant_takes_it(images: list[Path], tmp_path: Path) -> None:
    assert invoke("cam", images[0], "--gradcat-score", "ablation", "--out", tmp_path).exit_code == 2
    assert invoke("explain", images[0], "--cam-kind", "contrast", "--out", tmp_path).exit_code == 2
    for command in ("cam", "annotate", "metrics"):
        assert "--cam-kind" in invoke(command, "--help").output
    for command in ("explain", "annotate", "metrics"):
        assert "--gradcat-score" in invoke(command, "--help").output


def test_run_options_key_and_tag_the_variants(tmp_path: Path) -> None:
    base = {m: RunOptions(m, tmp_path, top_k=TOP_K[m]) for m in ("explain", "cam", "annotate")}
    assert base["explain"].options()["gradcat_score"] == GRADCAT_SCORE and "cam_kind" not in base["explain"].options()
    assert base["cam"].options()["cam_kind"] == CAM_KIND and "gradcat_score" not in base["cam"].options()
    assert {"cam_kind", "gradcat_score"} <= set(base["annotate"].options())
    assert all(o.tags() == "" for o in base.values())
    other = RunOptions("annotate", tmp_path, top_k=4, variants=Variants(OTHER_CAM, OTHER_SCORE))
    assert other.tags() == f".{OTHER_CAM}.{OTHER_SCORE}"
    assert other.key_fields("w") != base["annotate"].key_fields("w")
    assert RunOptions("cam", tmp_path, top_k=1, variants=Variants(gradcat_score=OTHER_SCORE)).tags() == ""  # no GradCAT
    assert RunOptions("explain", tmp_path, variants=Variants(cam_kind=OTHER_CAM)).tags() == ""


def test_a_changed_variant_redoes_the_images_beside_the_others(tiny_weights: Path, images: list[Path], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    src, out = images[0].parent, tmp_path / "out"
    calls: list[int] = []
    original = PatchEmbed.forward
    monkeypatch.setattr(PatchEmbed, "forward", lambda self, x: calls.append(1) or original(self, x))

    def annotate(*extra: str) -> int:
        calls.clear()
        res = invoke("annotate", src, "--weights", tiny_weights, "--out", out, "-k", "1", "-q", *extra)
        assert res.exit_code == 0, res.output
        return len(calls)

    assert annotate() > 0 and annotate() == 0
    assert annotate("--gradcat-score", OTHER_SCORE) > 0 and annotate("--gradcat-score", OTHER_SCORE) == 0
    assert annotate("--cam-kind", OTHER_CAM) > 0
    assert (out / f"img0.annotate-gradcat.k1.{OTHER_SCORE}.jpg").exists()
    assert (out / f"img0.annotate-cam.k1.{OTHER_CAM}.jpg").exists() and (out / "img0.annotate-cam.k1.jpg").exists()
    options = [r["options"] for r in manifest(out) if Path(r["image"]).name == "img0.png"]
    assert options[-1]["cam_kind"] == OTHER_CAM and options[-1]["gradcat_score"] == GRADCAT_SCORE


def test_the_runner_refuses_a_model_loaded_with_other_variants(tiny_weights: Path, images: list[Path],
                                                               tmp_path: Path) -> None:
    from nestviz.batch.discover import discover
    from nestviz.batch.runner import run_folder

    items, _ = discover([images[0]])
    opts = RunOptions("cam", tmp_path / "out", variants=Variants(cam_kind=OTHER_CAM), render=False, render_workers=0)
    with pytest.raises(ValueError, match=r"the run's variants are Variants\(cam_kind='%s'" % OTHER_CAM):
        run_folder(items, opts, lambda: Nestviz.load(tiny_weights, device="cpu"), "w")
    assert not (tmp_path / "out").exists()  # refused before anything is written
    nv = Nestviz.load(tiny_weights, device="cpu", cam_kind=OTHER_CAM)
    summary = run_folder(items, opts, lambda: nv, "w")
    [rec] = manifest(tmp_path / "out")
    assert summary.done == 1 and rec["options"]["cam_kind"] == OTHER_CAM
    [want] = nv.cam(images[0], top_k=opts.top_k)  # the records hold the maps of the variant they name
    assert np.allclose(rec["predictions"][0]["cam_map"], want.predictions[0].cam.raw, atol=1e-3)


def test_the_variants_have_one_owner() -> None:
    """Issue 18: the pair was held as loose strings by ``Nestviz``, ``RunOptions`` and ``MetricsOptions``."""
    for options in (RunOptions, MetricsOptions):
        names = {f.name for f in fields(options)}
        assert "variants" in names and not names & {"cam_kind", "gradcat_score"}, options
    v = Variants("Contrast", "ABLATION")  # checked and spelled once, where the pair is made
    assert (v.cam_kind, v.gradcat_score) == ("contrast", "ablation") and v == Variants("contrast", "ablation")
    with pytest.raises(FrozenInstanceError):
        v.cam_kind = "logit"  # type: ignore[misc]
    with pytest.raises(ValueError, match="^cam_kind must be"):
        Variants(cam_kind="nope")
    with pytest.raises(ValueError, match="^gradcat_score must be"):
        Variants(gradcat_score="nope")
    nv = nestviz.load(tiny_model(), class_names=TINY_CLASSES, device="cpu", variants=v)
    assert nv.variants is v and (nv.cam_kind, nv.gradcat_score) == ("contrast", "ablation")
    with pytest.raises(AttributeError):
        nv.cam_kind = "logit"  # type: ignore[misc]  # read-only: nv.variants is the one copy
    with pytest.raises(TypeError, match="not both"):
        Nestviz.load(tiny_model(), class_names=TINY_CLASSES, device="cpu", variants=v, cam_kind="logit")


@pytest.mark.parametrize("args, want", [
    (("annotate", "--cam-kind", OTHER_CAM, "--gradcat-score", OTHER_SCORE), Variants(OTHER_CAM, OTHER_SCORE)),
    (("cam", "--cam-kind", OTHER_CAM.upper()), Variants(cam_kind=OTHER_CAM)), (("explain",), Variants())])
def test_a_folder_run_loads_its_model_with_its_options_variants(args: tuple, want: Variants, tiny_weights: Path,
                                                                 images: list[Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI makes the pair once from its flags: the options (keys, file names) and the model hold that object."""
    from nestviz.batch.runner import RunSummary
    from nestviz.cli import tables

    seen = []
    monkeypatch.setattr(tables, "run_with_progress", lambda items, opts, load_model, *a, **k:
                        seen.append((opts.variants, load_model().variants)) or RunSummary())
    res = invoke(args[0], images[0], "--weights", tiny_weights, "--out", tmp_path / "out", "-q", *args[1:])
    assert res.exit_code == 0, res.output
    [(options, model)] = seen
    assert model is options and options == want


def test_metrics_records_fit_and_variants_in_its_protocol(tmp_path: Path, tiny_weights: Path) -> None:
    data = class_folders(tmp_path / "data", n=1)
    res = invoke("metrics", data, "--weights", tiny_weights, "--json", "--steps", "2", "--device", "cpu",
                 "--no-sanity", "--fit", "squash", "--cam-kind", "contrast", "--gradcat-score", "ablation")
    assert res.exit_code == 0, res.output
    protocol = json.loads(res.stdout.strip().splitlines()[-1])["protocol"]
    assert (protocol["fit"], protocol["cam_kind"], protocol["gradcat_score"]) == ("squash", "contrast", "ablation")
    default = nestviz.metrics(data, weights=tiny_weights, device="cpu", limit=2,
                              options=MetricsOptions(steps=2, sanity=False))
    assert (default.protocol["fit"], default.protocol["cam_kind"]) == (EXPLAIN_FIT, CAM_KIND)
    bad = invoke("metrics", data, "--fit", "stretch")
    assert bad.exit_code == 2 and bad.output.strip() == "nestviz: error: --fit must be crop, pad or squash, got 'stretch'"


@pytest.mark.parametrize("kind", CAM_KINDS)
def test_cam_results_say_which_map_they_hold(tiny_weights: Path, images: list[Path], kind: str) -> None:
    # The figure's colour-bar label and the result's docstring depend on it: a contrast map's mean is not the logit.
    [res] = Nestviz.load(tiny_weights, device="cpu", cam_kind=kind).cam(images[0])
    assert res.predictions[0].cam.kind == kind


def test_metrics_of_a_loaded_model_measure_its_variants(tmp_path: Path) -> None:
    """Issue 18: ``nestviz.metrics(model=nv)`` measured the defaults, not the variants ``nv`` was loaded with."""
    nv = nestviz.load(tiny_model(3), class_names=TINY_CLASSES, device="cpu", cam_kind=OTHER_CAM, gradcat_score=OTHER_SCORE)
    data = [class_folders(tmp_path)]
    report = nestviz.metrics(data, model=nv, options=None, methods=("gradcat",))
    assert (report.protocol["cam_kind"], report.protocol["gradcat_score"]) == (OTHER_CAM, OTHER_SCORE)
    quick = MetricsOptions(methods=("cam",), steps=2, sanity=False)  # options without variants: the model's
    report = nestviz.metrics(data, model=nv, options=quick, limit=1)
    assert (report.protocol["cam_kind"], report.protocol["gradcat_score"]) == (OTHER_CAM, OTHER_SCORE)
    with pytest.raises(ValueError, match="the options measure Variants"):  # options naming others: refused
        nestviz.metrics(data, model=nv, options=MetricsOptions(variants=Variants(), steps=2, sanity=False), limit=1)
