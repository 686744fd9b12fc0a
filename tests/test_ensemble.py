import json

import numpy as np
import pandas as pd
import pytest
import torch

from core.ensemble import SoftmaxWeightedEnsemble, blend, compare, fit_weights, log_loss, nested_cv, run_ensemble
from core.groups import EnsembleError, find_group_dirs, load_groups, resolve_group_dirs
from core.manifest import sha256_file, write_manifest
from core.oof import oof_frame, write_oof


def noisy_probs(labels: np.ndarray, accuracy: float, rng: np.random.Generator, classes: int = 10) -> np.ndarray:
    """Softmax-like rows that put the top probability on the true class for about ``accuracy`` of the rows."""
    logits = rng.normal(0, 1, (len(labels), classes))
    right = rng.random(len(labels)) < accuracy
    target = np.where(right, labels, (labels + rng.integers(1, classes, len(labels))) % classes)
    logits[np.arange(len(labels)), target] += 4.0
    probs = np.exp(logits)
    return probs / probs.sum(1, keepdims=True)


def synthetic(n: int = 600, accuracies=(0.97, 0.6, 0.55), k: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    probs = np.stack([noisy_probs(labels, a, rng) for a in accuracies], axis=1)  # (n, M, 10)
    return probs, labels, np.arange(n) % k


def test_the_seeds_model_shape_and_initialisation():
    model = SoftmaxWeightedEnsemble(3, seed=7)
    assert isinstance(model.weights, torch.nn.Parameter) and model.weights.shape == (3,)
    torch.testing.assert_close(model.weights.data, torch.randn(3, generator=torch.Generator().manual_seed(7)))
    out = model(torch.rand(5, 3, 10))
    assert out.shape == (5, 10)
    assert model.model_weights().sum().item() == pytest.approx(1.0)


def test_learned_weights_favour_the_clearly_better_model():
    probs, labels, _ = synthetic()
    weights = fit_weights(probs, labels, seed=1)
    assert weights.argmax() == 0 and weights[0] > 0.6
    assert weights.sum() == pytest.approx(1.0)
    assert log_loss(blend(probs, weights), labels) < log_loss(probs.mean(1), labels)
    np.testing.assert_array_equal(weights, fit_weights(probs, labels, seed=1))  # seeded: reproducible


def test_two_model_fit_finds_the_log_loss_minimum():
    probs, labels, _ = synthetic(accuracies=(0.9, 0.8))
    grid = np.linspace(0, 1, 201)
    losses = [log_loss(blend(probs, np.array([w, 1 - w])), labels) for w in grid]
    assert fit_weights(probs, labels, seed=0)[0] == pytest.approx(grid[int(np.argmin(losses))], abs=0.02)


def test_nested_cv_never_sees_the_fold_it_scores():
    probs, labels, folds = synthetic(n=100, accuracies=(0.9, 0.7))
    probs[:, 0, 0] = np.arange(100) / 1000.0  # make every row recognisable by a value only it holds
    seen = []

    def spy(train_probs, train_labels, **kwargs):
        seen.append(set(np.round(train_probs[:, 0, 0] * 1000).astype(int)))
        return np.array([0.5, 0.5])

    result = nested_cv(probs, labels, folds, fit=spy)
    assert len(seen) == 5
    for fold, rows in zip(range(5), seen):
        held_out = set(np.flatnonzero(folds == fold))
        assert rows.isdisjoint(held_out) and rows | held_out == set(range(100))
    np.testing.assert_allclose(result.probs, probs.mean(1))


def test_compare_reports_every_option_on_the_same_rows():
    probs, labels, folds = synthetic()
    comparison = compare(["good", "weak", "weaker"], probs, labels, folds, seed=0)
    table = comparison.table
    assert table["option"].tolist() == ["good", "weak", "weaker", "plain mean", "learned, nested CV",
                                        "learned, in-sample"]
    assert "OPTIMISTIC" in table.set_index("option").loc["learned, in-sample", "kind"]
    assert table.set_index("option").loc["good", "p_vs_best_group"] == 1.0
    assert len(comparison.nested.fold_weights) == 5
    assert table.set_index("option").loc["learned, nested CV", "accuracy"] > table.set_index(
        "option").loc["plain mean", "accuracy"]


# ------------------------------------------------------------------------------------------- group folders
def write_group(folder, probs, labels, folds, *, train_sha="t" * 64, test_probs=None, model="smallcnn"):
    folder.mkdir(parents=True)
    write_oof(folder / "oof.csv", oof_frame(np.arange(len(labels)), folds, labels, probs))
    manifest = {"model": {"name": model, "spec": {"name": model}}, "n_folds": int(folds.max() + 1),
                "folds": [{"fold": int(f), "weights": f"{model}_fold{f}_best.pth"} for f in np.unique(folds)],
                "local_cv": float((probs.argmax(1) == labels).mean()), "train_sha256": train_sha,
                "inference": {"weights": "best", "tta": []}}
    write_manifest(folder, manifest, ["oof.csv"])
    if test_probs is not None:
        np.savez(folder / "test_probs.npz", mean=test_probs, fold0=test_probs)
        info = {"weights": "best", "tta": [], "test_sha256": "x",
                "manifest_sha256": sha256_file(folder / "manifest.json")}
        (folder / "test_probs.json").write_text(json.dumps(info))
    return folder


def test_run_ensemble_on_three_synthetic_groups(tmp_path):
    probs, labels, folds = synthetic(n=300)
    rng = np.random.default_rng(1)
    test = [noisy_probs(rng.integers(0, 10, 40), 0.9, rng) for _ in range(3)]
    for m, name in enumerate(["a", "b", "c"]):
        write_group(tmp_path / "input" / name, probs[:, m], labels, folds, test_probs=test[m])
    (tmp_path / "input" / "digit-recognizer").mkdir()
    dirs = find_group_dirs(tmp_path / "input")
    assert [d.name for d in dirs] == ["a", "b", "c"]
    run = run_ensemble(dirs, output_dir=tmp_path / "out", seed=0)
    assert run.table["option"].tolist()[:3] == ["a", "b", "c"]
    submission = pd.read_csv(tmp_path / "out" / "submission.csv")
    assert len(submission) == 40
    expected = blend(np.stack(test, axis=1), run.comparison.weights).argmax(1)
    np.testing.assert_array_equal(submission["Label"].to_numpy(), expected)
    for name in ("ensemble_table.csv", "ensemble_comparison.png", "ensemble.json"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "nested CV" in run.summary and "optimistic" in run.summary
    assert json.loads((tmp_path / "out" / "ensemble.json").read_text())["fuse"] == "learned"  # auto: it won nested CV
    mean_run = run_ensemble(dirs, output_dir=tmp_path / "mean", seed=0, fuse="mean")
    np.testing.assert_allclose(np.load(tmp_path / "mean" / "test_probs.npz")["mean"], np.mean(test, axis=0))
    assert mean_run.table.equals(run.table)


def test_groups_on_other_folds_or_data_are_refused(tmp_path):
    probs, labels, folds = synthetic(n=100, accuracies=(0.9, 0.8))
    a = write_group(tmp_path / "a", probs[:, 0], labels, folds)
    b = write_group(tmp_path / "b", probs[:, 1], labels, np.roll(folds, 1))
    c = write_group(tmp_path / "c", probs[:, 1], labels, folds, train_sha="u" * 64)
    with pytest.raises(EnsembleError, match="different folds .100 rows sit in another fold"):
        load_groups([a, b])
    with pytest.raises(EnsembleError, match="different train.csv"):
        load_groups([a, c])
    with pytest.raises(EnsembleError, match="at least two"):
        load_groups([a])
    with pytest.raises(EnsembleError, match="no model group"):
        find_group_dirs(tmp_path, max_depth=0)
    assert resolve_group_dirs(f" {a}, {c} ", "/nowhere") == [a, c]


def test_test_probs_from_another_run_are_refused(tmp_path):
    probs, labels, folds = synthetic(n=100, accuracies=(0.9, 0.8))
    a = write_group(tmp_path / "a", probs[:, 0], labels, folds, test_probs=np.full((5, 10), 0.1))
    info = json.loads((a / "test_probs.json").read_text())
    (a / "test_probs.json").write_text(json.dumps({**info, "manifest_sha256": "0" * 64}))
    b = write_group(tmp_path / "b", probs[:, 1], labels, folds, test_probs=np.full((5, 10), 0.1))
    with pytest.raises(EnsembleError, match="another manifest.json"):
        load_groups([a, b])
