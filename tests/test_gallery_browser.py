"""The gallery page in a real browser: Debian's Chromium driven by Playwright (never Playwright's own browsers).

Skipped where Playwright or Chromium is missing (.ci/run installs Chromium). Runs on 5,000
synthetic records and on a real small run (the example photos). Every test writes a screenshot
under its temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = next((p for p in (os.environ.get("NESTVIZ_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and os.path.isfile(p)), None)
if CHROMIUM is None:
    pytest.skip("no Chromium (apt-get install chromium)", allow_module_level=True)

from nestviz.batch.gallery import gallery_data, write_gallery  # noqa: E402
from nestviz.draw.style import SETTLED  # noqa: E402
from nestviz.methods.cam import localize  # noqa: E402
from tests.gallery_synth import REPO, real_run, synthetic_run  # noqa: E402

N = 5000
METRICS = {"metrics": {"cam": {"maxboxacc_v2": 0.512, "pointing_game": 0.908},
                       "gradcat": {"maxboxacc_v2": 0.431, "pointing_game": 0.933},
                       "centre": {"maxboxacc_v2": 0.39, "pointing_game": 0.61}}}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        except Exception as e:  # a Chromium that cannot start here (no display libraries, ...)
            pytest.skip(f"Chromium does not start: {e}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("synthetic")
    records = synthetic_run(out, N)
    write_gallery(out, records, "nestviz annotate val/", {"done": N, "failed": 52, "seconds": 800.0}, metrics=METRICS)
    return out, gallery_data(out, records, "", {})["items"]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("real")
    records = real_run(out)
    write_gallery(out, records, "nestviz annotate examples/", {"done": 5, "failed": 1, "seconds": 2.3}, metrics=METRICS)
    return out, records


class Gallery:
    """A page of the gallery with its console errors collected."""

    def __init__(self, browser: Any, out: Path, tmp_path: Path, hash_: str = "", width: int = 1280):
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.tmp_path = tmp_path
        self.page.goto((out / "index.html").as_uri() + hash_)
        self.page.wait_for_function("document.documentElement.dataset.ready === '1'", timeout=20_000)

    def count(self) -> int:
        """The number of cards shown, once no debounced filter input is pending."""
        self.page.wait_for_function("document.getElementById('count').dataset.pending !== '1'")
        return int(self.page.get_attribute("#count", "data-count"))

    def hash(self) -> str:
        return self.page.evaluate("location.hash")

    def cards(self) -> list[dict]:
        """The rendered cards in grid order: id and position."""
        return self.page.evaluate("""Array.from(document.querySelectorAll('#grid .card'))
            .map(c => ({id: +c.dataset.id, pos: +c.dataset.pos})).sort((a, b) => a.pos - b.pos)""")

    def sort(self, key: str, direction: str | None = None) -> None:
        """Choose the sort key (and order), then let the grid redraw."""
        self.page.select_option("#f-sort", key)
        if direction is not None:
            self.page.select_option("#f-dir", direction)
        self.settled()

    def settled(self) -> None:
        """Wait until the grid is drawn for the current state (a scroll queues a draw for the next frame)."""
        self.page.wait_for_function("document.getElementById('grid').dataset.drawQueued !== '1'")

    def photo_loaded(self) -> None:
        """Wait until the detail view's photo (under the heatmap) is decoded: screenshots show it."""
        self.page.wait_for_function("Array.from(document.querySelectorAll('#d-body .stage img'))"
                                    ".every(i => i.complete && i.naturalWidth > 0)")

    def shot(self, name: str) -> Path:
        path = self.tmp_path / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def close(self) -> None:
        assert self.errors == [], self.errors
        self.page.close()


def test_synthetic_loads_and_filters_change_the_count(browser: Any, synthetic: tuple[Path, list[dict]],
                                                     tmp_path: Path) -> None:
    out, items = synthetic
    g = Gallery(browser, out, tmp_path)
    page = g.page
    assert g.count() == len(items) == N
    assert page.inner_text("#count") == "Showing all 5,000 images"
    assert page.evaluate("window.NESTVIZ_READY_MS") < 5000  # about 0.3 s here; the issue asks for 2 s
    assert "top-1 accuracy" in page.inner_text("#summary") and "maxboxacc_v2" in page.inner_text("#summary")
    g.shot("summary")

    page.select_option("#f-pred", "tench")
    assert g.count() == sum(it["pred"] == "tench" for it in items)
    page.select_option("#f-correct", "wrong")
    assert g.count() == sum(it["pred"] == "tench" and it["correct"] is False for it in items)
    page.click("#f-reset")
    page.fill("#f-pmin", "0.9")
    assert g.count() == sum(it["p"] is not None and it["p"] >= 0.9 for it in items)
    page.fill("#f-pmax", "0.95")
    assert g.count() == sum(it["p"] is not None and 0.9 <= it["p"] <= 0.95 for it in items)
    page.click("#f-reset")
    page.fill("#f-q", "IMG_0012")
    assert g.count() == sum("img_0012" in it["image"].lower() for it in items) == 10
    page.fill("#f-q", "")
    page.select_option("#f-agree", "disagree")
    assert g.count() == sum(it["agree"] is False for it in items)
    page.select_option("#f-agree", "")
    page.select_option("#f-falls", "falls")
    assert g.count() == sum(it["falls"] is True for it in items) > 0
    page.select_option("#f-falls", "unknown")
    assert g.count() == sum(it["falls"] is None for it in items) > 0
    page.select_option("#f-falls", "")
    page.select_option("#f-status", "error")
    failed = sum(it["status"] == "error" for it in items)
    assert g.count() == failed > 0
    page.focus("#grid")
    page.wait_for_selector("#grid .card.active")
    g.settled()
    assert page.locator("#grid .card.failed").count() == min(failed, page.locator("#grid .card").count()) > 0
    g.shot("failures")
    g.close()


def test_sorting_orders_the_cards(browser: Any, synthetic: tuple[Path, list[dict]], tmp_path: Path) -> None:
    out, items = synthetic
    g = Gallery(browser, out, tmp_path)
    page = g.page
    by_id = {it["id"]: it for it in items}
    page.focus("#grid")
    for sort, direction, key in (("conf", "desc", lambda it: -it["p"]), ("margin", "asc", lambda it: it["margin"]),
                                 ("conf", "asc", lambda it: it["p"])):
        g.sort(sort, direction)
        shown = [by_id[c["id"]] for c in g.cards()]
        assert len(shown) >= 12
        keys = [key(it) for it in shown]
        assert keys == sorted(keys)
        expected = sorted((it for it in items if it[{"conf": "p", "margin": "margin"}[sort]] is not None), key=key)
        assert key(shown[0]) == key(expected[0])
    g.shot("sorted-by-confidence")
    g.sort("name", "asc")
    names = [by_id[c["id"]]["name"].lower() for c in g.cards()]
    assert names == sorted(names) and names[0] == min(it["name"].lower() for it in items)
    g.sort("agree")
    assert by_id[g.cards()[0]["id"]]["agree"] is False  # ascending: disagreements first
    g.sort("drop", "desc")
    drops = [by_id[c["id"]]["drop"] for c in g.cards()]
    assert drops == sorted(drops, reverse=True) and drops[0] == max(it["drop"] for it in items if it["drop"] is not None)
    page.keyboard.press("End")  # the last card is rendered and active after End
    sync_api.expect(page.locator("#grid .card.active")).to_have_attribute("aria-posinset", str(len(items)))
    g.shot("end-of-grid")
    g.close()


def test_the_url_round_trips_the_filter_state(browser: Any, synthetic: tuple[Path, list[dict]], tmp_path: Path) -> None:
    out, items = synthetic
    g = Gallery(browser, out, tmp_path)
    page = g.page
    page.select_option("#f-true", "church")
    page.select_option("#f-correct", "wrong")
    page.fill("#f-pmin", "0.5")
    page.fill("#f-q", "img_0")
    page.select_option("#f-sort", "margin")
    page.select_option("#f-dir", "desc")
    n = g.count()
    h = g.hash()
    assert re.search(r"true=church", h) and "correct=wrong" in h and "pmin=0.5" in h and "sort=margin" in h
    assert n == sum(it["true"] == "church" and it["correct"] is False and it["p"] >= 0.5 and "img_0" in it["image"]
                    for it in items) > 0
    values = page.evaluate("Array.from(document.querySelectorAll('#filters [name]')).map(e => [e.name, e.value])")
    g.close()

    g2 = Gallery(browser, out, tmp_path, hash_=h)  # a bookmark of that view
    assert g2.count() == n and g2.hash() == h
    assert g2.page.evaluate("Array.from(document.querySelectorAll('#filters [name]')).map(e => [e.name, e.value])") \
        == values
    g2.shot("bookmarked-view")
    # a confusion cell opens its filtered view
    cell = g2.page.locator("table.matrix td.off a").first
    label = cell.get_attribute("aria-label")
    cell.click()
    m = re.match(r"(\d+) images of (.+) predicted (.+)$", label)
    g2.page.wait_for_function(f"location.hash.includes('pred=') && "  # the click's view is applied (hash, then grid)
                              f"document.getElementById('count').dataset.count === '{int(m.group(1))}'")
    assert g2.count() == int(m.group(1)) == sum(it["true"] == m.group(2) and it["pred"] == m.group(3) for it in items)
    assert "correct" not in g2.hash() and "sort" not in g2.hash()
    g2.shot("confusion-cell")
    g2.close()


def test_detail_view_sliders_and_keys(browser: Any, real: tuple[Path, list[dict]], tmp_path: Path) -> None:
    out, records = real
    g = Gallery(browser, out, tmp_path)
    page = g.page
    assert g.count() == 6
    assert "Failures (1)" in page.inner_text("#failures")
    assert "cannot identify image file" in page.inner_text("table.failures")
    g.shot("grid")
    # keyboard only: Tab reaches the grid, arrows move, Enter opens
    page.focus("#f-reset")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "grid"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    page.wait_for_selector("dialog#detail[open]")
    page.wait_for_selector("#cam-box")
    assert page.inner_text("#d-title") == "chelsea.jpg"
    assert "open=" in g.hash()
    chelsea = next(r for r in records if r["image"].endswith("chelsea.jpg"))
    top = chelsea["predictions"][0]
    # the box the page computes from the raw map at the recorded threshold is the recorded box
    page.wait_for_function("document.getElementById('cam-box').dataset.box")
    box = [float(v) for v in page.get_attribute("#cam-box", "data-box").split(",")]
    assert max(abs(a - b) for a, b in zip(box, top["box"])) < 3, (box, top["box"])
    # the tree: root + 4 children per non-leaf level, the chosen path highlighted
    levels = len(top["path"])
    assert page.locator("#tree-svg circle.node").count() == 1 + 4 * (levels - 1)
    assert page.locator("#tree-svg circle.chosen").count() == levels
    assert page.locator("table.path tbody tr").count() == levels
    # the root's close call, settled by removal: the chosen child's score marked, the drops in the path table
    assert [t for t in page.locator("#tree-svg text.v.b").all_text_contents() if t.endswith(SETTLED)] != []
    root_mark = page.locator("table.path tbody tr").first.locator("mark")
    assert root_mark.inner_text().endswith(SETTLED)
    assert "decided by removal, the class probability falling by" in root_mark.get_attribute("title")
    assert page.locator(".classes .cls").count() == len(chelsea["predictions"])
    assert page.locator(".links a").count() == 2
    g.photo_loaded()
    g.shot("detail")

    pixels = "(() => { const c = document.getElementById('cam-canvas'); const d = c.getContext('2d')" \
             ".getImageData(0, 0, c.width, c.height).data; let s = 0; " \
             "for (let i = 0; i < d.length; i += 4) s += d[i]; " \
             "return s; })()"
    before = page.evaluate(pixels)
    page.focus("#opacity")
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"{pixels} !== {before}")
    page.focus("#threshold")
    for _ in range(round(100 * (0.8 - top["threshold"]))):  # from the recorded threshold to 0.8
        page.keyboard.press("ArrowRight")
    sync_api.expect(page.locator("#cam-readout")).to_contain_text("Threshold 0.80")
    box2 = [float(v) for v in page.get_attribute("#cam-box", "data-box").split(",")]
    # the page's box at 0.8 is nestviz's (localize: the region holding the peak) at the recorded input size
    x0, y0, x1, y1 = top["cam_region"]
    size = top["cam_size"]
    (b0, b1, b2, b3), _ = localize(np.asarray(top["cam_map"], np.float32), size, 0.8)
    expected = [x0 + b0 * (x1 - x0) / size, y0 + b1 * (y1 - y0) / size, x0 + b2 * (x1 - x0) / size,
                y0 + b3 * (y1 - y0) / size]
    assert max(abs(a - b) for a, b in zip(box2, expected)) < 0.05, (box2, expected)
    g.shot("detail-threshold-0.8")
    # another class: its own tree and box
    page.locator(".classes .cls").nth(1).click()
    assert page.get_attribute(".classes .cls >> nth=1", "aria-checked") == "true"
    # arrows move through the list (not while a slider has focus), Escape closes
    page.focus("#d-close")
    page.keyboard.press("ArrowRight")
    sync_api.expect(page.locator("#d-title")).to_have_text("coffee.jpg")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    sync_api.expect(page.locator("#d-title")).to_have_text("broken.jpg")
    assert "cannot identify image file" in page.inner_text("#d-body .errbox")
    g.shot("detail-failure")
    page.keyboard.press("Escape")
    page.wait_for_function("!document.getElementById('detail').open")
    # the dialog's close event (which writes the URL) is queued after the dialog closes: wait for its effect
    sync_api.expect(page).to_have_url(re.compile(r"^[^#]*(#(?!.*open=).*)?$"))
    assert "open=" not in g.hash()
    assert page.evaluate("document.activeElement.id") == "grid"
    g.close()


def test_merged_records_and_bookmarked_detail(browser: Any, synthetic: tuple[Path, list[dict]], tmp_path: Path) -> None:
    out, items = synthetic
    merged = next(it for it in items if it["commands"] == ["cam", "explain"])
    g = Gallery(browser, out, tmp_path, hash_=f"#open={merged['id']}")
    page = g.page
    page.wait_for_selector("dialog#detail[open]")
    page.wait_for_selector("#tree-svg")
    assert page.inner_text("#d-title") == merged["name"]
    assert page.locator(".classes .cls").count() == 3
    assert "JSON records (2 commands)" in page.inner_text(".jsonbox summary")
    g.shot("merged-detail")
    page.keyboard.press("Escape")
    g.close()


def test_narrow_screen(browser: Any, real: tuple[Path, list[dict]], tmp_path: Path) -> None:
    g = Gallery(browser, real[0], tmp_path, width=420)
    page = g.page
    page.focus("#grid")
    assert page.locator("#grid .card").count() == 6
    g.page.screenshot(path=str(tmp_path / "narrow.png"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_selector("dialog#detail[open]")
    g.shot("narrow-detail")
    g.close()


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real folder run of the CLI: explain, then cam, into the same OUT (the embedded model)."""
    from typer.testing import CliRunner

    from nestviz.cli.app import app

    work = tmp_path_factory.mktemp("cli-run")
    src = work / "photos"
    src.mkdir()
    for p in sorted((REPO / "examples").glob("*.jpg")):
        shutil.copy(p, src / p.name)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    out = work / "out"
    for command in ("explain", "cam"):
        result = CliRunner().invoke(app, [command, str(src), "--out", str(out), "-q", "-k", "2"])
        assert result.exit_code == 3, result.output
    return out


def test_a_real_cli_run_of_two_commands_in_the_gallery(browser: Any, cli_run: Path, tmp_path: Path) -> None:
    g = Gallery(browser, cli_run, tmp_path)
    page = g.page
    n_photos = len(list((REPO / "examples").glob("*.jpg")))
    assert g.count() == n_photos + 1  # every photo once (two commands, one card) and the broken file
    assert page.locator("#grid .card img").count() == n_photos  # each with its thumbnail
    assert "Failures (1)" in page.inner_text("#failures")
    g.shot("cli-run-grid")
    page.focus("#grid")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")  # astronaut, broken, chelsea
    page.keyboard.press("Enter")
    page.wait_for_selector("dialog#detail[open]")
    page.wait_for_selector("#tree-svg")
    page.wait_for_selector("#cam-box")
    assert page.locator(".links a").count() == 2  # explain's GradCAT figure and cam's CAM figure
    assert "JSON records (2 commands)" in page.inner_text(".jsonbox summary")
    g.photo_loaded()
    g.shot("cli-run-detail")
    page.keyboard.press("Escape")
    g.close()


def page_boxes_at_the_default(browser: Any, out: Path, tmp_path: Path, records: list[dict]) -> list[tuple]:
    """For every explained class of every image: the page's CAM box at the recorded threshold (the slider
    untouched, the box recomputed in the page from the recorded map) and the recorded box."""
    g = Gallery(browser, out, tmp_path)
    items = g.page.evaluate("NESTVIZ_DATA.items.map(i => ({id: i.id, image: i.image, name: i.name, status: i.status}))")
    pairs = []
    for it in (i for i in items if i["status"] == "ok"):
        rec = next(r for r in records if r.get("image") == it["image"])
        g.page.evaluate(f"location.hash = 'open={it['id']}'")
        sync_api.expect(g.page.locator("#d-title")).to_have_text(it["name"])
        classes = g.page.locator(".classes .cls")
        sync_api.expect(classes).to_have_count(len(rec["predictions"]))
        for c, pred in enumerate(rec["predictions"]):
            classes.nth(c).click()
            sync_api.expect(classes.nth(c)).to_have_attribute("aria-checked", "true")
            # recomputed in the page at the recorded threshold, not copied from the record
            sync_api.expect(g.page.locator("#cam-readout")).to_contain_text(f"Threshold {pred['threshold']:.2f}: box [")
            box = [float(v) for v in g.page.get_attribute("#cam-box", "data-box").split(",")]
            pairs.append((it["name"], c, box, pred["box"]))
    g.close()
    return pairs


def test_the_page_redraws_the_recorded_box_for_the_default_256_px_model(browser: Any, real: tuple[Path, list[dict]],
                                                                       tmp_path: Path) -> None:
    out, records = real
    assert {p["cam_size"] for r in records for p in r.get("predictions", [])} == {256}
    pairs = page_boxes_at_the_default(browser, out, tmp_path, records)
    assert len(pairs) == 15
    for name, c, page_box, recorded in pairs:  # the record's box has 2 decimals; one input pixel is >= 1.2 px here
        assert max(abs(a - b) for a, b in zip(page_box, recorded)) < 0.05, (name, c, page_box, recorded)


def test_the_page_redraws_the_recorded_box_for_a_224_px_timm_model(browser: Any, tmp_path: Path) -> None:
    """A timm-shaped NesT at 224 px (patch 4, three levels: a 14 x 14 top map), tiny random weights, run as a
    folder run writes it: the page's box at the recorded threshold is the recorded one for every class."""
    from typer.testing import CliRunner

    from nestviz.cli.app import app
    from nestviz.model import NestConfig
    from nestviz.model.checkpoints import save_nestviz
    from nestviz.preprocess import Preprocessing
    from tests.helpers import write_image
    from tests.model_helpers import tiny_model

    cfg = NestConfig(img_size=224, patch_size=4, num_levels=3, embed_dims=(8, 16, 16), num_heads=(2, 2, 4),
                     depths=(1, 1, 1), num_classes=3, mlp_ratio=2.0)
    weights = tmp_path / "timm224.safetensors"
    save_nestviz(weights, tiny_model(1, cfg), ["a", "b", "c"], Preprocessing(input_size=224, crop_pct=0.875))
    for i, size in enumerate([(300, 200), (180, 260), (224, 224)]):
        write_image(tmp_path / "in" / f"p{i}.png", size, seed=10 + i)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["annotate", str(tmp_path / "in"), "--weights", str(weights), "--out", str(out),
                                      "-k", "3", "-q", "--no-render"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {(len(p["cam_map"]), p["cam_size"]) for r in records for p in r["predictions"]} == {(14, 224)}
    pairs = page_boxes_at_the_default(browser, out, tmp_path, records)
    assert len(pairs) == 9
    for name, c, page_box, recorded in pairs:
        assert max(abs(a - b) for a, b in zip(page_box, recorded)) < 0.05, (name, c, page_box, recorded)
