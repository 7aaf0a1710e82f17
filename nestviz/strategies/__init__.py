"""Prediction strategies (``nestviz strategies DIR``): per predicted class, groups of decisions whose evidence is
alike (Lapuschkin et al. 2019, SpRAy), described by where the evidence lies and what the model saw there.

    from nestviz.strategies import find
    report = find("nestviz-out")          # reads DIR's manifest; writes strategies.json, strategies.html, montages

``records`` reads a run's decisions, ``cluster`` groups them (numpy), ``flags`` says what to read first,
``report`` assembles the JSON, ``montage`` and ``page`` draw (Pillow, HTML). No torch anywhere.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .._files import atomic_write_text
from .._text import counted
from .flags import decisive_text
from .records import COMMANDS, StrategiesError, read_decisions
from .report import MONTAGE_CROPS, MONTAGE_WHOLE, Shown, find_strategies, method

JSON_NAME, PAGE_NAME = "strategies.json", "strategies.html"


def find(out_dir: str | Path, command: str | None = None, *, seed: int = 0, montages: bool = True,
         workers: int = 4) -> dict[str, Any]:
    """Group the decisions of the run in ``out_dir`` into strategies and write ``strategies.json``, the montages
    (``strategies/*.png``) and ``strategies.html`` (each atomically; the page last), and link the page from the
    run's gallery. Returns the JSON's content; ``skipped`` lists the records left out (one line each).
    StrategiesError (with its exit code) when the folder is not a run or holds nothing to group."""
    out_dir = Path(out_dir)
    chosen, decisions, problems = read_decisions(out_dir, command)
    classes, shown = find_strategies(decisions, seed=seed)
    report = {"run": str(out_dir), "command": chosen, "decisions": len(decisions), "method": method(),
              "classes": classes, "skipped": problems}
    if montages:
        draw_montages(out_dir, classes, shown, workers)
    else:
        for c in classes:
            for s in c["strategies"]:
                s["montage"] = None
    atomic_write_text(out_dir / JSON_NAME, dumps(report))
    from .page import strategies_html
    from ..batch.links import refresh_links

    atomic_write_text(out_dir / PAGE_NAME, strategies_html(report, "index.html" if (out_dir / "index.html").is_file() else None))
    refresh_links(out_dir)
    return report


def draw_montages(out_dir: Path, classes: list[dict], shown: list[Shown], workers: int) -> None:
    """Every strategy's montage PNG, drawn in ``workers`` threads (decoding releases the GIL)."""
    from .montage import draw_montage, write_montage

    entries = {s["id"]: s for c in classes for s in c["strategies"]}
    roots = [out_dir.parent, out_dir]

    def one(sh: Shown) -> None:
        s = entries[sh.id]
        lines = [f"{s['share'] * 100:.1f}% of the class; {s['wrong']} wrong of {s['known']} known; "
                 f"flags: {', '.join(s['flags']) or 'none'}"]
        changed = decisive_text(s["measures"].get("decisive"))
        lines += [changed] if changed else []
        image = draw_montage(sh.title, lines, sh.mean_map, sh.members, roots, MONTAGE_CROPS, MONTAGE_WHOLE)
        write_montage(out_dir / sh.montage, image)

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="nestviz-montage") as pool:
        list(pool.map(one, shown))


def summary_lines(report: dict[str, Any]) -> list[str]:
    """What the command prints: one line per class, one per flagged strategy, where the page is."""
    lines = []
    for c in report["classes"]:
        flagged = [s for s in c["strategies"] if s["flags"]]
        n = len(c["strategies"])
        lines.append(f"{c['label']}: {counted(c['images'], 'decision')}, {counted(n, 'strategy', 'strategies')}"
                     + (f", {len(flagged)} flagged" if flagged else ""))
        lines += [f"  {s['id']}: {s['share'] * 100:.1f}% ({len(s['images'])}), {s['wrong']} wrong, "
                  f"flags: {', '.join(s['flags'])}" + _removal(s) for s in flagged]
    lines.append(f"wrote {Path(report['run']) / PAGE_NAME}")
    return lines


def _removal(s: dict[str, Any]) -> str:
    text = decisive_text(s["measures"].get("decisive"))
    return f"; {text}" if text else ""


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=1) + "\n"


__all__ = ["JSON_NAME", "PAGE_NAME", "COMMANDS", "StrategiesError", "find", "summary_lines", "dumps"]
