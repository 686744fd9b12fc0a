"""core.fold_result: one name per fold file, one result format, one manifest entry."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.fold_result import (FoldResult, FoldResultError, entry_files, fold_file, load_fold_result, manifest_entry,
                              save_fold_result)


@pytest.mark.parametrize("kind, name", [("best", "m-x.y_fold2_best.pth"), ("last", "m-x.y_fold2_last.pth"),
                                        ("swa", "m-x.y_fold2_swa.pth"), ("log", "m-x.y_fold2_log.csv"),
                                        ("oof", "m-x.y_fold2_oof.npz")])
def test_fold_file_names(kind, name):
    assert fold_file("m/x.y", 2, kind) == name
    assert fold_file("convnext_atto.d2_in1k", 3, "best") == "convnext_atto.d2_in1k_fold3_best.pth"


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind = 'x'"):
        fold_file("smallcnn", 0, "x")


def result(folder: Path, swa: bool) -> FoldResult:
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=6)
    out = FoldResult(fold=2, weights_path=folder / "m_fold2_best.pth", best_epoch=3, best_val_acc=0.75,
                     val_probs=probs, history=[{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.75}])
    if swa:
        out.swa_weights_path, out.swa_val_acc, out.swa_val_probs = folder / "m_fold2_swa.pth", 0.8, probs[::-1]
    return out


@pytest.mark.parametrize("swa", [False, True])
def test_manifest_entry_and_its_files(tmp_path, swa):
    entry = manifest_entry("m", result(tmp_path, swa), 6)
    expected = {"fold": 2, "weights": "m_fold2_best.pth", "val_acc": 0.75, "best_epoch": 3,
                "oof_file": "m_fold2_oof.npz", "log_file": "m_fold2_log.csv",
                "history": [{"epoch": 1, "val_acc": 0.5}, {"epoch": 2, "val_acc": 0.75}], "n_val": 6,
                "noise_scale": None}  # no epoch measured one
    if swa:
        expected.update(swa_weights="m_fold2_swa.pth", swa_val_acc=0.8)
    assert entry == expected and list(entry) == list(expected)
    assert "n_val" not in manifest_entry("m", result(tmp_path, swa))
    assert entry_files(entry) == ["m_fold2_best.pth"] + ["m_fold2_swa.pth"] * swa + ["m_fold2_oof.npz",
                                                                                     "m_fold2_log.csv"]


def test_a_result_file_names_its_weights_beside_it(tmp_path):
    name = save_fold_result(tmp_path / "a", "m", result(tmp_path / "a", swa=True), np.arange(6))
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / name).rename(tmp_path / "b" / name)  # a run folder copied elsewhere
    back, _ = load_fold_result(tmp_path / "b" / name)
    assert back.weights_path == tmp_path / "b" / "m_fold2_best.pth"
    assert back.swa_weights_path == tmp_path / "b" / "m_fold2_swa.pth"


def test_no_pickle_and_an_older_file_is_refused(tmp_path):
    name = save_fold_result(tmp_path, "m", result(tmp_path, swa=False), np.arange(6))
    with np.load(tmp_path / name, allow_pickle=False) as saved:
        assert sorted(saved.files) == ["meta", "val_idx", "val_probs"]
        assert json.loads(str(saved["meta"]))["format"] == 1
    old = tmp_path / "old_fold0_oof.npz"
    np.savez(old, val_idx=np.arange(3), val_probs=np.full((3, 10), 0.1))  # what digitkit wrote before
    with pytest.raises(FoldResultError, match="older digitkit"):
        load_fold_result(old)


@pytest.mark.parametrize("swa", [False, True])
def test_fold_result_round_trip(tmp_path, swa):
    from core.trainer import FoldResult as FromTrainer

    assert FromTrainer is FoldResult  # the old import keeps working
    saved = result(tmp_path, swa)
    name = save_fold_result(tmp_path, "m", saved, np.arange(6) * 5)
    assert name == "m_fold2_oof.npz"
    back, val_idx = load_fold_result(tmp_path / name)
    assert val_idx.tolist() == [0, 5, 10, 15, 20, 25] and val_idx.dtype == np.int64
    assert back.weights_path == saved.weights_path and isinstance(back.weights_path, Path)
    np.testing.assert_array_equal(back.val_probs, saved.val_probs)
    assert back.history == saved.history and back.best_epoch == 3 and back.best_val_acc == 0.75
    assert (back.swa_weights_path, back.swa_val_acc) == (saved.swa_weights_path, saved.swa_val_acc)
    if swa:
        np.testing.assert_array_equal(back.swa_val_probs, saved.swa_val_probs)
    else:
        assert back.swa_val_probs is None


def test_train_fold_leaves_its_result_file(tmp_path):
    from core.config import Config
    from core.trainer import train_fold
    from tests.test_trainer import tiny_fold

    images, labels, val_idx, train_idx = tiny_fold()
    config = Config(model="smallcnn", epochs=1, batch_size=16, device="cpu")
    trained = train_fold(config, images=images, labels=labels, train_idx=train_idx, val_idx=val_idx, fold=1,
                         output_dir=tmp_path)
    back, rows = load_fold_result(tmp_path / fold_file("smallcnn", 1, "oof"))
    np.testing.assert_array_equal(rows, val_idx)
    np.testing.assert_array_equal(back.val_probs, trained.val_probs)
    assert (back.weights_path, back.history, back.best_val_acc) == (trained.weights_path, trained.history,
                                                                    trained.best_val_acc)
