"""The gradient noise scale B_simple = tr(Σ) / |G|² (McCandlish et al. 2018, "An Empirical Model of Large-Batch
Training"), measured during ordinary training with the paper's two-batch-size estimator (its Appendix A).

G is the true gradient of the training loss and Σ the covariance of one example's gradient, so a batch of b rows
has E|G_b|² = |G|² + tr(Σ)/b. From the squared norms at a small batch b and a big batch B,

    |G|²  ≈ (B |G_B|² − b |G_b|²) / (B − b)          tr(Σ) ≈ (|G_b|² − |G_B|²) / (1/b − 1/B)

are unbiased; each is noisy, so each is smoothed with an exponential moving average before the ratio is taken.
B_simple is the batch size at which the gradient's noise is as large as its signal: far below it a bigger batch
takes proportionally fewer steps, far above it a bigger batch only spends more data (the critical batch size B_crit
of the sweep is of the same order).

Here the big batch is the training batch and the small one each of its ``MICRO_BATCHES`` equal micro-batches: every
``noise_scale_every`` optimizer steps :func:`gradient_norms` runs one extra forward and backward pass over the batch
in micro-batches (``torch.autograd.grad``: the optimizer's gradients are not touched), so the overhead is about
1 / noise_scale_every of training. BatchNorm running statistics and the RNG are put back afterwards, so training is
the same with and without the measurement. The big-batch gradient is the mean of the micro-batch gradients (with
BatchNorm, a "ghost batch" gradient: each micro-batch normalised by its own statistics), so both norms come from the
same estimator family and the formulas above hold for it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

MICRO_BATCHES = 4  # the small batch is a quarter of the training batch: b = B / 4
EMA_DECAY = 0.9  # per measurement: about the last 10 measurements count


def unbiased_estimates(g2_small: float, g2_big: float, b_small: int, b_big: int) -> tuple[float, float]:
    """(|G|², tr(Σ)) from the squared gradient norms at batch sizes ``b_small`` < ``b_big`` (Appendix A)."""
    if not 0 < b_small < b_big:
        raise ValueError(f"need 0 < b_small < b_big, got {b_small}, {b_big}")
    grad_sq = (b_big * g2_big - b_small * g2_small) / (b_big - b_small)
    trace = (g2_small - g2_big) / (1.0 / b_small - 1.0 / b_big)
    return grad_sq, trace


def gradient_norms(model: nn.Module, x: torch.Tensor, targets: torch.Tensor,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                   micro_batches: int = MICRO_BATCHES,
                   autocast: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
                   loss_scale: float = 1.0) -> tuple[float, float, int, int]:
    """(mean |G_b|² over the micro-batches, |G_B|², b, B) for one batch ``x`` (n, ...) with ``targets`` (n, ...).

    The batch is cut into ``micro_batches`` micro-batches of b = n // micro_batches rows (the remainder is left out:
    B = micro_batches · b); G_B is the mean of their gradients. ``loss_fn(output, targets)`` must be a mean over rows.
    The model's parameters' ``.grad``, its buffers (BatchNorm running statistics) and the RNG are left as they were.
    Under fp16 autocast pass ``loss_scale`` (the GradScaler's current scale): the loss is multiplied by it before
    the backward pass, so that small gradients do not underflow, and the gradients divided by it afterwards.
    """
    b = len(x) // micro_batches
    if b < 1:
        raise ValueError(f"a batch of {len(x)} rows cannot be cut into {micro_batches} micro-batches")
    params = [p for p in model.parameters() if p.requires_grad]
    buffers = [buf.detach().clone() for buf in model.buffers()]
    devices = [x.device] if x.device.type == "cuda" else []
    total = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    small_sq = torch.zeros((), device=x.device)
    with torch.random.fork_rng(devices=devices):  # dropout draws here must not shift training's random stream
        for i in range(micro_batches):
            rows = slice(i * b, (i + 1) * b)
            with autocast() if autocast is not None else contextlib.nullcontext():
                output = model(x[rows])
            grads = torch.autograd.grad(loss_fn(output.float(), targets[rows]) * loss_scale, params,
                                        allow_unused=True)
            for acc, g in zip(total, grads, strict=True):
                if g is not None:
                    g = g.float() / loss_scale
                    acc += g
                    small_sq = small_sq + g.pow(2).sum()  # on the device: one sync at the end, not one per pass
    with torch.no_grad():
        for buf, saved in zip(model.buffers(), buffers, strict=True):
            buf.copy_(saved)
        big_sq = float(sum((acc / micro_batches).pow(2).sum() for acc in total))
    return float(small_sq) / micro_batches, big_sq, b, b * micro_batches


@dataclasses.dataclass
class NoiseScale:
    """Exponential moving averages of |G|² and tr(Σ) over measurements; ``value`` is B_simple (NaN before any).

    The two averages share one decay, so their ratio needs no start-up bias correction.
    """

    decay: float = EMA_DECAY
    grad_sq: float = 0.0  # EMA of the |G|² estimates (squared gradient norm per parameter², summed)
    trace: float = 0.0  # EMA of the tr(Σ) estimates
    count: int = 0  # measurements so far

    def update(self, g2_small: float, g2_big: float, b_small: int, b_big: int) -> float:
        """Add one measurement; return the new B_simple."""
        grad_sq, trace = unbiased_estimates(g2_small, g2_big, b_small, b_big)
        weight = 1.0 - self.decay
        self.grad_sq = self.decay * self.grad_sq + weight * grad_sq
        self.trace = self.decay * self.trace + weight * trace
        self.count += 1
        return self.value

    @property
    def value(self) -> float:
        """B_simple = tr(Σ) / |G|² in examples; NaN before the first measurement, while the |G|² average is ≤ 0 (the
        signal is lost in the noise: B_simple is then larger than this run can tell) or the tr(Σ) average is ≤ 0
        (too few measurements yet)."""
        if self.count == 0 or not self.grad_sq > 0 or not self.trace > 0 or not math.isfinite(self.trace):
            return float("nan")
        return self.trace / self.grad_sq

    def state_dict(self) -> dict[str, float]:
        return {"grad_sq": self.grad_sq, "trace": self.trace, "count": self.count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.grad_sq, self.trace, self.count = float(state["grad_sq"]), float(state["trace"]), int(state["count"])


def batch_hint(batch_size: int, noise_scale: float, *, factor: float = 8.0) -> str:
    """One line for a run whose batch is far from its measured noise scale (more than ``factor`` × off), else ""."""
    if not math.isfinite(noise_scale) or noise_scale <= 0:
        return ""
    if batch_size * factor < noise_scale:
        return (f"batch {batch_size} is far below the noise scale ≈ {noise_scale:,.0f}: a larger batch (with a "
                "larger learning rate) would take proportionally fewer steps for about the same data")
    if batch_size > factor * noise_scale:
        return (f"batch {batch_size} is far above the noise scale ≈ {noise_scale:,.0f}: most of each batch adds "
                "little; a smaller batch would reach the same accuracy on less data")
    return ""

