import logging
import math

import pytest
import torch

from core import config
from core.scheduler import CosineAnnealingWithWarmupLR, build_optimizer, fetch_scheduler

BASE_LR, ETA_MIN = 1e-3, 1e-5


def _optimizer(lr: float = BASE_LR) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _run(scheduler, steps: int) -> list[float]:
    """Learning rates seen by ``steps`` optimizer steps (the first is the rate before any scheduler.step())."""
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return lrs


def _closed_form(t: int, warmup: int, T_max: int) -> float:
    if t < warmup:
        return BASE_LR * (t + 1) / warmup
    return ETA_MIN + (BASE_LR - ETA_MIN) * (1 + math.cos(math.pi * (t - warmup) / (T_max - warmup))) / 2


@pytest.mark.parametrize("warmup, T_max", [(10, 100), (1, 7), (3, 4)])
def test_lr_at_follows_the_closed_form(warmup, T_max):
    scheduler = CosineAnnealingWithWarmupLR(_optimizer(), T_max=T_max, eta_min=ETA_MIN, warmup_epochs=warmup)
    for t in sorted({0, warmup - 1, warmup, (warmup + T_max) // 2, T_max - 1}):
        assert scheduler.lr_at(t) == pytest.approx([_closed_form(t, warmup, T_max)])
    assert scheduler.lr_at(warmup - 1) == pytest.approx([BASE_LR])
    assert scheduler.lr_at(T_max) == pytest.approx([ETA_MIN])
    assert scheduler.lr_at(T_max + 5) == pytest.approx([ETA_MIN])


def test_stepping_matches_lr_at_and_warm_up_increases():
    scheduler = CosineAnnealingWithWarmupLR(_optimizer(), T_max=50, eta_min=ETA_MIN, warmup_epochs=8)
    lrs = _run(scheduler, 50)
    assert lrs == pytest.approx([scheduler.lr_at(t)[0] for t in range(50)])
    assert all(a < b for a, b in zip(lrs[:8], lrs[1:8]))
    assert all(a >= b for a, b in zip(lrs[8:], lrs[9:]))


@pytest.mark.parametrize("T_max", [1, 10, 37])
def test_without_warm_up_equals_torch_cosine_annealing(T_max):
    ours = CosineAnnealingWithWarmupLR(_optimizer(), T_max=T_max, eta_min=ETA_MIN, warmup_epochs=0)
    torch_cosine = torch.optim.lr_scheduler.CosineAnnealingLR(_optimizer(), T_max=T_max, eta_min=ETA_MIN)
    assert _run(ours, T_max + 1) == pytest.approx(_run(torch_cosine, T_max + 1), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("warmup, T_max", [(2, 20), (5, 40)])
def test_equals_torch_linear_then_cosine(warmup, T_max):
    ours = CosineAnnealingWithWarmupLR(_optimizer(), T_max=T_max, eta_min=ETA_MIN, warmup_epochs=warmup)
    optimizer = _optimizer()
    linear = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0,
                                               total_iters=warmup - 1)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=T_max - warmup, eta_min=ETA_MIN)
    reference = torch.optim.lr_scheduler.SequentialLR(optimizer, [linear, cosine], milestones=[warmup])
    assert _run(ours, T_max + 1) == pytest.approx(_run(reference, T_max + 1), rel=1e-9, abs=1e-12)


def test_state_dict_round_trip_resumes_identically():
    def make():
        return CosineAnnealingWithWarmupLR(_optimizer(), T_max=30, eta_min=ETA_MIN, warmup_epochs=5)

    uninterrupted = make()
    expected = _run(uninterrupted, 30)
    first = make()
    _run(first, 12)
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    assert resumed.get_last_lr() == first.get_last_lr()
    for group, lr in zip(resumed.optimizer.param_groups, resumed.get_last_lr()):  # what optimizer.load_state_dict
        group["lr"] = lr                                                          # restores in a real resume
    assert _run(resumed, 18) == pytest.approx(expected[12:])


@pytest.mark.parametrize("T_max, warmup", [(5, 5), (3, 8), (0, 0), (-1, 0)])
def test_too_short_schedule_raises_a_clear_error(T_max, warmup):
    with pytest.raises(ValueError, match="T_max"):
        CosineAnnealingWithWarmupLR(_optimizer(), T_max=T_max, warmup_epochs=warmup)


def test_too_short_schedule_message_names_both_lengths_and_a_fix():
    with pytest.raises(ValueError, match=r"T_max \(5 steps\) must exceed the warm-up \(5 steps\): train for more"):
        CosineAnnealingWithWarmupLR(_optimizer(), T_max=5, warmup_epochs=5)


def test_fetch_scheduler_builds_each_choice():
    warm = fetch_scheduler(_optimizer(), scheduler="CosineAnnealingWithWarmupLR", T_max=100, min_lr=ETA_MIN, epochs=4)
    assert isinstance(warm, CosineAnnealingWithWarmupLR) and warm.warmup_epochs == 25 and warm.eta_min == ETA_MIN
    cosine = fetch_scheduler(_optimizer(), scheduler="CosineAnnealingLR", T_max=100, min_lr=ETA_MIN, epochs=4)
    assert type(cosine) is torch.optim.lr_scheduler.CosineAnnealingLR and cosine.T_max == 100
    assert fetch_scheduler(_optimizer(), scheduler="none", T_max=100, min_lr=ETA_MIN, epochs=4) is None


@pytest.mark.parametrize("T_max, expected_warmup", [(100, 10), (5, 1), (1, 0)])
def test_fetch_scheduler_shortens_the_warm_up_for_one_epoch(T_max, expected_warmup, caplog):
    with caplog.at_level(logging.WARNING, logger="core.scheduler"):
        warm = fetch_scheduler(_optimizer(), scheduler="CosineAnnealingWithWarmupLR", T_max=T_max, min_lr=0.0,
                               epochs=1)
    assert warm.warmup_epochs == expected_warmup
    assert "epochs = 1" in caplog.text


@pytest.mark.parametrize("warmup_epochs, expected", [(1.0, 25), (2.0, 50), (0.5, 12), (3.0, 75), (0.0, 0)])
def test_the_warm_up_lasts_warmup_epochs(warmup_epochs, expected):
    warm = fetch_scheduler(_optimizer(), scheduler="CosineAnnealingWithWarmupLR", T_max=100, min_lr=ETA_MIN, epochs=4,
                           warmup_epochs=warmup_epochs)
    assert warm.warmup_epochs == expected  # the scheduler's own name (kept from the seed) counts steps


def test_a_warm_up_as_long_as_the_run_is_shortened_with_a_warning(caplog):
    with caplog.at_level("WARNING"):
        warm = fetch_scheduler(_optimizer(), scheduler="CosineAnnealingWithWarmupLR", T_max=100, min_lr=0.0, epochs=4,
                               warmup_epochs=5.0)
    assert warm.warmup_epochs == 10 and "a 5-epoch warm-up would fill the whole run" in caplog.text


def test_fetch_scheduler_rejects_unknown_names_listing_the_choices():
    with pytest.raises(ValueError, match="CosineAnnealingWithWarmupLR"):
        fetch_scheduler(_optimizer(), scheduler="OneCycle", T_max=10, min_lr=0.0, epochs=2)


@pytest.mark.parametrize("name", config.SCHEDULERS)
def test_every_scheduler_config_accepts_is_built(name):
    built = fetch_scheduler(_optimizer(), scheduler=name, T_max=10, min_lr=0.0, epochs=2)
    assert (built is None) == (name == "none")


def test_build_optimizer_decays_only_matrices_and_kernels():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4, 2))
    model[3].weight.requires_grad_(False)
    optimizer = build_optimizer(model, learning_rate=2e-3, weight_decay=0.05)
    assert isinstance(optimizer, torch.optim.AdamW)
    decay = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decay == {id(model[0].weight): 0.05, id(model[0].bias): 0.0, id(model[1].weight): 0.0,
                     id(model[1].bias): 0.0, id(model[3].bias): 0.0}
    assert all(group["lr"] == 2e-3 for group in optimizer.param_groups)


def test_build_optimizer_honours_no_weight_decay_of_submodules():
    class WithToken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, 4))
            self.proj = torch.nn.Linear(4, 4)

        def no_weight_decay(self):
            return {"cls_token"}

    model = torch.nn.Sequential(WithToken())
    optimizer = build_optimizer(model, learning_rate=1e-3, weight_decay=0.1)
    decay = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert decay[id(model[0].cls_token)] == 0.0 and decay[id(model[0].proj.weight)] == 0.1
