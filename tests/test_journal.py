"""`make runs` (tools/journal.py): the experiment journal from real tiny runs — finished, unfinished, failed, on
other folds, an ensemble — with the public score that a submission record carries."""
import dataclasses
import json

import pandas as pd
import pytest

from core.config import Config
from core.data import find_competition_file, read_train
from core.manifest import sha256_file
from core.pipeline import prepare_folds, prepare_run, run_training, train_folds
from tests.test_parallel import write_train_csv
from tools import journal

TINY = Config(model="smallcnn", n_folds=2, epochs=1, batch_size=16, device="cpu", tta="none", parallel="none",
              noise_scale_every=0)
CUT = ("unfinished: 1 of 2 folds trained — rerun `make run RUN=cut` with the same settings to finish it (finished "
       "folds are kept)")  # core.run_state's phrase, as make compare, select, ensemble and inference say it


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """runs/: three finished tiny runs (one on other folds), one cut after its first fold, one whose notebook
    failed, a sweep and the shared folds; weights/ stays empty."""
    root = tmp_path_factory.mktemp("journal")
    data = write_train_csv(root / "data")
    runs_dir = root / "runs"
    run_training(TINY, data_dir=data, output_dir=runs_dir / "base", commit="abc1234")
    run_training(dataclasses.replace(TINY, learning_rate=3e-3), data_dir=data, output_dir=runs_dir / "lr3",
                 folds_path=runs_dir / "base" / "folds.csv", commit="abc1234")
    run_training(dataclasses.replace(TINY, seed=7), data_dir=data, output_dir=runs_dir / "other-folds")
    cut = dataclasses.replace(TINY, folds_to_run="0")  # a run stopped after fold 0: what train_folds leaves
    setup = prepare_run(cut, output_dir=runs_dir / "cut")
    train = read_train(find_competition_file(data, "train"))
    train_folds(setup, train, prepare_folds(setup, train))
    (runs_dir / "cut" / "manifest.json").write_text(
        (runs_dir / "cut" / "manifest.json").read_text().replace('"folds_to_run": "0"', '"folds_to_run": ""'))
    failed = runs_dir / "crashed"
    failed.mkdir()
    (failed / "train.ipynb").write_text(json.dumps({"metadata": {"papermill": {"exception": True, "duration": 3.0}},
                                                    "cells": [{"cell_type": "code", "source": "", "outputs": [
                                                        {"output_type": "error", "ename": "DataError",
                                                         "evalue": "train.csv row 7: label 11"}]}]}))
    (runs_dir / "sweep").mkdir()
    (runs_dir / "sweep" / "sweep.json").write_text("{}")
    (runs_dir / "folds").mkdir()
    (runs_dir / "folds" / "x.csv").write_text("")
    inference = runs_dir / "kaggle-infer"  # an inference output of base, submitted and scored
    inference.mkdir()
    (inference / "test_probs.json").write_text(json.dumps({"manifest_sha256": sha256_file(
        runs_dir / "base" / "manifest.json")}))
    (inference / "submissions.json").write_text(json.dumps({"submissions": [
        {"time": "2026-12-01T10:00:00+00:00", "message": "m", "manifest_sha256": sha256_file(
            runs_dir / "base" / "manifest.json"), "kaggle": {"public_score": 0.5}}]}))
    return root


def test_every_run_gets_a_row_and_unfinished_ones_say_so(runs):
    frame = journal.read_journal(runs / "runs", runs / "weights").frame()
    by_run = frame.set_index("run")
    assert list(frame["run"][:3].sort_values()) == ["base", "lr3", "other-folds"]  # finished first, by local CV
    assert frame["local_cv"][:3].is_monotonic_decreasing
    assert by_run.loc["cut", "status"] == CUT and pd.isna(by_run.loc["cut", "local_cv"])
    crashed = by_run.loc["crashed", "status"]  # failed before its first fold: core.run_state's phrase, then why
    assert crashed.startswith("empty: no manifest.json in ") and crashed.endswith(
        " (no fold of a training run has finished there, or it is not a run's folder); train.ipynb failed: DataError: "
        "train.csv row 7: label 11")
    assert set(frame["run"]) == {"base", "lr3", "other-folds", "cut", "crashed"}
    base = by_run.loc["base"]
    assert base["status"] == "finished, not inferred" and base["commit"] == "abc1234" and base["model"] == "smallcnn"
    assert base["k"] == 2 and base["epochs"] == 1 and base["oof_rows"] == 120 and base["inference"] == "best"
    assert base["cv_low"] < base["local_cv"] < base["cv_high"] and base["wall_min"] > 0
    assert base["device"].startswith("cpu") and base["date"].startswith("20")
    assert "learning_rate=0.003" in by_run.loc["lr3", "changed"] and "seed=7" in by_run.loc["other-folds", "changed"]
    assert "n_folds=2" in base["changed"] and "model=" not in base["changed"] and "epochs=" not in base["changed"]
    assert base["folds"] == by_run.loc["lr3", "folds"] != by_run.loc["other-folds", "folds"]
    assert base["public_score"] == 0.5 and base["gap"] == pytest.approx(0.5 - base["local_cv"])  # via kaggle-infer


def test_make_runs_writes_the_table_csv_and_figure(runs, capsys):
    assert journal.main(["--runs-dir", str(runs / "runs"), "--weights-dir", str(runs / "weights")]) == 0
    out = capsys.readouterr().out
    saved = pd.read_csv(runs / "runs" / "journal.csv")
    assert len(saved) == 5 and {"local_cv", "cv_low", "cv_high", "public_score", "gap", "folds", "changed",
                                "wall_min", "device", "commit"} <= set(saved.columns)
    assert (runs / "runs" / "journal.png").stat().st_size > 0
    assert f"\n  cut: {CUT}\n" in out and "train.ipynb failed: DataError" in out  # in full below the table
    assert "5 runs (3 finished, 2 unfinished, failed or broken)" in out
    assert "folds/ (the shared folds files)" in out and "sweep/ (a sweep" in out and "kaggle-infer/ (an inference" in out


def test_an_ensemble_row_takes_its_runs_training_time(runs, tmp_path):
    report = {"groups": [{"name": n, "path": str(runs / "runs" / n)} for n in ("base", "lr3")], "fuse": "mean",
              "oof_rows": 120, "table": [{"option": "plain mean", "accuracy": 0.75},
                                         {"option": "learned, nested CV", "accuracy": 0.7}]}
    folder = runs / "runs" / "ensemble-base-lr3"
    folder.mkdir()
    (folder / "ensemble.json").write_text(json.dumps(report))
    try:
        by_run = journal.read_journal(runs / "runs").frame().set_index("run")
    finally:
        (folder / "ensemble.json").unlink()
        folder.rmdir()
    row = by_run.loc["ensemble-base-lr3"]
    assert row["kind"] == "ensemble" and row["local_cv"] == 0.75 and row["model"] == "ensemble: base + lr3"
    assert row["wall_min"] == pytest.approx(by_run.loc["base", "wall_min"] + by_run.loc["lr3", "wall_min"])
    assert row["folds"] == by_run.loc["base", "folds"]


def test_a_broken_manifest_is_listed_not_skipped(tmp_path):
    (tmp_path / "runs" / "bad").mkdir(parents=True)
    (tmp_path / "runs" / "bad" / "manifest.json").write_text("{not json")
    (entry,) = journal.read_journal(tmp_path / "runs").entries
    assert entry.status.startswith("broken: ") and "not valid JSON" in entry.status


def test_the_local_cv_behind_a_submission_follows_what_made_it(runs):
    """make submit's default message: a run's own CV; an inference output's, through the manifest it names."""
    base = journal.read_train_run(runs / "runs" / "base", "base")
    assert journal.predicted_local_cv(runs / "runs" / "base") == base.local_cv
    assert journal.predicted_local_cv(runs / "runs" / "kaggle-infer", runs / "runs" / "base") == base.local_cv
    assert journal.predicted_local_cv(runs / "runs" / "kaggle-infer", runs / "runs" / "lr3") is None  # another run
    assert journal.predicted_local_cv(runs / "runs" / "sweep") is None


def test_old_partial_config_only_and_nan_runs(runs, tmp_path):
    """A manifest of an older digitkit (no "run", no "complete") is finished; a folds_to_run run is finished on its
    rows and ranked by what it covers; a folder with only config.json is unfinished; a NaN local CV is broken."""
    import shutil

    runs_dir = tmp_path / "runs"
    shutil.copytree(runs / "runs" / "base", runs_dir / "old")
    manifest = json.loads((runs_dir / "old" / "manifest.json").read_text())
    for field in ("run", "complete"):
        manifest.pop(field)
    (runs_dir / "old" / "manifest.json").write_text(json.dumps(manifest))
    shutil.copytree(runs / "runs" / "base", runs_dir / "nan")
    (runs_dir / "nan" / "manifest.json").write_text(json.dumps({**manifest, "local_cv": float("nan")}))
    run_training(dataclasses.replace(TINY, folds_to_run="0"), data_dir=runs / "data", output_dir=runs_dir / "fold0",
                 folds_path=runs / "runs" / "base" / "folds.csv")
    (runs_dir / "config-only").mkdir()
    (runs_dir / "config-only" / "config.json").write_text(json.dumps({"model": "fastcnn", "epochs": 9}))
    by_run = journal.read_journal(runs_dir).frame().set_index("run")
    assert by_run.loc["old", "status"] == "finished, not inferred" and by_run.loc["old", "local_cv"] > 0
    assert pd.isna(by_run.loc["old", "wall_min"]) and by_run.loc["old", "commit"] == ""  # no record, no notebook
    assert by_run.loc["nan", "status"].startswith("broken: manifest.json's local_cv is nan")
    fold0 = by_run.loc["fold0"]
    assert fold0["oof_rows"] == 60 and fold0["inference"] == "best (60 of 120 rows)"
    config_only = by_run.loc["config-only"]
    assert config_only["status"] == ("unfinished: 0 folds trained — rerun `make run RUN=config-only` with the same "
                                     "settings to finish it (finished folds are kept)")
    assert config_only["model"] == "fastcnn" and config_only["epochs"] == 9
    journal.plot_journal(journal.read_journal(runs_dir).frame(), tmp_path / "j.png")  # partial runs: own panel


def test_run_folder_names_weights_and_lists_the_finished_runs(runs, tmp_path):
    assert journal.run_folder("base", runs / "runs") == runs / "runs" / "base"
    assert journal.run_folder("weights", runs / "runs", runs / "runs" / "lr3") == runs / "runs" / "lr3"
    with pytest.raises(journal.RunNotFound, match="finished runs: base, lr3, other-folds"):
        journal.run_folder("nope", runs / "runs", tmp_path)
