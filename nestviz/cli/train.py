"""``nestviz train``: the command, and what it prints while it trains: progress within each epoch (a live line
on a terminal, a line every ``--log-every`` steps in a log file), one line per epoch, and what to do after Ctrl-C.

The training itself is ``nestviz.train.loop``.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from .common import EXIT_INTERRUPTED, check_paths, fail, warning_lines


class TrainPrinter:
    """``on_step`` and ``on_epoch`` callbacks for ``train.loop.train`` writing to a Rich console (stderr)."""

    def __init__(self, epochs: int, log_every: int, console: Any = None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.epochs, self.log_every = epochs, max(1, log_every)
        self.live = self.console.is_terminal
        self.status: Any = None
        self.last: tuple[int, int] = (0, 0)  # epoch, step of the last step reported

    def on_step(self, epoch: int, step: int, steps: int, loss: float, images_per_s: float) -> None:
        self.last = (epoch, step)
        text = f"epoch {epoch}/{self.epochs}  step {step}/{steps}  loss {loss:.4f}  {images_per_s:.0f} img/s"
        if self.live:
            if self.status is None:
                self.status = self.console.status(text)
                self.status.start()
            else:
                self.status.update(text)
        elif step % self.log_every == 0 and step < steps:  # the epoch's end has its own line
            self.console.print(text, highlight=False)

    def on_epoch(self, s: Any) -> None:  # noqa: ANN401 - loop.EpochStats
        self.stop()
        val = f"  val top-1 {s.val_top1:.2%}" if s.val_top1 is not None else ""
        self.console.print(f"epoch {s.epoch}/{self.epochs}  loss {s.loss:.4f}  train acc {s.train_acc:.2%}  "
                           f"{s.images_per_s:.0f} img/s  {s.seconds:.0f}s  lr {s.lr:.2e}{val}", highlight=False)

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None

    def finished(self, out: Path, result: Any) -> None:  # noqa: ANN401 - loop.TrainResult
        acc = f", val top-1 {result.val_top1:.2%}" if result.val_top1 is not None else ""
        self.console.print(f"wrote {out} ({result.seconds / 60:.1f} min of training{acc})", highlight=False)

    def interrupted(self, out: Path, argv: list[str]) -> str:
        """The line saying where a run writing ``out`` stopped and how to resume it (``argv``: its command)."""
        from ..train.checkpoint import checkpoint_path

        self.stop()
        ckpt = checkpoint_path(out)
        where = f" in epoch {self.last[0]} at step {self.last[1]}" if self.last[0] else ""
        if not ckpt.exists():
            return f"interrupted{where}, before the first checkpoint: nothing to resume"
        age = time.time() - ckpt.stat().st_mtime
        resume = shlex.join([*_without_resume(argv), "--resume", str(ckpt)])
        return f"interrupted{where}; {ckpt} (written {_ago(age)}) resumes it: {resume}"


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _without_resume(argv: list[str]) -> list[str]:
    """``argv`` without a ``--resume X`` (or ``--resume=X``) already in it."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif not a.startswith("--resume="):
            out.append(a)
    return out


def train(
    train_dir: Path = typer.Argument(..., help="Training images, one subfolder per class."),
    out: Path = typer.Option(..., "--out", help="Output weights file (.safetensors)."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation folder with the same class subfolders."),
    arch: str = typer.Option("nestviz_imagenette", "--arch", help="Named architecture to train."),
    img_size: Optional[int] = typer.Option(None, "--img-size", min=1, help="Input size in pixels (default: the --init weights' size, else the architecture's); --init weights of another size get their position embeddings resampled (one warning line)."),
    epochs: int = typer.Option(50, "--epochs", min=1, help="Passes over the training images."),
    batch_size: int = typer.Option(128, "--batch-size", min=1, help="Images per optimizer step."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (AdamW, cosine schedule after the warm-up)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initialization, augmentation and data order."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Checkpoint (OUT.ckpt) of a cut-off run."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="TSV mapping folder names to readable class names."),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 autocast where the hardware has it, else fp32), bf16 or fp32."),
    mix_prob: float = typer.Option(0.3, "--mix-prob", help="Probability of mixup/CutMix per batch."),
    mosaic_prob: float = typer.Option(0.0, "--mosaic-prob", help="Probability per image of a 2x2 mosaic with three others."),
    region_loss: float = typer.Option(0.0, "--region-loss", min=0.0,
                                      help="Weight of the per-tile loss on mosaic images (teaches CAM where each class is)."),
    peak_temperature: float = typer.Option(1.0, "--peak-temperature", min=0.01,
                                           help="Temperature of the region loss's peak pooling (lower: nearer the max)."),
    locality_loss: float = typer.Option(0.0, "--locality-loss", min=0.0, help="Weight of the loss asking that hiding a rectangle remove its class evidence, and only that."),
    drop_path: float = typer.Option(0.1, "--drop-path", min=0.0, max=1.0, help="Stochastic depth rate."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from these weights (fine-tuning) instead of random."),
    warmup_epochs: float = typer.Option(3.0, "--warmup-epochs", min=0.0, help="Epochs of linear LR warm-up."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Where decoded images are cached "
                                             "(default: $XDG_CACHE_HOME/nestviz, else ~/.cache/nestviz)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave unreadable images out (listed in the weights' provenance) instead of stopping."),
    keep_checkpoint: bool = typer.Option(False, "--keep-checkpoint", help="Keep OUT.ckpt after a completed run."),
    checkpoint_minutes: float = typer.Option(5.0, "--checkpoint-minutes", min=0.0, help="Within an epoch, also write OUT.ckpt this often (it is always written at an epoch's end)."),
    log_every: int = typer.Option(50, "--log-every", min=1, help="When stderr is not a terminal, a progress line every N steps (a terminal gets a live line)."),
) -> None:
    """Train a NesT on a class-per-folder dataset and write a nestviz weights file."""
    from ..devices import resolve_device, resolve_precision
    from ..model.bundle import WeightsError
    from ..train.loop import TrainOptions, train as run_training
    from ..train.record import train_config

    check_paths((train_dir, "training folder", True), (val, "validation folder", True), (resume, "checkpoint", False))
    try:
        cfg = train_config(arch, img_size, init)
        precision = resolve_precision(precision, dev := resolve_device(device))
    except (ValueError, WeightsError) as e:
        fail(str(e))
    opts = TrainOptions(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, precision=precision, mix_prob=mix_prob,
                        mosaic_prob=mosaic_prob, region_loss=region_loss, peak_temperature=peak_temperature,
                        locality_loss=locality_loss, drop_path=drop_path, warmup_epochs=warmup_epochs,
                        skip_bad=skip_bad, checkpoint_minutes=checkpoint_minutes)
    printer, argv = TrainPrinter(epochs, log_every), ["nestviz", *sys.argv[1:]]
    try:
        with warning_lines():
            result = run_training(train_dir, out, cfg, opts, val_dir=val, labels_file=labels, resume=resume,
                                  init=init, cache_dir=cache_dir, device=dev, on_epoch=printer.on_epoch,
                                  on_step=printer.on_step, keep_checkpoint=keep_checkpoint, command=shlex.join(argv))
    except ValueError as e:
        fail(str(e))
    except KeyboardInterrupt:
        typer.echo(f"nestviz: {printer.interrupted(out, argv)}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    printer.finished(out, result)
