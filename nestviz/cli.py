"""The ``nestviz`` command line: a thin layer over the Python API.

Heavy modules (torch, matplotlib) are imported inside the commands, never at import
time, so ``nestviz --help`` answers without loading them.

Exit codes: 0 all done; 1 unexpected error; 2 usage or setup error (bad option, no
inputs, invalid weights, unavailable device); 3 some inputs failed, the rest processed;
130 interrupted.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from . import __version__

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES_HELP = (
    "Exit codes: 0 all done; 2 usage or setup error (bad option, no inputs found, invalid weights, "
    "unavailable device); 3 some inputs failed while the rest were processed; 1 anything unexpected; "
    "130 interrupted."
)

app = typer.Typer(
    name="nestviz",
    help="Explain NesT vision models: GradCAT tree traversal and class activation maps.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line to stderr and exit with ``code``: the only way commands report setup errors."""
    typer.echo(f"nestviz: error: {message}", err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nestviz {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """Explain NesT vision models: GradCAT tree traversal and class activation maps."""


@app.command(epilog=EXIT_CODES_HELP)
def train(
    train_dir: Path = typer.Argument(..., help="Training images, one subfolder per class."),
    out: Path = typer.Option(..., "--out", help="Output weights file (.safetensors)."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation folder with the same class subfolders."),
    arch: str = typer.Option("nestviz_imagenette", "--arch", help="Named architecture to train."),
    epochs: int = typer.Option(50, "--epochs", min=1),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Checkpoint (OUT.ckpt) of a cut-off run."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="TSV mapping folder names to readable class names."),
    precision: str = typer.Option("bf16", "--precision", help="bf16 (autocast) or fp32."),
    mix_prob: float = typer.Option(0.3, "--mix-prob", help="Probability of mixup/CutMix per batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Where decoded images are cached."),
) -> None:
    """Train a NesT on a class-per-folder dataset and write a nestviz weights file."""
    from rich.console import Console

    from .devices import resolve_device
    from .model import named_config
    from .train import TrainOptions, train as run_training

    console = Console(stderr=True)
    if precision not in ("bf16", "fp32"):
        fail(f"--precision must be bf16 or fp32, got {precision!r}")
    for p, what in ((train_dir, "training folder"), (val, "validation folder")):
        if p is not None and not p.is_dir():
            fail(f"{p}: {what} not found")
    if resume is not None and not resume.is_file():
        fail(f"{resume}: checkpoint not found")
    try:
        cfg = named_config(arch)
        dev = resolve_device(device)
    except ValueError as e:
        fail(str(e))
    opts = TrainOptions(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, precision=precision, mix_prob=mix_prob)
    command = "nestviz " + shlex.join(sys.argv[1:])

    def on_epoch(s) -> None:  # noqa: ANN001
        val_txt = f"  val top-1 {s.val_top1:.2%}" if s.val_top1 is not None else ""
        console.print(f"epoch {s.epoch}/{epochs}  loss {s.loss:.4f}  train acc {s.train_acc:.2%}  "
                      f"{s.images_per_s:.0f} img/s  {s.seconds:.0f}s  lr {s.lr:.2e}{val_txt}")

    try:
        result = run_training(train_dir, out, cfg, opts, val_dir=val, labels_file=labels, resume=resume,
                              cache_dir=cache_dir, device=dev, command=command, on_epoch=on_epoch)
    except ValueError as e:
        fail(str(e))
    acc = f", val top-1 {result.val_top1:.2%}" if result.val_top1 is not None else ""
    console.print(f"wrote {out} ({result.seconds / 60:.1f} min of training{acc})")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("nestviz: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
