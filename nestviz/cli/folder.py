"""Folder mode's commands: ``explain``, ``cam`` and ``annotate`` over any mix of files and folders.

Each command builds the run's options once (``nestviz.batch.outputs.RunOptions``) from its flags; ``run_mode``
checks them, finds the inputs and hands both to ``nestviz.batch.runner``.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..defaults import CAM_KIND, EXPLAIN_FIT, GRADCAT_SCORE, THRESHOLD, TOP_K
from .common import (EXIT_INTERRUPTED, EXIT_PARTIAL, EXIT_USAGE, ModelChoice, check_fit_option, check_out_folder,
                     check_variant_options, fail, find_inputs, load_or_fail, note_top_k)
from .options import (BATCH_SIZE, OUT_DIR, Arch, Batch, CamKind, Classes, Device, Fit, Format, FullSize, GradcatScore,
                      Inputs, Json, MaxPixels, NoRender, Out, Overwrite, Quiet, SaveMaps, Shard, Threshold, Tree,
                      Weights, top_k as top_k_option)
from .signals import ignore_sigint, sigterm_interrupts


def explain(
    inputs: Inputs,
    top_k: Annotated[int, top_k_option("Explain the k most probable classes.")] = TOP_K["explain"],
    classes: Classes = None,
    out: Out = OUT_DIR,
    fmt: Format = "jpg",
    json_out: Json = False,
    no_render: NoRender = False,
    weights: Weights = None,
    arch: Arch = None,
    device: Device = "auto",
    batch_size: Batch = BATCH_SIZE,
    overwrite: Overwrite = False,
    shard: Shard = None,
    quiet: Quiet = False,
    fit: Fit = EXPLAIN_FIT,
    tree: Tree = False,
    full_size: FullSize = False,
    max_pixels: MaxPixels = None,  # noqa: ARG001 - applied by its callback
    gradcat_score: GradcatScore = GRADCAT_SCORE,
) -> None:
    """GradCAT: follow the NesT block tree from the root to the leaf block that drives each class."""
    from ..batch.outputs import RunOptions

    run_mode(inputs, RunOptions("explain", out, top_k=top_k, fmt=fmt, render=not no_render, overwrite=overwrite,
                                batch_size=batch_size, fit=fit, tree=tree, full_size=full_size,
                                variants=check_variant_options(gradcat_score=gradcat_score)),
             ModelChoice(weights, arch, device), classes=classes, shard=shard, json_out=json_out, quiet=quiet)


def cam(
    inputs: Inputs,
    top_k: Annotated[int, top_k_option("Map the k most probable classes.")] = TOP_K["cam"],
    classes: Classes = None,
    threshold: Threshold = THRESHOLD,
    out: Out = OUT_DIR,
    fmt: Format = "jpg",
    json_out: Json = False,
    no_render: NoRender = False,
    save_maps: SaveMaps = False,
    weights: Weights = None,
    arch: Arch = None,
    device: Device = "auto",
    batch_size: Batch = BATCH_SIZE,
    overwrite: Overwrite = False,
    shard: Shard = None,
    quiet: Quiet = False,
    fit: Fit = EXPLAIN_FIT,
    full_size: FullSize = False,
    max_pixels: MaxPixels = None,  # noqa: ARG001 - applied by its callback
    cam_kind: CamKind = CAM_KIND,
) -> None:
    """Class activation maps: a heatmap, a weakly-supervised box and the peak per class."""
    from ..batch.outputs import RunOptions

    run_mode(inputs, RunOptions("cam", out, top_k=top_k, threshold=threshold, fmt=fmt, render=not no_render,
                                save_maps=save_maps, overwrite=overwrite, batch_size=batch_size, fit=fit,
                                full_size=full_size, variants=check_variant_options(cam_kind=cam_kind)),
             ModelChoice(weights, arch, device), classes=classes, shard=shard, json_out=json_out, quiet=quiet)


def annotate(
    inputs: Inputs,
    top_k: Annotated[int, top_k_option("Explain and map the k most probable classes.")] = TOP_K["annotate"],
    classes: Classes = None,
    threshold: Threshold = THRESHOLD,
    out: Out = OUT_DIR,
    fmt: Format = "jpg",
    json_out: Json = False,
    no_render: NoRender = False,
    save_maps: SaveMaps = False,
    weights: Weights = None,
    arch: Arch = None,
    device: Device = "auto",
    batch_size: Batch = BATCH_SIZE,
    overwrite: Overwrite = False,
    shard: Shard = None,
    quiet: Quiet = False,
    fit: Fit = EXPLAIN_FIT,
    tree: Tree = False,
    full_size: FullSize = False,
    max_pixels: MaxPixels = None,  # noqa: ARG001 - applied by its callback
    cam_kind: CamKind = CAM_KIND,
    gradcat_score: GradcatScore = GRADCAT_SCORE,
) -> None:
    """GradCAT and CAM figures for every image from one forward pass."""
    from ..batch.outputs import RunOptions

    run_mode(inputs, RunOptions("annotate", out, top_k=top_k, threshold=threshold, fmt=fmt, render=not no_render,
                                save_maps=save_maps, overwrite=overwrite, batch_size=batch_size, fit=fit, tree=tree,
                                full_size=full_size, variants=check_variant_options(cam_kind, gradcat_score)),
             ModelChoice(weights, arch, device), classes=classes, shard=shard, json_out=json_out, quiet=quiet)


def checked(opts: Any, shard: Optional[str]) -> Any:
    """``opts`` (a ``RunOptions`` as the flags gave it, its variants checked) with its format and fit checked and
    spelled as the package spells them, and ``--shard`` read; each bad value is a one-line setup error (exit 2)."""
    from ..batch.discover import parse_shard
    from ..draw import figure_format

    try:
        fmt = figure_format(opts.fmt)
    except ValueError:
        fail(f"--format must be png, jpg, svg or pdf, got {opts.fmt.lower().lstrip('.')!r}")
    if not 0.0 <= opts.threshold <= 1.0:
        fail(f"--threshold must be between 0 and 1, got {opts.threshold}")
    fit = check_fit_option(opts.fit)
    try:
        part = parse_shard(shard) if shard else None
    except ValueError as e:
        fail(str(e))
    return replace(opts, fmt=fmt, fit=fit, shard=part)


def run_mode(inputs: list[Path], opts: Any, model: ModelChoice, *, classes: Optional[list[str]],
             shard: Optional[str], json_out: bool, quiet: bool) -> None:
    """Shared body of explain / cam / annotate: check ``opts``, find the inputs, run them into ``opts.out_dir``."""
    from ..batch.discover import has_multiple_roots, shard as take_shard
    from ..model.checkpoints import read_checkpoint

    opts = checked(opts, shard)
    check_out_folder(opts.out_dir)  # creates nothing: OUT is made when the run starts, after every setup check
    items, problems = find_inputs(inputs, exclude=[opts.out_dir])
    opts = replace(opts, multi_root=has_multiple_roots(items))  # before sharding: every shard names outputs alike
    if opts.shard is not None:
        items = take_shard(items, *opts.shard)

    try:  # the weights are read once: hashed for the records' key, the model built from those bytes
        checkpoint = [read_checkpoint(model.weights)]  # emptied by the loader: the bytes go once the model is built
        weights_id = checkpoint[0].identity(model.arch)
    except Exception as e:  # noqa: BLE001 - reported as a setup error
        fail(str(e))

    @cache
    def load_model():  # noqa: ANN202 - loaded once, and only when there is work (or a --class to resolve)
        nv = load_or_fail(replace(model, weights=checkpoint.pop()), opts.variants)
        if not classes:
            note_top_k(opts.top_k, nv.num_classes)
        return nv
    if classes:
        try:
            opts = replace(opts, classes=load_model().resolve_classes(classes))
        except ValueError as e:
            fail(str(e))
    from .tables import run_with_progress

    with sigterm_interrupts():
        summary = run_with_progress(items, opts, load_model, weights_id, json_out, quiet, ignore_sigint)
    if summary.disk_full:  # the run stopped; what was written is valid and a re-run resumes
        left = len(items) - summary.done - summary.failed - summary.skipped
        fail(f"{summary.disk_full}; stopped with {left} images not done: free some space and run the same command "
             "again to resume", EXIT_PARTIAL if summary.done + summary.failed else EXIT_USAGE)
    summary.failed += len(problems)
    if summary.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)
