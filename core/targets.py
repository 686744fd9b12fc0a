"""Training targets: labels -> one-hot -> label smoothing, and the soft-target loss (accuracy: core.stats).

Used for training only: inference never sees a target. With ``ε = 0`` the loss is plain cross-entropy, and
``soft_target_cross_entropy(logits, smooth_targets(one_hot(y), ε))`` equals
``torch.nn.CrossEntropyLoss(label_smoothing=ε)(logits, y)``; soft targets also carry mixup/cutmix mixtures.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import NUM_CLASSES


def one_hot(labels: torch.Tensor, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """Encode class indices as one-hot rows.

    Args:
        labels: Class indices in ``[0, num_classes)``, shape (N,), any integer dtype.
        num_classes: Number of classes C.

    Returns:
        Float32 tensor of shape (N, C) with a single 1 per row.
    """
    return F.one_hot(labels.long(), num_classes).float()


def smooth_targets(one_hot: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Label smoothing: move ``smoothing`` of the mass from the target class to a uniform share of all C classes.

    Args:
        one_hot: Targets of shape (N, C) whose rows sum to 1 (one-hot or already mixed).
        smoothing: ε in ``[0, 1)``; each row becomes ``(1 - ε) * one_hot + ε / C`` and still sums to 1.

    Returns:
        Tensor of shape (N, C).
    """
    assert 0.0 <= smoothing < 1.0, f"smoothing must lie in [0, 1), got {smoothing}"
    num_classes = one_hot.shape[-1]
    return one_hot * (1.0 - smoothing) + smoothing / num_classes


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a target distribution: ``mean_n sum_c -targets[n, c] * log_softmax(logits)[n, c]``.

    Args:
        logits: Unnormalised scores of shape (N, C).
        targets: Target probabilities of shape (N, C), rows summing to 1.

    Returns:
        Scalar tensor, the mean loss over the batch, in nats.
    """
    log_probs = F.log_softmax(logits, dim=-1)
    return torch.sum(-targets * log_probs, dim=-1).mean()
