"""Train one fold: AdamW + per-step scheduler, label-smoothed soft targets, best checkpoint by validation accuracy.

The whole fold lives on the device as one uint8 tensor; batches are index slices augmented in batch there, so the
hot loop has no per-sample Python and no DataLoader workers. The pieces, each usable alone (tools/bench.py times
them): :func:`prepare_fold` builds a :class:`FoldSetup` (model, optimizer, scheduler, scaler, generator),
:func:`fold_batch` makes one batch, :func:`train_step` is one optimizer step, :func:`evaluate` scores rows;
:func:`train_fold` is the epoch loop around them. Each epoch writes a resume checkpoint (``<model>_fold<k>_last.pth``,
core.checkpoint.TrainingState) so a killed session continues at the next epoch instead of starting over; a
finished fold leaves its result file ``_oof.npz`` (core.fold_result, which names every per-fold file). Under torchrun
(``parallel = "ddp"``, started by core.launch) the model is wrapped in DistributedDataParallel and each rank trains
on its share of every batch (core.distributed).
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from .atomic import write_text_atomic
from .augment import make_batch
from .checkpoint import TrainingState, read_state_dict, save_state_dict, unwrap
from .config import Config
from .device import resolve_device
from .distributed import broadcast_buffers, gather_shards, mean_over_ranks, rank_and_world, shard
from .fold_result import FoldResult, fold_file, save_fold_result
from .noise_scale import MICRO_BATCHES, NoiseScale, gradient_norms
from .models import create_model_from_spec, is_convolutional, resolve_pretrained
from .paths import on_kaggle
from .predict import autocast_context, amp_dtype, cpu_has_amx, predict_logits
from .progress import progress
from .scheduler import build_optimizer, fetch_scheduler
from .stats import accuracy
from .swa import SwaAverager, finish_swa
from .targets import one_hot, smooth_targets, soft_target_cross_entropy

log = logging.getLogger(__name__)

# The progress bar's loss is read from the device every this many steps (and at an epoch's last step): reading it
# every step would make the host wait for the GPU each step instead of queueing the next one.
SYNC_EVERY = 20


class DivergedError(RuntimeError):
    """A fold's loss stopped being a finite number: the fold is abandoned, none of it becomes inference weights."""

    def __init__(self, message: str, *, fold: int, epoch: int, history: list[dict[str, float | None]]):
        super().__init__(message)
        self.fold, self.epoch, self.history = fold, epoch, history


def divergence_message(config: Config, *, fold: int, epoch: int, epochs: int, train_loss: float,
                       val_loss: float, batch_size: int) -> str:
    """One line: which fold and epoch, which loss, the setting that most likely caused it and what to try."""
    learning_rate = config.resolved.learning_rate
    return (f"fold {fold} diverged in epoch {epoch}/{epochs}: train loss {train_loss:.4g}, validation loss "
            f"{val_loss:.4g} (not finite). learning_rate = {learning_rate:g} is probably too high for "
            f"batch_size = {batch_size} (AdamW on these models: 1e-3..4e-3 at batch 128; the sweep notebook "
            f"finds the best rate per batch size); lower it, e.g. learning_rate = {learning_rate / 10:g}"
            + (f" with min_lr = {learning_rate / 100:g}" if config.min_lr > learning_rate / 10 else "")
            + ", and rerun. "
            "Nothing of this fold is kept as inference weights and no submission is written")


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def plan_steps(n_train: int, *, batch_size: int, epochs: int, max_steps: int = 0) -> tuple[int, int, int]:
    """(batch size, optimizer steps per epoch, optimizer steps in all) of a fold with ``n_train`` training rows.

    An epoch drops its last partial batch (BatchNorm cannot train on a single image). ``max_steps`` > 0 caps the
    total: the run stops inside an epoch, and the scheduler's ``T_max`` is the capped total.
    """
    batch_size = min(batch_size, n_train)
    steps_per_epoch = max(1, n_train // batch_size)
    total = epochs * steps_per_epoch
    return batch_size, steps_per_epoch, min(total, max_steps) if max_steps > 0 else total


def plan_fold(config: Config, n_train: int) -> tuple[int, int, int, int]:
    """``plan_steps`` for ``config`` and the epochs it runs: (batch size, steps per epoch, steps in all, epochs) —
    ``config.epochs``, or fewer when ``max_steps`` stops the run early."""
    recipe = config.resolved
    batch_size, steps_per_epoch, total_steps = plan_steps(n_train, batch_size=recipe.batch_size,
                                                          epochs=recipe.epochs, max_steps=config.max_steps)
    return batch_size, steps_per_epoch, total_steps, -(-total_steps // steps_per_epoch)


def for_steps(config: Config, n_train: int, steps: int) -> Config:
    """``config`` set to train exactly ``steps`` optimizer steps on ``n_train`` rows: the epochs that hold them, cut
    at ``max_steps = steps``."""
    _, steps_per_epoch, _ = plan_steps(n_train, batch_size=config.resolved.batch_size, epochs=1)
    return dataclasses.replace(config, epochs=-(-steps // steps_per_epoch), max_steps=steps)


@dataclasses.dataclass
class FoldSetup:
    """What one fold trains with, built by :func:`prepare_fold`. ``model`` may be wrapped in nn.DataParallel or
    DistributedDataParallel; state dicts go through ``core.checkpoint.unwrap``."""

    model: nn.Module
    train_model: nn.Module  # ``model``, or torch.compile(model): what train_step calls
    eval_model: nn.Module  # what scores validation rows: the bare model under ddp (no collective in a forward)
    optimizer: torch.optim.Optimizer
    scheduler: Any  # stepped once per optimizer step; None when config.scheduler is "none"
    scaler: Any  # torch.amp.GradScaler; a no-op unless AMP runs in fp16
    generator: torch.Generator  # batch order and augmentation of this fold
    device: torch.device
    amp: bool  # the training step runs under autocast (CUDA: config.amp; CPU: config.cpu_bf16 with AMX)
    channels_last: bool  # batches and weights in channels_last memory format (CNNs)
    batch_size: int  # images per optimizer step (all ranks together)
    steps_per_epoch: int
    total_steps: int
    epochs: int  # config.epochs, or fewer when max_steps stops the run early
    noise: NoiseScale | None = None  # the gradient noise scale's running estimate; None when not measured

    def state(self, settings: dict[str, Any], *, epoch: int, history: list[dict[str, float | None]], best_acc: float,
              best_epoch: int, swa: SwaAverager | None) -> TrainingState:
        """The resume checkpoint after 0-based ``epoch``."""
        return TrainingState(
            settings=settings, model=unwrap(self.model).state_dict(), optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else None,
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else {},
            generator=self.generator.get_state(), torch_rng=torch.get_rng_state(), epoch=epoch, history=history,
            best_acc=best_acc, best_epoch=best_epoch, swa=swa.state_dict() if swa is not None else None,
            noise=self.noise.state_dict() if self.noise is not None else None)

    def restore(self, state: TrainingState, swa: SwaAverager | None) -> None:
        """Put model, optimizer, scheduler, scaler, RNGs (and ``swa``) back where ``state`` left them."""
        unwrap(self.model).load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        if self.scheduler is not None and state.scheduler is not None:
            self.scheduler.load_state_dict(state.scheduler)
        if state.scaler:
            self.scaler.load_state_dict(state.scaler)
        self.generator.set_state(state.generator)
        torch.set_rng_state(state.torch_rng)
        if swa is not None and state.swa is not None:
            swa.load_state_dict(state.swa)
        if self.noise is not None and state.noise is not None:
            self.noise.load_state_dict(state.noise)


def prepare_fold(config: Config, *, n_train: int, fold: int, device: torch.device) -> FoldSetup:
    """Seed, build and place the model (channels_last, DataParallel / DDP, torch.compile), optimizer, per-step
    scheduler, GradScaler and batch generator for fold ``fold`` with ``n_train`` training rows."""
    seed_everything(config.seed + fold)
    pretrained = resolve_pretrained(config.pretrained, config.model, on_kaggle=on_kaggle())
    model = create_model_from_spec(config.model_spec(), pretrained=pretrained).to(device)
    channels_last = config.channels_last and is_convolutional(config.model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda" and torch.cuda.device_count() > 1 and config.parallel in ("auto", "dp"):
        log.info("fold %d: nn.DataParallel over %d GPUs (BatchNorm sees batch/%d per GPU)",
                 fold, torch.cuda.device_count(), torch.cuda.device_count())
        model = nn.DataParallel(model)
    world = rank_and_world()[1]
    if world > 1:  # launched by core.launch under torchrun: same weights on every rank, gradients all-reduced
        log.info("fold %d: DistributedDataParallel, %d ranks (BatchNorm sees batch/%d per rank)", fold, world, world)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    batch_size, steps_per_epoch, total_steps, epochs = plan_fold(config, n_train)
    recipe = config.resolved
    optimizer = build_optimizer(model, learning_rate=recipe.learning_rate, weight_decay=recipe.weight_decay)
    use_amp = training_autocast(config, device, fold=fold)
    return FoldSetup(model=model, train_model=_compiled(model) if config.compile else model,
                     eval_model=unwrap(model) if world > 1 else model, optimizer=optimizer,
                     scheduler=fetch_scheduler(optimizer, scheduler=config.scheduler, T_max=total_steps,
                                               min_lr=config.min_lr, epochs=epochs,
                                               warmup_epochs=recipe.warmup_epochs),
                     scaler=grad_scaler(enabled=use_amp and amp_dtype(device) == torch.float16),
                     generator=torch.Generator().manual_seed(config.seed * 1000 + fold), device=device, amp=use_amp,
                     channels_last=channels_last, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                     total_steps=total_steps, epochs=epochs,
                     noise=NoiseScale() if config.noise_scale_every else None)


def _compiled(model: nn.Module) -> nn.Module:
    """torch.compile(model): torch types it as any callable; for a module it is a module (an OptimizedModule)."""
    compiled = torch.compile(model)
    assert isinstance(compiled, nn.Module), type(compiled)
    return compiled


def training_autocast(config: Config, device: torch.device, *, fold: int = 0) -> bool:
    """Whether the training step runs under autocast: ``config.amp`` on CUDA; ``config.cpu_bf16`` on a CPU with AMX
    (without AMX it is logged and training stays fp32)."""
    if device.type == "cuda":
        return config.amp
    if device.type != "cpu" or not config.cpu_bf16:
        return False
    if not cpu_has_amx():
        log.warning("fold %d: cpu_bf16 = True, but this CPU has no AMX (bf16 would be slower than fp32): training in "
                    "fp32", fold)
        return False
    return True


def fold_batch(config: Config, images: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, *,
               channels_last: bool, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """This process's part of the batch of ``rows``: (x, targets, loss weight).

    x: float (n, 1, 28, 28) augmented, normalised images; targets: float (n, 10) label-smoothed. Under ddp every
    rank draws the same batch and augmentation and keeps its share; DDP averages gradients over ranks, so weighting
    each share's loss by world · n / len(rows) gives the gradient of the batch mean (weight 1.0 in one process).
    """
    recipe = config.resolved
    x = make_batch(images[rows], augment=config.augment, rotate_deg=recipe.rotate_deg, zoom=recipe.zoom,
                   shift=recipe.shift, channels_last=channels_last, generator=generator)
    targets = smooth_targets(one_hot(labels[rows]), config.label_smoothing)
    rank, world = rank_and_world()
    if world == 1:
        return x, targets, 1.0
    mine = shard(len(rows), rank, world)
    return x[mine], targets[mine], world * len(targets[mine]) / len(rows)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, x: torch.Tensor,
               targets: torch.Tensor, *, amp: bool, weight: float = 1.0) -> torch.Tensor:
    """One optimizer step on float (n, 1, 28, 28) ``x`` with soft (n, 10) ``targets``: forward (autocast when
    ``amp``), soft-target cross-entropy × ``weight``, scaled backward, optimizer and scheduler step.

    Returns:
        The weighted loss, a 0-d tensor still on the device (reading it waits for the device).
    """
    with autocast_context(x.device, amp):
        logits = model(x)
    loss = soft_target_cross_entropy(logits.float(), targets)
    if weight != 1.0:
        loss = loss * weight
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    if scheduler is not None:
        scheduler.step()
    return loss


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, channels_last: bool,
             amp: bool) -> tuple[float, float, torch.Tensor]:
    """(cross-entropy on hard labels, accuracy, float32 (n, 10) logits) of uint8 (n, 28, 28) ``images`` with int64
    (n,) ``labels``. Under ddp each rank scores its share of the rows and every rank gets them all."""
    rank, world = rank_and_world()
    mine = shard(len(images), rank, world)
    logits = gather_shards(predict_logits(model, images[mine], batch_size=batch_size, channels_last=channels_last,
                                          amp=amp), len(images))
    loss = F.cross_entropy(logits, labels).item()  # hard labels: no smoothing here
    return loss, accuracy(logits, labels), logits


def train_fold(config: Config, *, images: torch.Tensor, labels: torch.Tensor, train_idx: np.ndarray,
               val_idx: np.ndarray, fold: int, output_dir: str | Path, device: torch.device | None = None,
               before_epoch: Callable[[int], None] | None = None,
               after_step: Callable[[int, FoldSetup], None] | None = None) -> FoldResult:
    """Train ``config.model`` on ``train_idx`` rows, keep the epoch with the best accuracy on ``val_idx`` rows.

    Args:
        images: uint8 (N, 28, 28), all rows of train.csv (any device; moved to ``device`` once).
        labels: int64 (N,).
        train_idx, val_idx: row indices of this fold's training and validation parts.
        output_dir: receives ``<model>_fold<k>_best.pth``, ``_log.csv``, the resume checkpoint ``_last.pth`` and,
            when the fold is finished, its result ``_oof.npz`` (core.fold_result names and writes them all).
        before_epoch: called with each 0-based epoch before it trains, in this thread (core.launch's fold workers
            take up the CPU threads a finished worker left free there).
        after_step: called after every optimizer step with the number of steps taken so far (1-based, over all
            epochs) and the fold's setup (the sweep scores its learning curves there; it must leave the model in
            training mode).

    Raises:
        DivergedError: a loss is not finite after some epoch (the fold's best weights are deleted).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = device or resolve_device(config.device)
    best_path = output_dir / fold_file(config.model, fold, "best")
    last_path = output_dir / fold_file(config.model, fold, "last")
    log_path = output_dir / fold_file(config.model, fold, "log")

    setup = prepare_fold(config, n_train=len(train_idx), fold=fold, device=device)
    images = images.to(device, non_blocking=True)
    labels = labels.to(device, non_blocking=True)
    train_rows = torch.as_tensor(train_idx, dtype=torch.long, device=device)
    val_rows = torch.as_tensor(val_idx, dtype=torch.long, device=device)
    score = functools.partial(evaluate, setup.eval_model, batch_size=config.eval_batch_size,
                              channels_last=setup.channels_last, amp=setup.amp)
    epochs, settings = setup.epochs, config.training_settings()

    history: list[dict[str, float | None]] = []
    best_acc, best_epoch, start_epoch = -1.0, -1, 0
    swa = SwaAverager(unwrap(setup.model), epochs=epochs, swa_epochs=config.swa_epochs) if config.swa_epochs else None
    resume = TrainingState.load(last_path, settings)
    if resume is not None:
        setup.restore(resume, swa)
        history, best_acc, best_epoch = list(resume.history), resume.best_acc, resume.best_epoch
        start_epoch = resume.epoch + 1
        log.info("fold %d: resuming at epoch %d/%d (best so far %.5f)", fold, start_epoch + 1, epochs, best_acc)

    for epoch in range(start_epoch, epochs):
        if before_epoch is not None:
            before_epoch(epoch)
        started = time.perf_counter()
        train_loss = _train_epoch(setup, config, images, labels, train_rows, fold=fold, epoch=epoch,
                                  after_step=after_step)
        broadcast_buffers(unwrap(setup.model))  # BatchNorm statistics of rank 0 everywhere: all ranks score alike
        val_loss, val_acc, _ = score(images[val_rows], labels[val_rows])
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "val_acc": val_acc,
                        "lr": setup.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started,
                        "noise_scale": noise_scale_now(setup)})
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            best_path.unlink(missing_ok=True)  # an earlier epoch's "best" of a fold that blew up is no result
            raise DivergedError(divergence_message(config, fold=fold, epoch=epoch + 1, epochs=epochs,
                                                   train_loss=train_loss, val_loss=val_loss,
                                                   batch_size=setup.batch_size), fold=fold, epoch=epoch + 1,
                                history=history)
        improved = val_acc > best_acc
        if improved:
            best_acc, best_epoch = val_acc, epoch + 1
            save_state_dict(setup.model, best_path)
        noise = history[-1]["noise_scale"]
        log.info("fold %d epoch %d/%d  train_loss %.4f  val_loss %.4f  val_acc %.5f%s%s  (%.1fs)", fold, epoch + 1,
                 epochs, train_loss, val_loss, val_acc, "  *best*" if improved else "",
                 f"  B_simple {noise:,.0f}" if noise is not None else "", history[-1]["seconds"])
        write_text_atomic(log_path, pd.DataFrame(history).to_csv(index=False))
        if swa is not None:
            swa.after_epoch(unwrap(setup.model), epoch)
        setup.state(settings, epoch=epoch, history=history, best_acc=best_acc, best_epoch=best_epoch,
                    swa=swa).save(last_path)

    unwrap(setup.model).load_state_dict(read_state_dict(best_path, map_location=device))
    logits = score(images[val_rows], labels[val_rows])[2]
    result = FoldResult(fold=fold, weights_path=best_path, best_epoch=best_epoch, best_val_acc=best_acc,
                        val_probs=torch.softmax(logits, 1).double().cpu().numpy(), history=history)
    if swa is not None:
        swa_path, recipe = output_dir / fold_file(config.model, fold, "swa"), config.resolved
        scored = finish_swa(swa, images=images, labels=labels, train_rows=train_rows, val_rows=val_rows, path=swa_path,
                            batch_size=setup.batch_size, eval_batch_size=config.eval_batch_size,
                            channels_last=setup.channels_last, amp=setup.amp, seed=config.seed * 1000 + fold + 1,
                            augment=config.augment, rotate_deg=recipe.rotate_deg, zoom=recipe.zoom, shift=recipe.shift)
        if scored is not None:
            result.swa_weights_path, (result.swa_val_acc, result.swa_val_probs) = swa_path, scored
    save_fold_result(output_dir, config.model, result, val_idx)  # last: a fold with this file is finished
    return result


def noise_scale_now(setup: FoldSetup) -> float | None:
    """The fold's current gradient noise scale B_simple in examples; None when it is not measured (or not yet)."""
    value = setup.noise.value if setup.noise is not None else float("nan")
    return value if math.isfinite(value) else None


def measure_noise(setup: FoldSetup, x: torch.Tensor, targets: torch.Tensor) -> None:
    """One measurement of the gradient noise scale on this batch (core.noise_scale), folded into ``setup.noise``.
    Under ddp every rank measures its own share and the squared norms are averaged over ranks."""
    assert setup.noise is not None, "measured only when config.noise_scale_every > 0"
    if setup.batch_size // rank_and_world()[1] < 2 * MICRO_BATCHES:  # under 2 rows per micro-batch: nothing to say
        return
    g2_small, g2_big, b_small, b_big = gradient_norms(
        unwrap(setup.model), x, targets, soft_target_cross_entropy,
        autocast=lambda: autocast_context(x.device, setup.amp),
        loss_scale=setup.scaler.get_scale() if setup.scaler.is_enabled() else 1.0)  # fp16: training's own scale
    g2_small, g2_big = mean_over_ranks(g2_small, setup.device), mean_over_ranks(g2_big, setup.device)
    if math.isfinite(g2_small) and math.isfinite(g2_big):  # an overflow would poison the running averages for good
        setup.noise.update(g2_small, g2_big, b_small, b_big)


def _train_epoch(setup: FoldSetup, config: Config, images: torch.Tensor, labels: torch.Tensor,
                 train_rows: torch.Tensor, *, fold: int, epoch: int,
                 after_step: Callable[[int, FoldSetup], None] | None = None) -> float:
    """Train one epoch (0-based ``epoch``) over ``train_rows`` in a fresh random order; return the mean training loss
    over its steps and the ranks. The epoch after ``max_steps`` is reached stops early. Every
    ``config.noise_scale_every`` steps the batch also measures the gradient noise scale (:func:`measure_noise`)."""
    setup.model.train()
    order = train_rows[torch.randperm(len(train_rows), generator=setup.generator).to(setup.device)]
    loss_sum, smoothed = torch.zeros((), device=setup.device), None  # summed on the device: no sync per step
    n_steps = min(setup.steps_per_epoch, setup.total_steps - epoch * setup.steps_per_epoch)
    bar = progress(n_steps, desc=f"fold {fold} epoch {epoch + 1}/{setup.epochs}")
    for step in range(n_steps):
        rows = order[step * setup.batch_size:(step + 1) * setup.batch_size]
        x, targets, weight = fold_batch(config, images, labels, rows, channels_last=setup.channels_last,
                                        generator=setup.generator)
        done = epoch * setup.steps_per_epoch + step + 1  # optimizer steps after this one
        if setup.noise is not None and done % config.noise_scale_every == 0:
            measure_noise(setup, x, targets)
        loss = train_step(setup.train_model, setup.optimizer, setup.scheduler, setup.scaler, x, targets,
                          amp=setup.amp, weight=weight)
        loss_sum += loss.detach()
        if after_step is not None:
            after_step(done, setup)
        if (step + 1) % SYNC_EVERY == 0 or step + 1 == n_steps:  # .item() waits for the device: not every step
            value = loss.item()
            smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
            bar.set_postfix(loss=f"{smoothed:.4f}", lr=f"{setup.optimizer.param_groups[0]['lr']:.2e}", refresh=False)
        bar.update()
    bar.close()
    return mean_over_ranks(loss_sum.item() / n_steps, setup.device)


def grad_scaler(enabled: bool):
    """torch.amp.GradScaler where it exists (torch ≥ 2.3), else the CUDA-only older class; a no-op when disabled."""
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)
