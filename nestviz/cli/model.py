"""The commands that use one model on some images: ``predict``, ``info`` and ``evaluate``.

Heavy modules (torch, rich) are imported inside the commands, never at import time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .._text import shown
from ..defaults import PREDICT_FIT, TOP_K
from .common import EXIT_PARTIAL, ModelChoice, check_fit_option, check_paths, fail, find_inputs, load_or_fail, note_top_k
from .options import BATCH_SIZE, Arch, Batch, Device, Fit, Inputs, Json, MaxPixels, Weights, top_k as top_k_option


def predict(
    inputs: Inputs,
    weights: Weights = None,
    arch: Arch = None,
    device: Device = "auto",
    top_k: Annotated[int, top_k_option("Classes to show per image.")] = TOP_K["predict"],
    batch_size: Batch = BATCH_SIZE,
    json_out: Json = False,
    fit: Fit = PREDICT_FIT,
    max_pixels: MaxPixels = None,  # noqa: ARG001 - applied by its callback
) -> None:
    """Classify images: the top-k classes and their probabilities."""
    fit = check_fit_option(fit)
    items, problems = find_inputs(inputs)
    nv = load_or_fail(ModelChoice(weights, arch, device))
    note_top_k(top_k, nv.num_classes)
    rows, failed = [], len(problems)
    for batch in nv.prepared_batches([str(i.path) for i in items], batch_size, fit=fit):
        for r in nv.run(batch, "predict", top_k=top_k):
            failed += r.error is not None
            if r.error is not None and not json_out:
                typer.echo(f"nestviz: error: {shown(r.error)}", err=True)
            elif json_out:
                emit(r.to_json(with_outputs=False))
            else:
                rows.append(r)
    if not json_out and rows:
        from .tables import print_predictions

        print_predictions(rows, f"nestviz predict ({Path(nv.bundle.source).name})")
    if failed:
        raise typer.Exit(EXIT_PARTIAL)


def emit(record: dict) -> None:  # noqa: ANN001
    from ..batch.runner import dumps

    typer.echo(dumps(record))


def info(weights: Weights = None, arch: Arch = None, json_out: Json = False) -> None:
    """Show the model card: architecture, parameters, classes, preprocessing, provenance."""
    b = load_or_fail(ModelChoice(weights, arch, "cpu")).bundle
    if json_out:
        typer.echo(json.dumps(b.card()))
        return
    from .tables import print_card

    print_card(b.card_rows())


def evaluate(
    data_dir: Annotated[Path, typer.Argument(help="Labelled images, one subfolder per class.")],
    weights: Weights = None,
    arch: Arch = None,
    device: Device = "auto",
    batch_size: Batch = 32,
    labels: Annotated[Optional[Path], typer.Option(
        "--labels", help="Folder name -> class label: TSV lines 'folder<TAB>label', or the ImageNet table "
        "'index<TAB>wnid<TAB>name'.")] = None,
    json_out: Json = False,
    fit: Fit = PREDICT_FIT,
    max_pixels: MaxPixels = None,  # noqa: ARG001 - applied by its callback
) -> None:
    """Top-1, top-5 and per-class accuracy on a class-per-folder dataset; class folders that match no
    model class are named and left out (exit code 3)."""
    from ..evaluation.evaluate import evaluate_folder
    from ..train.data import read_label_names

    if not data_dir.is_dir():
        fail(f"{data_dir}: not a directory")
    check_paths((labels, "labels file", False))
    nv = load_or_fail(ModelChoice(weights, arch, device))
    try:
        report = evaluate_folder(nv, data_dir, batch_size, labels=read_label_names(labels) if labels else None,
                                 fit=check_fit_option(fit))
    except ValueError as e:
        fail(str(e))
    if json_out:
        typer.echo(json.dumps(report.to_json()))
    else:
        from .tables import print_evaluation

        print_evaluation(report, data_dir)
    for f in report.failed:
        typer.echo(f"nestviz: error: {shown(f)}", err=True)
    for folder, count in report.unmatched.items():
        typer.echo(f"nestviz: error: {shown(data_dir / folder)}: matches no model class, not evaluated ({count} images)",
                   err=True)
    if report.failed or report.unmatched:
        raise typer.Exit(EXIT_PARTIAL)
