"""Stochastic Weight Averaging per fold: average the weights of the last N epochs, then re-estimate BatchNorm.

The averaged weights were never run as one network during training, so the BatchNorm running statistics copied with
them describe none of the averaged models: without re-estimating them SWA is broken (often far below either
snapshot). ``finish_swa`` therefore runs one pass over the fold's training rows in train mode (torch's ``update_bn``
fed with batches from ``make_batch``: our data is one device tensor, not a DataLoader), then scores the fold's
validation rows, so SWA and best-epoch weights are compared on the same out-of-fold rows.

Sharp edge: the average is over end-of-epoch snapshots of the trainer's own schedule (cosine to ``min_lr``), i.e.
tail averaging, not the constant/cyclic SWA learning rate of the paper; keep ``swa_epochs`` to the last few epochs.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, update_bn

from .checkpoint import save_state_dict
from .augment import make_batch
from .predict import predict_logits
from .stats import accuracy

log = logging.getLogger(__name__)


class SwaAverager:
    """Equal-weight running average of a model's parameters over the epochs ``epochs - swa_epochs .. epochs - 1``.

    Args:
        model: the bare model (not DataParallel); it is deep-copied once.
        epochs: total epochs of the fold.
        swa_epochs: how many final epochs to average, ≥ 1.
    """

    def __init__(self, model: nn.Module, *, epochs: int, swa_epochs: int):
        assert swa_epochs >= 1, swa_epochs
        self.first_epoch = max(0, epochs - swa_epochs)  # 0-based index of the first averaged epoch
        self.averaged = AveragedModel(model)  # parameters averaged; buffers re-estimated by finish_swa

    @property
    def n_averaged(self) -> int:
        return int(self.averaged.n_averaged.item())

    def after_epoch(self, model: nn.Module, epoch: int) -> bool:
        """Add the bare ``model``'s weights after 0-based ``epoch`` when it is one of the last N; True if added."""
        if epoch < self.first_epoch:
            return False
        self.averaged.update_parameters(model)
        return True

    def state_dict(self) -> dict[str, Any]:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, images: torch.Tensor, rows: torch.Tensor, *, batch_size: int,
                         channels_last: bool = False, generator: torch.Generator | None = None,
                         augment: bool = False, rotate_deg: float = 0.0, zoom: float = 0.0, shift: float = 0.0) -> None:
    """Recompute every BatchNorm's running mean/var as the average over one pass of ``rows`` in batches.

    Args:
        images: uint8 (N, 28, 28) on the model's device; ``rows``: (M,) int64 indices into it (the training rows).
        augment, rotate_deg, zoom, shift, generator: as in training, so the statistics match what the weights saw.
    """
    batches = (make_batch(images[rows[start:start + batch_size]], augment=augment, rotate_deg=rotate_deg, zoom=zoom,
                          shift=shift, channels_last=channels_last, generator=generator)
               for start in range(0, len(rows), batch_size))
    update_bn(batches, model)


def finish_swa(averager: SwaAverager, *, images: torch.Tensor, labels: torch.Tensor, train_rows: torch.Tensor,
               val_rows: torch.Tensor, path: Path, batch_size: int, eval_batch_size: int, channels_last: bool,
               amp: bool, seed: int, augment: bool, rotate_deg: float, zoom: float,
               shift: float) -> tuple[float, np.ndarray] | None:
    """Re-estimate BatchNorm on the training rows, save the bare state_dict to ``path`` and score the validation rows.

    Returns:
        (validation accuracy, float64 (n_val, 10) softmax), or None when no epoch was averaged (nothing saved).
    """
    if averager.n_averaged == 0:
        log.warning("SWA: no epoch was averaged (training stopped before epoch %d); no %s",
                    averager.first_epoch + 1, path.name)
        return None
    model = averager.averaged.module
    reestimate_batchnorm(model, images, train_rows, batch_size=batch_size, channels_last=channels_last,
                         generator=torch.Generator().manual_seed(seed), augment=augment, rotate_deg=rotate_deg,
                         zoom=zoom, shift=shift)
    save_state_dict(model, path)
    logits = predict_logits(model, images[val_rows], batch_size=eval_batch_size, channels_last=channels_last, amp=amp)
    val_acc = accuracy(logits, labels[val_rows])
    log.info("SWA of %d epochs: val_acc %.5f (BatchNorm re-estimated on %d training rows) → %s",
             averager.n_averaged, val_acc, len(train_rows), path.name)
    return val_acc, torch.softmax(logits, 1).double().cpu().numpy()
