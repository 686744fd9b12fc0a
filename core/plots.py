"""Figures a person would rather look at than read: training curves per fold."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt


def plot_training_curves(histories: Mapping[int, Sequence[Mapping[str, float]]], path: str | Path | None = None,
                         title: str = "") -> plt.Figure:
    """Loss, validation accuracy and learning rate per epoch, one line per fold.

    Args:
        histories: fold → the trainer's per-epoch rows (epoch, train_loss, val_loss, val_acc, lr).
        path: where to save the PNG (optional).
    """
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(15, 4))
    for fold, rows in sorted(histories.items()):
        epochs = [r["epoch"] for r in rows]
        line, = ax_loss.plot(epochs, [r["train_loss"] for r in rows], "--", label=f"fold {fold} train")
        ax_loss.plot(epochs, [r["val_loss"] for r in rows], "-", color=line.get_color(), label=f"fold {fold} val")
        ax_acc.plot(epochs, [r["val_acc"] for r in rows], "o-", color=line.get_color(), label=f"fold {fold}")
        ax_lr.plot(epochs, [r["lr"] for r in rows], "-", color=line.get_color(), label=f"fold {fold}")
    ax_loss.set(title="loss (train: smoothed targets, val: hard labels)", xlabel="epoch")
    ax_acc.set(title="validation accuracy", xlabel="epoch")
    ax_lr.set(title="learning rate at epoch end", xlabel="epoch", yscale="log")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    plt.close(fig)  # the caller displays the returned figure once
    return fig
