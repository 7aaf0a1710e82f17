"""Accuracy of a model on a class-per-folder dataset: top-1, top-5, per class, and what gets confused."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..api import Nestviz
from ..defaults import PREDICT_FIT
from ..model.classes import imagenet_wnids
from ..train.data import FolderDataset, scan_class_folders


@dataclass
class EvalReport:
    images: int
    top1: float
    top5: float
    per_class: dict[str, dict[str, float | int]]  # label -> {"images", "top1"}
    confusions: list[dict[str, Any]] = field(default_factory=list)  # most frequent (true, predicted) pairs
    failed: list[str] = field(default_factory=list)
    unmatched: dict[str, int] = field(default_factory=dict)  # class folders that match no model class -> images

    def to_json(self) -> dict[str, Any]:
        return {"images": self.images, "top1": self.top1, "top5": self.top5, "per_class": self.per_class,
                "confusions": self.confusions, "failed": self.failed, "unmatched_folders": self.unmatched}


def folder_to_class(folders: list[str], nv: Nestviz, labels: dict[str, str] | None = None) -> list[int | None]:
    """Model class index for each dataset folder, None where none matches: a folder the model was
    trained on, an ImageNet WordNet id (1000-class models), the label ``labels`` gives the folder, or
    the folder's own name as a label (case-insensitive). When no folder matches at all and the counts
    agree, sorted folder order is the class order."""
    b = nv.bundle
    trained = list(b.provenance.get("class_folders") or [])
    by_label: dict[str, int] = {}
    for i, name in enumerate(b.class_names):
        by_label.setdefault(name.lower(), i)
    wnids = {w: i for i, w in enumerate(imagenet_wnids())} if b.config.num_classes == 1000 else {}

    def match(folder: str) -> int | None:
        if folder in trained:
            return trained.index(folder)
        if folder in wnids:
            return wnids[folder]
        names = ((labels or {}).get(folder), folder)
        return next((by_label[n.lower()] for n in names if n and n.lower() in by_label), None)

    found = [match(f) for f in folders]
    if all(i is None for i in found):
        if len(folders) == b.config.num_classes:
            return list(range(len(folders)))
        shown = ", ".join(folders[:5]) + (", ..." if len(folders) > 5 else "")
        raise ValueError(f"none of the dataset's {len(folders)} class folders ({shown}) matches one of the model's "
                         f"{b.config.num_classes} classes; name the folders after the class labels "
                         "(nestviz info lists them) or pass --labels FILE")
    return found


def evaluate_folder(nv: Nestviz, data_dir: str | os.PathLike[str], batch_size: int = 32,
                    progress: Callable[[int, int], None] | None = None,
                    labels: dict[str, str] | None = None, fit: str = PREDICT_FIT) -> EvalReport:
    """Evaluate ``nv`` on ``data_dir/<class>/*`` (images made square by ``fit``); unreadable images are listed,
    not counted, and class folders that match no model class (see :func:`folder_to_class`) are reported."""
    ds = scan_class_folders(data_dir)
    matched = folder_to_class(ds.classes, nv, labels)
    unmatched = {f: ds.labels.count(i) for i, (f, c) in enumerate(zip(ds.classes, matched)) if c is None}
    keep = [i for i, c in enumerate(matched) if c is not None]
    kept = [(p, keep.index(y)) for p, y in zip(ds.paths, ds.labels) if matched[y] is not None]
    ds = FolderDataset(ds.root, [p for p, _ in kept], [y for _, y in kept], [ds.classes[i] for i in keep])
    target_of = [matched[i] for i in keep]
    label_of = dict(zip(map(str, ds.paths), ds.labels))
    K = nv.bundle.config.num_classes
    hits1 = torch.zeros(len(ds.classes), dtype=torch.long)
    count = torch.zeros(len(ds.classes), dtype=torch.long)
    hits5 = 0
    confusion = torch.zeros(len(ds.classes), K, dtype=torch.long)
    failed, seen = [], 0
    for batch in nv.prepared_batches(map(str, ds.paths), batch_size, fit=fit):
        ok = [p for p in batch if p.error is None]
        failed += [p.error for p in batch if p.failure is not None]
        if ok:
            with torch.inference_mode():
                logits = nv.model(torch.stack([p.tensor for p in ok]).to(nv.device)).float().cpu()
            top = logits.topk(min(5, K), dim=1).indices
            for p, t in zip(ok, top):
                folder = label_of[p.name]
                target = target_of[folder]
                count[folder] += 1
                hits1[folder] += int(t[0] == target)
                hits5 += int(target in t.tolist())
                confusion[folder, t[0]] += 1
        seen += len(batch)
        if progress:
            progress(seen, len(ds.paths))
    n = int(count.sum())
    if n == 0:
        raise ValueError(f"{data_dir}: no readable images")
    per_class = {nv.bundle.label(target_of[i]): {"images": int(count[i]), "top1": float(hits1[i]) / max(1, int(count[i]))}
                 for i in range(len(ds.classes))}
    pairs = []
    for i in range(len(ds.classes)):
        for j in range(K):
            if j != target_of[i] and confusion[i, j] > 0:
                pairs.append({"true": nv.bundle.label(target_of[i]), "predicted": nv.bundle.label(j),
                              "images": int(confusion[i, j])})
    pairs.sort(key=lambda d: (-d["images"], d["true"], d["predicted"]))
    return EvalReport(n, float(hits1.sum()) / n, hits5 / n, per_class, pairs[:10], failed, unmatched)
