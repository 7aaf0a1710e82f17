"""The ``nestviz`` command line: a thin layer over the Python API.

Heavy modules (torch, matplotlib) are imported inside the commands, never at import
time, so ``nestviz --help`` answers without loading them.

Exit codes: 0 all done; 1 unexpected error; 2 usage or setup error (bad option, no
inputs, invalid weights, unavailable device); 3 some inputs failed, the rest processed;
130 interrupted.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
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
    from .model.bundle import WeightsError

    try:
        return Nestviz.load(weights, arch=arch, device=device)
    except (WeightsError, ValueError) as e:
        fail(str(e))


def find_inputs(inputs: list[Path], exclude: list[Path] | None = None):  # noqa: ANN201
    """Discover image files under ``inputs``; no inputs at all is a usage error."""
    from .batch.discover import discover

    items, problems = discover(inputs, exclude=exclude or [])
    if not items:
        fail("no input images found" + (f" ({'; '.join(problems)})" if problems else ""))
    for p in problems:
        typer.echo(f"nestviz: error: {p}", err=True)
    return items, problems


def emit(record: dict) -> None:  # noqa: ANN001
    from .batch.runner import dumps

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
    items, problems = find_inputs(inputs)
    nv = load_or_fail(weights, arch, device)
    rows, failed = [], len(problems)
    for batch in nv.prepared_batches([str(i.path) for i in items], batch_size):
        for r in nv.run(batch, "predict", top_k=top_k):
            failed += r.error is not None
            if r.error is not None and not json_out:
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

    b = load_or_fail(weights, arch, "cpu").bundle
    if json_out:
        typer.echo(_json.dumps(b.card()))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(show_header=False, title="nestviz model card")
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for row in b.card_rows():
        t.add_row(*row)
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

    from .train.evaluate import evaluate_folder

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


@dataclass(frozen=True)
class FolderArgs:
    """The options of explain / cam / annotate, by name."""

    mode: str
    inputs: list[Path]
    weights: Optional[Path]
    arch: Optional[str]
    device: str
    top_k: int
    classes: Optional[list[str]]
    out: Path
    fmt: str
    json_out: bool
    no_render: bool
    batch_size: int
    overwrite: bool
    shard: Optional[str]
    quiet: bool
    threshold: float = 0.2
    save_maps: bool = False


def run_mode(a: FolderArgs) -> None:
    """Shared body of explain / cam / annotate: folder mode over any mix of files and folders."""
    from .batch.discover import has_multiple_roots, parse_shard, shard as take_shard
    from .batch.runner import RunOptions, check_writable
    from .draw import figure_format
    from .model.checkpoints import load_weights_identity

    try:
        fmt = figure_format(a.fmt)
    except ValueError:
        fail(f"--format must be png, jpg, svg or pdf, got {a.fmt.lower().lstrip('.')!r}")
    if not 0.0 <= a.threshold <= 1.0:
        fail(f"--threshold must be between 0 and 1, got {a.threshold}")
    try:
        part = parse_shard(a.shard) if a.shard else None
    except ValueError as e:
        fail(str(e))
    try:
        check_writable(a.out)
    except OSError as e:
        fail(f"{a.out}: output folder is not writable ({e.strerror or e})")
    items, problems = find_inputs(a.inputs, exclude=[a.out])
    multi_root = has_multiple_roots(items)  # before sharding, so every shard names outputs alike
    if part is not None:
        items = take_shard(items, *part)

    @cache
    def load_model():  # noqa: ANN202 - loaded once, and only when there is work (or a --class to resolve)
        return load_or_fail(a.weights, a.arch, a.device)

    try:
        weights_id = load_weights_identity(a.weights, arch=a.arch)
    except Exception as e:  # noqa: BLE001 - reported as a setup error
        fail(str(e))
    class_ids = None
    if a.classes:
        try:
            class_ids = load_model().resolve_classes(a.classes)
        except ValueError as e:
            fail(str(e))
    opts = RunOptions(mode=a.mode, out_dir=a.out, top_k=a.top_k, classes=class_ids, threshold=a.threshold, fmt=fmt,
                      render=not a.no_render, save_maps=a.save_maps, overwrite=a.overwrite, batch_size=a.batch_size,
                      shard=part, multi_root=multi_root)
    with sigterm_interrupts():
        summary = run_with_progress(items, opts, load_model, weights_id, a.json_out, a.quiet)
    summary.failed += len(problems)
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)


def ignore_sigint() -> None:
    """Figure workers leave Ctrl-C to the main process, which lets the figures being drawn land."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside, SIGTERM stops a run like Ctrl-C does (cleanly, resumable); the old handler comes back after."""
    if threading.current_thread() is not threading.main_thread():  # handlers belong to the main thread
        yield
        return

    def on_term(signum: int, frame: object) -> None:  # noqa: ARG001
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_with_progress(items, opts, load_model, weights_id, json_out, quiet):  # noqa: ANN001, ANN201
    """Run folder mode with a Rich progress bar and a closing summary table on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .batch.runner import run_folder

    console = Console(stderr=True)
    on_record = (lambda r: emit({k: v for k, v in r.items() if k not in ("key", "status", "time")})) if json_out else None
    if quiet:
        summary = run_folder(items, opts, load_model, weights_id, on_record=on_record, worker_init=ignore_sigint)
    else:
        columns = (TextColumn(f"[bold]{opts.mode}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(opts.mode, total=len(items), rate="")
            summary = run_folder(items, opts, load_model, weights_id, on_record=on_record,
                                 progress=_RateTicker(bar, task), worker_init=ignore_sigint)
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


class _RateTicker:
    """Progress callback: moves the bar and shows images per second since the first tick."""

    def __init__(self, bar, task) -> None:  # noqa: ANN001
        self.bar, self.task, self.start, self.first = bar, task, None, 0

    def __call__(self, done: int, total: int) -> None:  # noqa: ARG002
        import time

        if self.start is None:
            self.start, self.first = time.perf_counter(), done
        dt = time.perf_counter() - self.start
        rate = f"{(done - self.first) / dt:.1f} img/s" if dt > 0 and done > self.first else ""
        self.bar.update(self.task, completed=done, rate=rate)


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
    run_mode(FolderArgs("explain", inputs, weights=weights, arch=arch, device=device, top_k=top_k, classes=classes,
                        out=out, fmt=fmt, json_out=json_out, no_render=no_render, batch_size=batch_size,
                        overwrite=overwrite, shard=shard, quiet=quiet))


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
    run_mode(FolderArgs("cam", inputs, weights=weights, arch=arch, device=device, top_k=top_k, classes=classes,
                        out=out, fmt=fmt, json_out=json_out, no_render=no_render, batch_size=batch_size,
                        overwrite=overwrite, shard=shard, quiet=quiet, threshold=threshold, save_maps=save_maps))


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
    run_mode(FolderArgs("annotate", inputs, weights=weights, arch=arch, device=device, top_k=top_k, classes=classes,
                        out=out, fmt=fmt, json_out=json_out, no_render=no_render, batch_size=batch_size,
                        overwrite=overwrite, shard=shard, quiet=quiet, threshold=threshold, save_maps=save_maps))


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
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Where decoded images are cached "
                                             "(default: $XDG_CACHE_HOME/nestviz, else ~/.cache/nestviz)."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Leave unreadable images out (listed in the weights' "
                                  "provenance) instead of stopping."),
) -> None:
    """Train a NesT on a class-per-folder dataset and write a nestviz weights file."""
    from rich.console import Console

    from .devices import resolve_device
    from .model.nest import named_config
    from .train.loop import TrainOptions, train as run_training

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
                        warmup_epochs=warmup_epochs, skip_bad=skip_bad)
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
