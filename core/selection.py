"""Which runs to fuse: greedy forward selection over a library of runs on their OOF probabilities (Caruana et al.
2004, "Ensemble selection from libraries of models"), scored honestly under nested CV.

Selection adds, one at a time, the run whose addition gives the plain mean of the chosen runs the best OOF accuracy
(log-loss breaks ties between candidates), and stops when no run raises the accuracy: a run that only sharpens the
probabilities makes the ensemble bigger without a row more right. Caruana's paper adds with replacement (weights = counts);
here every run is added at most once, so the chosen set's plain mean is exactly what ``make ensemble RUNS="…"``
computes as its "plain mean" row.

Choosing runs on the same rows that score the choice flatters it. The honest figure is nested: for every fold,
select on the OOF rows of the other folds and score the held-out fold with that choice; the concatenated held-out
predictions give the expected local CV of "selection" as a procedure. The final choice is then made on every row.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from .ensemble import log_loss
from .stats import PairedTest, mcnemar_exact


def _score(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, −log-loss): larger is better, compared as a tuple."""
    return float((probs.argmax(1) == labels).mean()), -log_loss(probs, labels)


def forward_selection(probs: np.ndarray, labels: np.ndarray, *, max_size: int | None = None) -> list[int]:
    """Greedy forward selection without replacement.

    Args:
        probs: (N, M, C) each candidate run's OOF probabilities on the same N rows.
        labels: (N,) true classes.
        max_size: stop after this many runs (default: M).

    Returns:
        Indices of the chosen runs in the order they were added (at least one: the best single run).
    """
    n_rows, n_models, _ = probs.shape
    assert len(labels) == n_rows, (probs.shape, labels.shape)
    chosen: list[int] = []
    total = np.zeros((n_rows, probs.shape[2]), dtype=np.float64)
    best: tuple[float, float] | None = None
    for _ in range(min(max_size or n_models, n_models)):
        candidates = [m for m in range(n_models) if m not in chosen]
        scores = {m: _score((total + probs[:, m]) / (len(chosen) + 1), labels) for m in candidates}
        pick = max(candidates, key=lambda m: scores[m])  # the first of equals: candidates keep the caller's order
        if best is not None and scores[pick][0] <= best[0]:
            break
        chosen.append(pick)
        total += probs[:, pick]
        best = scores[pick]
    return chosen


@dataclasses.dataclass
class Selection:
    """What selection chose and how well the procedure does on rows it never chose on.

    Attributes:
        names: the M candidate runs.
        chosen: names chosen on every OOF row, in the order added.
        nested_probs: (N, C) each row predicted by the plain mean of the runs chosen without its fold.
        fold_choices: fold → the names chosen on the other folds' rows.
        nested_acc: accuracy of ``nested_probs``: the expected local CV of fusing what selection picks.
        in_sample_acc: accuracy of the final choice's plain mean on every row (optimistic: chosen on them).
        best_single: the candidate with the best OOF accuracy, and ``vs_best_single`` the paired test of the nested
            predictions against it on the same rows.
    """

    names: list[str]
    chosen: list[str]
    nested_probs: np.ndarray
    fold_choices: dict[int, list[str]]
    nested_acc: float
    in_sample_acc: float
    best_single: str
    best_single_acc: float
    vs_best_single: PairedTest

    def make_line(self) -> str:
        """The command to run next."""
        return f'make ensemble RUNS="{" ".join(self.chosen)}"'

    def describe(self) -> str:
        """Several lines: the choice, its expected local CV (nested), the optimistic figure, the test, stability."""
        test = self.vs_best_single
        verdict = (f"better than the best single run, p = {test.p_value:.2g}" if test.p_value < 0.05
                   and test.only_b > test.only_a else f"no detectable gain over the best single run "
                                                      f"(p = {test.p_value:.2g})")
        stable = sum(choice == self.chosen for choice in self.fold_choices.values())
        lines = [f"forward selection over {len(self.names)} runs chose: {', '.join(self.chosen)}",
                 f"expected local CV (nested: chosen without the scored fold): {self.nested_acc:.5f}; "
                 f"best single run {self.best_single} {self.best_single_acc:.5f}: {verdict}",
                 f"in-sample (chosen and scored on the same rows, optimistic): {self.in_sample_acc:.5f}",
                 f"the same choice on {stable} of {len(self.fold_choices)} outer folds; per fold: " + "; ".join(
                     f"{fold}: {'+'.join(names)}" for fold, names in self.fold_choices.items())]
        return "\n".join(lines)


def select_runs(names: Sequence[str], probs: np.ndarray, labels: np.ndarray, folds: np.ndarray,
                *, max_size: int | None = None) -> Selection:
    """Forward selection on every OOF row (the choice) and under nested CV (its honest score).

    Args:
        names: M run names; probs: (N, M, C); labels, folds: (N,), the OOF fold of each row (shared by every run).
    """
    names = list(names)
    nested = np.zeros((len(labels), probs.shape[2]), dtype=np.float64)
    fold_choices: dict[int, list[str]] = {}
    for fold in np.unique(folds):
        held_out = folds == fold
        picked = forward_selection(probs[~held_out], labels[~held_out], max_size=max_size)
        nested[held_out] = probs[held_out][:, picked].mean(axis=1)
        fold_choices[int(fold)] = [names[m] for m in picked]
    final = forward_selection(probs, labels, max_size=max_size)
    single = [float((probs[:, m].argmax(1) == labels).mean()) for m in range(len(names))]
    best = int(np.argmax(single))
    return Selection(names=names, chosen=[names[m] for m in final], nested_probs=nested, fold_choices=fold_choices,
                     nested_acc=float((nested.argmax(1) == labels).mean()),
                     in_sample_acc=float((probs[:, final].mean(axis=1).argmax(1) == labels).mean()),
                     best_single=names[best], best_single_acc=single[best],
                     vs_best_single=mcnemar_exact(probs[:, best].argmax(1) == labels, nested.argmax(1) == labels))
