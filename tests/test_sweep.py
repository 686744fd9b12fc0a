"""The learning rate × batch size sweep: budgets and max_steps, grid bookkeeping, resume, the α fit, the edge warning,
and the sweep notebook end to end on tiny data."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import core.sweep as sweep
import core.trainer as trainer
from core.config import Config, ConfigError
from core.folds import make_folds
from core.lr_scaling import analyze_sweep, best_lr, fit_exponent, refine_peak
from core.sweep import (RUNS_COLUMNS, Budget, Cell, SweepError, SweepGrid, append_run, cell_config, is_diverged,
                        pending_cells, read_runs, run_cells)
from tests import ddp_worker


def tiny_data(n: int = 96):
    """uint8 (n, 28, 28) images with a learnable bar whose position is the label, labels and 4 stratified folds."""
    images, labels, _, _ = ddp_worker.tiny_data(n)
    return images, labels, make_folds(labels.numpy(), n_folds=4, seed=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def config():
    return Config(model="smallcnn", device="cpu", augment=False, eval_batch_size=256)


# ------------------------------------------------------------------------------------- max_steps (core/trainer.py)
def test_config_max_steps_defaults_to_no_cap_and_refuses_negatives():
    assert Config().max_steps == 0
    assert Config.from_mapping({"max_steps": "7"}).max_steps == 7
    with pytest.raises(ConfigError, match="max_steps = -1"):
        Config.from_mapping({"max_steps": -1})


@pytest.mark.parametrize("n_train, batch, epochs, max_steps, expected", [
    (72, 16, 3, 0, (16, 4, 12)),  # 72 // 16 = 4 steps per epoch, the partial batch dropped
    (72, 16, 3, 6, (16, 4, 6)),  # capped inside the second epoch
    (72, 16, 3, 50, (16, 4, 12)),  # a cap above the epochs' steps changes nothing
    (10, 64, 2, 0, (10, 1, 2)),  # a batch larger than the fold is the whole fold
])
def test_plan_steps(n_train, batch, epochs, max_steps, expected):
    assert trainer.plan_steps(n_train, batch_size=batch, epochs=epochs, max_steps=max_steps) == expected


def test_max_steps_stops_the_fold_and_shrinks_the_schedule(tmp_path, config, monkeypatch):
    images, labels, folds = tiny_data()
    batches = []
    real_make_batch = trainer.make_batch
    monkeypatch.setattr(trainer, "make_batch", lambda *a, **k: batches.append(1) or real_make_batch(*a, **k))
    capped = Config(**{**config.to_dict(), "epochs": 5, "max_steps": 6, "batch_size": 16, "learning_rate": 1e-3,
                       "min_lr": 1e-5})
    result = trainer.train_fold(capped, images=images, labels=labels, train_idx=np.flatnonzero(folds != 0),
                                val_idx=np.flatnonzero(folds == 0), fold=0, output_dir=tmp_path)
    assert len(batches) == 6  # 72 train rows // 16 = 4 steps per epoch: one whole epoch, then 2 steps
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert result.history[-1]["lr"] == pytest.approx(1e-5)  # T_max = 6: the cosine ended at the last step


# ---------------------------------------------------------------------------------------------- grid bookkeeping
@pytest.mark.parametrize("text, kind, value", [("epochs=3", "epochs", 3), ("steps:500", "steps", 500),
                                               (" Steps = 20 ", "steps", 20)])
def test_budget_parses(text, kind, value):
    assert Budget.parse(text) == Budget(kind, value)
    assert str(Budget.parse(text)) == f"{kind}={value}"


@pytest.mark.parametrize("text", ["3", "epochs", "epochs=0", "minutes=5", "steps=1.5"])
def test_budget_refuses_nonsense(text):
    with pytest.raises(SweepError, match="budget"):
        Budget.parse(text)


def test_budget_sets_epochs_or_max_steps(config):
    by_epochs = Budget.parse("epochs=2").apply(Config(**{**config.to_dict(), "max_steps": 9}), n_train=72)
    assert (by_epochs.epochs, by_epochs.max_steps) == (2, 0)
    by_steps = Budget.parse("steps=10").apply(Config(**{**config.to_dict(), "batch_size": 16}), n_train=72)
    assert (by_steps.epochs, by_steps.max_steps) == (3, 10)  # 4 steps per epoch: 3 epochs, the last one cut short
    assert trainer.plan_steps(72, batch_size=16, epochs=by_steps.epochs, max_steps=by_steps.max_steps)[2] == 10


def test_grid_from_notebook_parameters():
    grid = SweepGrid.from_mapping({"batch_sizes": "16, 64", "learning_rates": [1e-3, 1e-4], "seeds": (1, 2),
                                   "min_lr_ratio": 0.1, "budget": "steps=5", "sweep_fold": "2", "other": 1})
    assert grid == SweepGrid(batch_sizes=(16, 64), learning_rates=(1e-3, 1e-4), seeds=(1, 2), min_lr_ratio=0.1,
                             budget="steps=5", fold=2)
    cells = grid.cells()
    assert len(cells) == 2 * 2 * 2 and len({c.key() for c in cells}) == 8
    assert [c.seed for c in cells] == [1] * 4 + [2] * 4  # a partial sweep holds whole grids
    assert cells[0] == Cell(batch=16, lr=1e-3, min_lr=pytest.approx(1e-4), seed=1, budget="steps=5")
    assert SweepGrid.from_mapping({}) == SweepGrid()  # the kernel's full default grid
    with pytest.raises(SweepError, match="batch_sizes"):
        SweepGrid.from_mapping({"batch_sizes": "16,big"})
    with pytest.raises(SweepError, match="learning_rates"):
        SweepGrid.from_mapping({"learning_rates": [1e-3, -1.0]})


def test_cell_config_sets_the_swept_values_only(config):
    cell = Cell(batch=32, lr=5e-4, min_lr=5e-6, seed=7, budget="steps=20")
    swept = cell_config(Config(**{**config.to_dict(), "weight_decay": 0.05, "swa_epochs": 1}), cell, n_train=100)
    assert (swept.batch_size, swept.learning_rate, swept.min_lr, swept.seed) == (32, 5e-4, 5e-6, 7)
    assert (swept.epochs, swept.max_steps, swept.swa_epochs, swept.weight_decay) == (7, 20, 0, 0.05)


def row(batch=16, lr=1e-3, seed=0, budget="steps=2", **values):
    return {"batch": batch, "lr": lr, "min_lr": lr / 100, "seed": seed, "budget": budget, "steps": 2,
            "val_acc": 0.5, "val_loss": 1.0, "diverged": False, "seconds": 1.5, **values}


def test_runs_csv_round_trip_keeps_exact_values(tmp_path):
    path = tmp_path / "runs.csv"
    assert read_runs(path).empty and list(read_runs(path).columns) == RUNS_COLUMNS
    append_run(path, row(lr=2e-4, val_acc=0.1234567890123))
    append_run(path, row(lr=1e-5, val_loss=float("nan"), diverged=True))
    append_run(path, row(lr=1e-2, val_loss=float("inf"), diverged=True))
    runs = read_runs(path)
    assert runs["lr"].tolist() == [2e-4, 1e-5, 1e-2]
    assert runs["val_acc"].iloc[0] == 0.1234567890123
    assert math.isnan(runs["val_loss"].iloc[1]) and runs["val_loss"].iloc[2] == math.inf
    assert runs["diverged"].tolist() == [False, True, True]
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_a_line_cut_short_is_ignored_and_overwritten(tmp_path):
    path = tmp_path / "runs.csv"
    append_run(path, row(lr=1e-3))
    with open(path, "a") as handle:
        handle.write("16,0.0001,1e-06,0,steps=2,2,0.4")  # a kill in the middle of a hand-made append
    assert len(read_runs(path)) == 1
    append_run(path, row(lr=1e-4))
    assert read_runs(path)["lr"].tolist() == [1e-3, 1e-4]
    assert path.read_text().count("\n") == 3


def test_pending_cells_skips_finished_ones():
    grid = SweepGrid(batch_sizes=(8, 16), learning_rates=(1e-3, 1e-4), seeds=(42,), budget="steps=2",
                     min_lr_ratio=0.01)
    runs = pd.DataFrame([row(batch=8, lr=1e-3, seed=42), row(batch=16, lr=1e-4, seed=42),
                         row(batch=8, lr=1e-4, seed=42, budget="steps=3")])  # another budget: not this grid's
    assert [(c.batch, c.lr) for c in pending_cells(grid, runs)] == [(8, 1e-4), (16, 1e-3)]


@pytest.mark.parametrize("history, diverged", [
    ([{"train_loss": 0.5, "val_loss": 0.4, "val_acc": 0.9}], False),
    ([{"train_loss": float("nan"), "val_loss": 0.4, "val_acc": 0.9}, {"train_loss": 0.5, "val_loss": 0.4,
                                                                      "val_acc": 0.9}], True),
    ([{"train_loss": 0.5, "val_loss": float("inf"), "val_acc": 0.9}], True),
    ([{"train_loss": 2.3, "val_loss": 2.3, "val_acc": 0.2}], True),  # at the chance threshold
    ([{"train_loss": 2.3, "val_loss": 2.3, "val_acc": float("nan")}], True),
])
def test_is_diverged(history, diverged):
    assert is_diverged(history) is diverged


class Killed(Exception):
    """Stands for a kill (pytest treats a real KeyboardInterrupt as the end of the whole session)."""


def test_an_interrupted_sweep_resumes_without_repeating_a_cell(tmp_path, config, monkeypatch):
    images, labels, folds = tiny_data()
    grid = SweepGrid(batch_sizes=(8, 16), learning_rates=(3e-3, 1e-3), seeds=(0,), budget="steps=2", fold=1,
                     refine_rounds=0)
    trained, killed = [], []
    real_train_fold = sweep.train_fold

    def train_then_die(cfg, **kwargs):
        if len(trained) == 3 and not killed:
            killed.append(True)
            raise Killed  # the session is killed while the 4th cell trains
        trained.append((cfg.batch_size, cfg.learning_rate))
        return real_train_fold(cfg, **kwargs)

    monkeypatch.setattr(sweep, "train_fold", train_then_die)
    with pytest.raises(Killed):
        run_cells(config, grid, images=images, labels=labels, folds=folds, output_dir=tmp_path)
    assert len(read_runs(tmp_path / "runs.csv")) == 3
    runs = run_cells(config, grid, images=images, labels=labels, folds=folds, output_dir=tmp_path)
    assert trained == [(8, 3e-3), (8, 1e-3), (16, 3e-3), (16, 1e-3)]  # each cell trained once
    assert len(runs) == 4 and not runs.duplicated(["batch", "lr", "seed"]).any()
    assert (runs["steps"] == 2).all() and (runs["seconds"] > 0).all()
    assert not list(tmp_path.glob("cells/*/*.pth"))  # recorded cells keep their log, not their weights
    assert len(list(tmp_path.glob("cells/*/smallcnn_fold1_log.csv"))) == 4

    wider = SweepGrid(batch_sizes=(8, 16), learning_rates=(3e-3, 1e-3, 3e-4), seeds=(0,), budget="steps=2", fold=1,
                      refine_rounds=0)
    runs = run_cells(config, wider, images=images, labels=labels, folds=folds, output_dir=tmp_path)
    assert trained[4:] == [(8, 3e-4), (16, 3e-4)]  # an extended grid trains only its new cells
    assert len(runs) == 6


def test_both_budgets_train_every_cell_once_each_and_write_learning_curves(tmp_path, config):
    images, labels, folds = tiny_data()
    grid = SweepGrid(batch_sizes=(8,), learning_rates=(3e-3,), seeds=(0, 1), budget="steps=4, epochs=1", fold=1,
                     refine_rounds=0, curve_points=2, curve_rows=10)
    assert grid.budgets() == ["steps=4", "epochs=1"]
    assert SweepGrid.from_mapping({"budget": ["epochs=1", "steps=4"]}).budgets() == ["epochs=1", "steps=4"]
    with pytest.raises(SweepError, match="budget"):
        SweepGrid(budget="epochs=1,speed=3").validate()
    runs = run_cells(Config(**{**config.to_dict(), "noise_scale_every": 1}), grid, images=images, labels=labels,
                     folds=folds, output_dir=tmp_path)
    assert sorted(zip(runs["budget"], runs["seed"])) == [("epochs=1", 0), ("epochs=1", 1), ("steps=4", 0),
                                                         ("steps=4", 1)]
    curves = sweep.read_curves(tmp_path / "curves.csv")
    assert len(curves) == 8 and set(curves.groupby(["budget", "seed"]).size()) == {2}  # 2 points per cell
    four = curves[curves["budget"] == "steps=4"]
    assert sorted(set(four["step"])) == [2, 4] and (four["examples"] == four["step"] * 8).all()
    assert ((curves["val_acc"] >= 0) & (curves["val_acc"] <= 1)).all()
    assert (curves["noise_scale"].dropna() > 0).all() and curves["noise_scale"].notna().any()


def test_a_best_rate_on_the_grid_edge_gets_rates_beyond_it(tmp_path):
    grid = SweepGrid(batch_sizes=(8, 32), learning_rates=(1e-4, 1e-3), seeds=(0, 1), budget="steps=2",
                     refine_rounds=2)
    acc = {(8, 1e-4): 0.9, (8, 1e-3): 0.8, (32, 1e-4): 0.8, (32, 1e-3): 0.9}  # 8: best at the low edge; 32: high
    done = [row(batch=b, lr=lr, seed=s, val_acc=a) for (b, lr), a in acc.items() for s in (0, 1)]
    runs = pd.DataFrame(done)
    added = sorted({(c.batch, c.lr) for c in sweep.extension_cells(grid, runs)})
    assert added == [(8, 1e-5), (32, 1e-2)] and len(sweep.extension_cells(grid, runs)) == 4  # for both seeds
    assert sweep.extension_cells(grid, runs[runs["seed"] == 0]) == []  # not before every seed is in
    # the new rate is better again at batch 32: one more; then the cap of refine_rounds = 2 stops it
    more = done + [row(batch=8, lr=1e-5, seed=s, val_acc=0.7) for s in (0, 1)]
    more += [row(batch=32, lr=1e-2, seed=s, val_acc=0.95) for s in (0, 1)]
    assert sorted({(c.batch, c.lr) for c in sweep.extension_cells(grid, pd.DataFrame(more))}) == [(32, 0.1)]
    more += [row(batch=32, lr=0.1, seed=s, val_acc=0.97) for s in (0, 1)]
    assert sweep.extension_cells(grid, pd.DataFrame(more)) == []
    # a diverged best on the upper edge is not extended upwards; where every rate diverged, nothing is added
    blown = done[:4] + [row(batch=32, lr=1e-4, seed=s, val_acc=0.1, diverged=True) for s in (0, 1)]
    blown += [row(batch=32, lr=1e-3, seed=s, val_acc=0.15, diverged=True) for s in (0, 1)]
    assert sorted({(c.batch, c.lr) for c in sweep.extension_cells(grid, pd.DataFrame(blown))}) == [(8, 1e-5)]
    upper = done[:4] + [row(batch=32, lr=1e-4, seed=s, val_acc=0.9) for s in (0, 1)]
    upper += [row(batch=32, lr=1e-3, seed=s, val_acc=0.1, diverged=True) for s in (0, 1)]
    assert sorted({(c.batch, c.lr) for c in sweep.extension_cells(grid, pd.DataFrame(upper))}) == [(8, 1e-5),
                                                                                                 (32, 1e-5)]


def started_sweep(folder: Path, config: Config) -> SweepGrid:
    """A sweep folder as its first cell leaves it: sweep.json recording ``config``'s setup, runs.csv begun."""
    grid = SweepGrid(budget="steps=2")
    sweep._check_same_setup(folder / "sweep.json", config, grid, fingerprint="abc")
    (folder / "runs.csv").write_text(",".join(RUNS_COLUMNS) + "\n")
    return grid


def test_a_sweep_of_other_settings_is_refused(tmp_path, config):
    grid = started_sweep(tmp_path, config)
    sweep._check_same_setup(tmp_path / "sweep.json", config, SweepGrid(budget="epochs=1", seeds=(1, 2)), "abc")
    other = Config(**{**config.to_dict(), "weight_decay": 0.5})
    with pytest.raises(SweepError, match="weight_decay: 0.01 → 0.5"):
        sweep._check_same_setup(tmp_path / "sweep.json", other, grid, fingerprint="abc")
    with pytest.raises(SweepError, match="train_sha256"):
        sweep._check_same_setup(tmp_path / "sweep.json", config, grid, fingerprint="def")


def test_a_sweep_folder_is_not_continued_in_another_cpu_precision(tmp_path, config):
    """cpu_bf16 changes what every cell computes: a folder made in fp32 is refused in bf16 (issue 29: it was not)."""
    grid = started_sweep(tmp_path, config)
    bf16 = Config(**{**config.to_dict(), "cpu_bf16": True})
    with pytest.raises(SweepError, match="cpu_bf16: False → True"):
        sweep._check_same_setup(tmp_path / "sweep.json", bf16, grid, fingerprint="abc")


def test_a_sweep_setup_saved_before_cpu_bf16_existed_ran_in_fp32(tmp_path, config):
    grid = started_sweep(tmp_path, config)
    saved = json.loads((tmp_path / "sweep.json").read_text())
    del saved["setup"]["cpu_bf16"]  # as written before the setting existed
    (tmp_path / "sweep.json").write_text(json.dumps(saved))
    with pytest.raises(SweepError, match="cpu_bf16: False → True"):
        sweep._check_same_setup(tmp_path / "sweep.json", Config(**{**config.to_dict(), "cpu_bf16": True}), grid, "abc")
    sweep._check_same_setup(tmp_path / "sweep.json", config, grid, "abc")  # fp32, as it ran: continued


# The settings a sweep folder held fixed before issue 29, when they were a hand-kept tuple in core/sweep.py; cpu_bf16
# was missing from it. Config's field metadata now decides, and must give the same settings plus cpu_bf16.
SWEEP_FIXED_BEFORE_ISSUE_29 = {"model", "pretrained", "input_size", "drop_path_rate", "weight_decay", "scheduler",
                               "warmup_epochs", "label_smoothing", "augment", "rotate_deg", "zoom", "shift", "n_folds",
                               "fold_method"}


def test_a_sweep_records_and_holds_fixed_the_settings_every_cell_computes_with(tmp_path, config):
    grid = SweepGrid(budget="steps=2")
    sweep._check_same_setup(tmp_path / "sweep.json", config, grid, fingerprint="abc")
    setup = json.loads((tmp_path / "sweep.json").read_text())["setup"]
    assert set(setup) == {"train_sha256", "fold", *SWEEP_FIXED_BEFORE_ISSUE_29, "cpu_bf16"}
    (tmp_path / "runs.csv").write_text(",".join(RUNS_COLUMNS) + "\n")
    swept = {"batch_size": 64, "learning_rate": 1e-3, "min_lr": 1e-6, "seed": 7, "epochs": 3, "max_steps": 9,
             "swa_epochs": 1, "pseudo_threshold": 0.9, "folds_to_run": "0", "workers": 2}
    for key, value in swept.items():  # what each cell sets itself, or never reads: the folder is continued
        sweep._check_same_setup(tmp_path / "sweep.json", Config(**{**config.to_dict(), key: value}), grid, "abc")


# -------------------------------------------------------------------------------------------------------- the fit
def synthetic_runs(alpha: float, *, batches=(8, 16, 32, 64, 128, 256), lrs=None, seeds=3, noise=0.0005,
                   lr8: float = 1e-4, seed: int = 0) -> pd.DataFrame:
    """Accuracy that falls quadratically in log10(lr) away from lr*(B) = lr8 * (B / 8)^alpha, plus noise."""
    rng = np.random.default_rng(seed)
    lrs = lrs if lrs is not None else np.geomspace(1e-5, 1e-1, 13)
    rows = []
    for batch in batches:
        best = lr8 * (batch / 8) ** alpha
        for lr in lrs:
            for s in range(seeds):
                acc = 0.99 - 0.05 * (np.log10(lr) - np.log10(best)) ** 2 + rng.normal(0, noise)
                rows.append(row(batch=batch, lr=float(lr), seed=s, val_acc=acc, val_loss=1 - acc,
                                diverged=bool(acc <= 0.2), seconds=batch / 8))
    return pd.DataFrame(rows)


def test_refine_peak_finds_the_vertex_of_a_parabola():
    x = np.array([-4.0, -3.3, -2.0, -1.0])
    y = -2.0 * (x + 2.9) ** 2 + 1.0
    assert refine_peak(x, y, 1) == pytest.approx(-2.9)
    assert refine_peak(x, -y, 1) == -3.3  # opens upwards: keep the grid point
    assert refine_peak(x, -5.0 * (x + 8.0) ** 2, 1) == -4.0  # clamped to the neighbours


def test_best_lr_refines_interior_points_only():
    lrs = np.array([1e-4, 1e-3, 1e-2])
    no_div = np.zeros(3, dtype=bool)
    assert best_lr(lrs, np.array([0.5, 0.9, 0.8]), no_div)[0] == 1
    assert 1e-3 < best_lr(lrs, np.array([0.5, 0.9, 0.8]), no_div)[1] < 1e-2
    assert best_lr(lrs, np.array([0.5, 0.9, 0.8]), no_div, refine=False) == (1, 1e-3)
    assert best_lr(lrs, np.array([0.9, 0.5, 0.1]), no_div) == (0, 1e-4)
    assert best_lr(lrs, np.array([0.5, 0.9, 0.1]), np.array([False, False, True])) == (1, 1e-3)
    tied = np.array([0.9, 0.9, 0.5])  # equal accuracies: the lower loss wins, else the smaller rate
    assert best_lr(lrs, tied, no_div, refine=False) == (0, 1e-4)
    assert best_lr(lrs, tied, no_div, tiebreak=-np.array([0.5, 0.3, 1.0]), refine=False) == (1, 1e-3)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_the_fit_recovers_a_known_exponent(alpha):
    analysis = analyze_sweep(synthetic_runs(alpha), n_boot=300, plot=False)
    assert analysis.alpha == pytest.approx(alpha, abs=0.05)
    lo, hi = analysis.ci
    assert lo <= alpha <= hi and hi - lo < 0.3
    assert analysis.n_boot > 250 and not analysis.warnings
    assert 10 ** analysis.log10_c * 8 ** analysis.alpha == pytest.approx(1e-4, rel=0.2)


def test_the_fit_is_exact_without_noise_and_the_bootstrap_is_seeded():
    runs = synthetic_runs(0.7, noise=0.0, seeds=1)
    assert fit_exponent([8, 16, 64], [1e-4, 1e-4 * 2 ** 0.7, 1e-4 * 8 ** 0.7]) == pytest.approx(
        (0.7, math.log10(1e-4) - 0.7 * math.log10(8)))
    first, again = analyze_sweep(runs, n_boot=100, plot=False), analyze_sweep(runs, n_boot=100, plot=False)
    assert first.alpha == pytest.approx(0.7, abs=1e-6)
    assert first.ci == again.ci


def test_the_edge_warning_fires_and_names_the_batch_size_and_the_way():
    runs = synthetic_runs(1.0, batches=(8, 64, 256), lrs=np.geomspace(1e-4, 1e-2, 5), seeds=1, noise=0.0)
    analysis = analyze_sweep(runs, n_boot=50, plot=False)
    # lr*(8) = 1e-4 is the smallest rate of the grid; lr*(64) = 8e-4 and lr*(256) = 3.2e-3 lie inside it
    assert analysis.best["edge"].tolist() == ["low", "", ""]
    assert len(analysis.warnings) == 1
    assert "batch size 8" in analysis.warnings[0] and "smallest" in analysis.warnings[0]
    assert "downwards" in analysis.warnings[0]
    high = analyze_sweep(synthetic_runs(1.0, batches=(8, 64), lrs=[3e-5, 1e-4, 3e-4], seeds=1), n_boot=50,
                         plot=False)
    assert high.best["edge"].tolist() == ["", "high"]
    assert "batch size 64" in high.warnings[0] and "upwards" in high.warnings[0]
    assert "WARNING: batch size 64" in high.report()


def test_diverged_cells_are_marked_and_a_batch_that_only_diverged_is_left_out():
    runs = synthetic_runs(0.5, batches=(8, 16, 32), seeds=2, noise=0.0)
    runs.loc[runs["lr"] > 0.02, ["val_acc", "val_loss", "diverged"]] = [0.1, float("nan"), True]
    runs.loc[runs["batch"] == 32, ["val_acc", "diverged"]] = [0.1, True]
    analysis = analyze_sweep(runs, n_boot=50, plot=False)
    assert analysis.best["batch"].tolist() == [8, 16]
    assert any("batch size 32: every learning rate diverged" in w for w in analysis.warnings)
    table = analysis.table()
    assert table.loc["0.1", 8].startswith("× 0.1000")
    assert table[8].str.endswith(" *").sum() == 1


def test_the_analysis_saves_its_table_fit_and_heatmap(tmp_path):
    analysis = analyze_sweep(synthetic_runs(0.5, batches=(8, 32, 128), lrs=np.geomspace(1e-5, 1e-2, 4), seeds=2),
                             n_boot=50)
    names = sorted(p.name for p in analysis.save(tmp_path))
    assert names == ["fit.json", "lr_batch_heatmap.png", "sweep_summary.csv", "sweep_table.txt"]
    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["alpha"] == pytest.approx(analysis.alpha) and len(fit["ci95"]) == 2 and len(fit["best"]) == 3
    assert "α =" in (tmp_path / "sweep_table.txt").read_text()
    assert (tmp_path / "lr_batch_heatmap.png").stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------- the notebook
@pytest.mark.slow
def test_sweep_notebook_runs_a_tiny_grid(tmp_path):
    from build import build_kernel
    from tests.test_notebooks_e2e import REPO, write_tiny_competition
    from tools.run_notebook import run_notebook

    notebook = build_kernel("sweep", repo=REPO, out_dir=tmp_path / "build", owner="tester")
    metadata = json.loads(notebook.with_name("kernel-metadata.json").read_text())
    assert metadata["id"] == "tester/digitkit-sweep" and metadata["competition_sources"] == ["digit-recognizer"]
    data = write_tiny_competition(tmp_path / "digit-recognizer", n_train=200, n_test=10)
    run_dir = tmp_path / "run"
    params = {"data_dir": str(data), "output_dir": str(run_dir), "batch_sizes": [8, 32],
              "learning_rates": [3e-3, 3e-4], "budget": "steps=3", "n_boot": 50, "device": "cpu"}
    nb = run_notebook(notebook, run_dir / "sweep.ipynb", cwd=run_dir, stream=False, parameters=params)

    runs = read_runs(run_dir / "runs.csv")
    grid = {(8, 3e-4), (8, 3e-3), (32, 3e-4), (32, 3e-3)}
    cells = set(zip(runs["batch"], runs["lr"]))
    assert grid <= cells and len(cells) <= 8  # + up to 2 rates beyond an edge per batch size (two rates: always one)
    assert all(lr < 3e-4 or lr > 3e-3 for _, lr in cells - grid)
    assert (runs["budget"] == "steps=3").all() and (runs["steps"] == 3).all()
    assert (run_dir / "folds.csv").is_file() and (run_dir / "lr_batch_heatmap.png").stat().st_size > 0
    fit = json.loads((run_dir / "fit.json").read_text())
    assert {"alpha", "ci95", "best", "warnings", "verdict"} <= set(fit)
    study = json.loads((run_dir / "study.json").read_text())
    assert study["recommendation"]  # at 3 steps every cell may still be at chance: then it says so
    assert len(sweep.read_curves(run_dir / "curves.csv")) == len(runs) * 3  # 3 steps: one point per step
    text = "".join("".join(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))
    assert "fitted law: lr*(B)" in text and f"RECOMMENDATION: {study['recommendation']}" in text
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))  # the heatmap


def test_cells_of_another_grid_beyond_the_edges_neither_count_nor_block_an_extension():
    grid = SweepGrid(batch_sizes=(32,), learning_rates=(1e-4, 1e-3), seeds=(1, 2), budget="steps=2")
    done = [row(batch=32, lr=lr, seed=s, val_acc=a) for lr, a in ((1e-4, 0.8), (1e-3, 0.9)) for s in (1, 2)]
    foreign = row(batch=32, lr=0.5, seed=1, val_acc=0.1)  # an earlier grid's rate, one seed only
    runs = pd.DataFrame(done + [foreign])
    assert 0.5 not in set(sweep.grid_runs(grid, runs)["lr"])
    assert sorted({(c.lr, c.seed) for c in sweep.extension_cells(grid, runs)}) == [(0.01, 1), (0.01, 2)]
