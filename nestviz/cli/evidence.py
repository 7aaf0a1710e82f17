"""``nestviz metrics --evidence``: the known-answer check's table, over :mod:`nestviz.evaluation.known_answers`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from .._text import shown
from .common import EXIT_PARTIAL, fail

# (metric key, heading) in table order; every metric is a rate or a mean over the evidence-caused decisions
ROWS = (
    ("covers", "leaf covers >= 1/4 of the evidence"),
    ("holds_centre", "leaf holds the evidence's centre"),
    ("holds_centre_clear", "  the same, centre clear of the leaf edges"),
    ("point_on", "point on the evidence (CAM peak, leaf centre)"),
    ("box_holds_centre", "CAM box holds the evidence's centre"),
    ("deletion", "deletion: class probability drop"),
)
COLUMNS = ("gradcat", "cam", "centre", "random", "occlusion")


def evidence_command(inputs: list[Path], evidence: Path, nv: Any, *, batch_size: int, fit: str, quiet: bool,
                     json_out: bool, out: Optional[Path], target: Optional[list[str]] = None) -> None:
    """Find the images with evidence boxes, score them (only decisions for the ``target`` classes, if given), print
    the table or the JSON (and write it under ``out``)."""
    from .._files import atomic_write_bytes
    from ..evaluation.boxes import BoxFileError
    from ..evaluation.known_answers import EvidenceOptions, find_evidence, run_evidence
    from .tables import progress_bar

    try:
        opts = EvidenceOptions(target=tuple(nv.resolve_classes(target)) if target else None)
    except ValueError as e:
        fail(f"--evidence-class: {e}")
    try:
        samples, skipped = find_evidence(inputs, evidence)
    except BoxFileError as e:
        fail(str(e))
    for s in skipped:
        if s["kind"] == "error":
            typer.echo(f"nestviz: {shown(s['image'])}: {shown(s['reason'])}", err=True)
    if not samples:
        fail(f"no image under the inputs has an evidence box in {shown(evidence)}")
    if quiet or json_out:
        report = run_evidence(nv, samples, opts, batch_size=batch_size, fit=fit)
    else:
        with progress_bar("evidence", len(samples)) as tick:
            report = run_evidence(nv, samples, opts, batch_size=batch_size, fit=fit,
                                  progress=lambda n: tick(n, len(samples)))
    report.skipped = skipped + report.skipped
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "evidence.json", json.dumps(report.to_json(), indent=1).encode())
        atomic_write_bytes(out / "evidence.jsonl", "".join(json.dumps(r.to_json()) + "\n"
                                                           for r in report.records).encode())
    if json_out:
        typer.echo(json.dumps(report.to_json()))
    else:
        print_evidence(report.summary)
    if any(s.get("kind") == "error" for s in report.skipped):
        raise typer.Exit(EXIT_PARTIAL)


def print_evidence(summary: dict[str, Any]) -> None:
    """The known-answer table on the terminal: one row per score, one column per method and baseline."""
    from rich.console import Console
    from rich.table import Table

    n, caused = summary["images"], summary["decisions"]
    title = f"{n} images; removing the evidence changes the top class of {caused} ({summary['share_caused']:.1%})"
    if not caused:
        Console().print(title + ": no evidence-caused decision to score")
        return
    t = Table(title=title, title_justify="left", caption=f"on those {caused} decisions, for the class the model "
              f"chose; removing the evidence itself drops it by {summary['evidence_drop']:.3f}; the evidence's centre "
              f"is clear of the leaf edges (by the point tolerance) in {summary['clear_decisions']} of them",
              caption_justify="left")
    t.add_column("score")
    for col in COLUMNS:
        t.add_column(col, justify="right")
    m = summary["methods"]
    for key, heading in ROWS:
        cells = ["-" if m.get(c, {}).get(key) is None else f"{m[c][key]:.3f}" for c in COLUMNS]
        if any(c != "-" for c in cells):
            t.add_row(heading, *cells)
    Console().print(t)
