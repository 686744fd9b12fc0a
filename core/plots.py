"""Figures a person would rather look at than read: class counts, the learning rate per step, training curves, the
confusion matrix, and grids of digits (the most confident mistakes, test predictions).

Every function returns a closed matplotlib ``Figure`` (a notebook shows it once as a cell's last value; nothing is
drawn twice) and saves it as a PNG when given a ``path``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter
import numpy as np
from numpy.typing import ArrayLike

from .data import NUM_CLASSES


def _finish(fig: plt.Figure, path: str | Path | None, title: str = "") -> plt.Figure:
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    plt.close(fig)  # the caller displays the returned figure once
    return fig


def plot_class_counts(labels: np.ndarray, *, title: str = "", path: str | Path | None = None) -> plt.Figure:
    """A bar per digit: how many rows of each class (int (N,) labels 0..9)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=NUM_CLASSES)
    fig, ax = plt.subplots(figsize=(6, 2.4))
    bars = ax.bar(range(NUM_CLASSES), counts, color="tab:blue")
    ax.bar_label(bars, fontsize=7)
    ax.set(xticks=range(NUM_CLASSES), xlabel="digit", ylabel="rows", ylim=(0, counts.max() * 1.15))
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, path, title)


def plot_lr_schedule(lrs: Sequence[float], *, steps_per_epoch: int, warmup_steps: int = 0, title: str = "",
                     path: str | Path | None = None) -> plt.Figure:
    """The learning rate at every optimizer step of one fold (``lrs[t]`` = the rate step t used).

    Epoch boundaries are marked on a second axis, the warm-up shaded, so warm-up and cosine are both visible.
    """
    rates = np.asarray(lrs, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.plot(np.arange(len(rates)), rates, color="tab:blue", lw=1.5)
    if warmup_steps:
        ax.axvspan(0, warmup_steps, color="tab:orange", alpha=0.15, label=f"warm-up: {warmup_steps} steps")
        ax.legend(fontsize=8, loc="upper right")
    ax.set(xlabel="optimizer step", ylabel="learning rate", xlim=(0, max(1, len(rates) - 1)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}"))  # 0.002, not an offset "1e-3"
    ax.grid(alpha=0.3)
    if steps_per_epoch and len(rates) > steps_per_epoch:
        def to_epochs(steps: ArrayLike) -> np.ndarray:
            return np.asarray(steps) / steps_per_epoch

        def to_steps(epochs: ArrayLike) -> np.ndarray:
            return np.asarray(epochs) * steps_per_epoch

        epochs = ax.secondary_xaxis("top", functions=(to_epochs, to_steps))
        epochs.set_xlabel("epoch")
    return _finish(fig, path, title)


def plot_training_curves(histories: Mapping[int, Sequence[Mapping[str, float | None]]], path: str | Path | None = None,
                         title: str = "", batch_size: int = 0) -> plt.Figure:
    """Loss, validation accuracy, learning rate and (where measured) the gradient noise scale per epoch, one line per
    fold; ``batch_size`` is drawn beside the noise scale.

    Args:
        histories: fold → the trainer's per-epoch rows (epoch, train_loss, val_loss, val_acc, lr, noise_scale).
        path: where to save the PNG (optional).
    """
    noise = any(r.get("noise_scale") is not None for rows in histories.values() for r in rows)
    fig, axes = plt.subplots(1, 4 if noise else 3, figsize=(20 if noise else 15, 4))
    ax_loss, ax_acc, ax_lr = axes[:3]
    for fold, rows in sorted(histories.items()):
        epochs = [r["epoch"] for r in rows]
        line, = ax_loss.plot(epochs, [r["train_loss"] for r in rows], "--", label=f"fold {fold} train")
        ax_loss.plot(epochs, [r["val_loss"] for r in rows], "-", color=line.get_color(), label=f"fold {fold} val")
        ax_acc.plot(epochs, [r["val_acc"] for r in rows], "o-", color=line.get_color(), label=f"fold {fold}")
        ax_lr.plot(epochs, [r["lr"] for r in rows], "-", color=line.get_color(), label=f"fold {fold}")
        if noise:
            values = [np.nan if r.get("noise_scale") is None else r["noise_scale"] for r in rows]
            axes[3].plot(epochs, values, "o-", color=line.get_color(), label=f"fold {fold}")
    ax_loss.set(title="loss (train: smoothed targets, val: hard labels)", xlabel="epoch")
    ax_acc.set(title="validation accuracy", xlabel="epoch")
    ax_lr.set(title="learning rate at epoch end", xlabel="epoch", yscale="log")
    if noise:
        if batch_size:
            axes[3].axhline(batch_size, color="black", ls=":", label=f"batch size {batch_size}")
        axes[3].set(title="gradient noise scale B_simple (examples)", xlabel="epoch", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _finish(fig, path, title)


def plot_confusion_matrix(labels: np.ndarray, preds: np.ndarray, *, title: str = "",
                          path: str | Path | None = None) -> plt.Figure:
    """Counts of (true digit, predicted digit) over int (N,) ``labels`` and ``preds``; the diagonal is greyed so the
    mistakes stand out, each off-diagonal count written in its cell."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    errors = matrix.copy()
    np.fill_diagonal(errors, 0)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    image = ax.imshow(errors, cmap="Reds", vmin=0, vmax=max(1, errors.max()))
    for true in range(NUM_CLASSES):
        for pred in range(NUM_CLASSES):
            count = matrix[true, pred]
            if true == pred:
                ax.add_patch(plt.Rectangle((pred - 0.5, true - 0.5), 1, 1, color="0.85"))
                ax.text(pred, true, str(count), ha="center", va="center", fontsize=6, color="0.35")
            elif count:
                ax.text(pred, true, str(count), ha="center", va="center", fontsize=7,
                        color="white" if count > errors.max() / 2 else "black")
    ax.set(xticks=range(NUM_CLASSES), yticks=range(NUM_CLASSES), xlabel="predicted", ylabel="true",
           title=f"{errors.sum()} mistakes in {matrix.sum()} rows")
    fig.colorbar(image, ax=ax, fraction=0.046, label="mistakes")
    return _finish(fig, path, title)


def plot_digits(images: np.ndarray, captions: Sequence[str], *, columns: int = 8, title: str = "",
                path: str | Path | None = None) -> plt.Figure:
    """A grid of uint8 (n, 28, 28) digits, each with its caption (e.g. "7 → 1 (0.98)")."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255)
            ax.set_title(captions[i], fontsize=8)
    return _finish(fig, path, title)


def most_confident_mistakes(labels: np.ndarray, probs: np.ndarray, n: int = 24) -> np.ndarray:
    """Indices of the ``n`` wrong predictions with the highest predicted probability, most confident first.

    Args:
        labels: int (N,) true digits; probs: float (N, 10) predicted probabilities.
    """
    preds = probs.argmax(1)
    wrong = np.flatnonzero(preds != labels)
    return wrong[np.argsort(-probs[wrong, preds[wrong]], kind="stable")][:n]


def plot_confident_mistakes(images: np.ndarray, labels: np.ndarray, probs: np.ndarray, *, n: int = 24,
                            title: str = "", path: str | Path | None = None) -> plt.Figure:
    """The ``n`` most confidently wrong rows: uint8 (N, 28, 28) images, int (N,) labels, (N, 10) probabilities.
    Each caption reads "true → predicted (probability)"."""
    rows = most_confident_mistakes(labels, probs, n)
    preds = probs.argmax(1)
    captions = [f"{labels[i]} → {preds[i]} ({probs[i, preds[i]]:.2f})" for i in rows]
    return plot_digits(images[rows], captions, title=title or f"the {len(rows)} most confident mistakes "
                                                              "(true → predicted, probability)", path=path)
