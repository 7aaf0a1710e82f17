"""OUT/index.html: a self-contained gallery of a folder run, openable straight from disk.

One card per image with its figure as a lazily loaded thumbnail, the image path and the top
predictions; then the failures with their errors. CSS is inline, there is no script and no
external URL; only output files that exist inside OUT are linked, by relative URL.
"""

from __future__ import annotations

import os
import tempfile
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

THUMBNAIL_FORMATS = (".png", ".jpg", ".jpeg", ".svg", ".webp", ".gif")

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .3em}
.summary{color:#555;margin-bottom:1.2em}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;overflow:hidden}
.card img{width:100%;height:200px;object-fit:contain;background:#eee;display:block}
.noimg{height:200px;display:flex;align-items:center;justify-content:center;background:#eee;color:#888}
.path{font-family:monospace;font-size:12px;word-break:break-all;margin:6px 0 4px}
.files a{margin-right:.6em;font-size:12px}
ol{margin:4px 0 0;padding-left:1.4em}
.p{color:#666;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;margin-top:.5em}
td{border-top:1px solid #ddd;padding:4px 10px 4px 0;vertical-align:top}
td:first-child{font-family:monospace;word-break:break-all}
"""


def write_gallery(out_dir: Path, records: list[dict[str, Any]], title: str, summary: dict[str, Any]) -> Path:
    """Write ``out_dir/index.html`` for ``records`` (manifest records) atomically and return its path."""
    out_dir = Path(out_dir)
    path = out_dir / "index.html"
    _atomic_write_text(path, gallery_html(out_dir, records, title, summary))
    return path


def gallery_html(out_dir: Path, records: list[dict[str, Any]], title: str, summary: dict[str, Any]) -> str:
    """The gallery page; links only outputs that exist under ``out_dir``."""
    shown = [r for r in records if r.get("status") != "error"]
    failed = [r for r in records if r.get("status") == "error"]
    cards = "\n".join(_card(out_dir, r) for r in shown)
    rows = "\n".join(f"<tr><td>{_text(r.get('image'))}</td><td>{_text(r.get('error'))}</td></tr>" for r in failed)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{_text(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_text(title)}</h1>",
        f'<div class="summary">{_summary_line(summary)}<br>'
        f"{len(shown)} image(s) shown, {len(failed)} failed</div>",
        f'<div class="grid">\n{cards}\n</div>' if shown else "<p>No images.</p>",
    ]
    if failed:
        parts.append(f'<h2 id="failures">Failures ({len(failed)})</h2><table>\n{rows}\n</table>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _card(out_dir: Path, record: dict[str, Any]) -> str:
    files = existing_outputs(out_dir, record.get("outputs"))
    thumbs = [f for f in files if f.lower().endswith(THUMBNAIL_FORMATS)]
    if thumbs:
        thumb = (f'<a href="{_url(thumbs[0])}"><img src="{_url(thumbs[0])}" loading="lazy" '
                 f'alt="{_text(record.get("image"))}"></a>')
    else:
        thumb = '<div class="noimg">no figure</div>'
    links = " ".join(f'<a href="{_url(f)}">{_text(_kind(f))}</a>' for f in files)
    preds = "".join(
        f"<li>{_text(p.get('label'))} <span class=\"p\">{_percent(p.get('probability'))}</span></li>"
        for p in record.get("predictions") or [] if isinstance(p, dict))
    size = f" ({_text(record.get('width'))}&times;{_text(record.get('height'))})" if record.get("width") else ""
    return (f'<div class="card">{thumb}<div class="path">{_text(record.get("image"))}{size}</div>'
            f'<div class="files">{links}</div><ol>{preds}</ol></div>')


def existing_outputs(out_dir: Path, outputs: Any) -> list[str]:
    """The entries of ``outputs`` (paths relative to ``out_dir``) that are files inside it."""
    if not isinstance(outputs, list):
        return []
    root = os.path.realpath(out_dir)
    found = []
    for o in outputs:
        if not isinstance(o, str) or not o or Path(o).is_absolute():
            continue
        real = os.path.realpath(Path(out_dir) / o)
        if real.startswith(root + os.sep) and os.path.isfile(real):
            found.append(o)
    return found


def _summary_line(summary: dict[str, Any]) -> str:
    labels = (("done", "done"), ("failed", "failed"), ("skipped", "skipped (already done)"))
    bits = [f"{_text(summary[k])} {name}" for k, name in labels if k in summary]
    if "seconds" in summary:
        bits.append(f"{_text(summary['seconds'])} s")
    if "images_per_s" in summary:
        bits.append(f"{_text(summary['images_per_s'])} images/s")
    if summary.get("interrupted"):
        bits.append("interrupted")
    return "Last run: " + ", ".join(bits) if bits else ""


def _kind(output: str) -> str:
    """``cat.gradcat.png`` -> ``gradcat png``: the figure kind and format, for link text."""
    parts = Path(output).name.split(".")
    return " ".join(parts[-2:]) if len(parts) >= 3 else Path(output).name


def _percent(p: Any) -> str:
    return f"{100 * p:.1f}%" if isinstance(p, (int, float)) else ""


def _text(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _url(relative: str) -> str:
    """A relative URL for a path under OUT, percent-encoded and HTML-escaped for an attribute."""
    return escape(quote(Path(relative).as_posix()), quote=True)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a gallery is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["write_gallery", "gallery_html", "existing_outputs"]
