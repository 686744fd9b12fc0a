"""One torchrun rank for tests/test_parallel.py: train fold 0 of the tiny data with a BatchNorm-free model.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py OUT

Writes OUT/<name>_rank<r>.npy (validation probabilities) for the configs in ``CONFIGS``. Run without torchrun it
trains as one process (the reference the test compares with).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import core.trainer  # noqa: E402
from core.config import Config  # noqa: E402

# augment off (the case) and on: every rank draws the whole batch's augmentation, so both are exact.
CONFIGS = {
    "plain": dict(augment=False),
    "augmented": dict(augment=True),
}


def tiny_data(n: int = 120):
    """uint8 (n, 28, 28) images whose label is the row of a bright bar, int64 labels, val rows, train rows."""
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 10
    images = (torch.rand(n, 28, 28, generator=generator) * 60).to(torch.uint8)
    for i, label in enumerate(labels.tolist()):
        images[i, 2 + 2 * label: 4 + 2 * label, 4:24] = 255
    val_idx = np.arange(0, n, 4)
    return images, labels, val_idx, np.setdiff1d(np.arange(n), val_idx)


def no_norm_cnn(*_args, **_kwargs) -> nn.Module:
    """BatchNorm- and dropout-free: a rank's share of a batch then gives exactly its part of the batch gradient."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 7 * 7, 10))  # flatten, not pool: the label is where the bar is


def train(out: Path) -> None:
    """Train every config of ``CONFIGS`` (the caller has replaced core.trainer.create_model_from_spec with no_norm_cnn)."""
    rank = dist.get_rank() if dist.is_initialized() else 0
    images, labels, val_idx, train_idx = tiny_data()
    for name, overrides in CONFIGS.items():
        config = Config(model="smallcnn", epochs=4, batch_size=29, learning_rate=1e-2, scheduler="none", device="cpu",
                        **overrides)
        result = core.trainer.train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx,
                                         fold=0, output_dir=out / f"{name}_rank{rank}")
        np.save(out / f"{name}_rank{rank}.npy", result.val_probs)


if __name__ == "__main__":
    torch.set_num_threads(1)
    core.trainer.create_model_from_spec = no_norm_cnn
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    try:
        train(Path(sys.argv[1]))
    finally:
        if distributed:
            dist.destroy_process_group()
