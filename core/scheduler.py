"""Learning-rate schedule and optimizer: linear warm-up then cosine annealing, stepped once per optimizer step.

``CosineAnnealingWithWarmupLR`` keeps torch's scheduler interface (``step()``, ``get_last_lr()``,
``state_dict()``) but computes every rate from the closed form ``lr_at(step)``, so a schedule can be checked
without stepping an optimizer and resumes exactly from its ``state_dict``.
"""
from __future__ import annotations

import fnmatch
import logging
import math
from typing import TYPE_CHECKING

import torch

from .config import SCHEDULERS

_logger = logging.getLogger(__name__)

# torch >= 2.0 names the base class LRScheduler; older releases only have _LRScheduler.
if TYPE_CHECKING or hasattr(torch.optim.lr_scheduler, "LRScheduler"):
    _SchedulerBase = torch.optim.lr_scheduler.LRScheduler
else:
    _SchedulerBase = torch.optim.lr_scheduler._LRScheduler


class CosineAnnealingWithWarmupLR(_SchedulerBase):
    """Linear warm-up to each group's base rate, then half a cosine down to ``eta_min``.

    With t the number of ``step()`` calls so far (optimizer steps), w = ``warmup_epochs`` and T = ``T_max``::

        t < w:       lr = base_lr * (t + 1) / w
        w <= t <= T: lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * (t - w) / (T - w))) / 2
        t > T:       lr = eta_min   (torch's CosineAnnealingLR would climb again; stepping too far is harmless)

    The rate reaches ``base_lr`` on the last warm-up step and stays there for the first cosine step.
    Despite its name (kept from the seed), ``warmup_epochs`` counts the same unit as ``T_max``: optimizer steps.

    Args:
        optimizer: The wrapped optimizer; each param group's ``lr`` (``initial_lr`` on resume) is its base rate.
        T_max: Length of the whole schedule, warm-up included, in steps; must exceed ``warmup_epochs``.
        eta_min: Final learning rate.
        warmup_epochs: Length of the linear warm-up in steps; 0 for none.
        last_epoch: Index of the last step taken, -1 to start fresh (torch's convention).
    """

    def __init__(
            self,
            optimizer: torch.optim.Optimizer,
            T_max: int,
            eta_min: float = 0.0,
            warmup_epochs: int = 0,
            last_epoch: int = -1,
    ):
        if T_max <= 0:
            raise ValueError(f"T_max = {T_max}: the schedule needs at least one optimizer step")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs = {warmup_epochs}: use 0 (no warm-up) or a positive number of steps")
        if T_max <= warmup_epochs:
            raise ValueError(
                f"T_max ({T_max} steps) must exceed the warm-up ({warmup_epochs} steps): train for more than one "
                f"epoch, shorten the warm-up, or use scheduler='CosineAnnealingLR'")
        if eta_min < 0:
            raise ValueError(f"eta_min = {eta_min}: must be non-negative")
        self.T_max = T_max
        self.eta_min = eta_min
        self.warmup_epochs = warmup_epochs
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int) -> list[float | torch.Tensor]:
        """The learning rate of every param group after ``step`` calls of ``step()``; a pure function of ``step``
        (a float, or a tensor for a group whose ``lr`` is one, as torch allows)."""
        t, w, T = step, self.warmup_epochs, self.T_max
        if t < w:
            return [base_lr * (t + 1) / w for base_lr in self.base_lrs]
        progress = min(t - w, T - w) / (T - w)
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2
                for base_lr in self.base_lrs]

    def get_lr(self) -> list[float | torch.Tensor]:
        return self.lr_at(self.last_epoch)

    def _get_closed_form_lr(self) -> list[float | torch.Tensor]:
        return self.lr_at(self.last_epoch)


def warmup_fills_the_run(warmup_epochs: float, epochs: int) -> bool:
    """Whether a ``warmup_epochs`` warm-up would take all ``epochs`` of the run (then ``fetch_scheduler`` warms up
    for a tenth of it instead): the one rule the scheduler and the recipe paragraph (core.recipe) share."""
    return warmup_epochs >= epochs


def fetch_scheduler(
        optimizer: torch.optim.Optimizer,
        *,
        scheduler: str,
        T_max: int,
        min_lr: float,
        epochs: int,
        warmup_epochs: float = 1.0,
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Build the named per-step scheduler, or None for ``"none"``.

    ``"CosineAnnealingWithWarmupLR"`` warms up for ``warmup_epochs`` epochs: ``warmup_epochs * T_max / epochs``
    steps, floored (``T_max`` counts the optimizer steps of the whole run; one epoch by default). When that would be
    the whole run (``epochs == 1`` with the default), the warm-up becomes ``max(1, T_max // 10)`` steps instead
    (never all of them) and a warning is logged.

    Args:
        optimizer: The optimizer to schedule.
        scheduler: One of ``core.config.SCHEDULERS``.
        T_max: Total optimizer steps of the run (epochs * steps per epoch).
        min_lr: Final learning rate of the cosine.
        epochs: Number of epochs the run trains.
        warmup_epochs: Length of the linear warm-up in epochs (0: none); only ``CosineAnnealingWithWarmupLR`` has one.

    Returns:
        A scheduler to ``step()`` after every ``optimizer.step()``, or None.
    """
    if scheduler == "none":
        return None
    if scheduler == "CosineAnnealingLR":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=T_max, eta_min=min_lr)
    if scheduler == "CosineAnnealingWithWarmupLR":
        if epochs < 1:
            raise ValueError(f"epochs = {epochs}: train for at least 1 epoch")
        warmup = int(warmup_epochs * T_max / epochs)  # floor: T_max // epochs, one epoch, by default
        if warmup_fills_the_run(warmup_epochs, epochs):  # the floor reaches T_max exactly when this holds
            warmup = min(max(1, T_max // 10), T_max - 1)
            _logger.warning("epochs = %d: a %g-epoch warm-up would fill the whole run; warming up for %d of %d steps "
                            "instead", epochs, warmup_epochs, warmup, T_max)
        return CosineAnnealingWithWarmupLR(optimizer, T_max=T_max, eta_min=min_lr, warmup_epochs=warmup)
    raise ValueError(f"scheduler = {scheduler!r}: choose one of {SCHEDULERS}")


def build_optimizer(model: torch.nn.Module, *, learning_rate: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices and kernels only (timm's convention).

    Biases, norm weights and every other parameter with ``ndim <= 1`` are not decayed, nor are the names a
    submodule lists in its ``no_weight_decay()`` (timm's position embeddings and class tokens). Frozen
    parameters are left out.

    Args:
        model: The model to optimize.
        learning_rate: Peak learning rate per optimizer step (the scheduler's base rate).
        weight_decay: Decoupled weight decay coefficient for the decayed group.

    Returns:
        An AdamW optimizer with the param groups ``[no decay, decay]`` (an empty one is left out).
    """
    skip_patterns = set()
    for prefix, module in model.named_modules():
        if hasattr(module, "no_weight_decay"):
            skip_patterns |= {f"{prefix}.{name}" if prefix else name for name in module.no_weight_decay()}
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or any(fnmatch.fnmatch(name, pattern) for pattern in skip_patterns)
        (no_decay if skip else decay).append(param)
    groups = [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]
    groups = [group for group in groups if group["params"]]
    return torch.optim.AdamW(groups, lr=learning_rate)


def schedule_rates(*, scheduler: str, learning_rate: float, min_lr: float, total_steps: int,
                   epochs: int, warmup_epochs: float = 1.0) -> tuple[list[float], int]:
    """The learning rate every optimizer step of one fold uses, and the warm-up's length in steps.

    The very ``fetch_scheduler`` the trainer calls, stepped ``total_steps`` times on a throw-away parameter, so the
    plot a notebook draws is the schedule training follows. ``lrs[t]`` is the rate of step t (0-based).
    """
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=learning_rate)
    sched = fetch_scheduler(optimizer, scheduler=scheduler, T_max=total_steps, min_lr=min_lr, epochs=epochs,
                            warmup_epochs=warmup_epochs)
    rates = []
    for _ in range(total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if sched is not None:
            sched.step()
    return rates, int(getattr(sched, "warmup_epochs", 0))
