"""The ``nestviz`` command line: a thin layer over the Python API.

This module is the entry point (``main``): the typer app, every command registered with the exit codes,
and interrupts turned into exit 130. The commands live one group per module: ``folder`` (explain, cam,
annotate), ``model`` (predict, info, evaluate), ``metrics``, ``strategies``, ``train``. Heavy modules (torch,
matplotlib) are imported inside the commands, never at import time, so ``nestviz --help`` answers without them.

Exit codes: 0 all done; 1 unexpected error; 2 usage or setup error (bad option, no
inputs, invalid weights, unavailable device); 3 some inputs failed, the rest processed;
130 interrupted.
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path

import typer

from .. import __version__
from .._text import shown
from .common import EXIT_CODES_HELP, EXIT_INTERRUPTED, EXIT_UNEXPECTED
from .folder import annotate, cam, explain
from .metrics import metrics
from .model import evaluate, info, predict
from .signals import hold_interrupts, release_interrupts, sigterm_interrupts
from .strategies import strategies
from .train import train

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


for command, preload in ((predict, "nestviz.api"), (info, "nestviz.api"), (evaluate, "nestviz.api"),
                         (metrics, "nestviz.api"), (strategies, "nestviz.strategies"), (explain, "nestviz.api"),
                         (cam, "nestviz.api"), (annotate, "nestviz.api"), (train, "nestviz.train.loop")):
    app.command(name=command.__name__, epilog=EXIT_CODES_HELP)(interruptible(command, preload))


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
