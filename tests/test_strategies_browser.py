"""The strategies page in a real browser (Debian's Chromium driven by Playwright), reached from the gallery's link.

Skipped where Playwright or Chromium is missing. The test writes a screenshot under its temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = next((p for p in (os.environ.get("NESTVIZ_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and os.path.isfile(p)), None)
if CHROMIUM is None:
    pytest.skip("no Chromium (apt-get install chromium)", allow_module_level=True)

from nestviz.batch.gallery import write_gallery  # noqa: E402
from nestviz.strategies import find  # noqa: E402
from tests.strategies_synth import planted_records, write_run  # noqa: E402

HOSTILE = 'val/horse/<img src=x onerror="window.PWNED=1">.png'


def test_the_page_opens_from_the_gallery_shows_montages_and_escapes_names(tmp_path: Path) -> None:
    records = planted_records(45, 15, "corner", "annotate", other=8)
    records[0]["image"] = HOSTILE
    out = write_run(tmp_path / "run", records, images=tmp_path)
    write_gallery(out, records, "nestviz annotate val/", {"done": len(records)})
    report = find(out)
    flagged = [s["id"] for c in report["classes"] for s in c["strategies"] if s["flags"]]
    assert flagged
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        except Exception as e:  # a Chromium that cannot start here
            pytest.skip(f"Chromium does not start: {e}")
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        errors: list[str] = []
        remote: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto((out / "index.html").as_uri())
        page.wait_for_function("document.documentElement.dataset.ready === '1'", timeout=20_000)
        page.click("#run-links a")
        page.wait_for_url("**/strategies.html")
        page.wait_for_function("document.images.length > 0 && Array.from(document.images)"
                               ".every(i => i.complete && i.naturalWidth > 0)", timeout=20_000)
        assert page.evaluate("document.images.length") == sum(len(c["strategies"]) for c in report["classes"])
        assert page.locator("#first a").count() == len(flagged)
        assert page.locator(".strategy.flagged").count() == len(flagged)
        page.click(f'#first a[href="#s-{flagged[0]}"]')
        page.wait_for_function(f"location.hash === '#s-{flagged[0]}'")
        shot = tmp_path / "strategies.png"
        page.screenshot(path=str(shot), full_page=False)
        page.click(f"#s-{records and report['classes'][0]['strategies'][0]['id']} summary")
        assert HOSTILE in page.inner_text("body")  # shown as text, never run
        assert page.evaluate("window.PWNED === undefined")
        assert errors == [] and remote == []
        browser.close()
    assert shot.stat().st_size > 10_000
    assert json.loads((out / "strategies.json").read_text())["classes"][0]["label"] == "horse"
