"""One description of a run's state (core/run_state.py), said alike by make runs, make compare, make select,
make ensemble (the tool and the notebook's load_groups) and the inference notebook, for a finished, an unfinished, a
broken and an empty run. The runs are faked with write_manifest, as training and core.resume write them."""
import json

import numpy as np
import pytest

from core.groups import load_groups
from core.inference import read_trained_manifest, run_inference
from core.manifest import ManifestError, write_manifest
from core.run_state import RunStateError, run_state
from test_compare import write_run
from tools import compare, journal, run_ensemble, select_runs

LABELS = np.arange(200) % 10
FOLDS = np.arange(200) % 5
NEVER_MIX = "Re-download the train kernel's output or retrain; never mix files of two runs."


def unfinished_run(folder, *, done=(0,), n_folds=2, folds_to_run=""):
    """What train_folds leaves when it is cut after ``done``: the folds' files and manifest.json marked incomplete."""
    folder.mkdir(parents=True)
    config = {"model": "smallcnn", "n_folds": n_folds, "folds_to_run": folds_to_run, "epochs": 1}
    (folder / "config.json").write_text(json.dumps(config))
    folds, names = [], []
    for fold in done:
        entry = {"fold": fold, "weights": f"smallcnn_fold{fold}_best.pth", "val_acc": 0.9, "best_epoch": 1,
                 "oof_file": f"smallcnn_fold{fold}_oof.npz", "log_file": f"smallcnn_fold{fold}_log.csv", "n_val": 40}
        for name in (entry["weights"], entry["oof_file"], entry["log_file"]):
            (folder / name).write_bytes(f"{name} of fold {fold}".encode())
            names.append(name)
        folds.append(entry)
    write_manifest(folder, {"created": "2026-12-01T10:00:00+00:00", "complete": False,
                            "model": {"name": "smallcnn", "spec": {"name": "smallcnn"}}, "n_folds": n_folds,
                            "folds": folds, "train_rows": 200, "train_sha256": "t" * 64, "config": config}, names)
    return folder


@pytest.fixture
def runs(tmp_path):
    """runs/: two finished runs on the same folds, one cut after 1 of 2 folds, one whose oof.csv was altered after
    it finished, and one whose notebook started but never finished a fold (no manifest.json)."""
    runs_dir = tmp_path / "runs"
    for name, wrong in (("done-a", 3), ("done-b", 9)):
        preds = LABELS.copy()
        preds[np.flatnonzero(LABELS == wrong)[:5]] = (wrong + 1) % 10
        write_run(runs_dir / name, preds, LABELS, FOLDS)
    unfinished_run(runs_dir / "cut")
    write_run(runs_dir / "broken", LABELS, LABELS, FOLDS)
    with open(runs_dir / "broken" / "oof.csv", "a") as handle:
        handle.write("\n")
    (runs_dir / "empty").mkdir()
    (runs_dir / "empty" / "train.ipynb").write_text(json.dumps({"metadata": {}, "cells": []}))
    return runs_dir


def phrases(runs_dir):
    """The phrase each run that is not finished must get everywhere, written out."""
    return {
        "cut": "unfinished: 1 of 2 folds trained — rerun `make run RUN=cut` with the same settings to finish it "
               "(finished folds are kept)",
        "broken": f"broken: {(runs_dir / 'broken').resolve()}: oof.csv: sha256 differs from manifest.json (file "
                  f"altered, truncated or from another run). {NEVER_MIX}",
        "empty": f"empty: no manifest.json in {(runs_dir / 'empty').resolve()} (no fold of a training run has finished "
                 "there, or it is not a run's folder)"}


def test_run_state_reads_the_kind_and_the_folds(runs):
    cut = run_state(runs / "cut")
    assert (cut.kind, cut.folds_done, cut.n_folds, cut.reason) == ("unfinished", 1, 2, "")
    assert run_state(runs / "done-a").kind == "finished" and run_state(runs / "done-a").describe() == "finished"
    assert run_state(runs / "broken").kind == "broken" and run_state(runs / "empty").kind == "empty"
    for name, phrase in phrases(runs).items():
        assert run_state(runs / name).describe() == phrase


def test_make_runs_says_the_phrase_of_each_run(runs, capsys):
    assert journal.main(["--runs-dir", str(runs), "--weights-dir", str(runs / "none")]) == 0
    out = capsys.readouterr().out
    for name, phrase in phrases(runs).items():
        assert f"  {name}: {phrase}\n" in out, name
        assert journal.read_train_run(runs / name, name).status == phrase
    assert journal.read_train_run(runs / "done-a", "done-a").status.startswith("finished")


def test_make_compare_refuses_with_the_phrase(runs, capsys):
    assert compare.main(["--a", "done-a", "--b", "done-b", "--runs-dir", str(runs), "--data", str(runs)]) == 0
    capsys.readouterr()
    for name, phrase in phrases(runs).items():
        assert compare.main(["--a", "done-a", "--b", name, "--runs-dir", str(runs), "--data", str(runs)]) == 1
        assert capsys.readouterr().err == f"make compare: {phrase}\n", name


def test_make_select_leaves_each_out_with_the_phrase(runs, capsys):
    weights = ["--runs-dir", str(runs), "--weights-dir", str(runs / "none")]
    assert select_runs.main(weights) == 0  # every run of runs/: the ones not finished named with their phrase
    out = capsys.readouterr().out
    for name, phrase in phrases(runs).items():
        assert f"left out {name}: {phrase}\n" in out, name
    assert select_runs.main(["--runs", "done-a", "done-b", "cut", *weights]) == 0
    assert f"left out cut: {phrases(runs)['cut']}\n" in capsys.readouterr().out


def test_make_ensemble_and_its_notebook_refuse_with_the_phrase(runs, capsys):
    for name, phrase in phrases(runs).items():
        assert run_ensemble.main(["--runs", "done-a", name, "--runs-dir", str(runs),
                                  "--weights-dir", str(runs / "none")]) == 1
        assert capsys.readouterr().err == f"make ensemble: {name}: {phrase}\n"
        with pytest.raises(RunStateError) as info:  # what the ensemble notebook's load_ensemble_groups raises
            load_groups([runs / "done-a", runs / name])
        assert str(info.value) == phrase
    assert not (runs / "ensemble-done-a-cut").exists()  # refused before the notebook started


def test_inference_refuses_with_the_phrase(runs, tmp_path):
    assert read_trained_manifest(runs / "done-a")["local_cv"] > 0.9
    for name, phrase in phrases(runs).items():
        with pytest.raises(ManifestError) as info:
            run_inference(weights_dir=runs / name, data_dir=tmp_path, output_dir=tmp_path / "out", device="cpu")
        assert str(info.value) == phrase


def test_what_counts_as_finished_unfinished_or_broken(tmp_path):
    """folds_to_run counts the folds a run trains; a config.json alone is a run with no fold done; a finished run
    copied without its weights (an ensemble group) is still finished, one with altered weights or without oof.csv
    or with a NaN local CV is broken, and so is a manifest that is not JSON."""
    assert run_state(unfinished_run(tmp_path / "three", done=(0, 3), n_folds=5, folds_to_run="0,3,4")).describe() \
        .startswith("unfinished: 2 of 3 folds trained")
    (tmp_path / "started").mkdir()
    (tmp_path / "started" / "config.json").write_text(json.dumps({"model": "smallcnn", "n_folds": 5}))
    assert run_state(tmp_path / "started").describe().startswith("unfinished: 0 of 5 folds trained")

    slim = write_run(tmp_path / "slim", LABELS, LABELS, FOLDS)
    (slim / "w.pth").write_bytes(b"weights")
    manifest = json.loads((slim / "manifest.json").read_text())
    write_manifest(slim, manifest, ["oof.csv", "folds.csv", "w.pth"])
    (slim / "w.pth").unlink()
    assert run_state(slim).kind == "finished"
    (slim / "w.pth").write_bytes(b"other weights")
    assert run_state(slim).describe() == (f"broken: {slim.resolve()}: w.pth: sha256 differs from manifest.json (file "
                                          f"altered, truncated or from another run). {NEVER_MIX}")
    (slim / "w.pth").unlink()
    (slim / "oof.csv").unlink()
    assert run_state(slim).describe() == f"broken: {slim.resolve()}: oof.csv: missing. {NEVER_MIX}"

    nan = write_run(tmp_path / "nan", LABELS, LABELS, FOLDS)
    (nan / "manifest.json").write_text(json.dumps({**manifest, "local_cv": float("nan")}))
    assert run_state(nan).describe() == "broken: manifest.json's local_cv is nan, not an accuracy"
    (nan / "manifest.json").write_text("{not json")
    assert run_state(nan).describe().startswith("broken: ") and "not valid JSON" in run_state(nan).describe()


def test_the_hint_on_kaggle_and_for_the_kaggle_output(tmp_path, monkeypatch):
    """Where make run cannot finish the run (on Kaggle, or weights/: the Kaggle train output), the train notebook
    on Kaggle with the output attached does."""
    kaggle = ("run the train notebook on Kaggle again with this output attached as an input to finish it (finished "
              "folds are kept)")
    assert run_state(unfinished_run(tmp_path / "weights")).describe() == f"unfinished: 1 of 2 folds trained — {kaggle}"
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert run_state(unfinished_run(tmp_path / "cut")).describe() == f"unfinished: 1 of 2 folds trained — {kaggle}"
