"""What a training run checks before it starts and records in the weights it writes: a writable
output, class names for ImageNet-style folders, and a provenance free of the machine's absolute paths."""

from __future__ import annotations

import os
import platform
import shlex
import tempfile
from pathlib import Path

import torch

from .._files import check_writable
from ..model.checkpoints import load_weights
from ..model.classes import imagenet_class_names, imagenet_wnids
from ..model.nest import NestConfig, named_config


def check_weights_out(out: Path) -> None:
    """ValueError (one line) unless ``out`` and its ``.ckpt`` can be written: checked before any work."""
    if out.is_dir():
        raise ValueError(f"{out}: is a folder; --out names the weights file to write (.safetensors)")
    folder = out.parent
    if not folder.is_dir():
        raise ValueError(f"{out}: {folder} is not an existing folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{out.name}.", suffix=".probe"):
            pass
    except OSError as e:
        raise ValueError(f"{out}: cannot write in {folder} ({e.strerror or e})") from None


def check_cache_dir(cache_dir: Path) -> None:
    """ValueError (one line) unless the decoded-image cache folder can be made and written: checked before any work."""
    try:
        check_writable(cache_dir)
    except OSError as e:
        raise ValueError(f"{cache_dir}: the decoded-image cache folder (--cache-dir) is not writable "
                         f"({e.strerror or e})") from None


def train_config(arch: str, img_size: int | None, init: str | os.PathLike[str] | None) -> NestConfig:
    """The architecture a run trains: ``arch`` at ``img_size``; without one, at the size of the ``init``
    weights (fine-tuning keeps their size unless asked), else at ``arch``'s own size."""
    if img_size is None and init is not None:
        img_size = load_weights(init).config.img_size
    return named_config(arch) if img_size is None else named_config(arch, img_size=img_size)


def wnid_label_names(classes: list[str]) -> dict[str, str]:
    """Readable names for ImageNet-style class folders (n01440764 -> tench) from the shipped class table."""
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    if not classes or not all(c in index for c in classes):
        return {}
    names = imagenet_class_names()
    return {c: names[index[c]] for c in classes}


def data_base(train_dir: Path, val_dir: Path | None) -> Path:
    """The folder that holds the data: paths in the provenance are written relative to it."""
    dirs = [Path(os.path.abspath(d)) for d in (train_dir, val_dir) if d is not None]
    return Path(os.path.commonpath(dirs)).parent


def portable(path: str | os.PathLike[str] | None, base: Path) -> str | None:
    """An absolute path as recorded: relative to ``base`` when under it, else its name alone."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_absolute():
        return str(p)
    try:
        return str(p.relative_to(base))
    except ValueError:
        return p.name


def portable_command(command: str, base: Path) -> str:
    """``command`` with each absolute path (alone or as ``--opt=PATH``) made :func:`portable`."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    out = []
    for w in words:
        opt, eq, value = w.partition("=") if w.startswith("--") else ("", "", w)
        out.append(f"{opt}{eq}{portable(value, base)}" if value.startswith(os.sep) else w)
    return shlex.join(out)


def paths_record(command: str, train_dir: str | os.PathLike[str], val_dir: str | os.PathLike[str] | None,
                 init: str | os.PathLike[str] | None) -> dict[str, str | None]:
    """The command and the data and init paths for the provenance, relative to the folder holding the data."""
    base = data_base(Path(train_dir), Path(val_dir) if val_dir else None)
    return {"command": portable_command(command, base), "init": portable(init, base),
            "train_data": portable(Path(train_dir).absolute(), base),
            "val_data": portable(Path(val_dir).absolute(), base) if val_dir else None}


def environment(device: torch.device) -> dict[str, str]:
    """Where a model was trained, for its provenance."""
    threads = torch.get_num_threads()
    return {"hardware": f"{platform.machine()} {platform.processor() or ''}, {threads} threads, {device}".strip(),
            "torch": torch.__version__}


__all__ = ["check_weights_out", "check_cache_dir", "wnid_label_names", "data_base", "portable", "portable_command", "paths_record",
           "environment"]
