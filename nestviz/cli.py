"""The ``nestviz`` command line: a thin layer over the Python API.

Heavy modules (torch, matplotlib) are imported inside the commands, never at import
time, so ``nestviz --help`` answers without loading them.

Exit codes: 0 all done; 1 unexpected error; 2 usage or setup error (bad option, no
inputs, invalid weights, unavailable device); 3 some inputs failed, the rest processed;
130 interrupted.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from . import __version__

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES_HELP = (
    "Exit codes: 0 all done; 2 usage or setup error (bad option, no inputs found, invalid weights, "
    "unavailable device); 3 some inputs failed while the rest were processed; 1 anything unexpected; "
    "130 interrupted."
)

app = typer.Typer(
    name="nestviz",
    help="Explain NesT vision models: GradCAT tree traversal and class activation maps.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line to stderr and exit with ``code``: the only way commands report setup errors."""
    typer.echo(f"nestviz: error: {message}", err=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nestviz {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """Explain NesT vision models: GradCAT tree traversal and class activation maps."""



# Options shared by the model-using commands (typer copies these per command).
WEIGHTS = typer.Option(None, "--weights", "-w", help="Weights: a nestviz .safetensors, a timm/Hugging Face checkpoint "
                       "file or hub folder. Default: the embedded Imagenette model.")
ARCH = typer.Option(None, "--arch", help="Architecture name (nest_tiny, nest_base_jx, ...) when the checkpoint does not say.")
DEVICE = typer.Option("auto", "--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
BATCH = typer.Option(16, "--batch-size", min=1, help="Images per forward pass.")
CLASSES = typer.Option(None, "--class", "-c", help="Explain this class (index or label); repeatable. Default: the top-k.")
OUT = typer.Option(Path("nestviz-out"), "--out", "-o", help="Output folder; the input tree is mirrored under it.")
FORMAT = typer.Option("png", "--format", help="Figure format: png, jpg, svg or pdf.")
JSON = typer.Option(False, "--json", help="Print JSON Lines on stdout, one object per image.")
NO_RENDER = typer.Option(False, "--no-render", help="Compute and record results, draw no figures.")
OVERWRITE = typer.Option(False, "--overwrite", help="Redo images already finished by an earlier run.")
SHARD = typer.Option(None, "--shard", help="Process only part I of N of the inputs (I/N, 0-based), e.g. 0/4.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar or summary.")
THRESHOLD = typer.Option(0.2, "--threshold", help="CAM box threshold, as a fraction of the map's range.")
SAVE_MAPS = typer.Option(False, "--save-maps", help="Also write the raw CAMs as .npy (k, h, w).")


def load_or_fail(weights: Optional[Path], arch: Optional[str], device: str):  # noqa: ANN201
    """Load the model, turning every setup problem into exit code 2 with one line."""
    from .api import Nestviz
    from .weights import WeightsError

    try:
        return Nestviz.load(weights, arch=arch, device=device)
    except (WeightsError, ValueError) as e:
        fail(str(e))


def find_inputs(inputs: list[Path], exclude: list[Path] | None = None):  # noqa: ANN201
    """Discover image files under ``inputs``; no inputs at all is a usage error."""
    from .discover import discover

    items, problems = discover(inputs, exclude=exclude or [])
    if not items:
        fail("no input images found" + (f" ({'; '.join(problems)})" if problems else ""))
    for p in problems:
        typer.echo(f"nestviz: error: {p}", err=True)
    return items, problems


def emit(record: dict) -> None:  # noqa: ANN001
    from .runner import dumps

    typer.echo(dumps(record))


@app.command(epilog=EXIT_CODES_HELP)
def predict(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    device: str = DEVICE,
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Classes to show per image."),
    batch_size: int = BATCH,
    json_out: bool = JSON,
) -> None:
    """Classify images: the top-k classes and their probabilities."""
    from .results import error_json

    items, problems = find_inputs(inputs)
    nv = load_or_fail(weights, arch, device)
    rows, failed = [], len(problems)
    for batch in nv.prepared_batches([str(i.path) for i in items], batch_size):
        for r in nv.run(batch, "predict", top_k=top_k):
            if getattr(r, "error", None) is not None:
                failed += 1
                if json_out:
                    emit(error_json(r.name, r.error))
                else:
                    typer.echo(f"nestviz: error: {r.error}", err=True)
            elif json_out:
                emit(r.to_json(with_outputs=False))
            else:
                rows.append(r)
    if not json_out and rows:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"nestviz predict ({Path(nv.bundle.source).name})")
        for col, kw in (("image", {"overflow": "fold"}), ("rank", {"justify": "right"}), ("class", {}),
                        ("index", {"justify": "right"}), ("probability", {"justify": "right"})):
            table.add_column(col, **kw)
        for r in rows:
            for p in r.predictions:
                table.add_row(r.image if p.rank == 1 else "", str(p.rank), p.label, str(p.class_index),
                              f"{p.probability:.2%}", end_section=p.rank == len(r.predictions))
        Console().print(table)
    if failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command(epilog=EXIT_CODES_HELP)
def info(
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    json_out: bool = JSON,
) -> None:
    """Show the model card: architecture, parameters, classes, preprocessing, provenance."""
    import json as _json

    from .model import count_params

    nv = load_or_fail(weights, arch, "cpu")
    b = nv.bundle
    card = {"source": b.source, "config": b.config.to_dict(), "parameters": count_params(b.model),
            "num_classes": b.config.num_classes, "class_names": b.class_names,
            "preprocessing": b.preprocessing.to_dict(), "provenance": b.provenance}
    if json_out:
        typer.echo(_json.dumps(card))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(show_header=False, title="nestviz model card")
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    t.add_row("weights", b.source)
    cfg = b.config
    t.add_row("architecture", f"NesT, {cfg.num_levels} levels, {cfg.img_size}px, patch {cfg.patch_size}, "
              f"blocks {cfg.block_size}x{cfg.block_size} tokens, pooling {'same (_jx)' if cfg.pad_type else 'plain'}")
    t.add_row("dims / heads / depths", f"{list(cfg.embed_dims)} / {list(cfg.num_heads)} / {list(cfg.depths)}")
    t.add_row("parameters", f"{card['parameters'] / 1e6:.2f} M")
    t.add_row("top-level map", f"{cfg.block_size}x{cfg.block_size}")
    names = b.class_names
    t.add_row("classes", f"{len(names)}: " + ", ".join(names[:12]) + (", ..." if len(names) > 12 else ""))
    p = b.preprocessing
    t.add_row("preprocessing", f"resize shorter side to {p.resize_to} ({p.interpolation}), centre crop "
              f"{p.input_size} (crop_pct {p.crop_pct}), mean {list(p.mean)}, std {list(p.std)}")
    for k, v in b.provenance.items():
        if k not in ("options", "class_folders"):
            t.add_row(k, str(v))
    Console().print(t)


@app.command(epilog=EXIT_CODES_HELP)
def evaluate(
    data_dir: Path = typer.Argument(..., help="Labelled images, one subfolder per class."),
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    device: str = DEVICE,
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    json_out: bool = JSON,
) -> None:
    """Top-1, top-5 and per-class accuracy on a class-per-folder dataset."""
    import json as _json

    from .evaluate import evaluate_folder

    if not data_dir.is_dir():
        fail(f"{data_dir}: not a directory")
    nv = load_or_fail(weights, arch, device)
    try:
        report = evaluate_folder(nv, data_dir, batch_size)
    except ValueError as e:
        fail(str(e))
    if json_out:
        typer.echo(_json.dumps(report.to_json()))
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"{data_dir}: top-1 {report.top1:.2%}, top-5 {report.top5:.2%} ({report.images} images)")
        t.add_column("class")
        t.add_column("images", justify="right")
        t.add_column("top-1", justify="right")
        for label, d in report.per_class.items():
            t.add_row(label, str(d["images"]), f"{d['top1']:.2%}")
        Console().print(t)
        if report.confusions:
            c = Table(title="most confused (true -> predicted)")
            c.add_column("true")
            c.add_column("predicted")
            c.add_column("images", justify="right")
            for d in report.confusions:
                c.add_row(d["true"], d["predicted"], str(d["images"]))
            Console().print(c)
    for f in report.failed:
        typer.echo(f"nestviz: error: {f}", err=True)
    if report.failed:
        raise typer.Exit(EXIT_PARTIAL)


def run_mode(mode: str, inputs: list[Path], weights: Optional[Path], arch: Optional[str], device: str,
             top_k: int, classes: Optional[list[str]], out: Path, fmt: str, json_out: bool, no_render: bool,
             batch_size: int, overwrite: bool, shard: Optional[str], quiet: bool, threshold: float = 0.2,
             save_maps: bool = False) -> None:
    """Shared body of explain / cam / annotate: folder mode over any mix of files and folders."""
    from .discover import has_multiple_roots, parse_shard, shard as take_shard
    from .runner import RunOptions, check_writable

    fmt = fmt.lower().lstrip(".")
    if fmt not in ("png", "jpg", "jpeg", "svg", "pdf"):
        fail(f"--format must be png, jpg, svg or pdf, got {fmt!r}")
    fmt = "jpg" if fmt == "jpeg" else fmt
    if not 0.0 <= threshold <= 1.0:
        fail(f"--threshold must be between 0 and 1, got {threshold}")
    try:
        part = parse_shard(shard) if shard else None
    except ValueError as e:
        fail(str(e))
    try:
        check_writable(out)
    except OSError as e:
        fail(f"{out}: output folder is not writable ({e.strerror or e})")
    items, problems = find_inputs(inputs, exclude=[out])
    multi_root = has_multiple_roots(items)  # before sharding, so every shard names outputs alike
    if part is not None:
        items = take_shard(items, *part)

    loaded: list = []

    def load_model():  # noqa: ANN202 - loaded once, and only when there is work (or a --class to resolve)
        if not loaded:
            loaded.append(load_or_fail(weights, arch, device))
        return loaded[0]

    from .weights import load_weights_identity

    try:
        weights_id = load_weights_identity(weights, arch=arch)
    except Exception as e:  # noqa: BLE001 - reported as a setup error
        fail(str(e))
    class_ids = None
    if classes:
        try:
            class_ids = load_model().resolve_classes(classes)
        except ValueError as e:
            fail(str(e))
    opts = RunOptions(mode=mode, out_dir=out, top_k=top_k, classes=class_ids, threshold=threshold, fmt=fmt,
                      render=not no_render, save_maps=save_maps, overwrite=overwrite, batch_size=batch_size,
                      shard=part, multi_root=multi_root)
    summary = run_with_progress(items, opts, load_model, weights_id, json_out, quiet)
    summary.failed += len(problems)
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)


def run_with_progress(items, opts, load_model, weights_id, json_out, quiet):  # noqa: ANN001, ANN201
    """Run folder mode with a Rich progress bar and a closing summary table on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .runner import run_folder

    console = Console(stderr=True)
    on_record = (lambda r: emit({k: v for k, v in r.items() if k not in ("key", "status", "time")})) if json_out else None
    if quiet:
        summary = run_folder(items, opts, load_model, weights_id, on_record=on_record)
    else:
        columns = (TextColumn(f"[bold]{opts.mode}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(opts.mode, total=len(items), rate="")
            start = [None, 0]

            def tick(done: int, total: int) -> None:
                import time as _t

                if start[0] is None:
                    start[0], start[1] = _t.perf_counter(), done
                dt = _t.perf_counter() - start[0]
                rate = f"{(done - start[1]) / dt:.1f} img/s" if dt > 0 and done > start[1] else ""
                bar.update(task, completed=done, rate=rate)

            summary = run_folder(items, opts, load_model, weights_id, on_record=on_record, progress=tick)
    if not quiet:
        from rich.table import Table

        t = Table(title="interrupted: re-run the same command to resume" if summary.interrupted else None)
        for col in ("done", "failed", "skipped", "time", "images/s"):
            t.add_column(col, justify="right")
        t.add_row(str(summary.done), str(summary.failed), str(summary.skipped), f"{summary.seconds:.1f}s",
                  f"{summary.images_per_s:.2f}")
        console.print(t)
        for f in summary.failures[:20]:
            console.print(f"failed: {f}", markup=False, highlight=False)
        console.print(f"outputs in {opts.out_dir}/ (gallery: {opts.out_dir / 'index.html'})", markup=False,
                      highlight=False)
    return summary


@app.command(epilog=EXIT_CODES_HELP)
def explain(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    top_k: int = typer.Option(4, "--top-k", "-k", min=1, help="Explain the k most probable classes."),
    classes: Optional[list[str]] = CLASSES,
    out: Path = OUT,
    fmt: str = FORMAT,
    json_out: bool = JSON,
    no_render: bool = NO_RENDER,
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    device: str = DEVICE,
    batch_size: int = BATCH,
    overwrite: bool = OVERWRITE,
    shard: Optional[str] = SHARD,
    quiet: bool = QUIET,
) -> None:
    """GradCAT: follow the NesT block tree from the root to the leaf block that drives each class."""
    run_mode("explain", inputs, weights, arch, device, top_k, classes, out, fmt, json_out, no_render, batch_size,
             overwrite, shard, quiet)


@app.command(epilog=EXIT_CODES_HELP)
def cam(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    top_k: int = typer.Option(1, "--top-k", "-k", min=1, help="Map the k most probable classes."),
    classes: Optional[list[str]] = CLASSES,
    threshold: float = THRESHOLD,
    out: Path = OUT,
    fmt: str = FORMAT,
    json_out: bool = JSON,
    no_render: bool = NO_RENDER,
    save_maps: bool = SAVE_MAPS,
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    device: str = DEVICE,
    batch_size: int = BATCH,
    overwrite: bool = OVERWRITE,
    shard: Optional[str] = SHARD,
    quiet: bool = QUIET,
) -> None:
    """Class activation maps: a heatmap, a weakly-supervised box and the peak per class."""
    run_mode("cam", inputs, weights, arch, device, top_k, classes, out, fmt, json_out, no_render, batch_size,
             overwrite, shard, quiet, threshold, save_maps)


@app.command(epilog=EXIT_CODES_HELP)
def annotate(
    inputs: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    top_k: int = typer.Option(4, "--top-k", "-k", min=1),
    classes: Optional[list[str]] = CLASSES,
    threshold: float = THRESHOLD,
    out: Path = OUT,
    fmt: str = FORMAT,
    json_out: bool = JSON,
    no_render: bool = NO_RENDER,
    save_maps: bool = SAVE_MAPS,
    weights: Optional[Path] = WEIGHTS,
    arch: Optional[str] = ARCH,
    device: str = DEVICE,
    batch_size: int = BATCH,
    overwrite: bool = OVERWRITE,
    shard: Optional[str] = SHARD,
    quiet: bool = QUIET,
) -> None:
    """GradCAT and CAM figures for every image from one forward pass."""
    run_mode("annotate", inputs, weights, arch, device, top_k, classes, out, fmt, json_out, no_render, batch_size,
             overwrite, shard, quiet, threshold, save_maps)


@app.command(epilog=EXIT_CODES_HELP)
def train(
    train_dir: Path = typer.Argument(..., help="Training images, one subfolder per class."),
    out: Path = typer.Option(..., "--out", help="Output weights file (.safetensors)."),
    val: Optional[Path] = typer.Option(None, "--val", help="Validation folder with the same class subfolders."),
    arch: str = typer.Option("nestviz_imagenette", "--arch", help="Named architecture to train."),
    epochs: int = typer.Option(50, "--epochs", min=1),
    batch_size: int = typer.Option(128, "--batch-size", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Checkpoint (OUT.ckpt) of a cut-off run."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="TSV mapping folder names to readable class names."),
    precision: str = typer.Option("bf16", "--precision", help="bf16 (autocast) or fp32."),
    mix_prob: float = typer.Option(0.3, "--mix-prob", help="Probability of mixup/CutMix per batch."),
    mosaic_prob: float = typer.Option(0.0, "--mosaic-prob", help="Probability per image of a 2x2 mosaic with three others."),
    region_loss: float = typer.Option(0.0, "--region-loss", min=0.0,
                                      help="Weight of the per-tile loss on mosaic images (teaches CAM where each class is)."),
    peak_temperature: float = typer.Option(1.0, "--peak-temperature", min=0.01,
                                           help="Temperature of the region loss's peak pooling (lower: nearer the max)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from these weights (fine-tuning) instead of random."),
    warmup_epochs: float = typer.Option(3.0, "--warmup-epochs", min=0.0),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or mps."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Where decoded images are cached."),
) -> None:
    """Train a NesT on a class-per-folder dataset and write a nestviz weights file."""
    from rich.console import Console

    from .devices import resolve_device
    from .model import named_config
    from .train import TrainOptions, train as run_training

    console = Console(stderr=True)
    if precision not in ("bf16", "fp32"):
        fail(f"--precision must be bf16 or fp32, got {precision!r}")
    for p, what in ((train_dir, "training folder"), (val, "validation folder")):
        if p is not None and not p.is_dir():
            fail(f"{p}: {what} not found")
    if resume is not None and not resume.is_file():
        fail(f"{resume}: checkpoint not found")
    try:
        cfg = named_config(arch)
        dev = resolve_device(device)
    except ValueError as e:
        fail(str(e))
    opts = TrainOptions(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, precision=precision, mix_prob=mix_prob,
                        mosaic_prob=mosaic_prob, region_loss=region_loss, peak_temperature=peak_temperature,
                        warmup_epochs=warmup_epochs)
    command = "nestviz " + shlex.join(sys.argv[1:])

    def on_epoch(s) -> None:  # noqa: ANN001
        val_txt = f"  val top-1 {s.val_top1:.2%}" if s.val_top1 is not None else ""
        console.print(f"epoch {s.epoch}/{epochs}  loss {s.loss:.4f}  train acc {s.train_acc:.2%}  "
                      f"{s.images_per_s:.0f} img/s  {s.seconds:.0f}s  lr {s.lr:.2e}{val_txt}")

    try:
        result = run_training(train_dir, out, cfg, opts, val_dir=val, labels_file=labels, resume=resume, init=init,
                              cache_dir=cache_dir, device=dev, command=command, on_epoch=on_epoch)
    except ValueError as e:
        fail(str(e))
    acc = f", val top-1 {result.val_top1:.2%}" if result.val_top1 is not None else ""
    console.print(f"wrote {out} ({result.seconds / 60:.1f} min of training{acc})")


def main() -> None:
    """Console-script entry point: expected errors are one line; anything else is exit 1 without a traceback."""
    import os

    try:
        app()
    except KeyboardInterrupt:
        typer.echo("nestviz: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:  # noqa: BLE001 - the documented 'unexpected' exit code
        if os.environ.get("NESTVIZ_DEBUG"):
            raise
        typer.echo(f"nestviz: unexpected error: {type(e).__name__}: {' '.join(str(e).split())} "
                   "(set NESTVIZ_DEBUG=1 for a traceback)", err=True)
        sys.exit(EXIT_UNEXPECTED)
