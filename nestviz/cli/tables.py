"""What the CLI shows people: Rich tables of predictions, model cards, accuracy and run summaries,
and the folder-run progress bar. Imported only by commands that print them (not for ``--help``)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .._text import shown
from ..results.records import ImageResult


def _cell(value: Any) -> Text:
    """A table cell that shows ``value`` as written: no Rich markup read, control characters escaped."""
    return Text(shown(value))


def print_predictions(results: list[ImageResult], title: str) -> None:
    """One row per predicted class, one section per image."""
    table = Table(title=title)
    for col, kw in (("image", {"overflow": "fold"}), ("rank", {"justify": "right"}), ("class", {}),
                    ("index", {"justify": "right"}), ("probability", {"justify": "right"})):
        table.add_column(col, **kw)
    for r in results:
        for p in r.predictions:
            table.add_row(_cell(r.image if p.rank == 1 else ""), str(p.rank), _cell(p.label), str(p.class_index),
                          f"{p.probability:.2%}", end_section=p.rank == len(r.predictions))
    Console().print(table)


def image_lines(record: dict[str, Any]) -> list[str]:
    """A folder run's image on the terminal: its path (and true label), then one line per class with the
    GradCAT leaf, the CAM box and peak, in original pixels."""

    def box(b: Any) -> str:
        return "[" + ", ".join(f"{v:.0f}" for v in b) + "]"

    head = shown(record.get("image"))
    if record.get("true_label"):
        head += f"  (true: {shown(record['true_label'])})"
    if record.get("status") == "skipped":
        head += "  (done earlier)"
    lines = [head]
    for p in record.get("predictions") or []:
        bits = [f"  #{p.get('rank')} {shown(p.get('label'))} {100 * float(p.get('probability', 0)):.1f}%"]
        if p.get("path"):
            bits.append(f"leaf {box(p['path'][-1]['box'])}")
        if p.get("box"):
            bits.append(f"box {box(p['box'])}")
        if p.get("peak"):
            bits.append(f"peak ({p['peak'][0]:.0f}, {p['peak'][1]:.0f})")
        lines.append("  ".join(bits))
    return lines


def print_card(rows: list[tuple[str, str]]) -> None:
    """The model card, one (field, text) row each."""
    t = Table(show_header=False, title="nestviz model card")
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for field, text in rows:
        t.add_row(_cell(field), _cell(text))
    Console().print(t)


def print_evaluation(report: Any, data_dir: Path) -> None:
    """Accuracy per class, then the most confused pairs (an ``EvalReport``)."""
    t = Table(title=Text(f"{shown(data_dir)}: top-1 {report.top1:.2%}, top-5 {report.top5:.2%} ({report.images} images)"))
    t.add_column("class")
    t.add_column("images", justify="right")
    t.add_column("top-1", justify="right")
    for label, d in report.per_class.items():
        t.add_row(_cell(label), str(d["images"]), f"{d['top1']:.2%}")
    Console().print(t)
    if report.confusions:
        c = Table(title="most confused (true -> predicted)")
        c.add_column("true")
        c.add_column("predicted")
        c.add_column("images", justify="right")
        for d in report.confusions:
            c.add_row(_cell(d["true"]), _cell(d["predicted"]), str(d["images"]))
        Console().print(c)


@contextmanager
def progress_bar(mode: str, total: int) -> Iterator[Callable[[int, int], None]]:
    """A bar on stderr; yields the ``progress(done, total)`` callback that moves it and shows images/s."""
    columns = (TextColumn(f"[bold]{mode}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(mode, total=total, rate="")
        start: list[float] = []
        first = [0]

        def tick(done: int, total: int) -> None:  # noqa: ARG001
            if not start:
                start.append(time.perf_counter())
                first[0] = done
            dt = time.perf_counter() - start[0]
            rate = f"{(done - first[0]) / dt:.1f} img/s" if dt > 0 and done > first[0] else ""
            bar.update(task, completed=done, rate=rate)

        try:
            yield tick
        except Exception:  # a setup error met when the work starts (the model loads lazily): its line alone
            bar.live.transient = True  # no "0/N" bar left behind; Ctrl-C keeps the bar, the summary follows
            raise


def print_run_summary(summary: Any, out_dir: Path) -> None:
    """Counts and speed of a folder run (a ``RunSummary``), its first failures, where the outputs are and the
    command that finds what its decisions share (``nestviz strategies``)."""
    console = Console(stderr=True)
    t = Table(title="interrupted: re-run the same command to resume" if summary.interrupted else None)
    for col in ("done", "failed", "skipped", "time", "images/s"):
        t.add_column(col, justify="right")
    t.add_row(str(summary.done), str(summary.failed), str(summary.skipped), f"{summary.seconds:.1f}s",
              f"{summary.images_per_s:.2f}")
    console.print(t)
    for f in summary.failures[:20]:
        console.print(f"failed: {shown(f)}", markup=False, highlight=False, soft_wrap=True)  # one line each, whole
    console.print(f"outputs in {shown(out_dir)}/ (gallery: {shown(out_dir / 'index.html')})", markup=False, highlight=False,
                  soft_wrap=True)
    if summary.done + summary.skipped and not summary.interrupted:
        console.print(f"what the decisions share: nestviz strategies {shlex.quote(shown(out_dir))}", markup=False,
                      highlight=False, soft_wrap=True)


def on_record_printer(json_out: bool, quiet: bool):  # noqa: ANN202
    """What folder mode prints per image: its JSON (``--json``), else its classes with leaf and box (unless
    ``quiet``); a failure's error line on stderr in every case."""
    import typer

    from ..batch.outputs import dumps, public_json

    def on_record(record: dict) -> None:
        if record.get("status") == "error":
            typer.echo(f"nestviz: error: {shown(public_json(record).get('error'))}", err=True)
        if json_out:
            typer.echo(dumps(public_json(record)))
        elif not quiet and record.get("status") != "error":
            typer.echo("\n".join(image_lines(record)))

    return on_record


def run_with_progress(items, opts, load_model, weights_id, json_out, quiet, worker_init=None):  # noqa: ANN001, ANN201
    """Run folder mode with a progress bar and a closing summary on stderr (unless ``quiet``); ``worker_init``
    runs first in each figure-drawing process (the CLI's makes them leave Ctrl-C to the main process)."""
    from ..batch.runner import run_folder

    on_record = on_record_printer(json_out, quiet)
    if quiet:
        return run_folder(items, opts, load_model, weights_id, on_record=on_record, worker_init=worker_init)
    with progress_bar(opts.mode, len(items)) as tick:
        summary = run_folder(items, opts, load_model, weights_id, on_record=on_record, progress=tick,
                             worker_init=worker_init)
    print_run_summary(summary, opts.out_dir)
    return summary
