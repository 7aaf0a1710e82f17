"""Train a NesT on a class-per-folder dataset: the recipe behind ``nestviz train``.

AdamW (no decay on norms, biases, position embeddings), linear warmup then cosine decay, label
smoothing, random-resized crop + flip + colour jitter, optional mixup/CutMix, stochastic depth,
bf16 autocast. Images are decoded once into a cached uint8 tensor. Each epoch ends with an atomic
checkpoint, and one is written every few minutes within an epoch (``checkpoint.py``); every epoch
draws its randomness from ``seed`` and the epoch number, so ``resume`` continues exactly where a
run stopped (torch's global random state is left as it was). Unreadable images stop training,
listed, unless ``skip_bad`` is set, which leaves them out and records them in the weights'
provenance. See ``record.py`` for the checks before a run and what its weights record.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..model.bundle import WeightsWarning
from ..model.checkpoints import load_weights, save_nestviz
from ..model.nest import Nest, NestConfig, param_groups, resize_state_dict
from ..preprocess import Preprocessing, normalize
from .augment import MosaicTiles, color_jitter, mix_batch, mosaic_batch, random_resized_crop_flip, region_weights
from .locality import locality_loss
from .checkpoint import EpochProgress, Every, checkpoint_path, load_progress, save_checkpoint
from .data import Split, decode_split, default_cache_dir, read_label_names, scan_class_folders
from .record import check_cache_dir, check_weights_out, environment, paths_record, wnid_label_names


@dataclass(kw_only=True)
class TrainOptions:
    """The recipe's knobs; defaults are what trained the embedded model."""

    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup_epochs: float = 3.0
    label_smoothing: float = 0.1
    drop_path: float = 0.1
    mix_prob: float = 0.3
    mosaic_prob: float = 0.0
    region_loss: float = 0.0  # weight of the per-tile loss on mosaic images (see region_logits)
    peak_temperature: float = 1.0  # of the tiles' peak pooling: lower is closer to the maximum
    locality_loss: float = 0.0  # weight of the occlusion-consistency loss on half of each batch (see locality.py)
    jitter: float = 0.3
    crop_scale_min: float = 0.25
    seed: int = 0
    precision: str = "bf16"  # bf16 autocast, or fp32
    eval_every: int = 5
    crop_pct: float = 0.875
    skip_bad: bool = False  # leave unreadable images out (recorded) instead of refusing to train
    checkpoint_minutes: float = 5.0  # within an epoch, OUT.ckpt is also written this often (the epoch's end always)


class TrainWarning(UserWarning):
    """A training option that cannot do what it says (one line)."""


@dataclass
class EpochStats:
    epoch: int
    loss: float
    train_acc: float
    images_per_s: float
    seconds: float
    lr: float
    val_top1: float | None = None


@dataclass
class TrainResult:
    out: Path
    history: list[EpochStats] = field(default_factory=list)
    val_top1: float | None = None
    seconds: float = 0.0


def lr_at(step: int, total: int, warmup: int, opts: TrainOptions) -> float:
    """Linear warmup to ``opts.lr``, then cosine decay to ``opts.min_lr``."""
    if step < warmup:
        return opts.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return opts.min_lr + 0.5 * (opts.lr - opts.min_lr) * (1 + math.cos(math.pi * t))


def region_logits(model: Nest, features: Tensor, tiles: MosaicTiles, image_size: int,
                  temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """Logits of each mosaic tile from the class activation map under it: mean and peak pooled, each (M, 4, K).

    The mean over the tile is what the head computes for a whole image (and what GradCAT's root
    scores compare); the peak (T log-sum-exp(cam / T) over the tile's cells, near their maximum) is
    what CAM's peak compares. Training both on the tiles' labels teaches the map where each class
    is, from image-level labels only: the mosaic made the layout.
    """
    grid = features.shape[1]
    w = region_weights(tiles.boxes, image_size, grid).to(features.device, features.dtype)  # (M, 4, g, g)
    cam = model.get_classifier()(features[tiles.image.to(features.device)]).float()  # (M, g, g, K)
    mean = torch.einsum("mtij,mijk->mtk", w.float(), cam)
    log_w = torch.log(w.float().clamp(min=1e-12))[..., None]  # (M, 4, g, g, 1)
    peak = temperature * torch.logsumexp(cam[:, None] / temperature + log_w, dim=(2, 3))
    return mean, peak


def region_loss(tile_logits: tuple[Tensor, Tensor], tile_labels: Tensor, eps: float) -> Tensor:
    """Cross-entropies on the tiles' mean and peak logits (M, 4, K) against their soft labels (M, 4, K).

    What is in each tile (softmax over classes, as for whole images), and where each class of
    the mosaic is (softmax over the four tiles of that class's logits, the target being how the
    class's label mass spreads over the tiles): the second is what CAM and GradCAT are asked.
    """
    mass = tile_labels.sum(dim=1)  # (M, K): how much of each class the mosaic holds
    where_target = tile_labels / mass[:, None, :].clamp(min=1e-12)
    total = tile_labels.new_zeros(())
    for logits in tile_logits:
        what = soft_cross_entropy(logits, smooth(tile_labels, eps))
        where_each = torch.sum(-where_target * F.log_softmax(logits.float(), dim=1), dim=1)  # (M, K)
        total = total + what + (where_each * mass).sum() / mass.sum().clamp(min=1e-12)
    return total / len(tile_logits)


def smooth(soft: Tensor, eps: float) -> Tensor:
    """Label smoothing of soft targets over their last dimension."""
    return soft * (1 - eps) + eps / soft.shape[-1]


def soft_cross_entropy(logits: Tensor, soft: Tensor) -> Tensor:
    """Mean cross-entropy against soft targets, computed in float32."""
    return torch.sum(-soft * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


@torch.no_grad()
def accuracy_on(model: Nest, x_uint8: Tensor, labels: Tensor, pre: Preprocessing, device: torch.device,
                batch_size: int = 64) -> float:
    """Top-1 accuracy of ``model`` on pre-cropped uint8 images (float32, eval mode)."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x_uint8), batch_size):
        xb = normalize(x_uint8[i:i + batch_size], pre).to(device)
        correct += int((model(xb).argmax(1).cpu() == labels[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / len(x_uint8)


def _start(cfg: NestConfig, opts: TrainOptions, classes: list[str], device: torch.device,
           init: str | os.PathLike[str] | None, resume: str | os.PathLike[str] | None
           ) -> tuple[Nest, torch.optim.Optimizer, int, float, list[EpochStats], EpochProgress | None]:
    """The model and optimizer to train: fresh (seeded), from ``init`` weights, or resumed from a checkpoint
    (with where its epoch stood, when it was written mid-epoch)."""
    torch.manual_seed(opts.seed)
    model = Nest(cfg, drop_path_rate=opts.drop_path).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, opts.weight_decay), lr=opts.lr, betas=(0.9, 0.999))
    if init is not None:  # fine-tune: start from another weights file of the same architecture, at any input size
        start = load_weights(init)
        if start.config.with_(img_size=cfg.img_size) != cfg:
            raise ValueError(f"{init}: --init weights are for another architecture or class count")
        if start.config.img_size != cfg.img_size:
            warnings.warn(WeightsWarning(f"{init}: position embeddings resampled from {start.config.img_size} px to "
                                         f"{cfg.img_size} px (--img-size)"), stacklevel=2)
        model.load_state_dict(resize_state_dict(start.model.state_dict(), cfg))
    if resume is None:
        return model, optimizer, 0, 0.0, [], None
    state = torch.load(resume, map_location="cpu", weights_only=True)
    if state["config"] != cfg.to_dict() or state["classes"] != classes:
        raise ValueError(f"{resume}: checkpoint is for another architecture or class list")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return (model, optimizer, int(state["epoch"]), float(state["seconds"]), [EpochStats(**h) for h in state["history"]],
            load_progress(state))


@dataclass
class _Run:
    """What every step of a training run reads."""

    model: Nest
    optimizer: torch.optim.Optimizer
    opts: TrainOptions
    cfg: NestConfig
    pre: Preprocessing
    device: torch.device
    train: Split
    steps_per_epoch: int
    total_steps: int
    warmup: int


def _train_step(run: _Run, step: int, idx: Tensor, gen: torch.Generator) -> tuple[float, int, float]:
    """One optimizer step on the images ``idx``: (loss, correct top-1 count, learning rate)."""
    opts, cfg, model, device = run.opts, run.cfg, run.model, run.device
    lr = lr_at(step, run.total_steps, run.warmup, opts)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    xb = random_resized_crop_flip(run.train.x[idx], cfg.img_size, gen, scale=(opts.crop_scale_min, 1.0))
    if opts.jitter > 0:
        xb = color_jitter(xb, gen, opts.jitter)
    xb = normalize(xb, run.pre)
    yb = run.train.y[idx]
    soft = mix_batch(xb, F.one_hot(yb, cfg.num_classes).float(), gen, opts.mix_prob)
    tiles = None
    if opts.mosaic_prob > 0:
        soft, tiles = mosaic_batch(xb, soft, gen, opts.mosaic_prob)
    soft = smooth(soft, opts.label_smoothing)
    xb, soft = xb.to(device), soft.to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=opts.precision == "bf16"):
        features = model.forward_features(xb)
        logits = model.forward_head(features)
        tile_logits = (region_logits(model, features.permute(0, 2, 3, 1), tiles, cfg.img_size, opts.peak_temperature)
                       if tiles is not None and opts.region_loss > 0 else None)
        half = max(1, len(xb) // 2)
        local = locality_loss(model, features[:half], xb[:half], gen) if opts.locality_loss > 0 else None
    loss = soft_cross_entropy(logits, soft)
    if tile_logits is not None:
        loss = loss + opts.region_loss * region_loss(tile_logits, tiles.labels.to(device), opts.label_smoothing)
    if local is not None:
        loss = loss + opts.locality_loss * local
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    return float(loss.detach()), int((logits.argmax(1).cpu() == yb).sum()), lr


StepCallback = Callable[[int, int, int, float, float], None]  # epoch (1-based), step, steps per epoch, loss, img/s


def _train_epoch(run: _Run, epoch: int, steps: int, on_step: StepCallback | None,
                 resume_at: EpochProgress | None = None,
                 checkpoint: Callable[[EpochProgress, torch.Generator], None] | None = None) -> EpochStats:
    """Up to ``steps`` steps of epoch ``epoch`` (0-based), its randomness drawn from the seed and the epoch;
    from ``resume_at`` (a mid-epoch checkpoint's progress) on, offering ``checkpoint`` the progress after each step."""
    opts = run.opts
    torch.manual_seed(opts.seed * 100_003 + epoch)  # drop-path masks
    gen = torch.Generator().manual_seed(opts.seed * 1_000_003 + epoch)
    order = torch.randperm(len(run.train.x), generator=gen)
    run.model.train()
    p = resume_at or EpochProgress()
    if resume_at is not None:
        p.restore(gen, run.device)
    t0, lr = time.perf_counter() - p.seconds, opts.lr
    for s in range(p.step, steps):
        idx = order[s * opts.batch_size:(s + 1) * opts.batch_size]
        loss, hits, lr = _train_step(run, epoch * run.steps_per_epoch + s, idx, gen)
        p.step, p.loss_sum, p.correct, p.seen = s + 1, p.loss_sum + loss * len(idx), p.correct + hits, p.seen + len(idx)
        p.seconds = time.perf_counter() - t0
        if checkpoint is not None and s + 1 < steps:
            checkpoint(p, gen)
        if on_step:
            on_step(epoch + 1, s + 1, run.steps_per_epoch, p.loss_sum / p.seen, p.seen / p.seconds)
    seconds = time.perf_counter() - t0
    return EpochStats(epoch + 1, p.loss_sum / p.seen, p.correct / p.seen, p.seen / seconds, seconds, lr)


def _state(run: _Run, epoch: int, elapsed: float, history: list[EpochStats], classes: list[str],
           progress: EpochProgress | None = None) -> dict[str, Any]:
    """What ``OUT.ckpt`` holds after ``epoch`` whole epochs (and ``progress`` into the next one)."""
    return {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(), "epoch": epoch,
            "seconds": elapsed, "history": [asdict(h) for h in history], "config": run.cfg.to_dict(),
            "classes": classes, "options": asdict(run.opts), "mid_epoch": progress.to_dict() if progress else None}


def _run_epochs(run: _Run, ckpt: Path, start: tuple[int, float, list[EpochStats], EpochProgress | None],
                val: Split | None, classes: list[str], on_step: StepCallback | None,
                on_epoch: Callable[[EpochStats], None] | None, max_steps: int | None) -> float:
    """The epochs from ``start`` (first epoch, seconds so far, history, progress into it) on, checkpointed at
    each epoch's end and every ``checkpoint_minutes`` within one; returns the seconds of training in all."""
    start_epoch, elapsed, history, progress = start
    opts, done_steps, every = run.opts, 0, Every(run.opts.checkpoint_minutes * 60)
    for epoch in range(start_epoch, opts.epochs):
        def mid(p: EpochProgress, gen: torch.Generator, epoch: int = epoch) -> None:
            if every.due():
                p.capture(gen, run.device)
                save_checkpoint(ckpt, _state(run, epoch, elapsed, history, classes, p))

        steps = run.steps_per_epoch if max_steps is None else min(run.steps_per_epoch, max_steps - done_steps)
        stats = _train_epoch(run, epoch, steps, on_step, progress, mid)
        done_steps, progress = done_steps + steps, None
        elapsed += stats.seconds
        last = epoch + 1 == opts.epochs or (max_steps is not None and done_steps >= max_steps)
        if val is not None and (last or (epoch + 1) % opts.eval_every == 0):
            stats.val_top1 = accuracy_on(run.model, val.x, val.y, run.pre, run.device)
        history.append(stats)
        save_checkpoint(ckpt, _state(run, epoch + 1, elapsed, history, classes))
        if on_epoch:
            on_epoch(stats)
        if last:
            break
    return elapsed


def train(train_dir: str | os.PathLike[str], out: str | os.PathLike[str], cfg: NestConfig,
          opts: TrainOptions, *, val_dir: str | os.PathLike[str] | None = None,
          labels_file: str | os.PathLike[str] | None = None, resume: str | os.PathLike[str] | None = None,
          init: str | os.PathLike[str] | None = None,
          cache_dir: str | os.PathLike[str] | None = None, device: torch.device | None = None,
          command: str = "", on_epoch: Callable[[EpochStats], None] | None = None,
          on_step: StepCallback | None = None,
          max_steps: int | None = None, keep_checkpoint: bool = False) -> TrainResult:
    """Train and write a nestviz weights file to ``out``; returns the per-epoch history.

    ``on_step(epoch, step_in_epoch, steps_per_epoch, loss, images_per_s)`` and ``on_epoch`` report progress.
    ``max_steps`` stops early (for tests). ``OUT.ckpt`` is written at each epoch's end and every
    ``opts.checkpoint_minutes`` within one; a completed run removes it unless ``keep_checkpoint``.
    """
    out, device = Path(out), device or torch.device("cpu")
    check_weights_out(out)
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    check_cache_dir(cache)  # every place checked before a word about the run
    if opts.warmup_epochs > opts.epochs:
        warnings.warn(TrainWarning(f"--warmup-epochs {opts.warmup_epochs:g} exceeds --epochs {opts.epochs}: the learning "
                                   f"rate rises for the whole run and peaks at {opts.lr * opts.epochs / opts.warmup_epochs:.3g}, "
                                   f"not --lr {opts.lr:g}"), stacklevel=2)
    ds = scan_class_folders(train_dir)
    names = read_label_names(labels_file) if labels_file else wnid_label_names(ds.classes)
    cfg = cfg.with_(num_classes=len(ds.classes))
    pre = Preprocessing(input_size=cfg.img_size, crop_pct=opts.crop_pct)
    data = decode_split(ds, cache, opts.skip_bad, train_size=int(round(cfg.img_size * 1.15)))
    val: Split | None = None
    if val_dir is not None:
        val_ds = scan_class_folders(val_dir)
        if val_ds.classes != ds.classes:
            raise ValueError(f"{val_dir}: class folders differ from {train_dir}")
        val = decode_split(val_ds, cache, opts.skip_bad, eval_pre=pre)
    steps_per_epoch = max(1, len(data.x) // opts.batch_size)  # drop the last partial batch
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # seeds below stay inside this run
        model, optimizer, *start = _start(cfg, opts, ds.classes, device, init, resume)
        history = start[2]
        run = _Run(model, optimizer, opts, cfg, pre, device, data, steps_per_epoch, steps_per_epoch * opts.epochs,
                   int(opts.warmup_epochs * steps_per_epoch))
        elapsed = _run_epochs(run, checkpoint_path(out), tuple(start), val, ds.classes, on_step, on_epoch, max_steps)
    val_top1 = history[-1].val_top1 if history else None
    provenance = {"trained_with": "nestviz train", **paths_record(command, train_dir, val_dir, init),
                  "train_images": len(data.x), "val_images": len(val.x) if val else None, "class_folders": ds.classes,
                  "skipped_images": data.skipped + (val.skipped if val else []), "epochs": len(history),
                  "val_top1": val_top1, "train_seconds": round(elapsed, 1), **environment(device),
                  "options": asdict(opts)}
    save_nestviz(out, model.eval(), [names.get(c, c) for c in ds.classes], pre, provenance)
    if history and history[-1].epoch == opts.epochs and not keep_checkpoint:
        checkpoint_path(out).unlink(missing_ok=True)  # finished: nothing left to resume
    return TrainResult(out, history, val_top1, elapsed)
