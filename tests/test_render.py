"""Figures: valid files in every format, written atomically and deterministically, with what was asked drawn where."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from nestviz.draw.layout import (LEGENDS, MAX_ASPECT, SETTLED_LEGEND, child_shares, figure_layout, header_lines,
                                 score_labels, view)
from nestviz.draw.style import PALETTE, SETTLED, rgb
from nestviz.draw import FORMATS, figure_bytes, write_figure
from nestviz.draw.vector import cam_figure, gradcat_figure
from .helpers import by_gid, image, LABELS, make_result

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpg": b"\xff\xd8\xff", "svg": b"<?xml", "pdf": b"%PDF-"}


def centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


# -- files (through the path users take: nestviz.draw) ---------------------------------------------------
@pytest.mark.parametrize("kind", ["gradcat", "cam"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_writes_a_valid_file_and_no_temp(tmp_path, fmt, kind):
    path = tmp_path / f"fig.{fmt}"
    write_figure(kind, image(), make_result(), path, fmt)
    assert path.read_bytes().startswith(MAGIC[fmt])
    other = tmp_path / "no-suffix"
    write_figure(kind, image(), make_result(), other, fmt.upper())  # the format is the argument, not the suffix
    assert other.read_bytes().startswith(MAGIC[fmt])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, other.name])


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_png_and_jpg_have_the_figure_pixel_size(tmp_path, fmt):
    fig = gradcat_figure(image(), make_result(k=3))
    w, h = FigureCanvasAgg(fig).get_width_height()
    write_figure("gradcat", image(), make_result(k=3), tmp_path / f"a.{fmt}", fmt)
    assert Image.open(tmp_path / f"a.{fmt}").size == (w, h)
    assert Image.open(tmp_path / f"a.{fmt}").mode == "RGB"


def test_svg_and_pdf_hold_the_drawing_as_paths_and_text(tmp_path):
    svg = figure_bytes("gradcat", image(), make_result(k=2), "svg").decode()
    assert svg.count('id="gradcat-path') == 2 and "gradcat-leaf" in svg and "<image" in svg
    pdf = figure_bytes("cam", image(), make_result(k=1), "pdf")
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")


class Boom(Artist):
    def draw(self, renderer):  # noqa: ARG002
        raise RuntimeError("boom")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failing_save_leaves_no_file_and_no_temp(tmp_path, fmt, monkeypatch):
    import nestviz.draw.raster as raster
    import nestviz.draw.vector as vector

    def gradcat_with_boom(*args, **kwargs):
        fig = gradcat_figure(*args, **kwargs)
        fig.axes[0].add_artist(Boom())
        return fig

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(vector, "gradcat_figure", gradcat_with_boom)
    monkeypatch.setattr(raster, "encode_image", boom)
    with pytest.raises(RuntimeError, match="boom"):
        write_figure("gradcat", image(), make_result(), tmp_path / f"fig.{fmt}", fmt)
    assert list(tmp_path.iterdir()) == []


def test_a_failing_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "fig.svg"
    path.write_bytes(b"old")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", fail)
    with pytest.raises(OSError, match="disk full"):
        write_figure("gradcat", image(), make_result(), path, "svg")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.svg"]


def test_unknown_format_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"^unknown figure format 'bmp'; known: png, jpg, svg, pdf$"):
        write_figure("gradcat", image(), make_result(), tmp_path / "fig.bmp", "bmp")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["gradcat", "cam"])
def test_rendering_twice_gives_identical_bytes(tmp_path, fmt, kind):
    for name in ("a", "b"):
        write_figure(kind, image(), make_result(k=2), tmp_path / f"{name}.{fmt}", fmt)
    assert (tmp_path / f"a.{fmt}").read_bytes() == (tmp_path / f"b.{fmt}").read_bytes()


# -- layout --------------------------------------------------------------------------------------------
def panel_sizes(fig: Figure, axes) -> set[tuple[int, int]]:
    fig.canvas.draw()
    return {(round(ax.bbox.width), round(ax.bbox.height)) for ax in axes}


@pytest.mark.parametrize("k, rows", [(1, 1), (4, 1), (5, 2), (8, 2)])
def test_one_axes_per_panel_up_to_four_a_row(k, rows):
    fig = gradcat_figure(image(), make_result(k=k))
    assert len(fig.axes) == k
    assert len({round(ax.get_position().y0, 4) for ax in fig.axes}) == rows
    assert len(panel_sizes(fig, fig.axes)) == 1


@pytest.mark.parametrize("k", [1, 8])
def test_cam_has_one_axes_and_one_colour_bar_per_panel(k):
    fig = cam_figure(image(), make_result(k=k))
    assert len(fig.axes) == 2 * k
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "class score (logit)"]
    assert len(bars) == k
    for bar, pred in zip(bars, make_result(k=k).predictions):  # raw logit values, min to max
        assert bar.get_ylim() == pytest.approx((float(pred.cam.raw.min()), float(pred.cam.raw.max())))


@pytest.mark.parametrize("size", [(200, 110), (90, 160), (33, 20), (7, 9)])
def test_panels_follow_the_image_aspect_and_show_original_pixels(size):
    w, h = size
    fig = gradcat_figure(image(w, h), make_result(w, h, k=2))
    (pw, ph), = panel_sizes(fig, fig.axes)
    assert pw / ph == pytest.approx(w / h, rel=0.02)
    ax = fig.axes[0]
    assert ax.get_xlim() == (0, w) and ax.get_ylim() == (h, 0)


def test_very_wide_images_show_the_model_region_with_some_context():
    w, h = 1000, 50
    result = make_result(w, h)
    fig = gradcat_figure(image(w, h), result)
    x0, x1 = fig.axes[0].get_xlim()
    rx0, _, rx1, _ = result.predictions[0].path[0].box
    assert x1 - x0 == pytest.approx(MAX_ASPECT * h)
    assert x0 <= rx0 and rx1 <= x1
    assert fig.axes[0].get_ylim() == (h, 0)


def test_large_images_are_drawn_at_panel_resolution_with_the_unseen_part_dimmed():
    w, h = 3000, 1000
    grey = Image.new("RGB", (w, h), (200, 200, 200))
    fig = gradcat_figure(grey, make_result(w, h, k=1))
    picture = fig.images[0].get_array()
    (pw, ph), = panel_sizes(fig, fig.axes)
    assert picture.shape[:2] == (ph, pw)
    assert tuple(picture[ph // 2, pw // 2, :3]) == (200, 200, 200)  # centre: seen by the model
    assert tuple(picture[ph // 2, 0, :3]) == (110, 110, 110)  # left edge: cropped away, dimmed


# -- content -------------------------------------------------------------------------------------------
def test_titles_give_rank_label_and_percentage():
    fig = gradcat_figure(image(), make_result(k=2))
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["#1 French horn 50.0%", "#2 tabby cat 25.0%"]
    fig = cam_figure(image(), make_result(k=1))
    assert fig.axes[0].get_title(loc="left") == "#1 French horn 50.0%"


def test_long_labels_are_cut_with_an_ellipsis():
    title = gradcat_figure(image(), make_result(k=8)).axes[7].get_title(loc="left")
    assert title.startswith("#8 a very long label") and title.endswith("\u2026 6.2%")
    assert len(title) < len(LABELS[7])


def test_path_dots_are_the_node_centres_root_to_leaf_and_the_leaf_is_outlined():
    result = make_result(80, 60, k=3)
    fig = gradcat_figure(image(80, 60), result)
    paths, leaves = by_gid(fig, "gradcat-path"), by_gid(fig, "gradcat-leaf")
    assert len(paths) == len(leaves) == 3
    for line, leaf, pred in zip(paths, leaves, result.predictions):
        nodes = sorted(pred.path, key=lambda n: -n.level)
        np.testing.assert_allclose(line.get_xydata(), [centre(n.box) for n in nodes])
        x0, y0, x1, y1 = nodes[-1].box
        np.testing.assert_allclose(leaf.get_xydata(), [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)])


def test_child_scores_are_shares_near_their_quadrants_and_the_chosen_one_highlighted():
    result = make_result(320, 240, k=1)
    fig = gradcat_figure(image(320, 240), result)
    chosen, others = by_gid(fig, "gradcat-score-chosen"), by_gid(fig, "gradcat-score")
    inner = [n for n in sorted(result.predictions[0].path, key=lambda n: -n.level) if n.child_scores]
    for n in inner:  # one scale for every level: each child's share of the node's total |score|
        total = sum(abs(v) for v in n.child_scores)
        assert child_shares(n) == [f"{100 * v / total:.0f}%".replace("-", "\u2212") for v in n.child_scores]
    assert [t.get_text() for t in chosen] == [child_shares(n)[n.chosen_child] for n in inner]
    assert len(others) == 3 * len(inner)  # a large panel has room for every label
    lay = figure_layout(result, 1, colorbars=False)
    panel = lay.panels[0]
    vx0, vy0, vx1, vy1 = view(result)
    root = inner[0]
    for q, text in enumerate(child_shares(root)):  # within a label's width of its quadrant's centre
        qx = root.box[0] + (root.box[2] - root.box[0]) * (0.25 if q % 2 == 0 else 0.75)
        qy = root.box[1] + (root.box[3] - root.box[1]) * (0.25 if q < 2 else 0.75)
        px = panel.left + (qx - vx0) * panel.width / (vx1 - vx0)
        py = panel.top + (qy - vy0) * panel.height / (vy1 - vy0)
        placed = [t.get_position() for t in chosen + others if t.get_text() == text]  # texts may repeat
        assert min(abs(x * lay.width - px) + abs((1 - y) * lay.height - py) for x, y in placed) < 50
    assert chosen[0].get_bbox_patch().get_facecolor() != others[0].get_bbox_patch().get_facecolor()


def test_a_root_whose_close_call_removal_decided_marks_its_chosen_child_in_the_figure_and_the_legend():
    result = make_result(320, 240, k=1)
    root = max(result.predictions[0].path, key=lambda n: n.level)
    plain = child_shares(root)
    root.removal_drops = [0.1 if q == root.chosen_child else None for q in range(4)]
    root.removal_drops[(root.chosen_child + 1) % 4] = 0.05
    marked = child_shares(root)
    assert marked[root.chosen_child] == plain[root.chosen_child] + SETTLED
    assert [t for q, t in enumerate(marked) if q != root.chosen_child] == \
           [t for q, t in enumerate(plain) if q != root.chosen_child]
    fig = gradcat_figure(image(320, 240), result)
    assert plain[root.chosen_child] + SETTLED in [t.get_text() for t in by_gid(fig, "gradcat-score-chosen")]
    legend = " ".join(text for text, _, bold in header_lines(result, "gradcat", 4000) if not bold)
    assert legend == f"{LEGENDS['gradcat']}; {SETTLED_LEGEND}" and SETTLED_LEGEND.startswith(f"{SETTLED}: a close call")
    root.removal_drops = None  # no close call drawn: no mark in the legend
    assert " ".join(t for t, _, bold in header_lines(result, "gradcat", 4000) if not bold) == LEGENDS["gradcat"]


@pytest.mark.parametrize("size", [(64, 48), (320, 240), (1000, 50), (50, 1000)])
@pytest.mark.parametrize("levels", [3, 4, 5])
def test_score_labels_never_overlap_and_stay_in_their_panel(size, levels):
    result = make_result(*size, k=4, levels=levels, size=2 ** (levels + 2))
    lay = figure_layout(result, 4, colorbars=False)
    for panel, pred in zip(lay.panels, result.predictions):
        vx0, vy0, vx1, vy1 = view(result)

        def to_px(x, y, panel=panel):
            return panel.left + (x - vx0) * panel.width / (vx1 - vx0), panel.top + (y - vy0) * panel.height / (vy1 - vy0)

        labels = score_labels(pred, to_px, panel)
        assert labels and labels[0].chosen  # the chosen child of the root is always shown
        for i, a in enumerate(labels):
            assert panel.left <= a.x and a.x + a.width <= panel.left + panel.width
            assert panel.top <= a.y - a.height / 2 and a.y + a.height / 2 <= panel.top + panel.height
            assert not any(a.overlaps(b, gap=0) for b in labels[i + 1:])


def test_each_of_ten_classes_has_its_own_colour():
    fig = gradcat_figure(image(), make_result(k=10))
    assert len({line.get_color() for line in by_gid(fig, "gradcat-path")}) == 10
    rgbs = [np.array(rgb(c), dtype=float) for c in PALETTE[:10]]
    assert min(np.linalg.norm(a - b) for i, a in enumerate(rgbs) for b in rgbs[i + 1:]) > 60  # distinct, not shades


def test_cam_map_box_and_peak_are_placed_in_original_pixels():
    result = make_result(90, 60, k=1)
    cam = result.predictions[0].cam
    fig = cam_figure(image(90, 60), result)
    heat = fig.axes[0].get_images()[0]
    x0, y0, x1, y1 = cam.region
    assert heat.get_extent() == pytest.approx([x0, x1, y1, y0])
    np.testing.assert_array_equal(heat.get_array(), cam.raw)
    bx0, by0, bx1, by1 = cam.box
    box, = by_gid(fig, "cam-box")
    np.testing.assert_allclose(box.get_xydata(), [(bx0, by0), (bx1, by0), (bx1, by1), (bx0, by1), (bx0, by0)])
    peak, = by_gid(fig, "cam-peak")
    np.testing.assert_allclose(peak.get_xydata(), [cam.peak])


def test_agg_canvas_and_no_pyplot_figures(tmp_path):
    plt.close("all")
    for figure in (gradcat_figure, cam_figure):
        fig = figure(image(), make_result(k=4))
        assert isinstance(fig.canvas, FigureCanvasAgg)
        fig.canvas.draw()
    assert plt.get_fignums() == []


def test_nothing_to_draw_is_a_clear_error():
    result = make_result(k=1)
    result.predictions[0].path = None
    with pytest.raises(ValueError, match="no explained class"):
        gradcat_figure(image(), result)
