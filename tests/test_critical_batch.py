"""Steps-to-target, the McCandlish trade-off fit and the sweep's recommendation, on curves with known answers."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from core.critical_batch import analyze_critical_batch, auto_target, crossing_step, fit_tradeoff
from core.sweep import CURVE_COLUMNS
from core.lr_scaling import json_text
from core.sweep_report import analyze_study


def test_crossing_step_interpolates_between_points_and_starts_at_chance():
    assert crossing_step(np.array([10, 20]), np.array([0.5, 0.9]), 0.7) == pytest.approx(15.0)
    assert crossing_step(np.array([10]), np.array([0.9]), 0.5) == pytest.approx(10 * (0.5 - 0.1) / 0.8)
    assert crossing_step(np.array([10, 20]), np.array([0.5, 0.6]), 0.7) == math.inf


def test_fit_tradeoff_recovers_s_min_and_b_crit_exactly():
    batches = np.array([8, 16, 32, 64, 128, 256])
    s_min, b_crit = 300.0, 50.0
    steps = s_min * (1 + b_crit / batches)
    fitted = fit_tradeoff(batches, steps)
    assert fitted[0] == pytest.approx(s_min, rel=0.01)
    assert fitted[2] == pytest.approx(b_crit, rel=0.01)
    assert fitted[1] == pytest.approx(s_min * b_crit, rel=0.02)  # E_min = S_min · B_crit


def test_steps_falling_as_one_over_b_put_b_crit_beyond_the_grid():
    batches = np.array([8, 16, 32, 64])
    assert fit_tradeoff(batches, 1e5 / batches)[2] == math.inf
    assert math.isnan(fit_tradeoff(np.array([8]), np.array([100.0]))[2])


def synthetic_curves(b_crit=60.0, s_min=200.0, target=0.95, batches=(8, 16, 32, 64, 128, 256), seeds=3, noise=0.02):
    """acc(step) = 1 − 0.9 exp(−step / τ_B), τ_B such that the target is reached at S_min (1 + B_crit / B); the best
    rate is the middle one, the others take 1.5× as long; noise_scale reads 50 everywhere."""
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        for lr, slower in ((1e-3, 1.5), (3e-3, 1.0), (1e-2, 1.5)):
            for seed in range(seeds):
                crossing = s_min * (1 + b_crit / batch) * slower * (1 + noise * rng.standard_normal())
                tau = crossing / math.log(0.9 / (1 - target))
                for step in np.linspace(crossing / 4, crossing * 3, 12).round():
                    rows.append({"batch": batch, "lr": lr, "min_lr": lr / 100, "seed": seed, "budget": "epochs=1",
                                 "step": step, "examples": step * batch, "val_acc": 1 - 0.9 * math.exp(-step / tau),
                                 "noise_scale": 50.0})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def test_analysis_finds_the_critical_batch_of_synthetic_curves(tmp_path):
    result = analyze_critical_batch(synthetic_curves(), target=0.95, n_boot=200)
    assert (result.table["lr"] == 3e-3).all()  # the fastest rate of each batch size
    assert result.b_crit == pytest.approx(60, rel=0.15)
    lo, hi = result.ci
    assert lo <= result.b_crit <= hi and hi / lo < 1.5  # seeds redrawn: 2 % noise per curve, 3 seeds
    exact = analyze_critical_batch(synthetic_curves(noise=0), target=0.95, n_boot=20, plot=False)
    assert exact.b_crit == pytest.approx(60, rel=1e-3)  # interpolating between points costs every batch alike
    assert result.b_simple == 50.0 and "the same order" in result.agreement()
    assert "B_crit = E_min/S_min" in result.report()
    json.dumps(result.to_dict())  # no inf or NaN in the JSON
    result.figure.savefig(tmp_path / "c.png")


def test_auto_target_is_reached_by_every_batch_size():
    curves = synthetic_curves()
    target = auto_target(curves)
    assert 0.9 < target < 1
    result = analyze_critical_batch(curves, n_boot=50, plot=False)
    assert np.isfinite(result.table["steps"]).all()


def test_the_study_writes_its_recommendation_line(tmp_path):
    curves = synthetic_curves()
    runs = (curves.sort_values("step").groupby(["batch", "lr", "min_lr", "seed", "budget"]).last().reset_index()
            [["batch", "lr", "min_lr", "seed", "budget", "step", "val_acc"]].rename(columns={"step": "steps"}))
    runs = runs.assign(val_acc=runs["val_acc"] - np.where(runs["lr"] == 3e-3, 0, 0.01), val_loss=0.1,
                       diverged=False, seconds=1.0)
    study = analyze_study(runs, curves, n_boot=100, target=0.95)
    line = study.recommendation()
    assert line.startswith("at batch ") and "use lr ≈ 0.003" in line and "(min_lr ≈ 3" in line  # 3e-3, refined
    assert "grows like B^α" in line and "beyond B ≈ " in line
    names = {p.name for p in study.save(tmp_path)}
    assert {"study.json", "sweep_report.txt", "critical_batch.png", "fit.json", "lr_batch_heatmap.png"} <= names
    saved = json.loads((tmp_path / "study.json").read_text())
    assert saved["recommendation"] == line and saved["critical_batch"]["b_crit"] == pytest.approx(study.critical.b_crit)


def test_a_b_crit_far_outside_the_batch_sizes_is_reported_as_a_bound():
    from core.critical_batch import CriticalBatch

    def result(steps):
        batches = np.array([16, 32, 64, 128])
        table = pd.DataFrame({"batch": batches, "lr": 1e-3, "budget": "epochs=1", "steps": steps,
                              "examples": steps * batches, "noise_scale": 100.0, "n_seeds": 1})
        s_min, e_min, b_crit = fit_tradeoff(batches, steps)
        return CriticalBatch(target=0.9, table=table, s_min=s_min, e_min=e_min, b_crit=b_crit, ci=(1.0, np.inf),
                             n_boot=50, curves=pd.DataFrame(columns=CURVE_COLUMNS))

    flat = result(np.array([100.0, 101.0, 99.0, 100.0]))
    assert flat.bound() == "below" and "below the batch sizes tried" in flat.report()
    rng = np.random.default_rng(0)
    falling = result(1e5 / np.array([16, 32, 64, 128]) * (1 + 0.02 * rng.standard_normal(4)))
    assert falling.bound() == "beyond" and "beyond the batch sizes tried" in falling.report()
    json.loads(json_text(falling.to_dict()))  # strict JSON: inf and NaN become null


def test_percentile_interval_keeps_an_infinite_end():
    from core.stats import percentile_interval

    lo, hi = percentile_interval([1.0] * 30 + [math.inf] * 10)
    assert lo == 1.0 and hi == math.inf
    assert all(math.isnan(v) for v in percentile_interval([1.0, 2.0]))
