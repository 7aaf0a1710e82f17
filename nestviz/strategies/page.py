"""DIR/strategies.html: the strategies of every class on one self-contained page (no script, no network).

Every name, label and path is escaped: image names and class labels come from users' files and may be hostile.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from .._text import counted
from .cluster import MAX_K
from .flags import FLAGS, decisive_text

FLAG_TEXT = {
    "recurring_pattern": "recurring pattern: nearly the same evidence in every member (a patch, logo or watermark?)",
    "single_spot": "single spot: one small block carries most of the class score (a patch, or a small object?)",
    "border": "border: the evidence lies mostly on the image's border",
    "errors": "errors: most members whose class is known are wrong",
}
MEMBERS_SHOWN = 200  # image names listed per strategy on the page (the JSON has them all)

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:12px 20px;color:#111}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ccc}
.mono{font-family:ui-monospace,monospace;font-size:12px}.note{color:#555}
.flag{display:inline-block;background:#b3261e;color:#fff;border-radius:4px;padding:0 6px;margin:0 4px 2px 0;
font-size:12px}.strategy{border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:10px 0}
.strategy.flagged{border-color:#b3261e;border-width:2px}.strategy img{max-width:100%;height:auto;display:block}
table.first td{padding:2px 10px 2px 0}ul.members{columns:2;margin:4px 0}
"""


def _t(value: Any) -> str:
    return html.escape(str(value), quote=True)


def strategies_html(report: dict[str, Any], gallery: str | None = "index.html") -> str:
    """The page for ``report`` (strategies.json's content); ``gallery`` the gallery page's name, linked back."""
    classes = report.get("classes", [])
    flagged = [(c, s) for c in classes for s in c["strategies"] if s["flags"]]
    head = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>Strategies: {_t(report.get('run', ''))}</title><style>{CSS}</style></head><body>")
    intro = [f"<h1>Prediction strategies</h1><p class=\"mono\">{_t(report.get('run', ''))}</p>",
             f"<p>{counted(report.get('decisions', 0), 'decision')} of <b>{_t(report.get('command', ''))}</b> records in "
             f"{len(classes)} predicted classes; {len(flagged)} {'strategy carries' if len(flagged) == 1 else 'strategies carry'} flags. A strategy is a group of a "
             f"class's decisions whose evidence is alike, by where it lies and by what the model saw there; "
             f"{_t(report.get('method', {}).get('k_choice', ''))} chooses how many per class. What the model saw is "
             f"also grouped alone, into as many groups as the data say and, where the run removed the evidence and "
             f"measured its spot, into 2 to {MAX_K}, so that a pattern that a few decisions share is not lost in a "
             f"larger strategy. "
             f"Where the run removed each decision's evidence, a flagged pattern or spot keeps the decisions that "
             f"the removal changed.</p>"]
    if gallery:
        intro.append(f'<p><a href="{quote(gallery)}">Back to the gallery</a> &middot; '
                     f'<a href="strategies.json">strategies.json</a></p>')
    if report.get("skipped"):
        intro.append(f'<p class="note">{len(report["skipped"])} record(s) left out, e.g. '
                     f'<span class="mono">{_t(report["skipped"][0])}</span></p>')
    intro.append(_first(flagged))
    body = [_class_section(c) for c in classes]
    return head + "\n".join(intro + body) + "\n</body></html>\n"


def _first(flagged: list) -> str:
    if not flagged:
        return '<section id="first"><h2>Read first</h2><p>No strategy carries a flag.</p></section>'
    rows = "".join(f'<tr><td><a href="#s-{_t(s["id"])}">{_t(c["label"])} / {_t(s["id"])}</a></td>'
                   f'<td>{_share(s)}</td><td>{_flags(s["flags"])}</td><td>{_changed(s)}{_of(s)}</td></tr>'
                   for c, s in flagged)
    return f'<section id="first"><h2>Read first</h2><table class="first"><tbody>{rows}</tbody></table></section>'


def _num(v: Any, missing: str = "not recorded") -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else missing


def _changed(s: dict[str, Any]) -> str:
    return _t(decisive_text(s.get("measures", {}).get("decisive")) or "")


def _of(s: dict[str, Any]) -> str:
    return f" (look-alikes of {_t(s['split_from'])})" if s.get("split_from") else ""


def _split(s: dict[str, Any]) -> str:
    if not s.get("split_from"):
        return ""
    other = _t(s["split_from"])
    return (f'<p class="note">Split from strategy <a href="#s-{other}">{other}</a>: these decisions looked like its '
            f"evidence, but removing their own evidence left them standing.</p>")


def _decisive(v: Any) -> str:
    return _t(decisive_text(v) or "the evidence was not removed in this run")


def _share(s: dict[str, Any]) -> str:
    return f"{s['share'] * 100:.1f}% ({len(s['images'])} images)"


def _flags(flags: list[str]) -> str:
    return "".join(f'<span class="flag" title="{_t(FLAG_TEXT.get(f, f))}">{_t(f)}</span>'
                   for f in sorted(flags, key=lambda f: FLAGS.index(f) if f in FLAGS else len(FLAGS)))


def _class_section(c: dict[str, Any]) -> str:
    wrong = f", {c['wrong']} wrong" if c.get("wrong") else ""
    parts = [f'<section><h2 id="c-{int(c["class_index"])}">{_t(c["label"])} '
             f'<span class="note">(class {int(c["class_index"])}, {counted(c["images"], "decision")}{wrong}, '
             f'{counted(len(c["strategies"]), "strategy", "strategies")})</span></h2>']
    if c.get("note"):
        parts.append(f'<p class="note">{_t(c["note"])}</p>')
    parts += [_strategy(s) for s in c["strategies"]]
    return "\n".join(parts) + "</section>"


def _strategy(s: dict[str, Any]) -> str:
    m = s.get("measures", {})
    known = f"{s['wrong']} wrong of {s['known']} with a known class" if s.get("known") else "true classes unknown"
    names = s["images"][:MEMBERS_SHOWN]
    more = len(s["images"]) - len(names)
    items = "".join(f"<li>{_t(n)}</li>" for n in names) + (f"<li>... and {more} more (strategies.json)</li>"
                                                             if more > 0 else "")
    img = f'<img src="{quote(s["montage"])}" alt="montage of strategy {_t(s["id"])}">' \
        if s.get("montage") else ""
    return (f'<div class="strategy{" flagged" if s["flags"] else ""}" id="s-{_t(s["id"])}">'
            f'<h3>Strategy {_t(s["id"])}: {_share(s)} {_flags(s["flags"])}</h3>'
            f'<p>{known}; tightness {m.get("tightness", 0):.2f} (class {m.get("class_tightness", 0):.2f}), '
            f'extent {_num(m.get("extent"))}, spot share {_num(m.get("spot_share"), "unknown")}, '
            f'place mass {m.get("place_mass", 0):.2f}, border mass {m.get("border_mass", 0):.2f}, '
            f'{_decisive(m.get("decisive"))}</p>{_split(s)}{img}'
            f'<details><summary>Images ({len(s["images"])})</summary><ul class="members mono">{items}</ul>'
            f"</details></div>")


__all__ = ["FLAG_TEXT", "strategies_html"]
