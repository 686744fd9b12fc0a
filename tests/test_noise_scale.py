"""The gradient noise scale: the estimator against least squares in closed form, and training left unchanged."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from core.config import Config
from core.noise_scale import NoiseScale, batch_hint, gradient_norms, unbiased_estimates
from core.trainer import train_fold
from tests.test_trainer import tiny_fold


def least_squares(n=4000, d=6, seed=0):
    """Data, a linear model at a fixed w off the optimum, and the exact |G|², tr(Σ) of its per-example gradients."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ torch.randn(d, generator=g, dtype=torch.float64) + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=g, dtype=torch.float64) * 0.3)
    w = model.weight.detach()[0]
    per_example = (x @ w - y)[:, None] * x  # gradient of ½(w·x − y)² for each row: (n, d)
    mean = per_example.mean(0)
    grad_sq = float(mean.pow(2).sum())
    trace = float((per_example - mean).pow(2).sum(1).mean())  # tr(Σ), Σ the population covariance
    return x, y, model, grad_sq, trace


def half_mse(output, target):
    return 0.5 * (output[:, 0] - target).pow(2).mean()


def test_unbiased_estimates_recover_the_expected_norms_exactly():
    grad_sq, trace = 2.5, 400.0
    b, big = 8, 32
    expected = lambda batch: grad_sq + trace / batch  # E|G_b|² for b rows drawn with replacement
    assert unbiased_estimates(expected(b), expected(big), b, big) == pytest.approx((grad_sq, trace))
    with pytest.raises(ValueError):
        unbiased_estimates(1.0, 1.0, 32, 8)


def test_gradient_norms_match_least_squares_in_closed_form():
    x, y, model, grad_sq, trace = least_squares()
    g = torch.Generator().manual_seed(1)
    small, big = [], []
    for _ in range(3000):  # batches of 64 drawn with replacement: E|G_b|² = |G|² + tr(Σ)/b exactly
        rows = torch.randint(0, len(x), (64,), generator=g)
        g2_small, g2_big, b, b_big = gradient_norms(model, x[rows], y[rows], half_mse, micro_batches=4)
        small.append(g2_small)
        big.append(g2_big)
    assert (b, b_big) == (16, 64)
    assert np.mean(small) == pytest.approx(grad_sq + trace / 16, rel=0.03)
    assert np.mean(big) == pytest.approx(grad_sq + trace / 64, rel=0.04)
    est_grad_sq, est_trace = unbiased_estimates(np.mean(small), np.mean(big), 16, 64)
    assert est_trace / est_grad_sq == pytest.approx(trace / grad_sq, rel=0.1)
    assert model.weight.grad is None  # the optimizer's gradients are not touched


def test_noise_scale_is_the_ratio_of_the_two_moving_averages():
    x, y, model, grad_sq, trace = least_squares()
    noise = NoiseScale(decay=0.99)
    assert math.isnan(noise.value)
    g = torch.Generator().manual_seed(2)
    for _ in range(1500):
        rows = torch.randint(0, len(x), (64,), generator=g)
        noise.update(*gradient_norms(model, x[rows], y[rows], half_mse))
    assert noise.count == 1500
    assert noise.value == pytest.approx(trace / grad_sq, rel=0.25)  # an EMA of ~100 noisy measurements
    again = NoiseScale()
    again.load_state_dict(noise.state_dict())
    assert again.value == noise.value


def test_batchnorm_statistics_and_the_random_stream_are_left_as_they_were():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    x, t = torch.randn(32, 4), torch.softmax(torch.randn(32, 3), 1)
    before = [b.clone() for b in model.buffers()]
    rng = torch.get_rng_state()
    gradient_norms(model, x, t, lambda out, tgt: -(tgt * out.log_softmax(1)).sum(1).mean())
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers()))
    assert torch.equal(rng, torch.get_rng_state())


def test_measuring_does_not_change_training_and_is_logged_per_epoch(tmp_path):
    images, labels, val_idx, train_idx = tiny_fold()
    base = Config(model="smallcnn", epochs=2, batch_size=16, learning_rate=3e-3, device="cpu")
    off = train_fold(Config(**{**base.to_dict(), "noise_scale_every": 0}), images=images, labels=labels,
                     train_idx=train_idx, val_idx=val_idx, fold=0, output_dir=tmp_path / "off")
    on = train_fold(Config(**{**base.to_dict(), "noise_scale_every": 1}), images=images, labels=labels,
                    train_idx=train_idx, val_idx=val_idx, fold=0, output_dir=tmp_path / "on")
    np.testing.assert_array_equal(off.val_probs, on.val_probs)  # BatchNorm buffers and RNG restored
    assert [h["noise_scale"] for h in off.history] == [None, None]
    assert all(h["noise_scale"] is None or h["noise_scale"] > 0 for h in on.history)
    assert any(h["noise_scale"] is not None for h in on.history)
    logged = pd.read_csv(tmp_path / "on" / "smallcnn_fold0_log.csv")
    assert "noise_scale" in logged.columns


def test_batch_hint_speaks_only_when_the_batch_is_far_from_the_noise_scale():
    assert "far below" in batch_hint(16, 4000)
    assert "far above" in batch_hint(4096, 100)
    assert batch_hint(128, 500) == ""
    assert batch_hint(128, float("nan")) == ""


def test_a_loss_scale_changes_nothing_but_the_underflow():
    x, y, model, _, _ = least_squares(n=256)
    plain = gradient_norms(model, x[:64], y[:64], half_mse)
    scaled = gradient_norms(model, x[:64], y[:64], half_mse, loss_scale=1024.0)
    assert scaled == pytest.approx(plain, rel=1e-9)


def test_a_negative_trace_average_or_an_overflow_gives_no_value():
    noise = NoiseScale()
    noise.update(1.0, 1.2, 4, 16)  # |G_b|² < |G_B|²: tr(Σ) estimate negative, as happens early on
    assert math.isnan(noise.value)


def test_a_measurement_that_overflows_is_skipped(monkeypatch):
    import core.trainer as trainer
    from core.trainer import measure_noise, prepare_fold

    setup = prepare_fold(Config(model="smallcnn", device="cpu", epochs=1), n_train=64, fold=0,
                         device=torch.device("cpu"))
    monkeypatch.setattr(trainer, "gradient_norms", lambda *a, **k: (math.inf, 1.0, 32, 128))
    x, t = torch.randn(128, 1, 28, 28), torch.full((128, 10), 0.1)
    measure_noise(setup, x, t)
    assert setup.noise.count == 0
