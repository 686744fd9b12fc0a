"""core.pseudo: fold k trains on the test rows fold k's earlier model is sure of, and nothing else leaks into OOF."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.config import Config, ConfigError
from core.data import DataError, TestData
from core.inference import run_inference
from core.manifest import sha256_file
from core.pipeline import run_training
from core.pseudo import NOT_KEPT, load_pseudo_labels
from tests.test_parallel import write_train_csv

FOLDS_SHA = "a" * 64


def earlier_run(folder: Path, probs: dict[str, np.ndarray], *, test_sha: str = "t" * 64,
                folds_sha: str = FOLDS_SHA) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "test_probs.npz", mean=np.mean(list(probs.values()), axis=0), **probs)
    (folder / "test_probs.json").write_text(json.dumps({"test_sha256": test_sha, "folds_sha256": folds_sha}))
    return folder


def confident(labels: list[int], top: list[float]) -> np.ndarray:
    probs = np.full((len(labels), 10), 0.0)
    for row, (label, p) in enumerate(zip(labels, top)):
        probs[row] = (1 - p) / 9
        probs[row, label] = p
    return probs


@pytest.fixture
def test_set():
    return TestData(images=np.arange(4 * 784, dtype=np.int64).reshape(4, 28, 28).astype(np.uint8), fingerprint="t" * 64)


def test_each_fold_keeps_its_own_models_confident_rows_and_appends_them(tmp_path, test_set):
    folder = earlier_run(tmp_path / "run1", {"fold0": confident([3, 1, 4, 1], [0.9, 0.5, 0.85, 0.79]),
                                             "fold1": confident([3, 7, 4, 2], [0.6, 0.95, 0.9, 0.81])})
    pseudo = load_pseudo_labels(folder, test=test_set, n_folds=2, folds_sha256=FOLDS_SHA, threshold=0.8)
    assert pseudo.labels.tolist() == [[3, NOT_KEPT, 4, NOT_KEPT], [NOT_KEPT, 7, 4, 2]]
    assert pseudo.rows(0).tolist() == [0, 2] and pseudo.source == folder / "test_probs.npz"
    images, labels = np.zeros((5, 28, 28), np.uint8), np.arange(5)
    more_images, more_labels, train_idx = pseudo.extend(images, labels, np.array([1, 3]), fold=1)
    assert train_idx.tolist() == [1, 3, 5, 6, 7]  # the train.csv rows keep their indices: validation rows unchanged
    assert more_labels.tolist() == [0, 1, 2, 3, 4, 7, 4, 2]
    np.testing.assert_array_equal(more_images[5:], test_set.images[[1, 2, 3]])
    assert pseudo.table()["all"].tolist() == [2, 3]
    assert "fold k's own model, top probability ≥ 0.8" in repr(pseudo)


@pytest.mark.parametrize("problem, match", [
    ("no_files", r"test_probs.npz does not exist; run the inference notebook"),
    ("other_test", r"of another test.csv"),
    ("other_folds", r"trained on other folds .* never saw fold k's rows"),
    ("fold_missing", r"has no predictions of fold1 \(it holds mean, fold0\)"),
    ("wrong_rows", r"predictions of shape \(3, 10\), expected \(4, 10\)"),
])
def test_predictions_that_would_not_be_honest_or_do_not_fit_are_refused(tmp_path, test_set, problem, match):
    probs = {"fold0": confident([1, 2, 3, 4], [0.9] * 4), "fold1": confident([1, 2, 3, 4], [0.9] * 4)}
    kwargs = {}
    if problem == "fold_missing":
        probs.pop("fold1")
    if problem == "wrong_rows":
        probs = {k: v[:3] for k, v in probs.items()}
    if problem == "other_test":
        kwargs["test_sha"] = "x" * 64
    if problem == "other_folds":
        kwargs["folds_sha"] = "b" * 64
    folder = tmp_path / "empty" if problem == "no_files" else earlier_run(tmp_path / "run1", probs, **kwargs)
    folder.mkdir(exist_ok=True)
    with pytest.raises(DataError, match=match):
        load_pseudo_labels(folder, test=test_set, n_folds=2, folds_sha256=FOLDS_SHA, threshold=0.8)


def test_the_threshold_must_lie_in_zero_to_one():
    with pytest.raises(ConfigError, match=r"pseudo_threshold = 1.5: use 0 < threshold <= 1 .* reaches about 0.91"):
        Config(pseudo_threshold=1.5).validate()


def test_a_second_run_trains_on_the_first_runs_pseudo_labels_and_scores_only_train_rows(tmp_path, caplog):
    """Stage 1: train + infer; stage 2: pseudo_labels = stage 1's inference output, the same folds.csv, in this
    process and in fold workers (which must train on the same extended rows)."""
    data = write_train_csv(tmp_path / "data", n=120)
    pd.read_csv(data / "train.csv").drop(columns="label").iloc[:40].to_csv(data / "test.csv", index=False)
    common = dict(model="smallcnn", n_folds=2, epochs=1, batch_size=16, device="cpu", tta="none")
    first = run_training(Config(**common), data_dir=data, output_dir=tmp_path / "first")
    run_inference(weights_dir=first.output_dir, data_dir=data, output_dir=tmp_path / "first-infer", tta="none")
    assert json.loads((tmp_path / "first-infer" / "test_probs.json").read_text())["folds_sha256"] == \
        sha256_file(first.output_dir / "folds.csv")

    oofs = {}
    for parallel in ("none", "folds"):
        config = Config(**common, parallel=parallel, workers=2, pseudo_labels=str(tmp_path / "first-infer"),
                        pseudo_threshold=0.05)  # every test row kept: 60 + 40 rows per fold
        with caplog.at_level("INFO"):
            run = run_training(config, data_dir=data, output_dir=tmp_path / parallel,
                               folds_path=first.output_dir / "folds.csv")
        oofs[parallel] = pd.read_csv(run.output_dir / "oof.csv")
        assert sorted(oofs[parallel]["row_id"]) == list(range(120))  # test rows train; they are never scored
        manifest = json.loads((run.output_dir / "manifest.json").read_text())
        assert manifest["config"]["pseudo_labels"] == str(tmp_path / "first-infer")
    assert "40/40 of 40 test rows per fold at top probability >= 0.05" in caplog.text
    assert "fold 0: 100 train rows, 60 validation rows" in caplog.text
    probs = [f"prob_{c}" for c in range(10)]
    first_oof = pd.read_csv(first.output_dir / "oof.csv")
    np.testing.assert_allclose(oofs["folds"][probs], oofs["none"][probs], atol=2e-3)  # the workers' rows: the same
    assert np.abs(oofs["none"][probs].to_numpy() - first_oof[probs].to_numpy()).max() > 1e-2  # and not stage 1's
