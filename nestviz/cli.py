"""The ``nestviz`` command line: a thin layer over the Python API.

This module is the entry point: the app, the folder-mode commands (explain, cam, annotate) and
what belongs to the process (signals, exit codes); the other commands are in ``commands.py``.
Heavy modules (torch, matplotlib) are imported inside the commands, never at import
time, so ``nestviz --help`` answers without loading them.

Exit codes: 0 all done; 1 unexpected error; 2 usage or setup error (bad option, no
inputs, invalid weights, unavailable device); 3 some inputs failed, the rest processed;
130 interrupted.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from .commands import (ARCH, BATCH, CAM_KIND_OPT, CLASSES, DEVICE, EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_PARTIAL,
                       EXIT_UNEXPECTED, FIT, FORMAT, FULL_SIZE, GRADCAT_SCORE_OPT, JSON, NO_RENDER, OUT, OVERWRITE,
                       QUIET, SAVE_MAPS, SHARD, THRESHOLD_OPT, TREE, WEIGHTS, check_fit_option, check_variant_options,
                       emit, fail, find_inputs, load_or_fail, note_top_k)
from .defaults import CAM_KIND, GRADCAT_SCORE, THRESHOLD, TOP_K
from .commands import evaluate, info, predict, train
from .metrics_cli import metrics
from .strategies_cli import strategies

app = typer.Typer(
    name="nestviz",
    help="Explain NesT vision models: GradCAT tree traversal and class activation maps.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nestviz {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """Explain NesT vision models: GradCAT tree traversal and class activation maps."""


for command in (predict, info, evaluate, metrics, strategies):
    app.command(epilog=EXIT_CODES_HELP)(command)



@dataclass(frozen=True)
class FolderArgs:
    """The options of explain / cam / annotate, by name."""

    mode: str
    inputs: list[Path]
    weights: Optional[Path]
    arch: Optional[str]
    device: str
    top_k: int
    classes: Optional[list[str]]
    out: Path
    fmt: str
    json_out: bool
    no_render: bool
    batch_size: int
    overwrite: bool
    shard: Optional[str]
    quiet: bool
    fit: str
    tree: bool = False
    full_size: bool = False
    threshold: float = THRESHOLD
    save_maps: bool = False
    cam_kind: str = CAM_KIND
    gradcat_score: str = GRADCAT_SCORE


def run_mode(a: FolderArgs) -> None:
    """Shared body of explain / cam / annotate: folder mode over any mix of files and folders."""
    from .batch.discover import has_multiple_roots, parse_shard, shard as take_shard
    from .batch.runner import RunOptions, check_writable
    from .draw import figure_format
    from .model.checkpoints import load_weights_identity

    try:
        fmt = figure_format(a.fmt)
    except ValueError:
        fail(f"--format must be png, jpg, svg or pdf, got {a.fmt.lower().lstrip('.')!r}")
    if not 0.0 <= a.threshold <= 1.0:
        fail(f"--threshold must be between 0 and 1, got {a.threshold}")
    fit = check_fit_option(a.fit)
    cam_kind, gradcat_score = check_variant_options(a.cam_kind, a.gradcat_score)
    try:
        part = parse_shard(a.shard) if a.shard else None
    except ValueError as e:
        fail(str(e))
    try:  # creates nothing: OUT is made when the run starts, after every setup check
        check_writable(a.out)
    except NotADirectoryError as e:
        fail(f"--out {a.out}: {e}")
    except OSError as e:
        fail(f"{a.out}: output folder is not writable ({e.strerror or e})")
    items, problems = find_inputs(a.inputs, exclude=[a.out])
    multi_root = has_multiple_roots(items)  # before sharding, so every shard names outputs alike
    if part is not None:
        items = take_shard(items, *part)

    @cache
    def load_model():  # noqa: ANN202 - loaded once, and only when there is work (or a --class to resolve)
        nv = load_or_fail(a.weights, a.arch, a.device, cam_kind, gradcat_score)
        if not a.classes:
            note_top_k(a.top_k, nv.num_classes)
        return nv

    try:
        weights_id = load_weights_identity(a.weights, arch=a.arch)
    except Exception as e:  # noqa: BLE001 - reported as a setup error
        fail(str(e))
    class_ids = None
    if a.classes:
        try:
            class_ids = load_model().resolve_classes(a.classes)
        except ValueError as e:
            fail(str(e))
    opts = RunOptions(mode=a.mode, out_dir=a.out, top_k=a.top_k, classes=class_ids, threshold=a.threshold, fmt=fmt,
                      render=not a.no_render, save_maps=a.save_maps, overwrite=a.overwrite, batch_size=a.batch_size,
                      shard=part, multi_root=multi_root, fit=fit, tree=a.tree, full_size=a.full_size,
                      cam_kind=cam_kind, gradcat_score=gradcat_score)
    with sigterm_interrupts():
        summary = run_with_progress(items, opts, load_model, weights_id, a.json_out, a.quiet)
    summary.failed += len(problems)
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)


def ignore_sigint() -> None:
    """Figure workers leave Ctrl-C to the main process, which lets the figures being drawn land."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM stops a run like Ctrl-C does (cleanly, resumable); the old handler comes back after."""
    if threading.current_thread() is not threading.main_thread():  # handlers belong to the main thread
        yield
        return

    def on_term(signum: int, frame: object) -> None:  # noqa: ARG001
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def on_record_printer(json_out: bool, quiet: bool):  # noqa: ANN202
    """What folder mode prints per image: its JSON (``--json``), else its classes with leaf and box (unless
    ``quiet``); a failure's error line on stderr in every case."""
    from .batch.runner import public_json

    def on_record(record: dict) -> None:
        if record.get("status") == "error":
            typer.echo(f"nestviz: error: {public_json(record).get('error')}", err=True)
        if json_out:
            emit(public_json(record))
        elif not quiet and record.get("status") != "error":
            from .reports import image_lines

            typer.echo("\n".join(image_lines(record)))

    return on_record


def run_with_progress(items, opts, load_model, weights_id, json_out, quiet):  # noqa: ANN001, ANN201
    """Run folder mode with a progress bar and a closing summary on stderr (unless ``quiet``)."""
    from .batch.runner import run_folder

    on_record = on_record_printer(json_out, quiet)
    if quiet:
        return run_folder(items, opts, load_model, weights_id, on_record=on_record, worker_init=ignore_sigint)
    from .reports import print_run_summary, progress_bar

    with progress_bar(opts.mode, len(items)) as tick:
        summary = run_folder(items, opts, load_model, weights_id, on_record=on_record, progress=tick,
                             worker_init=ignore_sigint)
    print_run_summary(summary, opts.out_dir)
    return summary


@app.command(epilog=EXIT_CODES_HELP)
def explain(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    top_k: int = typer.Option(TOP_K["explain"], "--top-k", "-k", min=1, help="Explain the k most probable classes."),
    classes: Optional[list[str]] = CLASSES,
    out: Path = OUT,
    fmt: str = FORMAT,
    json_out: bool = JSON,
    no_render: bool = NO_RENDER,
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    device: str = DEVICE,
    batch_size: int = BATCH,
    overwrite: bool = OVERWRITE,
    shard: Optional[str] = SHARD,
    quiet: bool = QUIET,
    fit: str = FIT,
    tree: bool = TREE,
    full_size: bool = FULL_SIZE,
    gradcat_score: str = GRADCAT_SCORE_OPT,
) -> None:
    """GradCAT: follow the NesT block tree from the root to the leaf block that drives each class."""
    run_mode(FolderArgs("explain", inputs, weights=weights, arch=arch, device=device, top_k=top_k, classes=classes,
                        out=out, fmt=fmt, json_out=json_out, no_render=no_render, batch_size=batch_size,
                        overwrite=overwrite, shard=shard, quiet=quiet, fit=fit, tree=tree, full_size=full_size,
                        gradcat_score=gradcat_score))


@app.command(epilog=EXIT_CODES_HELP)
def cam(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    top_k: int = typer.Option(TOP_K["cam"], "--top-k", "-k", min=1, help="Map the k most probable classes."),
    classes: Optional[list[str]] = CLASSES,
    threshold: float = THRESHOLD_OPT,
    out: Path = OUT,
    fmt: str = FORMAT,
    json_out: bool = JSON,
    no_render: bool = NO_RENDER,
    save_maps: bool = SAVE_MAPS,
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    device: str = DEVICE,
    batch_size: int = BATCH,
    overwrite: bool = OVERWRITE,
    shard: Optional[str] = SHARD,
    quiet: bool = QUIET,
    fit: str = FIT,
    full_size: bool = FULL_SIZE,
    cam_kind: str = CAM_KIND_OPT,
) -> None:
    """Class activation maps: a heatmap, a weakly-supervised box and the peak per class."""
    run_mode(FolderArgs("cam", inputs, weights=weights, arch=arch, device=device, top_k=top_k, classes=classes,
                        out=out, fmt=fmt, json_out=json_out, no_render=no_render, batch_size=batch_size,
                        overwrite=overwrite, shard=shard, quiet=quiet, threshold=threshold, save_maps=save_maps,
                        fit=fit, full_size=full_size, cam_kind=cam_kind))


@app.command(epilog=EXIT_CODES_HELP)
def annotate(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    top_k: int = typer.Option(TOP_K["annotate"], "--top-k", "-k", min=1, help="Explain and map the k most probable "
                              "classes."),
    classes: Optional[list[str]] = CLASSES,
    threshold: float = THRESHOLD_OPT,
    out: Path = OUT,
    fmt: str = FORMAT,
    json_out: bool = JSON,
    no_render: bool = NO_RENDER,
    save_maps: bool = SAVE_MAPS,
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    device: str = DEVICE,
    batch_size: int = BATCH,
    overwrite: bool = OVERWRITE,
    shard: Optional[str] = SHARD,
    quiet: bool = QUIET,
    fit: str = FIT,
    tree: bool = TREE,
    full_size: bool = FULL_SIZE,
    cam_kind: str = CAM_KIND_OPT,
    gradcat_score: str = GRADCAT_SCORE_OPT,
) -> None:
    """GradCAT and CAM figures for every image from one forward pass."""
    run_mode(FolderArgs("annotate", inputs, weights=weights, arch=arch, device=device, top_k=top_k, classes=classes,
                        out=out, fmt=fmt, json_out=json_out, no_render=no_render, batch_size=batch_size,
                        overwrite=overwrite, shard=shard, quiet=quiet, threshold=threshold, save_maps=save_maps,
                        fit=fit, tree=tree, full_size=full_size, cam_kind=cam_kind, gradcat_score=gradcat_score))


app.command(epilog=EXIT_CODES_HELP)(train)


def main() -> None:
    """Console-script entry point: expected errors are one line; anything else is exit 1 without a traceback."""
    import os

    try:
        app()
    except KeyboardInterrupt:
        typer.echo("nestviz: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - the documented 'unexpected' exit code
        if os.environ.get("NESTVIZ_DEBUG"):
            raise
        typer.echo(f"nestviz: unexpected error: {type(e).__name__}: {' '.join(str(e).split())} "
                   "(set NESTVIZ_DEBUG=1 for a traceback)", err=True)
        sys.exit(EXIT_UNEXPECTED)
