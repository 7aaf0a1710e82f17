"""The state a cut-off training run resumes from (``OUT.ckpt``): written at the end of every epoch and,
within an epoch, every ``TrainOptions.checkpoint_minutes`` (so a run stopped early still has something
to ``--resume``). A mid-epoch checkpoint holds the epoch's random states and running sums, so the
resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_writer


def checkpoint_path(out: Path) -> Path:
    """Where the training checkpoint of ``out`` lives."""
    return out.with_name(out.name + ".ckpt")


@dataclass
class EpochProgress:
    """Where an epoch stands after ``step`` steps: what a mid-epoch checkpoint must bring back."""

    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0
    generator: torch.Tensor | None = None  # the epoch's augmentation generator state
    rng: dict[str, Any] = field(default_factory=dict)  # torch's global states (drop-path masks)

    def capture(self, gen: torch.Generator, device: torch.device) -> None:
        self.generator = gen.get_state()
        self.rng = {"cpu": torch.get_rng_state()}
        if device.type == "cuda":
            self.rng["cuda"] = torch.cuda.get_rng_state(device)

    def restore(self, gen: torch.Generator, device: torch.device) -> None:
        gen.set_state(self.generator)
        torch.set_rng_state(self.rng["cpu"])
        if "cuda" in self.rng and device.type == "cuda":
            torch.cuda.set_rng_state(self.rng["cuda"], device)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "loss_sum": self.loss_sum, "correct": self.correct, "seen": self.seen,
                "seconds": self.seconds, "generator": self.generator, "rng": self.rng}


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``state`` written atomically: a run stopped while writing keeps the previous checkpoint."""
    with atomic_writer(path) as f:
        torch.save(state, f)


def load_progress(state: dict[str, Any]) -> EpochProgress | None:
    """The mid-epoch progress a checkpoint holds, or None (written at an epoch's end)."""
    mid = state.get("mid_epoch")
    return EpochProgress(**mid) if mid else None


class Every:
    """True once every ``seconds`` (monotonic clock), counted from creation: when to checkpoint mid-epoch."""

    def __init__(self, seconds: float):
        self.seconds, self.last = seconds, time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True
