"""The gallery page: only existing files inside OUT are linked, everything is escaped, failures listed."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

from nestviz.batch.gallery import existing_outputs, write_gallery


class Page(HTMLParser):
    """Collects the tags, link targets and visible text of a page."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("src", "href") and v is not None]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"figure")
    return path.name


SUMMARY = {"done": 2, "failed": 1, "skipped": 5, "seconds": 12.5, "images_per_s": 0.16, "interrupted": False}


def records(out: Path) -> list[dict]:
    touch(out / "a" / "cat.gradcat.png")
    touch(out / "odd #1 & ?" / "ü.cam.png")
    touch(out.parent / "secret.png")  # exists, but outside OUT
    return [
        {"image": "src/a/cat.jpg", "width": 40, "height": 30, "status": "ok", "key": "k",
         "outputs": ["a/cat.gradcat.png", "a/cat.cam.png"],  # the second was deleted
         "predictions": [{"rank": 1, "label": "<script>alert(1)</script>", "probability": 0.625},
                         {"rank": 2, "label": "dog & co", "probability": 0.25}]},
        {"image": 'src/odd #1 & ?/ü".jpg', "width": 8, "height": 8, "status": "skipped",
         "outputs": ["odd #1 & ?/ü.cam.png", "../secret.png", str(out / "a" / "cat.gradcat.png")],
         "predictions": []},
        {"image": "src/b/<bad>.jpg", "error": "src/b/<bad>.jpg: not an image Pillow can read", "status": "error"},
    ]


def test_gallery_links_only_files_that_exist_inside_out(tmp_path: Path) -> None:
    out = tmp_path / "out"
    path = write_gallery(out, records(out), "nestviz annotate", SUMMARY)
    assert path == out / "index.html"
    page = Page(path.read_text(encoding="utf-8"))
    assert sorted(set(page.links)) == sorted({"a/cat.gradcat.png", "odd%20%231%20%26%20%3F/%C3%BC.cam.png"})
    for link in page.links:
        target = (out / unquote(link)).resolve()
        assert target.is_file() and out.resolve() in target.parents
    assert "img" in page.tags and "script" not in page.tags and "link" not in page.tags
    assert not list(out.glob("*.tmp")) and not list(out.glob(".index.html.*"))


def test_gallery_escapes_text_and_lists_failures(tmp_path: Path) -> None:
    out = tmp_path / "out"
    html = write_gallery(out, records(out), "run <1>", SUMMARY).read_text(encoding="utf-8")
    text = "".join(Page(html).text)
    for shown in ("run <1>", "<script>alert(1)</script>", "dog & co", 'src/odd #1 & ?/ü".jpg', "62.5%", "25.0%",
                  "src/b/<bad>.jpg: not an image Pillow can read", "Failures (1)"):
        assert shown in text, shown
    assert "<script>" not in html and "<bad>" not in html
    assert "2 done, 1 failed, 5 skipped (already done), 12.5 s, 0.16 images/s" in text
    assert "interrupted" not in text
    assert "2 image(s) shown, 1 failed" in text


def test_gallery_without_images_or_failures(tmp_path: Path) -> None:
    html = write_gallery(tmp_path, [], "empty", {"done": 0, "interrupted": True}).read_text(encoding="utf-8")
    text = "".join(Page(html).text)
    assert "No images." in text and "Failures" not in text and "interrupted" in text


def test_existing_outputs_rejects_escapes_and_garbage(tmp_path: Path) -> None:
    touch(tmp_path / "out" / "x.png")
    touch(tmp_path / "y.png")
    (tmp_path / "out" / "dir.png").mkdir()
    outputs = ["x.png", "../y.png", str(tmp_path / "y.png"), "dir.png", "missing.png", "", 3]
    assert existing_outputs(tmp_path / "out", outputs) == ["x.png"]
    assert existing_outputs(tmp_path / "out", None) == []
