"""tools/select_runs (`make select`): greedy forward selection (Caruana et al. 2004) over runs' OOF probabilities, under nested CV."""
import numpy as np

from tools.select_runs import forward_selection, select_runs


def confident(labels: np.ndarray, predicted: np.ndarray, top: float, true_share: float = 0.3) -> np.ndarray:
    """(N, 10) rows with ``top`` on ``predicted``, ``true_share`` on the true class where that is wrong, and the
    rest spread evenly over the other classes."""
    n = len(labels)
    wrong = predicted != labels
    probs = np.zeros((n, 10))
    probs[np.arange(n), predicted] = top
    probs[np.arange(n)[wrong], labels[wrong]] = true_share
    free = probs == 0
    probs[free] = np.repeat((1 - probs.sum(1)) / free.sum(1), free.sum(1))
    return probs


def library(n: int = 1000, seed: int = 0):
    """A (90 % right, confident), its near-copy A2 (the same mistakes), and C, right on every row A gets wrong
    and unsure where it is wrong itself: A + C is right everywhere, A + A2 adds nothing."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    a_wrong = rng.random(n) < 0.10
    a_pred = np.where(a_wrong, (labels + 1) % 10, labels)
    c_wrong = ~a_wrong & (rng.random(n) < 0.30)
    c_pred = np.where(c_wrong, (labels + 2) % 10, labels)
    a = np.where(a_wrong[:, None], confident(labels, a_pred, 0.5), confident(labels, a_pred, 0.9))
    c = np.where(c_wrong[:, None], confident(labels, c_pred, 0.5), confident(labels, c_pred, 0.9))
    a2 = a * (1 + 0.01 * rng.random(a.shape))
    a2 /= a2.sum(1, keepdims=True)
    return np.stack([a2, a, c], axis=1), labels, np.arange(n) % 5


def test_selection_picks_the_clearly_complementary_run():
    probs, labels, folds = library()
    accuracy = [(probs[:, m].argmax(1) == labels).mean() for m in range(3)]
    assert accuracy[0] == accuracy[1] > accuracy[2]  # C alone is the worst run
    chosen = forward_selection(probs, labels)
    assert sorted(chosen)[-1] == 2 and len(chosen) == 2  # one of A/A2, then C; the copy is never added
    selection = select_runs(["a2", "a", "c"], probs, labels, folds)
    assert "c" in selection.chosen and len(selection.chosen) == 2
    assert selection.nested_acc == 1.0 and selection.nested_acc > selection.best_single_acc
    assert selection.vs_best_single.p_value < 1e-6 and selection.vs_best_single.only_a == 0
    assert all("c" in names for names in selection.fold_choices.values()) and len(selection.fold_choices) == 5
    assert selection.make_line() == f'make ensemble RUNS="{" ".join(selection.chosen)}"'
    assert "expected local CV" in selection.describe() and "better than the best single run" in selection.describe()


def test_selection_stops_when_no_run_helps():
    probs, labels, folds = library()
    copies = probs[:, :2]  # A2 and A make the same mistakes
    assert len(forward_selection(copies, labels)) == 1
    selection = select_runs(["a2", "a"], copies, labels, folds)
    assert len(selection.chosen) == 1 and "no detectable gain" in selection.describe()
    assert forward_selection(probs, labels, max_size=1) == [forward_selection(probs, labels)[0]]


def test_nested_selection_never_sees_the_fold_it_scores():
    """D is A's copy except on fold 0, where it is right everywhere: it helps only on fold 0's rows, so the choice for
    fold 0 (made on the other folds) must leave it out, while the choice on every row takes it."""
    probs, labels, folds = library()
    a = probs[:, 1]
    d = np.where((folds == 0)[:, None], confident(labels, labels, 0.9), a)
    pair = np.stack([a, d], axis=1)
    selection = select_runs(["a", "d"], pair, labels, folds)
    assert selection.fold_choices[0] == ["a"]
    assert all("d" in selection.fold_choices[f] for f in (1, 2, 3, 4))  # they see fold 0's rows
    assert "d" in selection.chosen
    assert selection.nested_acc == (selection.nested_probs.argmax(1) == labels).mean()
    held_out = folds == 0
    np.testing.assert_allclose(selection.nested_probs[held_out], a[held_out])  # fold 0 scored with A alone


def test_make_select_prints_the_ensemble_line_and_names_what_it_left_out(tmp_path, capsys):
    """tools/select_runs over run folders: the complementary run is chosen, a run on other folds is left out."""
    from core.manifest import write_manifest
    from core.oof import oof_frame, write_oof
    from tools import select_runs

    probs, labels, folds = library(n=500)
    for m, name in enumerate(["a2", "a", "c", "elsewhere"]):
        folder = tmp_path / name
        folder.mkdir()
        run_folds = np.roll(folds, 1) if name == "elsewhere" else folds
        write_oof(folder / "oof.csv", oof_frame(np.arange(500), run_folds, labels, probs[:, min(m, 2)]))
        (folder / "folds.csv").write_text(f"{name == 'elsewhere'}\n")
        write_manifest(folder, {"model": {"name": "smallcnn", "spec": {}}, "n_folds": 5, "train_sha256": "t",
                                "folds": [{"fold": f, "weights": "w.pth"} for f in range(5)],
                                "local_cv": float((probs[:, min(m, 2)].argmax(1) == labels).mean())},
                       ["oof.csv", "folds.csv"])
    partial = tmp_path / "fold0-only"  # a folds_to_run run, perfect on its rows: the best CV, on fewer rows
    partial.mkdir()
    rows = np.flatnonzero(folds == 0)
    write_oof(partial / "oof.csv", oof_frame(rows, folds[rows], labels[rows], confident(labels[rows], labels[rows],
                                                                                          0.9)))
    (partial / "folds.csv").write_text("False\n")
    write_manifest(partial, {"model": {"name": "smallcnn", "spec": {}}, "n_folds": 5, "train_sha256": "t",
                             "folds": [{"fold": 0, "weights": "w.pth"}], "local_cv": 1.0}, ["oof.csv", "folds.csv"])
    assert select_runs.main(["--runs-dir", str(tmp_path), "--weights-dir", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "left out elsewhere: used different folds" in out
    assert "left out fold0-only: predicted different OOF rows (500 vs 100" in out
    line = out.strip().splitlines()[-1]
    chosen = line.split('"')[1].split()
    assert line.startswith('next: make ensemble RUNS="') and "c" in chosen and len(chosen) == 2
    assert "expected local CV 1.00000 (nested)" in line
