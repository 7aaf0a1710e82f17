"""The ``nestviz strategies`` command: a thin layer over :func:`nestviz.strategies.find`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from .common import EXIT_PARTIAL, EXIT_USAGE, fail

RUN_DIR = typer.Argument(..., help="The output folder of an explain, cam or annotate run (its --out).")


def strategies(
    run_dir: Path = RUN_DIR,
    command: Optional[str] = typer.Option(None, "--command", help="Whose records to group: annotate, cam or explain "
                                          "(default: the first of these with records in the folder)."),
    json_out: bool = typer.Option(False, "--json", help="Print strategies.json on stdout."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampling and k-means (the result is deterministic)."),
    no_montage: bool = typer.Option(False, "--no-montage", help="Draw no montages (JSON and page only)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary lines (errors are still printed)."),
) -> None:
    """Group each predicted class's decisions into strategies (decisions whose evidence is alike, by where it lies
    and what the model saw there) and flag those to read first. A flagged pattern or spot keeps the decisions that
    the run's removal of their evidence changed; the look-alikes it left standing are a strategy of their own.
    Writes DIR/strategies.json, DIR/strategies.html (linked from the gallery) and one montage per strategy in
    DIR/strategies/."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: a threaded eigh waits for busy cores
    from ..strategies import COMMANDS, StrategiesError, dumps, find, summary_lines

    if command is not None and command not in COMMANDS:
        fail(f"--command must be one of {', '.join(COMMANDS)}, got {command!r}")
    try:
        report = find(run_dir, command, seed=seed, montages=not no_montage)
    except StrategiesError as e:
        fail(str(e), e.code)
        return
    except OSError as e:
        fail(f"{run_dir}: cannot write the strategies: {e.strerror or e}", EXIT_USAGE)
        return
    if json_out:
        typer.echo(dumps(report), nl=False)
    elif not quiet:
        for line in summary_lines(report):
            typer.echo(line)
    for line in report["skipped"]:
        typer.echo(f"nestviz: left out: {line}", err=True)
    if report["skipped"]:
        raise typer.Exit(EXIT_PARTIAL)
