"""Time to a usable gallery page for 5,000 and 20,000 synthetic records (Debian's Chromium via Playwright).

    python benchmarks/gallery_load.py [N ...]

For each N: the time to write the gallery files (Python), their sizes, then, in a fresh page
opened from file://, the time from navigation start until the grid is on screen and the filters
work (``window.NESTVIZ_READY_MS``, set after the first render), the load event, the time for the
background records file (gallery-details.js) to arrive, and the latency of one filter change.
Median of 3 page loads.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright  # noqa: E402

from nestviz.batch.gallery import write_gallery  # noqa: E402
from tests.gallery_synth import synthetic_run  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def measure(browser, out: Path) -> dict[str, float]:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto((out / "index.html").as_uri())
    page.wait_for_function("document.documentElement.dataset.ready === '1'", timeout=60_000)
    ready = page.evaluate("window.NESTVIZ_READY_MS")
    page.wait_for_function("window.NESTVIZ_DETAILS !== undefined", timeout=60_000)
    details = page.evaluate("performance.now()")
    load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    filt = page.evaluate("""() => { const s = document.getElementById('f-correct'); const t = performance.now();
        s.value = 'wrong'; s.dispatchEvent(new Event('change', {bubbles: true}));
        return performance.now() - t; }""")
    page.close()
    return {"ready_ms": ready, "load_ms": load, "details_ms": details, "filter_ms": filt}


def main(sizes: list[int]) -> None:
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for n in sizes:
            out = Path(tmp) / str(n)
            records = synthetic_run(out, n)
            t = time.perf_counter()
            write_gallery(out, records, f"{n} synthetic records", {"done": n})
            write_s = time.perf_counter() - t
            runs = [measure(browser, out) for _ in range(3)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            sizes_mb = {f.name: f.stat().st_size / 1e6 for f in sorted(out.glob("*.js"))}
            print(f"{n:>6} records: write {write_s:.2f} s; "
                  + ", ".join(f"{k} {v:.1f} MB" for k, v in sizes_mb.items())
                  + f"; usable {med['ready_ms']:.0f} ms, load event {med['load_ms']:.0f} ms, records file in"
                  f" {med['details_ms']:.0f} ms, one filter change {med['filter_ms']:.0f} ms", flush=True)
        browser.close()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [5000, 20000])
