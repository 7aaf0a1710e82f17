"""What ``nestviz train`` prints while it trains: progress within each epoch (a live line on a terminal, a
line every ``--log-every`` steps in a log file), one line per epoch, and what to do after Ctrl-C.

Printing only: the training itself is ``nestviz.train.loop``.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any


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
