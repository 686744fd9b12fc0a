"""Train one fold: AdamW + per-step scheduler, label-smoothed soft targets, best checkpoint by validation accuracy.

The whole fold lives on the device as one uint8 tensor; batches are index slices augmented in batch there, so the
hot loop has no per-sample Python and no DataLoader workers. Each epoch also writes a resume checkpoint
(``<model>_fold<k>_last.pth``: model, optimizer, scheduler, AMP scaler, RNG states, history) so a killed session
continues at the next epoch instead of starting over. Under torchrun (``parallel = "ddp"``, started by core.launch)
the model is wrapped in DistributedDataParallel and each rank trains on its share of every batch (core.distributed).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
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
from .config import Config, ConfigError
from .distributed import broadcast_buffers, gather_shards, mean_over_ranks, rank_and_world, shard
from .fold_result import FoldResult, fold_file, save_fold_result
from .models import create_model, is_convolutional, resolve_pretrained
from .paths import on_kaggle
from .predict import autocast_context, amp_dtype, predict_logits
from .progress import progress
from .scheduler import build_optimizer, fetch_scheduler
from .swa import SwaAverager, finish_swa
from .targets import one_hot, smooth_targets, soft_target_cross_entropy

log = logging.getLogger(__name__)

# The progress bar's loss is read from the device every this many steps (and at an epoch's last step): reading it
# every step would make the host wait for the GPU each step instead of queueing the next one.
SYNC_EVERY = 20


class DivergedError(RuntimeError):
    """A fold's loss stopped being a finite number: the fold is abandoned, none of it becomes inference weights."""

    def __init__(self, message: str, *, fold: int, epoch: int, history: list[dict[str, float]]):
        super().__init__(message)
        self.fold, self.epoch, self.history = fold, epoch, history


def divergence_message(config: Config, *, fold: int, epoch: int, epochs: int, train_loss: float,
                       val_loss: float, batch_size: int) -> str:
    """One line: which fold and epoch, which loss, the setting that most likely caused it and what to try."""
    return (f"fold {fold} diverged in epoch {epoch}/{epochs}: train loss {train_loss:.4g}, validation loss "
            f"{val_loss:.4g} (not finite). learning_rate = {config.learning_rate:g} is probably too high for "
            f"batch_size = {batch_size} (AdamW on these models: 1e-3..4e-3 at batch 128; README: Which learning "
            f"rate for which batch size); lower it, e.g. learning_rate = {config.learning_rate / 10:g}"
            + (f" with min_lr = {config.learning_rate / 100:g}" if config.min_lr > config.learning_rate / 10 else "")
            + ", and rerun. "
            f"Nothing of this fold is kept as inference weights and no submission is written")


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` (a GPU when torch sees one), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, checked against this machine.

    Raises:
        ConfigError: an unknown name, or a GPU this machine does not have (saying what torch found).
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", device):
        raise ConfigError(f"device = {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            found = f"{count} GPU(s)" if count else f"no GPU (torch {torch.__version__}: cuda.is_available() is False)"
            raise ConfigError(f"device = {device!r}, but torch finds {found} on this machine: use device = 'auto' "
                              "(the GPU when there is one) or 'cpu'")
    return torch.device(device)


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


def train_fold(config: Config, *, images: torch.Tensor, labels: torch.Tensor, train_idx: np.ndarray,
               val_idx: np.ndarray, fold: int, output_dir: str | Path,
               device: torch.device | None = None) -> FoldResult:
    """Train ``config.model`` on ``train_idx`` rows, keep the epoch with the best accuracy on ``val_idx`` rows.

    Args:
        images: uint8 (N, 28, 28), all rows of train.csv (any device; moved to ``device`` once).
        labels: int64 (N,).
        train_idx, val_idx: row indices of this fold's training and validation parts.
        output_dir: receives ``<model>_fold<k>_best.pth``, ``_log.csv``, the resume checkpoint ``_last.pth`` and,
            when the fold is finished, its result ``_oof.npz`` (core.fold_result names and writes them all).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    device = device or resolve_device(config.device)
    best_path = output_dir / fold_file(config.model, fold, "best")
    last_path = output_dir / fold_file(config.model, fold, "last")
    log_path = output_dir / fold_file(config.model, fold, "log")

    seed_everything(config.seed + fold)
    pretrained = resolve_pretrained(config.pretrained, config.model, on_kaggle=on_kaggle())
    model = create_model(config.model, pretrained=pretrained).to(device)
    channels_last = config.channels_last and is_convolutional(config.model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda" and torch.cuda.device_count() > 1 and config.parallel in ("auto", "dp"):
        log.info("fold %d: nn.DataParallel over %d GPUs (BatchNorm sees batch/%d per GPU)",
                 fold, torch.cuda.device_count(), torch.cuda.device_count())
        model = nn.DataParallel(model)
    rank, world = rank_and_world()
    if world > 1:  # launched by core.launch under torchrun: same weights on every rank, gradients all-reduced
        log.info("fold %d: DistributedDataParallel, %d ranks (BatchNorm sees batch/%d per rank)", fold, world, world)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    eval_model = unwrap(model) if world > 1 else model  # ranks score their own rows: no collective in a forward
    train_model = torch.compile(model) if config.compile else model

    images = images.to(device, non_blocking=True)
    labels = labels.to(device, non_blocking=True)
    train_rows = torch.as_tensor(train_idx, dtype=torch.long, device=device)
    val_rows = torch.as_tensor(val_idx, dtype=torch.long, device=device)
    batch_size, steps_per_epoch, total_steps = plan_steps(len(train_idx), batch_size=config.batch_size,
                                                          epochs=config.epochs, max_steps=config.max_steps)
    epochs = -(-total_steps // steps_per_epoch)  # config.epochs, or fewer when max_steps stops the run early

    optimizer = build_optimizer(model, learning_rate=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = fetch_scheduler(optimizer, scheduler=config.scheduler, T_max=total_steps,
                                min_lr=config.min_lr, epochs=epochs)
    use_amp = config.amp and device.type == "cuda"
    scaler = grad_scaler(enabled=use_amp and amp_dtype(device) == torch.float16)
    generator = torch.Generator().manual_seed(config.seed * 1000 + fold)

    history: list[dict[str, float]] = []
    best_acc, best_epoch, start_epoch = -1.0, -1, 0
    swa = SwaAverager(unwrap(model), epochs=epochs, swa_epochs=config.swa_epochs) if config.swa_epochs else None
    resume = TrainingState.load(last_path, config.training_settings())
    if resume is not None:
        unwrap(model).load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        if scheduler is not None and resume.scheduler is not None:
            scheduler.load_state_dict(resume.scheduler)
        if resume.scaler:
            scaler.load_state_dict(resume.scaler)
        generator.set_state(resume.generator)
        torch.set_rng_state(resume.torch_rng)
        history, best_acc, best_epoch = list(resume.history), resume.best_acc, resume.best_epoch
        start_epoch = resume.epoch + 1
        if swa is not None and resume.swa is not None:
            swa.load_state_dict(resume.swa)
        log.info("fold %d: resuming at epoch %d/%d (best so far %.5f)", fold, start_epoch + 1, epochs, best_acc)

    for epoch in range(start_epoch, epochs):
        started = time.perf_counter()
        model.train()
        order = train_rows[torch.randperm(len(train_rows), generator=generator).to(device)]
        loss_sum, smoothed = torch.zeros((), device=device), None  # summed on the device: no sync per step
        n_steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)  # the last one may stop early
        bar = progress(n_steps, desc=f"fold {fold} epoch {epoch + 1}/{epochs}")
        for step in range(n_steps):
            rows = order[step * batch_size:(step + 1) * batch_size]
            x = make_batch(images[rows], augment=config.augment, rotate_deg=config.rotate_deg, zoom=config.zoom,
                           shift=config.shift, channels_last=channels_last, generator=generator)
            targets = smooth_targets(one_hot(labels[rows]), config.label_smoothing)
            if world > 1:  # every rank drew the same batch and augmentation; each trains on its share of it
                mine = shard(len(rows), rank, world)
                x, targets = x[mine], targets[mine]
            with autocast_context(device, use_amp):
                logits = train_model(x)
            loss = soft_target_cross_entropy(logits.float(), targets)
            if world > 1:  # DDP averages gradients over ranks: weighting each share by its size gives the batch mean
                loss = loss * (world * len(targets) / len(rows))
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None:
                scheduler.step()
            loss_sum += loss.detach()
            if (step + 1) % SYNC_EVERY == 0 or step + 1 == n_steps:  # .item() waits for the device: not every step
                value = loss.item()
                smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
                bar.set_postfix(loss=f"{smoothed:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}", refresh=False)
            bar.update()
        bar.close()

        broadcast_buffers(unwrap(model))  # BatchNorm statistics of rank 0 everywhere: all ranks score alike
        val_logits = _validation_logits(eval_model, images[val_rows], batch_size=config.eval_batch_size,
                                        channels_last=channels_last, amp=use_amp)
        val_loss = F.cross_entropy(val_logits, labels[val_rows]).item()  # hard labels: no smoothing here
        val_acc = (val_logits.argmax(1) == labels[val_rows]).float().mean().item()
        history.append({"epoch": epoch + 1, "train_loss": mean_over_ranks(loss_sum.item() / n_steps, device),
                        "val_loss": val_loss,
                        "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
                        "seconds": time.perf_counter() - started})
        if not (math.isfinite(history[-1]["train_loss"]) and math.isfinite(val_loss)):
            best_path.unlink(missing_ok=True)  # an earlier epoch's "best" of a fold that blew up is no result
            raise DivergedError(divergence_message(config, fold=fold, epoch=epoch + 1, epochs=epochs,
                                                   train_loss=history[-1]["train_loss"], val_loss=val_loss,
                                                   batch_size=batch_size), fold=fold, epoch=epoch + 1,
                                history=history)
        improved = val_acc > best_acc
        if improved:
            best_acc, best_epoch = val_acc, epoch + 1
            save_state_dict(model, best_path)
        log.info("fold %d epoch %d/%d  train_loss %.4f  val_loss %.4f  val_acc %.5f%s  (%.1fs)", fold, epoch + 1,
                 epochs, history[-1]["train_loss"], val_loss, val_acc, "  *best*" if improved else "",
                 history[-1]["seconds"])
        write_text_atomic(log_path, pd.DataFrame(history).to_csv(index=False))
        if swa is not None:
            swa.after_epoch(unwrap(model), epoch)
        TrainingState(settings=config.training_settings(), model=unwrap(model).state_dict(),
                      optimizer=optimizer.state_dict(),
                      scheduler=scheduler.state_dict() if scheduler is not None else None,
                      scaler=scaler.state_dict() if scaler.is_enabled() else {}, generator=generator.get_state(),
                      torch_rng=torch.get_rng_state(), epoch=epoch, history=history, best_acc=best_acc,
                      best_epoch=best_epoch, swa=swa.state_dict() if swa is not None else None).save(last_path)

    unwrap(model).load_state_dict(read_state_dict(best_path, map_location=device))
    val_probs = torch.softmax(_validation_logits(eval_model, images[val_rows], batch_size=config.eval_batch_size,
                                                 channels_last=channels_last, amp=use_amp), 1).double().cpu().numpy()
    result = FoldResult(fold=fold, weights_path=best_path, best_epoch=best_epoch, best_val_acc=best_acc,
                        val_probs=val_probs, history=history)
    if swa is not None:
        swa_path = output_dir / fold_file(config.model, fold, "swa")
        scored = finish_swa(swa, images=images, labels=labels, train_rows=train_rows, val_rows=val_rows, path=swa_path,
                            batch_size=batch_size, eval_batch_size=config.eval_batch_size, channels_last=channels_last,
                            amp=use_amp, seed=config.seed * 1000 + fold + 1, augment=config.augment,
                            rotate_deg=config.rotate_deg, zoom=config.zoom, shift=config.shift)
        if scored is not None:
            result.swa_weights_path, (result.swa_val_acc, result.swa_val_probs) = swa_path, scored
    save_fold_result(output_dir, config.model, result, val_idx)  # last: a fold with this file is finished
    return result


def _validation_logits(model: nn.Module, images: torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """float32 (n, 10) logits of uint8 (n, 28, 28) ``images``; under ddp each rank scores its share of the rows and
    every rank gets them all (core.distributed.gather_shards). ``kwargs`` go to ``predict_logits``."""
    rank, world = rank_and_world()
    mine = shard(len(images), rank, world)
    return gather_shards(predict_logits(model, images[mine], **kwargs), len(images))


def grad_scaler(enabled: bool):
    """torch.amp.GradScaler where it exists (torch ≥ 2.3), else the CUDA-only older class; a no-op when disabled."""
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)
