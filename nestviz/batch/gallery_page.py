"""OUT/index.html of the gallery: the template with its CSS and JavaScript inline, and the run's summary and
failures as static HTML (they read without JavaScript). The data comes from ``gallery.gallery_data``. No torch."""

from __future__ import annotations

import re
from html import escape
from importlib import resources
from typing import Any

from .links import links_html

DATA_NAME = "gallery-data.js"
DETAILS_NAME = "gallery-details.js"


def gallery_html(data: dict[str, Any]) -> str:
    """The page for ``data`` (from :func:`gallery_data`): template, inline CSS and JS, static summary."""
    css, js, template = (_asset(n) for n in ("gallery.css", "gallery.js", "template.html"))
    js = js.replace("</", "<\\/")  # never closes the inline script early
    items = data["items"]
    failed = [it for it in items if it["status"] == "error"]
    partial = [it for it in items if it["status"] != "error" and it["error"]]
    values = {
        "title": _text(data["title"]),
        "lastrun": _text(summary_line(data["summary"])),
        "counts": _text(f"{len(items)} image(s): {len(items) - len(failed)} explained, {len(failed)} failed"),
        "failures": _failures_html(failed + partial),
        "links": links_html(data.get("links") or []),
        "data": DATA_NAME,
        "details": DETAILS_NAME,
        "css": css,
        "js": js,
    }
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)


def _failures_html(failed: list[dict[str, Any]]) -> str:
    if not failed:
        return ""
    rows = "\n".join(f'<tr><td class="mono">{_text(it["image"])}</td><td>{_text(it["error"])}</td></tr>'
                     for it in failed)
    return (f'<details id="failures" open><summary><h2>Failures ({len(failed)})</h2></summary>'
            f'<p><a href="#status=error">Show only the failures in the grid</a></p>'
            f'<div class="scroll-y"><table class="failures"><thead><tr><th scope="col">image</th>'
            f'<th scope="col">error</th></tr></thead>'
            f"<tbody>\n{rows}\n</tbody></table></div></details>")


def summary_line(summary: dict[str, Any]) -> str:
    """``Last run, 8 images: 2 done, 1 failed, 5 skipped (already done), 12.5 s, 0.16 images/s[, interrupted]``
    (the rate of the images done, left out when a resumed run did none)."""
    labels = (("done", "done"), ("failed", "failed"), ("skipped", "skipped (already done)"))
    bits = [f"{summary[k]} {name}" for k, name in labels if k in summary]
    total = sum(summary[k] for k, _ in labels if isinstance(summary.get(k), int))
    if "seconds" in summary:
        bits.append(f"{summary['seconds']} s")
    if "images_per_s" in summary and summary.get("done", 1):
        bits.append(f"{summary['images_per_s']} images/s")
    if summary.get("interrupted"):
        bits.append("interrupted")
    return f"Last run, {total} image{'' if total == 1 else 's'}: " + ", ".join(bits) if bits else ""


def _asset(name: str) -> str:
    return (resources.files("nestviz") / "batch" / "gallery_assets" / name).read_text(encoding="utf-8")


def _text(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


__all__ = ["gallery_html", "summary_line", "DATA_NAME", "DETAILS_NAME"]
