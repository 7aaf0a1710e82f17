"""Class-per-folder datasets, decoded once into a cached uint8 tensor so training never waits on JPEG.

Unreadable images are reported (index and one-line problem), never turned into black images.

A dataset root holds one subfolder per class (sorted names give class indices 0..K-1);
images anywhere below a class folder belong to it.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._files import atomic_writer
from ..images import ImageReadError, load_rgb, looks_like_image
from ..preprocess import Preprocessing, resize_and_crop


@dataclass
class FolderDataset:
    """Image paths, integer labels and the class folder names of a class-per-folder root."""

    root: Path
    paths: list[Path]
    labels: list[int]
    classes: list[str]


def scan_class_folders(root: str | os.PathLike[str]) -> FolderDataset:
    """List ``root/<class>/**/image`` in a stable order; ValueError if there is nothing to learn from."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a directory")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class subfolders (expected {root}/<class>/<image>)")
    paths, labels = [], []
    for idx, name in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(root / name):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                if not fn.startswith(".") and looks_like_image(p):
                    paths.append(p)
                    labels.append(idx)
    if not paths:
        raise ValueError(f"{root}: no images found in the class subfolders")
    return FolderDataset(root, paths, labels, classes)


def read_label_names(path: str | os.PathLike[str]) -> dict[str, str]:
    """Folder name -> readable name from a TSV/CSV: ``[index] <folder> <name>`` per line.

    For WordNet-style names ("tench, Tinca tinca") the first lemma is kept.
    """
    names: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = [p.strip() for p in (line.split("\t") if "\t" in line else line.split(",", 1))]
        parts = [p for p in parts if p]
        if len(parts) >= 3 and parts[0].isdigit():
            parts = parts[1:]
        if len(parts) >= 2:
            names[parts[0]] = parts[1].split(",")[0].strip()
    return names


def _decode(args: tuple[str, Preprocessing]) -> np.ndarray | str:
    """Resize + centre crop as ``pre`` says (no normalization): uint8 HWC, or the problem of an unreadable file."""
    path, pre = args
    try:
        return resize_and_crop(load_rgb(path), pre)[0]
    except ImageReadError as e:
        return str(e)


def decode_all(ds: FolderDataset, cache_dir: Path, *, train_size: int | None = None,
               eval_pre: Preprocessing | None = None, workers: int | None = None
               ) -> tuple[Tensor, list[tuple[int, str]]]:
    """Decode every readable image of ``ds`` into a (N, 3, S, S) uint8 tensor, cached on disk by content key.

    Also returns (index in ``ds``, problem) for each unreadable image, left out of the tensor.
    ``train_size`` stores squares for random-crop augmentation; ``eval_pre`` stores the exact
    eval crops. The cache key covers paths, sizes, mtimes and the transform.
    """
    assert (train_size is None) != (eval_pre is None)
    # training keeps the whole square (shorter side to train_size); eval uses the exact eval crop
    pre = Preprocessing(input_size=train_size, crop_pct=1.0) if train_size else eval_pre
    key = hashlib.sha256()
    key.update(repr(pre).encode())
    for p in ds.paths:
        st = p.stat()
        key.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    cache = Path(cache_dir) / f"decoded-v2-{key.hexdigest()[:20]}.pt"
    if cache.exists():
        saved = torch.load(cache, weights_only=True)
        return saved["images"], [(int(i), str(p)) for i, p in saved["unreadable"]]
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers) as pool:
        decoded = list(pool.map(_decode, [(str(p), pre) for p in ds.paths], chunksize=64))
    bad = [(i, d) for i, d in enumerate(decoded) if isinstance(d, str)]
    arrays = [d for d in decoded if not isinstance(d, str)]
    S = pre.input_size
    x = torch.from_numpy(np.stack(arrays) if arrays else np.zeros((0, S, S, 3), np.uint8)).permute(0, 3, 1, 2)
    x = x.contiguous()
    with atomic_writer(cache) as f:
        torch.save({"images": x, "unreadable": [list(b) for b in bad]}, f)
    return x, bad


def default_cache_dir() -> Path:
    """Where decoded images are cached: ``$XDG_CACHE_HOME/nestviz``, else ``~/.cache/nestviz``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "nestviz"


@dataclass
class Split:
    """One dataset decoded: uint8 images (N, 3, S, S), labels, and the images left out as unreadable."""

    x: Tensor
    y: Tensor
    skipped: list[str]


def decode_split(ds: FolderDataset, cache_dir: Path, skip_bad: bool, **how: Any) -> Split:
    """Decode ``ds`` (see :func:`decode_all`); unreadable images are an error naming them, or left out."""
    x, bad = decode_all(ds, cache_dir, **how)
    problems = [problem for _, problem in bad]
    if problems and not skip_bad:
        shown = "; ".join(problems[:10]) + (f"; ... (+{len(problems) - 10} more)" if len(problems) > 10 else "")
        raise ValueError(f"{len(problems)} unreadable image(s) in {ds.root}: {shown}. "
                         "Fix or remove them, or pass --skip-bad to leave them out")
    dropped = {i for i, _ in bad}
    labels = [label for i, label in enumerate(ds.labels) if i not in dropped]
    if not labels:
        raise ValueError(f"{ds.root}: no readable images")
    return Split(x, torch.tensor(labels), problems)
