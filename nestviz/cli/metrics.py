"""``nestviz metrics``: the command and its table, over :func:`nestviz.evaluation.measure.metrics`.

Heavy modules (torch, rich) load inside the command, so ``nestviz --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .._text import shown
from ..defaults import CAM_KIND, EXPLAIN_FIT, GRADCAT_SCORE, THRESHOLD
from .common import (EXIT_PARTIAL, ModelChoice, check_fit_option, check_out_folder, check_variant_options, fail,
                     load_or_fail)
from .options import (BATCH_SIZE, Arch, Batch, CamKind, Device, Fit, GradcatScore, MaxPixels, Quiet, Threshold,
                      Weights)

# (metric key, heading, better) in table order; nested keys are joined with "."
ROWS = (
    ("maxboxacc_v2", "MaxBoxAccV2", "higher"),
    ("gt_known_loc", "GT-known loc", "higher"),
    ("box_covers_view", "box covers view", "lower"),
    ("pointing", "pointing game", "higher"),
    ("deletion_auc", "deletion AUC", "lower"),
    ("insertion_auc", "insertion AUC", "higher"),
)
COLUMNS = ("cam", "gradcat", "centre", "random", "occlusion")


# The options only this command has (the shared ones are in options.py).
Samples = Annotated[list[Path], typer.Argument(help="Image files or class folders (the folder name is the true class).")]
Boxes = Annotated[Optional[Path], typer.Option(
    "--boxes", help="Object boxes: a folder of Pascal VOC XML files (matched by file stem), a COCO .json or a "
    ".csv image,xmin,ymin,xmax,ymax[,label].")]
EvidenceBoxes = Annotated[Optional[Path], typer.Option(
    "--evidence", help="Boxes of what the model is known to use (a planted patch, a watermark), as --boxes: score "
    "the explanations on the decisions that removing it changes (a known-answer check).")]
EvidenceClasses = Annotated[Optional[list[str]], typer.Option(
    "--evidence-class", metavar="CLASS", help="The class the evidence is known to feed (name, unique prefix or index; repeatable): "
    "only decisions for it are scored, not images the evidence merely disturbs into another class.")]
Methods = Annotated[str, typer.Option("--methods", help="Explanations to score, comma-separated.")]
Limit = Annotated[Optional[int], typer.Option("--limit", min=1, help="Score this many images, spread over the inputs.")]
Steps = Annotated[int, typer.Option("--steps", min=2, help="Deletion/insertion: change the pixels in this many steps.")]
Tolerance = Annotated[float, typer.Option("--tolerance", min=0.0, help="Pointing game tolerance, image pixels.")]
NoSanity = Annotated[bool, typer.Option("--no-sanity", help="Skip the cascading-randomisation check.")]
PerClass = Annotated[bool, typer.Option("--per-class", help="Also print one table per true class.")]
MetricsOut = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Also write metrics.json, per-image metrics.jsonl and metrics-curves.png "
    "(deletion/insertion) here.")]
OneJson = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")]


def metrics(
    inputs: Samples,
    boxes: Boxes = None,
    evidence: EvidenceBoxes = None,
    evidence_class: EvidenceClasses = None,
    methods: Methods = "gradcat,cam",
    limit: Limit = None,
    steps: Steps = 8,
    tolerance: Tolerance = 15.0,
    threshold: Threshold = THRESHOLD,
    no_sanity: NoSanity = False,
    cam_kind: CamKind = CAM_KIND,
    gradcat_score: GradcatScore = GRADCAT_SCORE,
    fit: Fit = EXPLAIN_FIT,
    per_class: PerClass = False,
    out: MetricsOut = None,
    json_out: OneJson = False,
    weights: Weights = None,
    arch: Arch = None,
    device: Device = "auto",
    batch_size: Batch = BATCH_SIZE,
    quiet: Quiet = False,
    max_pixels: MaxPixels = None,  # noqa: ARG001 - applied by its callback
) -> None:
    """Score GradCAT and CAM on your images: localization against object boxes, faithfulness, sanity, with baselines."""
    from ..evaluation.trust import METHODS, MetricsOptions

    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    if not chosen or any(m not in METHODS for m in chosen):
        fail(f"--methods takes {', '.join(METHODS)}; got {methods!r}")
    variants = check_variant_options(cam_kind, gradcat_score)
    fit = check_fit_option(fit)
    _check_places(boxes, evidence, out)
    # the variants are the model's: the options read them from it (run_metrics)
    opts = MetricsOptions(methods=chosen, steps=steps, tolerance=tolerance, threshold=threshold, sanity=not no_sanity)
    nv = load_or_fail(ModelChoice(weights, arch, device), variants)
    if evidence is not None:
        from .evidence import evidence_command

        return evidence_command(inputs, evidence, nv, batch_size=batch_size, fit=fit, quiet=quiet,
                                json_out=json_out, out=out, target=evidence_class)
    report = _measure(inputs, boxes, opts, nv, limit=limit, batch_size=batch_size, fit=fit, quiet=quiet or json_out)
    if out is not None:
        from ..evaluation.measure import write_outputs

        write_outputs(report, out)
    if json_out:
        typer.echo(json.dumps(report.to_json()))
    else:
        per = report.seconds / max(report.images, 1)
        print_report(report.metrics, f"{report.images} images, top-1 {report.accuracy:.1%}, {report.seconds:.0f} s "
                                     f"({per:.1f} s per image)")
        for label, m in report.per_class.items() if per_class else ():
            print_report(m, f"{label}: {sum(1 for r in report.records if r.label == label)} images")
    if any(s.get("kind") == "error" for s in report.skipped):
        raise typer.Exit(EXIT_PARTIAL)


def _check_places(boxes: Optional[Path], evidence: Optional[Path], out: Optional[Path]) -> None:
    """One line and exit 2, before any work, for a box or evidence path that is not there, both given, or an
    ``--out`` that cannot be made."""
    for given, what in ((boxes, "box"), (evidence, "evidence box")):
        if given is not None and not given.exists():
            fail(f"{given}: no such {what} file or folder")
    if boxes is not None and evidence is not None:
        fail("--boxes and --evidence are two protocols: give one")
    if out is not None:
        check_out_folder(out)


def _measure(inputs: list[Path], boxes: Optional[Path], opts: Any, nv: Any, *, limit: Optional[int], batch_size: int,
             fit: str, quiet: bool) -> Any:
    """Find the samples (each left-out image one line on stderr) and score them, with a progress bar unless quiet."""
    from ..evaluation.boxes import BoxFileError
    from ..evaluation.measure import find_samples, run_metrics
    from .tables import progress_bar

    try:
        samples, skipped = find_samples(inputs, nv.bundle.class_names, boxes, limit)
    except BoxFileError as e:
        fail(str(e))
    if boxes is None:
        typer.echo("nestviz: no --boxes: the localization metrics (MaxBoxAccV2, GT-known loc, box covers view, "
                   "pointing game) are skipped; faithfulness and sanity only", err=True)
    partial = [s for s in skipped if s["kind"] == "partial"]
    for s in skipped:
        if s["kind"] != "partial" or len(partial) <= 5:
            typer.echo(f"nestviz: {shown(s['image'])}: {shown(s['reason'])}", err=True)
    if len(partial) > 5:  # a box set for part of a folder: one line, not thousands
        typer.echo(f"nestviz: {len(partial)} images have no box in {shown(boxes)}: faithfulness only "
                   f"(e.g. {shown(partial[0]['image'])}); the JSON report lists them", err=True)
    if not samples:
        fail("no images of the model's classes found under the inputs")
    if quiet:
        report = run_metrics(nv, samples, opts, batch_size, fit=fit)
    else:
        with progress_bar("metrics", len(samples)) as tick:
            report = run_metrics(nv, samples, opts, batch_size, progress=lambda n: tick(n, len(samples)), fit=fit)
    report.skipped = skipped + report.skipped
    return report


def table_rows(m: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(heading, better, one cell per column) for every metric some column has; '-' where it does not apply."""
    rows = []
    for key, heading, better in ROWS:
        cells = [_cell(m.get(col, {}).get(key)) for col in COLUMNS]
        if any(c != "-" for c in cells):
            rows.append((heading, better, cells))
    levels = sorted({k for col in COLUMNS for k in m.get(col, {}).get("path_agreement", {})}, reverse=True)
    for level in levels:
        cells = [_cell(m.get(col, {}).get("path_agreement", {}).get(level)) for col in COLUMNS]
        rows.append((f"path agreement {level.replace('_', ' ')}", "higher", cells))
    steps = list(m.get("cam", m.get("gradcat", {})).get("sanity", {}))
    for i, step in enumerate(steps):
        cells = [_cell(m.get(col, {}).get("sanity", {}).get(step)) for col in COLUMNS]
        rows.append(("sanity: " + ("head" if i == 0 else f"+{step.replace('_', ' ')}") + " random", "near 0", cells))
    return rows


def _cell(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def print_report(m: dict[str, Any], title: str) -> None:
    """The metrics as a method x metric table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, title_justify="left", caption="pointing: CAM peak, GradCAT leaf centre; box: the "
              "default CAM box; sanity: rank correlation with the map after randomising the model's top "
              "(cumulative)", caption_justify="left")
    t.add_column("metric")
    t.add_column("better")
    for col in COLUMNS:
        t.add_column(col, justify="right")
    for heading, better, cells in table_rows(m):
        t.add_row(heading, better, *cells)
    Console().print(t)
