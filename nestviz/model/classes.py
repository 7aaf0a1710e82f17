"""Class-name tables: ImageNet-1k in timm's index order, placeholder names; class specs (index or label) to indices."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources


def default_class_names(n: int) -> list[str]:
    """``class 0`` .. ``class n-1``, for a head whose classes nobody named."""
    return [f"class {i}" for i in range(n)]


@functools.lru_cache(maxsize=1)
def _imagenet_table() -> tuple[tuple[str, str], ...]:
    text = resources.files("nestviz.resources").joinpath("imagenet1k_classes.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines()[1:] if line.strip()]
    return tuple((wnid, name) for _, wnid, name in rows)


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k labels in timm's index order, first lemma only ("tench")."""
    return [name.split(",")[0].strip() for _, name in _imagenet_table()]


def imagenet_wnids() -> list[str]:
    """The 1,000 ImageNet-1k WordNet ids (n01440764...) in timm's index order."""
    return [wnid for wnid, _ in _imagenet_table()]


def class_names_for(num_classes: int, candidates: object = None) -> list[str]:
    """``candidates`` when they are a list of one name per class, else ImageNet's (1000 classes) or placeholders."""
    if isinstance(candidates, list) and len(candidates) == num_classes:
        return [str(n) for n in candidates]
    return imagenet_class_names() if num_classes == 1000 else default_class_names(num_classes)


def match_class(token: str, class_names: list[str] | tuple[str, ...]) -> int | None:
    """The model class a folder or box label names: a label (any case, ``_`` for spaces), a WordNet id of
    a 1000-class model, or a WordNet id whose ImageNet names include one of the labels; else None."""
    token = token.strip()
    if len(class_names) == 1000 and token in imagenet_wnids():
        return imagenet_wnids().index(token)
    wanted = {token.casefold().replace("_", " ")}
    table = dict(_imagenet_table())
    if token in table:
        wanted |= {n.strip().casefold() for n in table[token].split(",")}
    hits = [i for i, n in enumerate(class_names) if n.casefold() in wanted]
    return hits[0] if len(hits) == 1 else None


def label_for_folder(folder: str, class_names: list[str], trained_folders: object = None) -> str | None:
    """The label a class folder's name stands for: one of the folders the model was trained on
    (``trained_folders``, one per class), else what :func:`match_class` finds; else None."""
    if isinstance(trained_folders, list) and folder in trained_folders and len(trained_folders) == len(class_names):
        return class_names[trained_folders.index(folder)]
    i = match_class(folder, class_names)
    return None if i is None else class_names[i]


def resolve_classes(specs: Sequence[str | int], class_names: Sequence[str]) -> list[int]:
    """Class indices from indices or labels (case-insensitive; a unique prefix is enough), each once, in the
    order first named (``--class "French Horn" --class 5`` naming one class twice explains it once);
    ValueError naming the class that is out of range, matches none or is ambiguous."""
    names = [n.lower() for n in class_names]
    out = []
    for spec in specs:
        s = str(spec).strip()
        if s.lstrip("-").isdigit():
            i = int(s)
            if not 0 <= i < len(names):
                raise ValueError(f"class index {i} is out of range (the model has {len(names)} classes)")
            out.append(i)
            continue
        exact = [i for i, n in enumerate(names) if n == s.lower()]
        match = exact or [i for i, n in enumerate(names) if n.startswith(s.lower())]
        if len(match) != 1:
            some = ", ".join(class_names[i] for i in match[:5])
            problem = f"is ambiguous ({some})" if match else "matches no class"
            raise ValueError(f"class {s!r} {problem}")
        out.append(match[0])
    return list(dict.fromkeys(out))


__all__ = ["match_class", "resolve_classes", "label_for_folder",
           "default_class_names", "imagenet_class_names", "imagenet_wnids",
           "class_names_for"]
