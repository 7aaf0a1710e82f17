"""The ``nestviz`` commands that use one model on some images (predict, info, evaluate) or train one,
and what every command shares: options, exit codes, one-line failures. ``cli.py`` registers them.

Heavy modules (torch, matplotlib, rich) are imported inside the commands, never at import time.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from .._text import shown
from ..defaults import (CAM_KIND, CAM_KINDS, EXPLAIN_FIT, FITS, GRADCAT_SCORE, GRADCAT_SCORES, PREDICT_FIT, THRESHOLD,
                       TOP_K, check_choice)

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES_HELP = (
    "Exit codes: 0 all done; 2 usage or setup error (bad option, no inputs found, invalid weights, "
    "unavailable device; a full disk before anything was written); 3 some inputs failed while the rest were "
    "processed (or the disk filled up); 1 anything unexpected; 130 interrupted."
)

def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line to stderr and exit with ``code``: the only way commands report setup errors."""
    typer.echo(f"nestviz: error: {shown(message)}", err=True)
    raise typer.Exit(code)


# Options shared by the model-using commands (typer copies these per command).
WEIGHTS = typer.Option(None, "--weights", "-w", help="Weights: a nestviz .safetensors, a timm/Hugging Face checkpoint "
                       "file or hub folder, or hf-hub:ORG/NAME[@REV] (downloaded once into the Hugging Face "
                       "cache). Default: the embedded Imagenette model.")
ARCH = typer.Option(None, "--arch", help="Architecture name (nest_tiny, nest_base_jx, ...) when the checkpoint does not say.")
DEVICE = typer.Option("auto", "--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
BATCH = typer.Option(16, "--batch-size", min=1, help="Images per forward pass.")
CLASSES = typer.Option(None, "--class", "-c", help="Explain this class (index or label); repeatable. Default: the top-k.")
OUT = typer.Option(Path("nestviz-out"), "--out", "-o", help="Output folder; the input tree is mirrored under it. "
                   "Commands share it: each image gets one current record per command.")
FORMAT = typer.Option("jpg", "--format", help="Figure format: jpg (default), png, svg or pdf.")
JSON = typer.Option(False, "--json", help="Print JSON Lines on stdout, one object per image.")
NO_RENDER = typer.Option(False, "--no-render", help="Compute and record results, draw no figures or thumbnails.")
OVERWRITE = typer.Option(False, "--overwrite", help="Redo images already finished by an earlier run.")
SHARD = typer.Option(None, "--shard", help="Process only part I of N of the inputs (I/N, 0-based), e.g. 0/4.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar, per-image lines or summary (errors are still "
                     "printed).")
THRESHOLD_OPT = typer.Option(THRESHOLD, "--threshold", help="CAM box threshold, as a fraction of the map's range.")
SAVE_MAPS = typer.Option(False, "--save-maps", help="Also write the raw CAMs with their class indices, ranks and "
                         "labels as .npz (maps: k x h x w).")
FIT_HELP = ("How the image becomes the model's square input: crop (timm's eval transform: the centre square), "
            "pad (the whole image, letterboxed with the mean colour) or squash (the whole image, resized).")
FIT = typer.Option(EXPLAIN_FIT, "--fit", help=FIT_HELP)
FIT_PREDICT = typer.Option(PREDICT_FIT, "--fit", help=FIT_HELP)
CAM_KIND_OPT = typer.Option(CAM_KIND, "--cam-kind", help="CAM map: logit (the class's evidence, its mean is the "
                            "logit: Zhou et al.'s CAM), contrast (minus the mean of all classes' maps: what sets "
                            "the class apart) or flow (the contrast map traced back through the top level's attention "
                            "to the cells its evidence came from; same mean).")
GRADCAT_SCORE_OPT = typer.Option(GRADCAT_SCORE, "--gradcat-score", help="GradCAT child score: gradient (the paper's: "
                                 "the child's gradient contribution to the logit), cam (the child's share of the class "
                                 "score in the --cam-kind map's exact split of it; no backward pass), ablation (the drop in the class "
                                 "probability when the child is removed; slower) or root-ablation (ablation at the "
                                 "root, cam below: four top-level passes per image).")
def _set_max_pixels(value: Optional[int]) -> Optional[int]:
    if value is not None:  # the environment carries it to the processes that decode and draw
        from ..images import set_max_pixels

        set_max_pixels(value)
    return value


MAX_PIXELS = typer.Option(None, "--max-pixels", min=1, callback=_set_max_pixels, help="Refuse images of more pixels "
                          "than this as possible decompression bombs (default: Pillow's 89478485); raise it for a "
                          "trusted very large photo (also $NESTVIZ_MAX_PIXELS).")
TREE = typer.Option(False, "--tree", help="Draw a tree diagram of the GradCAT path beside each panel.")
FULL_SIZE = typer.Option(False, "--full-size", help="Full-size figures (JPEG quality 90); default: compact "
                         "(smaller panels, JPEG quality 80).")


def check_option(flag: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` as one of ``choices`` (any case), else a one-line setup error naming ``flag`` and them."""
    try:
        return check_choice(flag, value, choices)
    except ValueError as e:
        fail(str(e))
        raise  # not reached: fail exits


def check_fit_option(fit: str) -> str:
    """``--fit`` as one of the fits, else a setup error."""
    return check_option("--fit", fit, FITS)


def check_variant_options(cam_kind: str, gradcat_score: str) -> tuple[str, str]:
    """``--cam-kind`` and ``--gradcat-score`` as their choices, else a setup error."""
    return check_option("--cam-kind", cam_kind, CAM_KINDS), check_option("--gradcat-score", gradcat_score,
                                                                          GRADCAT_SCORES)


def check_out_folder(out: Path, flag: str = "--out") -> None:
    """Fail (exit 2) unless the folder ``out`` can be made and written: before any work, creating nothing."""
    from .._files import check_writable

    try:
        check_writable(out)
    except NotADirectoryError as e:
        fail(f"{flag} {out}: {e}")
    except OSError as e:
        fail(f"{out}: output folder is not writable ({e.strerror or e})")


def note_top_k(top_k: int, num_classes: int) -> None:
    """One line when ``-k`` asks for more classes than the model has."""
    if top_k > num_classes:
        typer.echo(f"nestviz: note: --top-k {top_k} is more than the model's {num_classes} classes; "
                   f"showing all {num_classes}", err=True)


def load_or_fail(weights: Optional[Path], arch: Optional[str], device: str, cam_kind: str = CAM_KIND,  # noqa: ANN201
                 gradcat_score: str = GRADCAT_SCORE):
    """Load the model (with the explanation variants), turning every setup problem into exit code 2 with
    one line, and each assumption about the checkpoint (which NesT variant) into one warning line."""
    import warnings

    from ..api import Nestviz
    from ..model.bundle import WeightsError, WeightsWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", WeightsWarning)
        try:
            nv = Nestviz.load(weights, arch=arch, device=device, cam_kind=cam_kind, gradcat_score=gradcat_score)
        except (WeightsError, ValueError) as e:
            fail(str(e))
    for w in caught:
        if issubclass(w.category, WeightsWarning):
            typer.echo(f"nestviz: warning: {shown(w.message)}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return nv


@contextmanager
def warning_lines() -> Iterator[None]:
    """Inside, each nestviz warning (weights resampled or assumed, a training option that cannot do what it
    says) is printed at once as one ``nestviz: warning:`` line; other warnings as Python shows them."""
    import warnings

    from ..model.bundle import WeightsWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if issubclass(category, WeightsWarning) or category.__module__.startswith("nestviz"):
            typer.echo(f"nestviz: warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", WeightsWarning)
        warnings.showwarning = show
        yield


def find_inputs(inputs: list[Path], exclude: list[Path] | None = None):  # noqa: ANN201
    """Discover image files under ``inputs``; no inputs at all is a usage error."""
    from ..batch.discover import discover

    items, problems = discover(inputs, exclude=exclude or [])
    if not items:
        fail("no input images found" + (f" ({'; '.join(problems)})" if problems else ""))
    for p in problems:
        typer.echo(f"nestviz: error: {shown(p)}", err=True)
    return items, problems


def emit(record: dict) -> None:  # noqa: ANN001
    from ..batch.runner import dumps

    typer.echo(dumps(record))


def predict(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    device: str = DEVICE,
    top_k: int = typer.Option(TOP_K["predict"], "--top-k", "-k", min=1, help="Classes to show per image."),
    batch_size: int = BATCH,
    json_out: bool = JSON,
    fit: str = FIT_PREDICT,
    max_pixels: Optional[int] = MAX_PIXELS,  # noqa: ARG001 - applied by its callback
) -> None:
    """Classify images: the top-k classes and their probabilities."""
    fit = check_fit_option(fit)
    items, problems = find_inputs(inputs)
    nv = load_or_fail(weights, arch, device)
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


def info(
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    json_out: bool = JSON,
) -> None:
    """Show the model card: architecture, parameters, classes, preprocessing, provenance."""
    import json as _json

    b = load_or_fail(weights, arch, "cpu").bundle
    if json_out:
        typer.echo(_json.dumps(b.card()))
        return
    from .tables import print_card

    print_card(b.card_rows())


def evaluate(
    data_dir: Path = typer.Argument(..., help="Labelled images, one subfolder per class."),
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    device: str = DEVICE,
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per forward pass."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Folder name -> class label: TSV lines "
                                          "'folder<TAB>label', or the ImageNet table 'index<TAB>wnid<TAB>name'."),
    json_out: bool = JSON,
    fit: str = FIT_PREDICT,
    max_pixels: Optional[int] = MAX_PIXELS,  # noqa: ARG001 - applied by its callback
) -> None:
    """Top-1, top-5 and per-class accuracy on a class-per-folder dataset; class folders that match no
    model class are named and left out (exit code 3)."""
    import json as _json

    from ..train.data import read_label_names
    from ..metrics.evaluate import evaluate_folder

    if not data_dir.is_dir():
        fail(f"{data_dir}: not a directory")
    _check_paths((labels, "labels file", False))
    nv = load_or_fail(weights, arch, device)
    try:
        report = evaluate_folder(nv, data_dir, batch_size, labels=read_label_names(labels) if labels else None,
                                 fit=check_fit_option(fit))
    except ValueError as e:
        fail(str(e))
    if json_out:
        typer.echo(_json.dumps(report.to_json()))
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


def _check_paths(*checks: tuple[Optional[Path], str, bool]) -> None:
    """Fail on the first (path, what, is a folder) that is given but absent."""
    for path, what, folder in checks:
        if path is not None and not (path.is_dir() if folder else path.is_file()):
            fail(f"{path}: {what} not found")


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
    from .train import TrainPrinter

    _check_paths((train_dir, "training folder", True), (val, "validation folder", True), (resume, "checkpoint", False))
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
