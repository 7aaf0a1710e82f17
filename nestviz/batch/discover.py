"""Find the input images of a folder run, split them into shards, and name their outputs.

Folders are walked recursively in sorted order. A file inside a folder is an input when its
extension is an image one (any case) or, with no or an unknown extension, its first bytes are;
hidden files and folders are skipped, symlinked folders are followed once (loops are cut),
and the output folder is never entered, nor any folder that holds a nestviz manifest (another
run's outputs: figures are not inputs); either one given as an input is a problem naming it. A file named on the command line is always an input:
if it is not an image, the runner reports it as a failed one.

Outputs mirror the input tree: ``OUT/<rel without suffix>``, under one folder per input root
when several roots were given. The suffix is kept (``cat.jpg``, ``cat.png``) for files whose
names would otherwise collide, so no two inputs ever share an output stem.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from ..images import IMAGE_EXTENSIONS, looks_like_image
from .manifest import MANIFEST, PART


@dataclass(frozen=True)
class InputItem:
    """One input image: ``path == root / rel``.

    ``root`` is the folder argument it was found under (for a file given directly, its parent);
    ``root_label`` names that root under OUT when several were given; ``keep_suffix`` is set
    when another input in the same folder has the same stem, so outputs keep the extension.
    """

    path: Path
    rel: Path
    root: Path
    root_label: str = ""
    keep_suffix: bool = False


def discover(inputs: Sequence[str | os.PathLike[str]],
             exclude: Sequence[str | os.PathLike[str]] = ()) -> tuple[list[InputItem], list[str]]:
    """Input images under ``inputs`` in a stable order, and one line per input that could not be read.

    Each real file is listed once, even if reachable through several inputs or symlinks;
    folders in ``exclude`` (the output folder) are not entered.
    """
    excluded = {os.path.realpath(p) for p in exclude}
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()
    items: list[InputItem] = []
    problems: list[str] = []

    def add(path: Path, rel: Path, root: Path) -> None:
        real = os.path.realpath(path)
        if real not in seen_files:
            seen_files.add(real)
            items.append(InputItem(path, rel, root))

    def walk(folder: Path, rel: Path, root: Path) -> None:
        real = os.path.realpath(folder)
        if real in excluded and folder == root:
            problems.append(f"{folder}: is the output folder (--out), not an input")
        if real in seen_dirs or real in excluded:
            return
        seen_dirs.add(real)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            problems.append(f"{folder}: cannot read folder ({e.strerror or e})")
            return
        if any(e.name == MANIFEST or PART.fullmatch(e.name) for e in entries):  # nestviz's own output folder
            if folder == root:
                problems.append(f"{folder}: a nestviz output folder (it holds a manifest): its figures are not inputs")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            try:
                is_dir, is_file = entry.is_dir(), entry.is_file()  # both follow symlinks; dangling: neither
            except OSError:
                continue
            if is_dir:
                walk(path, rel / entry.name, root)
            elif is_file and is_image_name_or_bytes(path):
                add(path, rel / entry.name, root)

    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            walk(p, Path(), p)
        elif os.path.lexists(p):
            add(p, Path(p.name), p.parent)
        else:
            problems.append(f"{p}: no such file or folder")
    return name_outputs(items), problems


def is_image_name_or_bytes(path: Path) -> bool:
    """An image extension (whatever the content), or no/unknown extension and image-like first bytes."""
    return path.suffix.lower() in IMAGE_EXTENSIONS or looks_like_image(path)


def name_outputs(items: list[InputItem]) -> list[InputItem]:
    """Set ``root_label`` and ``keep_suffix`` so that every item gets its own output stem."""
    labels: dict[Path, str] = {}
    used: set[str] = set()
    for root in dict.fromkeys(i.root for i in items):
        base = root.name or Path(os.path.abspath(root)).name or "root"
        label, n = base, 1
        while label.casefold() in used:
            n += 1
            label = f"{base}-{n}"
        used.add(label.casefold())
        labels[root] = label

    keep = [False] * len(items)
    folders: dict[tuple[Path, Path], list[int]] = defaultdict(list)
    for n, item in enumerate(items):
        folders[(item.root, item.rel.parent)].append(n)
    for members in folders.values():
        changed = True
        while changed:  # a kept suffix can meet another stem ("cat.jpg" vs "cat.jpg.png"): repeat
            changed = False
            names: dict[str, list[int]] = defaultdict(list)
            for n in members:
                rel = items[n].rel
                names[(rel.name if keep[n] else rel.stem).casefold()].append(n)
            for clash in names.values():
                if len(clash) > 1:
                    for n in clash:
                        changed |= not keep[n]
                        keep[n] = True
    return [replace(item, root_label=labels[item.root], keep_suffix=k) for item, k in zip(items, keep)]


def output_stem(item: InputItem, out_dir: Path, multi_root: bool) -> Path:
    """``OUT[/<root label>]/<rel dirs>/<stem or name>``; outputs are ``<this>.<kind>.<format>``.

    ``multi_root`` must say whether the whole discovery (not one shard) had several roots,
    so that every shard lays out the same tree.
    """
    name = item.rel.name if item.keep_suffix else item.rel.stem
    base = out_dir / (item.root_label or item.root.name) if multi_root else out_dir
    return base / item.rel.parent / name


def has_multiple_roots(items: Sequence[InputItem]) -> bool:
    """Whether outputs need one folder per input root (call on all items, before sharding)."""
    return len({i.root for i in items}) > 1


def shard(items: Sequence[InputItem], index: int, count: int) -> list[InputItem]:
    """The items of shard ``index`` (0-based) of ``count``, chosen by a stable hash of root and rel.

    Every item is in exactly one shard, and an item's shard does not depend on which other
    files exist, so processes that list a changing folder still split it consistently.
    """
    if not 0 <= index < count:
        raise ValueError(f"shard index must be in 0..{count - 1}, got {index}")
    return [i for i in items if shard_of(i, count) == index]


def shard_of(item: InputItem, count: int) -> int:
    """Which of ``count`` shards ``item`` belongs to."""
    digest = hashlib.sha1(f"{item.root.as_posix()}\0{item.rel.as_posix()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard I/N`` (0-based: ``0/4`` .. ``3/4``) into ``(I, N)``; ValueError says what is wrong."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"--shard must be I/N, e.g. 0/4, got {text!r}")
    index, count = int(m[1]), int(m[2])
    if count < 1:
        raise ValueError(f"--shard N must be at least 1, got {text!r}")
    if index >= count:
        raise ValueError(f"--shard I must be 0..N-1 (0-based), got {text!r}")
    return index, count


__all__ = ["InputItem", "discover", "output_stem", "has_multiple_roots", "shard", "shard_of", "parse_shard"]
