"""The Pillow renderer (png, jpg): same layout as the matplotlib figures, marks at the right pixels, exact PNG files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nestviz.draw import figure_bytes, write_figure
from nestviz.draw.layout import centre, figure_layout, nice_ticks, panel_picture, title_text, view
from nestviz.draw.style import PALETTE, rgb
from nestviz.draw.raster import HEAT_ALPHA, _colormap, cam_image, gradcat_image, png_bytes
from nestviz.draw.vector import cam_figure, gradcat_figure
from tests.helpers import by_gid, LABELS, make_result

GREY = (128, 128, 128)


def grey(width: int = 64, height: int = 48) -> Image.Image:
    return Image.new("RGB", (width, height), GREY)


def to_px(result, panel, x: float, y: float) -> tuple[int, int]:
    vx0, vy0, vx1, vy1 = view(result)
    return (int(panel.left + (x - vx0) * panel.width / (vx1 - vx0)),
            int(panel.top + (y - vy0) * panel.height / (vy1 - vy0)))


# -- PNG -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (120, 331)])
def test_png_round_trips_exactly_and_says_100_dpi(shape):
    pixels = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    im = Image.open(io.BytesIO(png_bytes(pixels)))
    assert im.mode == "RGB" and im.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.asarray(im), pixels)
    assert im.info["dpi"] == pytest.approx((100, 100), abs=0.01)


# -- layout --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [1, 4, 5, 8])
@pytest.mark.parametrize("size", [(64, 48), (200, 110), (1000, 50), (7, 9)])
def test_raster_and_vector_figures_have_the_same_pixel_size(k, size):
    result = make_result(*size, k=k)
    for raster, vector in ((gradcat_image, gradcat_figure), (cam_image, cam_figure)):
        fig = vector(grey(*size), result)
        assert raster(grey(*size), result).size == tuple(round(v) for v in fig.get_size_inches() * fig.dpi)


def test_titles_fit_their_panel_with_an_ellipsis():
    pred = make_result(k=8).predictions[7]
    assert pred.label == LABELS[7]
    title = title_text(pred, 350)
    assert title.startswith("#8 a very long label") and title.endswith("\u2026 6.2%") and len(title) < 60
    assert title_text(make_result(k=1).predictions[0], 350) == "#1 French horn 50.0%"


@pytest.mark.parametrize("lo, hi, ticks", [(0.0, 1.0, [0.0, 0.25, 0.5, 0.75, 1.0]), (-3.0, 12.0, [0.0, 5.0, 10.0]),
                                          (-0.013, 0.021, [-0.01, 0.0, 0.01, 0.02]), (2.0, 2.0, [2.0])])
def test_colour_bar_ticks_are_round_numbers_inside_the_range(lo, hi, ticks):
    assert nice_ticks(lo, hi) == pytest.approx(ticks)


def test_the_part_the_model_did_not_see_is_dimmed():
    w, h = 3000, 1000
    result = make_result(w, h, k=1)
    picture = np.asarray(panel_picture(Image.new("RGB", (w, h), (200, 200, 200)), result, (500, 250)))
    assert picture.shape == (250, 500, 3)
    assert tuple(picture[125, 250]) == (200, 200, 200)
    assert tuple(picture[125, 0]) == (110, 110, 110)


# -- marks ---------------------------------------------------------------------------------------------
def test_path_dots_leaf_outline_and_frame_are_in_the_class_colour_at_their_pixels():
    result = make_result(80, 60, k=3)
    canvas = np.asarray(gradcat_image(grey(80, 60), result))
    lay = figure_layout(result, 3, colorbars=False)
    for i, (panel, pred) in enumerate(zip(lay.panels, result.predictions)):
        colour = rgb(PALETTE[i])
        nodes = sorted(pred.path, key=lambda n: -n.level)
        x, y = to_px(result, panel, *centre(nodes[-1].box))  # the leaf dot (drawn last, never covered)
        assert tuple(canvas[y, x]) == pytest.approx(colour, abs=2)
        x0, y0, x1, y1 = nodes[-1].box
        ex, ey = to_px(result, panel, x0 + (x1 - x0) * 0.25, y1)  # the leaf outline's bottom edge
        assert any(tuple(canvas[ey + d, ex]) == colour for d in (-1, 0, 1))
        assert tuple(canvas[panel.top + panel.height // 2, panel.left - 2]) == colour  # the frame


def test_cam_heat_follows_the_map_and_marks_the_peak_and_box():
    result = make_result(90, 60, k=1)
    cam = result.predictions[0].cam
    cam.raw = np.zeros((4, 4), np.float32)
    cam.raw[1, 2] = 5.0  # the hottest cell; the map's minimum is 0
    canvas = np.asarray(cam_image(grey(90, 60), result))
    panel = figure_layout(result, 1, colorbars=True).panels[0]
    x0, y0, x1, y1 = cam.region
    cx, cy = to_px(result, panel, x0 + (x1 - x0) * 2.5 / 4, y0 + (y1 - y0) * 1.5 / 4)
    lut = _colormap()

    def blended(c) -> np.ndarray:
        return np.asarray(GREY) * (1 - HEAT_ALPHA) + c * HEAT_ALPHA

    np.testing.assert_allclose(canvas[cy, cx], blended(lut[255]), atol=3)
    fx, fy = to_px(result, panel, x0 + (x1 - x0) * 0.5 / 4, y0 + (y1 - y0) * 3.5 / 4)
    np.testing.assert_allclose(canvas[fy, fx], blended(lut[0]), atol=3)
    px, py = to_px(result, panel, *cam.peak)
    assert tuple(canvas[py, px]) == rgb(PALETTE[0])
    bx, by = to_px(result, panel, (cam.box[0] + cam.box[2]) / 2, cam.box[1])
    assert any(tuple(canvas[by + d, bx]) == (255, 255, 255) for d in (-1, 0, 1))
    left, top, width, height = panel.colorbar
    assert tuple(canvas[top, left + width // 2]) == tuple(lut[255])
    assert tuple(canvas[top + height - 1, left + width // 2]) == tuple(lut[0])


def vector_pixels(fig, artist) -> np.ndarray:
    """Where a matplotlib artist's points land in the figure's pixels (origin top-left, like Pillow's)."""
    xy = artist.get_transform().transform(artist.get_xydata())
    return np.column_stack([xy[:, 0], fig.bbox.height - xy[:, 1]])


@pytest.mark.parametrize("size", [(80, 60), (200, 110), (1000, 50)])
def test_both_renderers_draw_the_marks_at_the_same_pixels(size):
    """Not only the same figure size: each path dot, leaf corner, CAM box corner and peak at the same pixel."""
    result = make_result(*size, k=3)
    fig = gradcat_figure(grey(*size), result)
    canvas = np.asarray(gradcat_image(grey(*size), result))
    panels = figure_layout(result, 3, colorbars=False).panels
    marks = zip(panels, result.predictions, by_gid(fig, "gradcat-path"), by_gid(fig, "gradcat-leaf"))
    for i, (panel, pred, path, leaf) in enumerate(marks):
        nodes = sorted(pred.path, key=lambda n: -n.level)
        ours = [to_px(result, panel, *centre(n.box)) for n in nodes]
        np.testing.assert_allclose(vector_pixels(fig, path), ours, atol=1.0)
        x0, y0, x1, y1 = nodes[-1].box
        corners = [to_px(result, panel, x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
        np.testing.assert_allclose(vector_pixels(fig, leaf), corners, atol=1.0)
        lx, ly = (round(v) for v in vector_pixels(fig, path)[-1])  # the leaf dot, where the vector one is
        assert tuple(canvas[ly, lx]) == pytest.approx(rgb(PALETTE[i]), abs=2)
    fig = cam_figure(grey(*size), result)
    canvas = np.asarray(cam_image(grey(*size), result))
    panels = figure_layout(result, 3, colorbars=True).panels
    for i, (panel, pred, box, peak) in enumerate(zip(panels, result.predictions, by_gid(fig, "cam-box"),
                                                     by_gid(fig, "cam-peak"))):
        bx0, by0, bx1, by1 = pred.cam.box
        corners = [to_px(result, panel, x, y) for x, y in ((bx0, by0), (bx1, by0), (bx1, by1), (bx0, by1), (bx0, by0))]
        np.testing.assert_allclose(vector_pixels(fig, box), corners, atol=1.0)
        px, py = (round(v) for v in vector_pixels(fig, peak)[0])
        assert (px, py) == pytest.approx(to_px(result, panel, *pred.cam.peak), abs=1)
        assert tuple(canvas[py, px]) == rgb(PALETTE[i])


def test_each_class_has_its_own_frame_colour():
    result = make_result(k=10)
    canvas = np.asarray(gradcat_image(grey(), result))
    lay = figure_layout(result, 10, colorbars=False)
    frames = {tuple(canvas[p.top + p.height // 2, p.left - 2]) for p in lay.panels}
    assert frames == {rgb(c) for c in PALETTE}


# -- files ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gradcat", "cam"])
@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_raster_files_are_deterministic_and_decode_to_the_figure(kind, fmt):
    image = Image.effect_noise((64, 48), 60).convert("RGB")
    a, b = (figure_bytes(kind, image, make_result(k=2), fmt) for _ in range(2))
    assert a == b
    drawn = (gradcat_image if kind == "gradcat" else cam_image)(image, make_result(k=2))
    decoded = Image.open(io.BytesIO(a))
    assert decoded.size == drawn.size and decoded.format == {"png": "PNG", "jpg": "JPEG"}[fmt]
    if fmt == "png":
        np.testing.assert_array_equal(np.asarray(decoded), np.asarray(drawn))


def test_unknown_kind_or_format_is_one_line():
    with pytest.raises(ValueError, match=r"^unknown figure format 'bmp'; known: png, jpg, svg, pdf$"):
        figure_bytes("gradcat", grey(), make_result(), "bmp")
    with pytest.raises(ValueError, match=r"^unknown figure kind 'x'; known: gradcat, cam$"):
        figure_bytes("x", grey(), make_result(), "png")


def test_a_failed_figure_keeps_the_previous_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "cat.gradcat.png"
    path.write_bytes(b"old")
    result = make_result(k=1)
    result.predictions[0].path = None
    with pytest.raises(ValueError, match="no explained class"):
        write_figure("gradcat", grey(), result, path, "png")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["cat.gradcat.png"]
    write_figure("gradcat", grey(), make_result(k=1), path, "png")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_png_is_the_same_image_with_plain_zlib(monkeypatch):
    import zlib

    import nestviz.draw.raster as raster

    pixels = np.random.default_rng(2).integers(0, 256, (31, 17, 3), dtype=np.uint8)
    monkeypatch.setattr(raster, "deflate", zlib.compress)  # the fallback where no isal wheel exists
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(pixels)))), pixels)


# -- what the figures say ---------------------------------------------------------------------------------
def test_the_tree_diagram_lands_at_the_same_pixels_in_both_renderers():
    from nestviz.draw.tree import tree_diagram

    result = make_result(200, 110, k=2, levels=4, size=64)
    canvas = np.asarray(gradcat_image(grey(200, 110), result, tree=True))
    fig = gradcat_figure(grey(200, 110), result, tree=True)
    fig.canvas.draw()
    vector = np.asarray(fig.canvas.buffer_rgba())[:, :, :3]
    assert canvas.shape == vector.shape
    lay = figure_layout(result, 2, colorbars=False, tree=True)
    for i, (panel, pred) in enumerate(zip(lay.panels, result.predictions)):
        diagram = tree_diagram(pred, panel.tree)
        assert len(diagram.nodes) == 1 + 4 * 3 and sum(n.chosen for n in diagram.nodes) == 4  # root + one per level
        chosen = [n for n in diagram.nodes if n.chosen]
        for n in diagram.nodes:
            x0, y0, x1, y1 = (round(v) for v in n.box)
            fill = rgb(PALETTE[i]) if n.chosen else (255, 255, 255)
            for pixels in (canvas, vector):  # a corner inside the box, off its text
                assert tuple(pixels[y0 + 4, x0 + 3]) == pytest.approx(fill, abs=3), (n, pixels is canvas)
        below = [e for e in diagram.edges if e.chosen]  # the chosen path, top to bottom
        assert [e.end for e in below] == [((n.box[0] + n.box[2]) / 2, n.box[1]) for n in chosen[1:]]
    assert len([a for a in fig.axes if a.get_gid() == "gradcat-tree"]) == 2


def test_header_names_the_file_true_label_top_class_and_fit():
    from nestviz.draw.layout import header_lines

    result = make_result(k=2)
    result.true_label, result.top = "church", result.predictions[0]
    lines = header_lines(result, "gradcat", 2000)
    assert lines[0] == ("img.jpg  \u00b7  true: church  \u00b7  model's top class: #1 French horn 50.0%  \u00b7  fit: crop",
                        8.0, True)
    assert lines[1][0] == "Numbers: each child's score / the sum of the 4 children's |scores| (signed); bold: the path"
    assert "threshold" in header_lines(result, "cam", 2000)[1][0]
    narrow = header_lines(result, "gradcat", 200)  # wrapped to the figure's width, never cut
    assert len(narrow) > 2 and not any("\u2026" in t for t, _, _ in narrow)
    facts = " ".join(t for t, _, bold in narrow if bold)
    for fact in ("img.jpg", "true: church", "model's top class: #1 French horn 50.0%", "fit: crop"):
        assert fact in facts
    fig = gradcat_figure(grey(), result)
    assert [t.get_text() for t in fig.texts if t.get_gid() == "header-0"][0].startswith("img.jpg")


@pytest.mark.parametrize("kind", ["gradcat", "cam"])
def test_a_one_panel_header_keeps_every_fact_inside_the_figure(kind):
    """Issue 22: at -k 1 the header lost the model's top class and the fit, and the legend was cut."""
    result = make_result(451, 300, k=1)
    result.image = "/data/imagenette/val/n03000684/ILSVRC2012_val_00012345_a_long_name.JPEG"
    result.true_label, result.top = "chain saw", result.predictions[0]
    fig = (gradcat_figure if kind == "gradcat" else cam_figure)(grey(451, 300), result)
    width = fig.get_size_inches()[0] * fig.dpi
    header = [t for t in fig.texts if (t.get_gid() or "").startswith("header-")]
    renderer = fig.canvas.get_renderer()
    assert all(t.get_window_extent(renderer).x1 <= width - 4 for t in header)  # drawn inside the figure
    text = " ".join(t.get_text() for t in header)
    for fact in ("ILSVRC2012_val_00012345_a_long_name.JPEG", "true: chain saw", "model's top class: #1 French horn 50.0%",
                 "fit: crop", "bold: the path" if kind == "gradcat" else "the peak"):
        assert fact in text, (fact, text)
    image = np.asarray((gradcat_image if kind == "gradcat" else cam_image)(grey(451, 300), result))
    top = figure_layout(result, 1, colorbars=kind == "cam").panels[0].top - 34  # above the panel's title
    ink = np.flatnonzero((image[:top] < 200).any(axis=(0, 2)))
    assert ink.max() < image.shape[1] - 4  # the Pillow header fits too


def test_vector_files_embed_truetype_and_keep_svg_text():
    """Issue 22: PDFs embedded Type 3 fonts and SVG text was outlined."""
    result = make_result(k=4)
    result.top = result.predictions[0]
    pdf = figure_bytes("gradcat", grey(), result, "pdf")
    assert b"/Type3" not in pdf and b"/FontFile2" in pdf  # TrueType (Type 42), embedded
    svg = figure_bytes("cam", grey(), result, "svg").decode()
    assert "<text" in svg and "fit: crop" in svg




def test_the_threshold_tick_is_labelled_where_the_box_threshold_lies():
    from nestviz.draw.layout import threshold_value

    result = make_result(k=1)
    cam = result.predictions[0].cam
    lo, hi = float(cam.raw.min()), float(cam.raw.max())
    assert threshold_value(lo, hi, 0.2) == pytest.approx(lo + 0.2 * (hi - lo))
    fig = cam_figure(grey(), result)
    cax = fig.axes[1]
    assert "box" in [t.get_text().strip() for t in cax.texts]
    [tick] = [a for a in cax.get_children() if a.get_gid() == "cam-threshold"]
    assert tick.get_ydata()[0] == pytest.approx(threshold_value(lo, hi, 0.2))
    canvas = np.asarray(cam_image(grey(), result))
    panel = figure_layout(result, 1, colorbars=True).panels[0]
    left, top, width, height = panel.colorbar
    y = round(top + (hi - threshold_value(lo, hi, 0.2)) / (hi - lo) * (height - 1))
    assert tuple(canvas[y, left + width // 2]) == (255, 255, 255)


def test_pad_figures_show_the_border_the_model_saw():
    from nestviz.preprocess import Preprocessing, plan_geometry

    result = make_result(120, 60, k=1)
    geo = plan_geometry(120, 60, Preprocessing(input_size=32), "pad")
    result.fit, result.region = "pad", geo.region()
    assert view(result) == result.region
    picture = np.asarray(panel_picture(grey(120, 60), result, (100, 100)))
    assert tuple(picture[5, 50]) == result.pad_rgb and tuple(picture[95, 50]) == result.pad_rgb  # above, below
    assert tuple(picture[50, 50]) == GREY
    lay = figure_layout(result, 1, colorbars=False)
    assert lay.panels[0].width == lay.panels[0].height  # the square the model saw


def test_compact_figures_are_smaller():
    result = make_result(320, 240, k=4)
    full = figure_bytes("gradcat", grey(320, 240), result, "jpg")
    small = figure_bytes("gradcat", grey(320, 240), result, "jpg", compact=True)
    assert len(small) < 0.7 * len(full)
    assert Image.open(io.BytesIO(small)).width < Image.open(io.BytesIO(full)).width
