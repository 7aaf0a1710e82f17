"""The Python API as users call it: every entry point, every input type, one result type, the model cache."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
import pytest

from nestviz.defaults import CAM_KIND, GRADCAT_SCORE, THRESHOLD
import torch
from PIL import Image

import nestviz
from nestviz import api
from nestviz.api import Nestviz
from nestviz.methods.cam import cam, localize
from nestviz.methods import variants
from nestviz.methods.camtree import cam_gradcat
from nestviz.methods.gradcat import gradcat
from nestviz.images import ImageReadError, load_rgb
from nestviz.preprocess import Preprocessing, to_input
from nestviz.results.display import Result
from nestviz.results.records import ImageResult
from .helpers import REPO, TINY_CLASSES, write_image
from .model_helpers import tiny_model



default_gradcat = functools.partial(variants.paths, score=GRADCAT_SCORE, cam_kind=CAM_KIND)


@pytest.fixture
def nv(tiny_weights: Path) -> Nestviz:
    return nestviz.load(tiny_weights, device="cpu")


def test_every_method_answers_in_original_pixels_converted_once(nv: Nestviz, images: list[Path]) -> None:
    """The API's boxes are explain/'s model-input boxes mapped through the image's geometry."""
    path = images[2]  # 56 x 40: resized and cropped, so the two frames differ
    x, geo = to_input(load_rgb(path), nv.bundle.preprocessing)
    [res] = nv.annotate(path, top_k=2)
    raw = default_gradcat(nv.model, x[None], top_k=2)
    maps = cam(nv.model, x[None], classes=[p.class_index for p in res.predictions], kind=CAM_KIND).maps[0]
    assert (res.width, res.height) == (56, 40)
    assert res.region == geo.box_to_original((0.0, 0.0, 32.0, 32.0))
    for r, pred in enumerate(res.predictions):
        assert [n.box for n in pred.path] == [geo.box_to_original(n.box) for n in raw.paths[0][r]]
        box, peak = localize(maps[r], geo.size, THRESHOLD)
        assert pred.cam.box == geo.box_to_original(box) and pred.cam.peak == geo.point_to_original(*peak)
        assert pred.cam.region == res.region


def test_cam_and_annotate_agree_with_explain_and_predict(nv: Nestviz, images: list[Path]) -> None:
    [p] = nv.predict(images[0], top_k=3)
    [e] = nv.explain(images[0], top_k=3)
    [c] = nv.cam(images[0], top_k=3)
    [a] = nv.annotate(images[0], top_k=3)
    ranked = [q.class_index for q in p.predictions]
    for res in (e, c, a):
        assert [q.class_index for q in res.predictions] == ranked
        assert [q.probability for q in res.predictions] == pytest.approx([q.probability for q in p.predictions],
                                                                          abs=1e-6)
    assert all(q.path and q.cam is None for q in e.predictions)
    assert all(q.cam is not None and q.path is None for q in c.predictions)
    for qa, qe, qc in zip(a.predictions, e.predictions, c.predictions):
        assert [n.box for n in qa.path] == [n.box for n in qe.path]
        np.testing.assert_allclose(qa.cam.raw, qc.cam.raw, rtol=1e-5, atol=1e-6)
        assert qa.cam.box == qc.cam.box
    assert nv.cam(images[0], classes=["blue"])[0].predictions[0].label == "blue thing"
    with pytest.raises(ValueError, match="out of range"):
        nv.cam(images[0], classes=[7])


@pytest.mark.parametrize("kind", ["str", "path", "pil", "array", "float array", "tensor", "int64 array",
                                  "float tensor", "half tensor"])
def test_one_image_of_any_kind_or_a_list(nv: Nestviz, images: list[Path], kind: str) -> None:
    path = images[1]
    pixels = np.asarray(load_rgb(path))
    one = {"str": str(path), "path": path, "pil": Image.open(path), "array": pixels,
           "float array": pixels / 255.0, "tensor": torch.from_numpy(pixels.copy()).permute(2, 0, 1),
           "int64 array": pixels.astype(np.int64),
           "float tensor": torch.from_numpy(pixels / 255.0).permute(2, 0, 1).float(),
           "half tensor": torch.from_numpy(pixels / 255.0).permute(2, 0, 1).half()}[kind]
    [expected] = nv.predict([path], top_k=2)
    for given in (one, [one]):
        [res] = nv.predict(given, top_k=2)
        assert [q.class_index for q in res.predictions] == [q.class_index for q in expected.predictions]
        assert [q.probability for q in res.predictions] == pytest.approx(
            [q.probability for q in expected.predictions], abs=1e-4)
        assert (res.width, res.height) == (expected.width, expected.height)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_a_float_array_in_0_255_is_refused_not_clipped(nv: Nestviz, images: list[Path], kind: str) -> None:
    """Issue 22: float32 0-255 pixels were clipped to white and explained as another class, silently."""
    pixels = np.asarray(load_rgb(images[1])).astype("float32")
    given = pixels if kind == "numpy" else torch.from_numpy(pixels).permute(2, 0, 1)
    with pytest.raises(ValueError, match=r"^a float image array holds values in 0-1 \(uint8 and other integer arrays "
                                         r"are read as 0-255, float arrays as 0-1\); this one runs from \d+ to "
                                         r"\d+: divide it by 255$"):
        nv.predict(given)
    with pytest.raises(ValueError, match="from -2 to 1: pass the image itself: nestviz normalizes"):
        nv.predict(np.linspace(-2.0, 1.0, 8 * 8 * 3).reshape(8, 8, 3))  # a normalized image
    with pytest.raises(ValueError, match="integer image array holds 0-255; this one runs from 0 to 256"):
        nv.predict(np.full((8, 8), 256, np.int32) * np.eye(8, dtype=np.int32))
    [within] = nv.predict(pixels / 255.0 * (1 + 0.4 / 255))  # half a level over 1 (resampling): kept
    assert within.ok


def test_run_takes_paths_and_a_class_named_twice_is_explained_once(nv: Nestviz, images: list[Path]) -> None:
    """Issue 22: nv.run(["x.jpg"], "explain") was an AttributeError; --class "Blue Thing" --class 2 drew blue twice."""
    [ran] = nv.run([images[1]], "explain", top_k=2)
    [expected] = nv.explain(images[1], top_k=2)
    assert [(p.class_index, p.probability) for p in ran.predictions] == [
        (p.class_index, p.probability) for p in expected.predictions]
    assert [r.ok for r in nv.run([str(images[0]), nv.prepare(images[1])], "predict")] == [True, True]
    with pytest.raises(ValueError, match="^unknown mode 'explian': one of predict, explain, cam, annotate$"):
        nv.run([images[0]], "explian")
    [res] = nv.cam(images[0], classes=["Blue Thing", 2, "green", "BLUE"])
    assert [p.class_index for p in res.predictions] == [2, 1]


def test_a_batch_tensor_is_many_images(nv: Nestviz) -> None:
    batch = torch.rand(3, 3, 40, 48)
    assert len(nv.predict(batch)) == 3
    with pytest.raises(ValueError, match="image array"):
        nv.predict(np.zeros((4, 4, 2), np.uint8))


def test_one_result_type_with_the_error_as_a_field(nv: Nestviz, images: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    results = nv.run([nv.prepare(p) for p in (images[0], bad, images[1])], "explain", top_k=1)
    assert [type(r) for r in results] == [Result] * 3 and all(isinstance(r, ImageResult) for r in results)
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].image == str(bad) and "bad.jpg" in results[1].error and results[1].predictions == []
    assert results[1].to_json() == {"image": str(bad), "error": results[1].error}
    with pytest.raises(ImageReadError, match="bad.jpg"):  # the list methods raise the reader's own error
        nv.explain([images[0], bad])


def test_load_a_model_object(images: list[Path]) -> None:
    model = tiny_model()
    pre = Preprocessing(input_size=32, crop_pct=0.875)
    nv = nestviz.load(model, class_names=TINY_CLASSES, preprocessing=pre, device="cpu")
    assert nv.bundle.class_names == TINY_CLASSES and nv.bundle.preprocessing == pre
    [res] = nv.explain(images[0], top_k=1)
    assert res.predictions[0].label in TINY_CLASSES
    assert nestviz.load(model, device="cpu").bundle.class_names == ["class 0", "class 1", "class 2"]
    with pytest.raises(ValueError, match="2 class names for a 3-class head"):
        nestviz.load(model, class_names=["a", "b"], device="cpu")


def test_a_file_with_other_class_names_and_preprocessing(tiny_weights: Path) -> None:
    pre = Preprocessing(input_size=32, crop_pct=1.0)
    nv = nestviz.load(tiny_weights, class_names=["x", "y", "z"], preprocessing=pre, device="cpu")
    assert nv.bundle.class_names == ["x", "y", "z"] and nv.bundle.preprocessing == pre
    assert nv.bundle.source == str(tiny_weights)


def test_one_call_helpers_and_their_bounded_clearable_cache(tiny_weights: Path, images: list[Path],
                                                            tmp_path: Path) -> None:
    nestviz.clear_cache()
    [e] = nestviz.explain(images[0], weights=tiny_weights, device="cpu", top_k=2)
    [p] = nestviz.predict(str(images[0]), weights=tiny_weights, device="cpu", top_k=2)
    [c] = nestviz.class_maps(images[0], weights=tiny_weights, device="cpu")
    assert len(e.predictions[0].path) == 3 and c.predictions[0].cam is not None
    assert [q.class_index for q in e.predictions] == [q.class_index for q in p.predictions]
    assert len(api._cache) == 1
    copies = []
    for i in range(api.CACHE_SIZE + 2):
        copy = tmp_path / f"w{i}.safetensors"
        copy.write_bytes(tiny_weights.read_bytes())
        copies.append(copy)
        nestviz.predict(images[0], weights=copy, device="cpu")
    assert len(api._cache) == api.CACHE_SIZE
    assert [k[0] for k in api._cache] == [str(c) for c in copies[-api.CACHE_SIZE:]]  # least recent dropped
    nestviz.clear_cache()
    assert len(api._cache) == 0


def test_nestviz_explain_is_the_helper_and_the_package(tiny_weights: Path, images: list[Path]) -> None:
    import nestviz.methods.gradcat as module

    assert nestviz.methods.gradcat is module
    [res] = nestviz.explain(images[0], weights=tiny_weights, device="cpu", top_k=1)
    assert res.predictions[0].path
    nestviz.clear_cache()


def test_a_string_is_one_image_not_its_characters(nv: Nestviz, tmp_path: Path) -> None:
    path = write_image(tmp_path / "one.png")
    assert len(nv.explain(str(path), top_k=1)) == 1


# -- fit, rank, the top class ---------------------------------------------------------------------------
@pytest.mark.parametrize("fit", ["crop", "pad", "squash"])
def test_fit_in_the_api_and_locations_in_original_pixels(nv: Nestviz, tmp_path: Path, fit: str) -> None:
    path = write_image(tmp_path / "wide.png", (96, 40))
    x, geo = to_input(load_rgb(path), nv.bundle.preprocessing, fit)
    [res] = nv.annotate(path, top_k=2, fit=fit)
    raw = default_gradcat(nv.model, x[None], top_k=2)
    assert res.fit == fit and res.region == pytest.approx(geo.region())
    for r, pred in enumerate(res.predictions):
        assert [n.box for n in pred.path] == [geo.box_to_original(n.box) for n in raw.paths[0][r]]
        for n in pred.path:
            assert 0 <= n.box[0] <= n.box[2] <= 96 and 0 <= n.box[1] <= n.box[3] <= 40
        assert pred.cam.region == res.region
    if fit == "pad":  # the whole image, and the border the model saw above and below it
        assert res.region[0] == 0 and res.region[2] == 96 and res.region[1] < 0 < 40 < res.region[3]
    if fit == "squash":
        assert res.region == (0.0, 0.0, 96.0, 40.0)
    assert nestviz.predict(path, weights=nv.bundle.source, device="cpu", fit=fit)[0].fit == fit
    nestviz.clear_cache()


def test_rank_is_among_all_classes_also_for_a_named_class(nv: Nestviz, images: list[Path]) -> None:
    [ranked] = nv.predict(images[0], top_k=3)
    order = [p.class_index for p in ranked.predictions]
    [res] = nv.explain(images[0], classes=[order[2], order[0]])
    assert [(p.class_index, p.rank) for p in res.predictions] == [(order[2], 3), (order[0], 1)]
    assert res.predictions[0].heading.startswith(f"#3 {TINY_CLASSES[order[2]]} ")
    [only_last] = nv.cam(images[0], classes=[order[2]])
    assert only_last.top.class_index == order[0] and only_last.top.rank == 1  # the top class, explained or not
    assert only_last.top.probability == pytest.approx(ranked.predictions[0].probability, abs=1e-6)


# -- notebooks -------------------------------------------------------------------------------------------
def test_results_show_and_save_themselves(nv: Nestviz, images: list[Path], tmp_path: Path) -> None:
    [res] = nv.annotate(images[1], top_k=2)
    png = res._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    html = res._repr_html_()
    assert html.count("data:image/jpeg;base64,") == 2 and "<table>" in html and "<td>#1</td>" in html
    [photo] = nv.annotate(REPO / "examples" / "chelsea.jpg", top_k=2)
    full = sum(len(photo.figure_bytes(k)) for k in ("gradcat", "cam"))  # what it embedded before issue 22
    assert len(photo._repr_html_()) < full / 4, full  # previews: 70 KB for annotate -k 4, was 1.24 MB
    wide = Image.open(io.BytesIO(res.preview_bytes("gradcat", width=300)))
    assert wide.format == "JPEG" and wide.width == 300
    assert TINY_CLASSES[res.predictions[0].class_index] in html
    for name in ("x.pdf", "x.svg", "x.jpg", "x.png"):
        assert res.save(tmp_path / name).stat().st_size > 0
    assert (tmp_path / "x.pdf").read_bytes()[:5] == b"%PDF-"
    res.save(tmp_path / "c.png", kind="cam", tree=False)
    [pred_only] = nv.predict(images[1])
    assert pred_only._repr_png_() is None and "<table>" in pred_only._repr_html_()
    with pytest.raises(ValueError, match="no path or map"):
        pred_only.save(tmp_path / "p.png")
    r = repr(res)
    assert len(r) < 200 and r.startswith("Result('") and "#1 " in r and "array" not in r
    assert len(repr(res.predictions[0])) < 120 and "CamResult(2x2 map" in repr(res.predictions[0].cam)
    assert repr(nv).startswith("Nestviz('tiny.safetensors', 3 classes, cpu")


def test_a_result_from_a_path_saves_without_its_picture(nv: Nestviz, images: list[Path], tmp_path: Path) -> None:
    import pickle

    [res] = nv.explain(images[0], top_k=1)
    light = pickle.loads(pickle.dumps(res))  # what a figure worker gets: no decoded image
    assert light.picture is None and res.picture is not None
    assert light.save(tmp_path / "g.jpg").read_bytes()[:3] == b"\xff\xd8\xff"


def test_dir_lists_the_entry_points() -> None:
    names = dir(nestviz)
    for name in ("load", "explain", "class_maps", "predict", "clear_cache", "Nestviz", "ImageResult", "Result",
                 "write_figure", "FITS"):
        assert name in names, name


def test_write_figure_takes_the_format_from_the_suffix_and_checks_the_image(nv: Nestviz, images: list[Path],
                                                                           tmp_path: Path) -> None:
    from nestviz.draw import write_figure

    [res] = nv.explain(images[0], top_k=1)
    image = load_rgb(images[0])
    tmp_path = tmp_path / "figures"
    write_figure("gradcat", image, res, tmp_path / "a.pdf")
    assert (tmp_path / "a.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match=r"a\.png: the suffix says png but the format asked for is pdf"):
        write_figure("gradcat", image, res, tmp_path / "a.png", "pdf")
    with pytest.raises(ValueError, match="no suffix"):
        write_figure("gradcat", image, res, tmp_path / "figure")
    with pytest.raises(ValueError, match=r"the image is 20x10 but the result is of a 40x32 image"):
        write_figure("gradcat", image.resize((20, 10)), res, tmp_path / "b.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf"]


def test_class_folders_name_true_labels() -> None:
    from nestviz.model.classes import imagenet_class_names, label_for_folder

    names = imagenet_class_names()
    assert label_for_folder("n01440764", names) == "tench"  # an ImageNet WordNet id, with the shipped table
    assert label_for_folder("TENCH", names) == "tench" and label_for_folder("misc", names) is None
    assert label_for_folder("n01440764", ["a", "b"]) is None  # not a 1000-class model
    assert label_for_folder("n02", ["fish", "dog"], ["n01", "n02"]) == "dog"  # the model's own training folders
