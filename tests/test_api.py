"""The Python API as users call it: every entry point, every input type, one result type, the model cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nestviz
from nestviz import api
from nestviz.api import Nestviz
from nestviz.explain.cam import cam, localize
from nestviz.explain.gradcat import gradcat
from nestviz.images import ImageReadError, load_rgb
from nestviz.preprocess import Preprocessing, to_input
from nestviz.results import ImageResult

from .conftest import TINY_CLASSES, tiny_model, write_image


@pytest.fixture
def nv(tiny_weights: Path) -> Nestviz:
    return nestviz.load(tiny_weights, device="cpu")


def test_every_method_answers_in_original_pixels_converted_once(nv: Nestviz, images: list[Path]) -> None:
    """The API's boxes are explain/'s model-input boxes mapped through the image's geometry."""
    path = images[2]  # 56 x 40: resized and cropped, so the two frames differ
    x, geo = to_input(load_rgb(path), nv.bundle.preprocessing)
    [res] = nv.annotate(path, top_k=2)
    raw = gradcat(nv.model, x[None], top_k=2)
    maps = cam(nv.model, x[None], classes=[p.class_index for p in res.predictions]).maps[0]
    assert (res.width, res.height) == (56, 40)
    assert res.region == geo.box_to_original((0.0, 0.0, 32.0, 32.0))
    for r, pred in enumerate(res.predictions):
        assert [n.box for n in pred.path] == [geo.box_to_original(n.box) for n in raw.paths[0][r]]
        box, peak = localize(maps[r], geo.size, 0.2)
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


@pytest.mark.parametrize("kind", ["str", "path", "pil", "array", "float array", "tensor"])
def test_one_image_of_any_kind_or_a_list(nv: Nestviz, images: list[Path], kind: str) -> None:
    path = images[1]
    pixels = np.asarray(load_rgb(path))
    one = {"str": str(path), "path": path, "pil": Image.open(path), "array": pixels,
           "float array": pixels / 255.0, "tensor": torch.from_numpy(pixels.copy()).permute(2, 0, 1)}[kind]
    [expected] = nv.predict([path], top_k=2)
    for given in (one, [one]):
        [res] = nv.predict(given, top_k=2)
        assert [q.class_index for q in res.predictions] == [q.class_index for q in expected.predictions]
        assert [q.probability for q in res.predictions] == pytest.approx(
            [q.probability for q in expected.predictions], abs=1e-4)
        assert (res.width, res.height) == (expected.width, expected.height)


def test_a_batch_tensor_is_many_images(nv: Nestviz) -> None:
    batch = torch.rand(3, 3, 40, 48)
    assert len(nv.predict(batch)) == 3
    with pytest.raises(ValueError, match="image array"):
        nv.predict(np.zeros((4, 4, 2), np.uint8))


def test_one_result_type_with_the_error_as_a_field(nv: Nestviz, images: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("no")
    results = nv.run([nv.prepare(p) for p in (images[0], bad, images[1])], "explain", top_k=1)
    assert [type(r) for r in results] == [ImageResult] * 3
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
    import nestviz.explain.gradcat as module

    assert nestviz.explain.gradcat is module
    [res] = nestviz.explain(images[0], weights=tiny_weights, device="cpu", top_k=1)
    assert res.predictions[0].path
    nestviz.clear_cache()


def test_a_string_is_one_image_not_its_characters(nv: Nestviz, tmp_path: Path) -> None:
    path = write_image(tmp_path / "one.png")
    assert len(nv.explain(str(path), top_k=1)) == 1
