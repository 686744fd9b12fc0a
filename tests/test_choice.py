import numpy as np
import pytest

from core.choice import FoldPredictions, choose_inference, variant_file
from core.tta import DEFAULT_VIEWS


def one_hot_probs(pred: np.ndarray) -> np.ndarray:
    probs = np.full((len(pred), 10), 0.01)
    probs[np.arange(len(pred)), pred] = 0.91
    return probs


def folds_with(accuracies: dict[str, float], n: int = 200, k: int = 4, seed: int = 0):
    """k folds of n rows whose variants get the given share of rows right (errors are a wrong class)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    order = rng.permutation(n)
    preds = {}
    for name, acc in accuracies.items():
        pred = labels.copy()
        wrong = order[: int(round((1 - acc) * n))]  # nested error sets: a better variant fixes rows of a worse one
        pred[wrong] = (labels[wrong] + 1) % 10
        preds[name] = pred
    folds = np.arange(n) % k
    return [FoldPredictions(fold=f, val_idx=np.flatnonzero(folds == f),
                            probs={name: one_hot_probs(p[folds == f]) for name, p in preds.items()})
            for f in range(k)], labels


def test_auto_uses_tta_only_when_it_helped():
    folds, labels = folds_with({"best": 0.90, "best+tta": 0.95})
    choice = choose_inference(folds, labels, tta_setting="auto")
    assert choice.weights == "best" and choice.tta == list(DEFAULT_VIEWS) and choice.variant == "best+tta"
    test = choice.tests["tta_vs_none"]
    assert (test.only_a, test.only_b) == (0, 10) and test.p_value == pytest.approx(2 / 1024)
    assert choice.oof["pred"].eq(choice.oof["label"]).mean() == pytest.approx(0.95)
    entry = choice.manifest_entry()
    assert entry["tta"] == list(DEFAULT_VIEWS) and entry["oof_acc"]["best"] == pytest.approx(0.90)
    assert entry["tests"]["tta_vs_none"]["p_value"] == pytest.approx(2 / 1024)
    assert entry["oof_files"]["best+tta"] == variant_file("best+tta") == "oof_best_tta.csv"

    folds, labels = folds_with({"best": 0.95, "best+tta": 0.95})
    assert choose_inference(folds, labels, tta_setting="auto").tta == []  # no gain, no TTA


def test_an_explicit_view_list_is_used_and_still_tested():
    folds, labels = folds_with({"best": 0.95, "best+tta": 0.90})
    choice = choose_inference(folds, labels, tta_setting="shift_left,shift_right")
    assert choice.tta == ["shift_left", "shift_right"] and "tta_vs_none" in choice.tests


def test_none_evaluates_no_tta():
    folds, labels = folds_with({"best": 0.9})
    choice = choose_inference(folds, labels, tta_setting="none")
    assert choice.tta == [] and list(choice.frames) == ["best"] and choice.tests == {}


def test_swa_is_chosen_only_when_its_oof_is_higher():
    folds, labels = folds_with({"best": 0.90, "best+tta": 0.91, "swa": 0.93, "swa+tta": 0.92})
    choice = choose_inference(folds, labels, tta_setting="auto")
    assert (choice.weights, choice.tta) == ("swa", [])  # TTA hurt the SWA weights
    assert choice.tests["swa_vs_best"].only_b == 6
    assert "swa+tta" in choice.report() and "inference uses this" in choice.report()

    folds, labels = folds_with({"best": 0.93, "swa": 0.93})
    assert choose_inference(folds, labels, tta_setting="none").weights == "best"  # ties keep the best epoch
