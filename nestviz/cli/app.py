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

import functools
import importlib
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

from .. import __version__
from .._text import shown
from .common import (ARCH, BATCH, CAM_KIND_OPT, CLASSES, DEVICE, EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_PARTIAL,
                       EXIT_UNEXPECTED, EXIT_USAGE, FIT, FORMAT, FULL_SIZE, GRADCAT_SCORE_OPT, JSON, MAX_PIXELS,
                       NO_RENDER, OUT, OVERWRITE, QUIET, SAVE_MAPS, SHARD, THRESHOLD_OPT, TREE, WEIGHTS,
                       check_fit_option, check_out_folder, check_variant_options, fail, find_inputs,
                       load_or_fail, note_top_k)
from ..defaults import CAM_KIND, GRADCAT_SCORE, THRESHOLD, TOP_K
from .common import evaluate, info, predict, train
from .metrics import metrics
from .strategies import strategies

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


_held: dict[int, object] = {}  # the handlers that Ctrl-C and SIGTERM had before they were held
_came: list[int] = []  # the signals that came while held


def hold_interrupts() -> None:
    """From now until :func:`release_interrupts`, Ctrl-C and SIGTERM wait: ``import torch`` cut in half leaves torch
    broken (a RecursionError later: exit 1), and typer turns Ctrl-C while it parses into exit 130 without a word."""
    if threading.current_thread() is threading.main_thread() and not _held:
        _held.update({s: signal.signal(s, lambda signum, frame: _came.append(signum))
                      for s in (signal.SIGINT, signal.SIGTERM)})


def release_interrupts() -> None:
    """Ctrl-C and SIGTERM act again; one that came while they were held is raised now, as KeyboardInterrupt."""
    for s, handler in _held.items():
        signal.signal(s, handler)  # type: ignore[arg-type]
    _held.clear()
    if _came:
        _came.clear()
        raise KeyboardInterrupt


def interruptible(command, preload: str = "nestviz.api"):  # noqa: ANN001, ANN201
    """``command`` stopped by Ctrl-C or SIGTERM says so and exits 130 (typer would exit 130 without a word, SIGTERM
    would kill it: 143, temporary files left); its heavy modules are imported first, with the signals held."""

    @functools.wraps(command)
    def run(**kwargs):  # noqa: ANN003, ANN202
        try:
            hold_interrupts()  # (main() holds them from the start)
            importlib.import_module(preload)
            release_interrupts()
            with sigterm_interrupts():
                return command(**kwargs)
        except KeyboardInterrupt:
            ckpt = Path(f"{kwargs['out']}.ckpt") if command is train else None
            resume = f"; resume with --resume {ckpt}" if ckpt is not None and ckpt.is_file() else ""
            typer.echo(f"nestviz: interrupted{resume}", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return run


for command in (predict, info, evaluate, metrics):
    app.command(name=command.__name__, epilog=EXIT_CODES_HELP)(interruptible(command))
app.command(name="strategies", epilog=EXIT_CODES_HELP)(interruptible(strategies, preload="nestviz.strategies"))


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
    from ..batch.discover import has_multiple_roots, parse_shard, shard as take_shard
    from ..batch.runner import RunOptions
    from ..draw import figure_format
    from ..model.checkpoints import load_weights_identity

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
    check_out_folder(a.out)  # creates nothing: OUT is made when the run starts, after every setup check
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
    from .tables import run_with_progress

    with sigterm_interrupts():
        summary = run_with_progress(items, opts, load_model, weights_id, a.json_out, a.quiet, ignore_sigint)
    if summary.disk_full:  # the run stopped; what was written is valid and a re-run resumes
        left = len(items) - summary.done - summary.failed - summary.skipped
        fail(f"{summary.disk_full}; stopped with {left} images not done: free some space and run the same command "
             "again to resume", EXIT_PARTIAL if summary.done + summary.failed else EXIT_USAGE)
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


@app.command(epilog=EXIT_CODES_HELP)
@interruptible
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
    max_pixels: Optional[int] = MAX_PIXELS,  # noqa: ARG001 - applied by its callback
    gradcat_score: str = GRADCAT_SCORE_OPT,
) -> None:
    """GradCAT: follow the NesT block tree from the root to the leaf block that drives each class."""
    run_mode(FolderArgs("explain", inputs, weights=weights, arch=arch, device=device, top_k=top_k, classes=classes,
                        out=out, fmt=fmt, json_out=json_out, no_render=no_render, batch_size=batch_size,
                        overwrite=overwrite, shard=shard, quiet=quiet, fit=fit, tree=tree, full_size=full_size,
                        gradcat_score=gradcat_score))


@app.command(epilog=EXIT_CODES_HELP)
@interruptible
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
    max_pixels: Optional[int] = MAX_PIXELS,  # noqa: ARG001 - applied by its callback
    cam_kind: str = CAM_KIND_OPT,
) -> None:
    """Class activation maps: a heatmap, a weakly-supervised box and the peak per class."""
    run_mode(FolderArgs("cam", inputs, weights=weights, arch=arch, device=device, top_k=top_k, classes=classes,
                        out=out, fmt=fmt, json_out=json_out, no_render=no_render, batch_size=batch_size,
                        overwrite=overwrite, shard=shard, quiet=quiet, threshold=threshold, save_maps=save_maps,
                        fit=fit, full_size=full_size, cam_kind=cam_kind))


@app.command(epilog=EXIT_CODES_HELP)
@interruptible
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
    max_pixels: Optional[int] = MAX_PIXELS,  # noqa: ARG001 - applied by its callback
    cam_kind: str = CAM_KIND_OPT,
    gradcat_score: str = GRADCAT_SCORE_OPT,
) -> None:
    """GradCAT and CAM figures for every image from one forward pass."""
    run_mode(FolderArgs("annotate", inputs, weights=weights, arch=arch, device=device, top_k=top_k, classes=classes,
                        out=out, fmt=fmt, json_out=json_out, no_render=no_render, batch_size=batch_size,
                        overwrite=overwrite, shard=shard, quiet=quiet, threshold=threshold, save_maps=save_maps,
                        fit=fit, tree=tree, full_size=full_size, cam_kind=cam_kind, gradcat_score=gradcat_score))


app.command(name="train", epilog=EXIT_CODES_HELP)(interruptible(train, preload="nestviz.train.loop"))


def main() -> None:
    """Console-script entry point: expected errors are one line; anything else is exit 1 without a traceback."""
    import os

    hold_interrupts()  # until a command starts (interruptible): Ctrl-C while the command line is parsed is not lost
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("nestviz: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - the documented 'unexpected' exit code
        if os.environ.get("NESTVIZ_DEBUG"):
            raise
        typer.echo(f"nestviz: unexpected error: {type(e).__name__}: {shown(' '.join(str(e).split()))} "
                   "(set NESTVIZ_DEBUG=1 for a traceback)", err=True)
        sys.exit(EXIT_UNEXPECTED)
