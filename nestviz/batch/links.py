"""The pages a run folder may hold beside its gallery, linked from the gallery's header when they exist.

``nestviz strategies`` writes ``strategies.html`` after the gallery: :func:`refresh_links` then rewrites the
links of an existing ``index.html`` in place (atomically), leaving the rest of the page as it was.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import quote

from .._files import atomic_write_text

PAGES = (("strategies.html", "Prediction strategies"),)  # (file in OUT, link text)
START, END = "<!--links-->", "<!--/links-->"


def present_links(out_dir: Path) -> list[str]:
    """The names in ``PAGES`` that are files in ``out_dir``."""
    return [name for name, _ in PAGES if (Path(out_dir) / name).is_file()]


def links_html(names: list[str]) -> str:
    """The header's links, between the markers that :func:`refresh_links` finds."""
    text = dict(PAGES)
    inner = " &middot; ".join(f'<a href="{quote(n)}">{html.escape(text.get(n, n))}</a>' for n in names)
    return f"{START}{inner}{END}"


def refresh_links(out_dir: Path) -> bool:
    """Rewrite the links of ``out_dir/index.html``, if it exists and has them; True if it was rewritten."""
    page = Path(out_dir) / "index.html"
    try:
        text = page.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return False
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        return False
    new = pattern.sub(lambda m: links_html(present_links(Path(out_dir))), text, count=1)
    if new != text:
        atomic_write_text(page, new)
    return True


__all__ = ["PAGES", "present_links", "links_html", "refresh_links"]
