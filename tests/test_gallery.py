"""The gallery files: only existing files inside OUT are linked, everything is escaped, failures listed,
records of one image merged, writes atomic, no torch. (The page itself runs in tests/test_gallery_browser.py.)"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from nestviz.batch import gallery
from nestviz.batch.gallery import (DATA_NAME, DETAILS_NAME, agreement, existing_outputs, merge_predictions,
                                   write_gallery)

REPO = Path(__file__).resolve().parents[1]


class Page(HTMLParser):
    """Collects the tags, link targets, script sources and visible text of a page."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self._in = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in = tag
        self.links += [v for k, v in attrs if k in ("src", "href", "data-src") and v is not None]

    def handle_endtag(self, tag: str) -> None:
        self._in = ""

    def handle_data(self, data: str) -> None:
        if self._in not in ("script", "style"):
            self.text.append(data)


def touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"figure")
    return path.name


def read_script(path: Path, name: str) -> dict:
    text = path.read_text(encoding="utf-8")
    prefix = f"window.{name} = "
    assert text.startswith(prefix) and text.endswith(";\n")
    return json.loads(text[len(prefix):-2])


def data_of(out: Path) -> tuple[dict, list[dict]]:
    data = read_script(out / DATA_NAME, "NESTVIZ_DATA")
    details = read_script(out / DETAILS_NAME, "NESTVIZ_DETAILS")
    assert details["token"] == data["token"]
    return data, [json.loads(d) for d in details["details"]]


SUMMARY = {"done": 2, "failed": 1, "skipped": 5, "seconds": 12.5, "images_per_s": 0.16, "interrupted": False}
PATH = [{"level": 2, "node": 0, "box": [0, 0, 40, 30], "score": 1.0, "child_scores": [0.1, 0.9, 0.2, 0.3],
         "chosen_child": 1},
        {"level": 1, "node": 1, "box": [20, 0, 40, 15], "score": 0.9, "child_scores": None, "chosen_child": None}]


def records(out: Path) -> list[dict]:
    touch(out / "a" / "cat.gradcat.png")
    touch(out / "a" / "cat.thumb.jpg")
    touch(out / "odd #1 & ?" / "ü.cam.png")
    touch(out.parent / "secret.png")  # exists, but outside OUT
    os.symlink(out.parent / "secret.png", out / "link.png")  # inside OUT, pointing outside
    return [
        {"image": "src/a/cat.jpg", "width": 40, "height": 30, "status": "ok", "key": "k", "command": "explain",
         "true_label": "Dog & Co", "thumbnail": "a/cat.thumb.jpg",
         "outputs": ["a/cat.gradcat.png", "a/cat.cam.png"],  # the second was deleted
         "predictions": [{"rank": 1, "class_index": 0, "label": "<script>alert(1)</script>", "probability": 0.625,
                          "path": PATH},
                         {"rank": 2, "class_index": 1, "label": "dog & co", "probability": 0.25}]},
        {"image": "src/a/cat.jpg", "width": 40, "height": 30, "status": "ok", "command": "cam",
         "outputs": ["link.png", "a/cat.gradcat.png"],
         "predictions": [{"rank": 1, "class_index": 0, "label": "<script>alert(1)</script>", "probability": 0.625,
                          "box": [1, 2, 30, 20], "peak": [30.5, 10.0], "threshold": 0.2,
                          "cam_map": [[0.0, 1.0], [float("nan"), 2.0]], "cam_region": [0, 0, 40, 30]}]},
        {"image": 'src/odd #1 & ?/ü".jpg', "width": 8, "height": 8, "status": "skipped",
         "outputs": ["odd #1 & ?/ü.cam.png", "../secret.png", str(out / "a" / "cat.gradcat.png")],
         "predictions": []},
        {"image": "src/b/<bad>.jpg", "error": "src/b/<bad>.jpg: not an image Pillow can read", "status": "error"},
    ]


def test_gallery_links_only_files_that_exist_inside_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = write_gallery(out, records(out), "nestviz annotate", SUMMARY)
    assert path == out / "index.html"
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    # the page loads only its two data scripts and links only within itself; no network anywhere
    assert sorted(set(page.links)) == sorted({DATA_NAME, DETAILS_NAME, "#status=error", "#grid"})
    assert "link" not in page.tags and "iframe" not in page.tags
    assert set(re.findall(r"\w+://[^'\"\s]*", html)) <= {"http://www.w3.org/2000/svg"}  # the SVG namespace only
    assert "https:" not in html and "fetch(" not in html and "XMLHttpRequest" not in html
    data, details = data_of(out)
    hrefs = [it["thumb"] for it in data["items"] if it["thumb"]]
    hrefs += [o["href"] for d in details for o in d["outputs"]]
    assert set(hrefs) == {"a/cat.thumb.jpg", "a/cat.gradcat.png", "odd%20%231%20%26%20%3F/%C3%BC.cam.png"}
    odd = next(it for it in data["items"] if it["image"].startswith("src/odd"))
    assert odd["thumb_is_figure"] and odd["thumb"] == "odd%20%231%20%26%20%3F/%C3%BC.cam.png"  # no thumbnail: a figure
    for link in hrefs:
        target = (out / unquote(link)).resolve()
        assert target.is_file() and out.resolve() in target.parents
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".")]


def test_gallery_escapes_text_and_lists_failures(tmp_path: Path) -> None:
    out = tmp_path / "out"
    html = write_gallery(out, records(out), "run <1></script>", SUMMARY).read_text(encoding="utf-8")
    text = "".join(Page(html).text)
    for shown in ("run <1></script>", 'src/b/<bad>.jpg', "src/b/<bad>.jpg: not an image Pillow can read",
                  "Failures (1)", "2 done, 1 failed, 5 skipped (already done), 12.5 s, 0.16 images/s",
                  "3 image(s): 2 explained, 1 failed"):
        assert shown in text, shown
    assert "<bad>" not in html and "run <1>" not in html and "interrupted" not in text
    assert html.count("</script>") == html.count("<script")  # nothing closes a script early
    # the data scripts are valid JSON after their prefix, ASCII only (U+2028 cannot break them)
    for name in (DATA_NAME, DETAILS_NAME):
        assert (out / name).read_bytes().isascii()
    data, _ = data_of(out)
    assert data["title"] == "run <1></script>"
    assert {it["image"] for it in data["items"]} == {"src/a/cat.jpg", 'src/odd #1 & ?/ü".jpg', "src/b/<bad>.jpg"}


def test_records_of_one_image_are_merged(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_gallery(out, records(out), "t", SUMMARY)
    data, details = data_of(out)
    cat = next(it for it in data["items"] if it["image"] == "src/a/cat.jpg")
    assert cat["commands"] == ["cam", "explain"] and cat["name"] == "cat.jpg" and cat["classes"] == 2
    assert cat["pred"] == "<script>alert(1)</script>" and cat["p"] == 0.625 and cat["margin"] == 0.375
    assert cat["true"] == "Dog & Co" and cat["correct"] is False
    assert cat["agree"] is True  # the CAM peak (30.5, 10) lies in the GradCAT leaf [20, 0, 40, 15]
    top = details[cat["id"]]["predictions"][0]
    assert top["path"] == PATH and top["box"] == [1, 2, 30, 20] and top["cam_map"] == [[0.0, 1.0], [None, 2.0]]
    assert len(details[cat["id"]]["records"]) == 2
    bad = next(it for it in data["items"] if it["status"] == "error")
    assert bad["error"] == "src/b/<bad>.jpg: not an image Pillow can read" and bad["pred"] is None


def test_a_decision_falls_when_removing_its_evidence_took_the_class_away() -> None:
    from nestviz.batch.gallery import without_evidence

    top = {"rank": 1, "class_index": 2}
    rec = {"predictions": [top], "evidence": {"class_index": 2, "removal": {"after": 5, "probability": [0.9, 0.25]}}}
    assert without_evidence([rec], top) == {"falls": True, "drop": 0.65}
    stood = {**rec, "evidence": {"class_index": 2, "removal": {"after": 2, "probability": [0.9, 0.7]}}}
    assert without_evidence([stood], top) == {"falls": False, "drop": 0.2}
    assert without_evidence([{**rec, "evidence": {"class_index": 2}}], top) == {"falls": None, "drop": None}  # unchecked
    other = {"predictions": [{"rank": 2, "class_index": 2}], "evidence": rec["evidence"]}  # not the model's decision
    assert without_evidence([other], top) == {"falls": None, "drop": None}
    assert without_evidence([rec], None) == {"falls": None, "drop": None}


def test_predictions_agreement_and_correctness() -> None:
    preds = merge_predictions([{"predictions": [{"class_index": 3, "rank": 2, "probability": 0.2},
                                                {"class_index": 1, "rank": 1, "probability": 0.7, "peak": None}]},
                               {"predictions": [{"class_index": 1, "peak": [5, 5]}, "junk"]}])
    assert [p["class_index"] for p in preds] == [1, 3] and preds[0]["peak"] == [5, 5]
    assert agreement({"peak": [5, 5], "path": [{"level": 1, "box": [0, 0, 5, 5]}, {"level": 2, "box": [9, 9, 9, 9]}]})
    assert agreement({"peak": [6, 5], "path": [{"level": 1, "box": [0, 0, 5, 5]}]}) is False
    assert agreement({"peak": [6, 5]}) is None and agreement({"path": PATH}) is None


def test_metrics_and_summary_are_passed_to_the_page(tmp_path: Path) -> None:
    metrics = {"metrics": {"cam": {"maxboxacc_v2": 0.5, "pointing": float("inf")}, "gradcat": {"maxboxacc_v2": 0.4}}}
    write_gallery(tmp_path, [], "t", {"done": 0}, metrics=metrics)
    data, _ = data_of(tmp_path)
    assert data["metrics"] == {"metrics": {"cam": {"maxboxacc_v2": 0.5, "pointing": None},
                                           "gradcat": {"maxboxacc_v2": 0.4}}}
    assert data["summary"] == {"done": 0} and data["items"] == []


def test_the_page_colours_the_cam_with_the_figures_colour_map(tmp_path: Path) -> None:
    """Issue 22: the gallery drew the CAM with jet (typed in its JavaScript) while figures use inferno."""
    from nestviz.draw.style import colormap
    from nestviz.draw.style import CMAP, PALETTE, SETTLED

    write_gallery(tmp_path, [], "t", {"done": 0})
    style = data_of(tmp_path)[0]["style"]
    assert style["cmap"] == CMAP == "inferno" and (style["path"], style["cam"]) == PALETTE[:2]
    assert data_of(tmp_path)[0]["cam_box_region"] == "peak"  # the page boxes the CAM as nestviz does
    lut = bytes.fromhex(style["cmap_lut"])
    assert lut == colormap().tobytes() and lut[:3] == bytes([0, 0, 4]) and lut[-3:] == bytes([252, 255, 164])
    script = (Path(gallery.__file__).parent / "gallery_assets" / "gallery.js").read_text(encoding="utf-8")
    assert "jet" not in script and not re.search(r"#[0-9A-Fa-f]{6}\b", script)  # no colour typed in the page
    assert style["settled"] == SETTLED and "2020" not in script and SETTLED not in script  # nor the removal's mark
    # the CAM is redrawn from the record: no input size, threshold or colour map of the page's own
    assert not re.search(r"CAM_GRID|\b224\b|\b0\.2\b|\b0\.35\b|inferno", script)


def test_the_last_run_line_gives_the_totals_and_no_rate_when_nothing_was_done() -> None:
    """Issue 22: after a resumed run the header said '0 done, 1000 skipped, 0.0 images/s'."""
    from nestviz.batch.gallery import summary_line

    resumed = {"done": 0, "failed": 0, "skipped": 1000, "seconds": 0.4, "images_per_s": 0.0}
    assert summary_line(resumed) == "Last run, 1000 images: 0 done, 0 failed, 1000 skipped (already done), 0.4 s"
    fresh = {"done": 2, "failed": 1, "skipped": 5, "seconds": 12.5, "images_per_s": 0.16, "interrupted": True}
    assert summary_line(fresh) == ("Last run, 8 images: 2 done, 1 failed, 5 skipped (already done), 12.5 s, "
                                   "0.16 images/s, interrupted")


def test_gallery_without_images_or_failures(tmp_path: Path) -> None:
    html = write_gallery(tmp_path, [], "empty", {"done": 0, "interrupted": True}).read_text(encoding="utf-8")
    text = "".join(Page(html).text)
    assert "0 image(s)" in text and "Failures" not in text and "interrupted" in text


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_gallery(tmp_path, [], "first", {})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(gallery.os, "replace", broken)
    with pytest.raises(OSError):
        write_gallery(tmp_path, [{"image": "x.jpg", "status": "ok"}], "second", {})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # old files intact, no temporary left


def test_existing_outputs_rejects_escapes_and_garbage(tmp_path: Path) -> None:
    touch(tmp_path / "out" / "x.png")
    touch(tmp_path / "y.png")
    (tmp_path / "out" / "dir.png").mkdir()
    os.symlink(tmp_path / "y.png", tmp_path / "out" / "ln.png")
    os.symlink(tmp_path, tmp_path / "out" / "up")
    outputs = ["x.png", "../y.png", str(tmp_path / "y.png"), "dir.png", "missing.png", "", 3, "ln.png", "up/y.png",
               "up/out/x.png", "a/../x.png"]
    assert existing_outputs(tmp_path / "out", outputs) == ["x.png", "up/out/x.png", "a/../x.png"]
    assert existing_outputs(tmp_path / "out", None) == []


def test_does_not_import_torch() -> None:
    code = "import sys, nestviz.batch.gallery; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
