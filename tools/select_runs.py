"""`make select`: which runs to fuse — greedy forward selection on OOF probabilities under nested CV.

    python -m tools.select_runs [--runs a b c] [--runs-dir runs] [--max-size N]

Candidates are the finished training runs (runs/*, weights/) that can be fused with the best of them: the same
train.csv, the same folds file and every OOF row (the checks of ``make ensemble``); the others are named with the
reason they were left out. Prints the choice, its expected local CV (nested) beside the best single run, and the
``make ensemble RUNS="…"`` line to run next.

The selection is Caruana et al. 2004, "Ensemble selection from libraries of models", over the runs' OOF
probabilities.

Selection adds, one at a time, the run whose addition gives the plain mean of the chosen runs the best OOF accuracy
(log-loss breaks ties between candidates), and stops when no run raises the accuracy: a run that only sharpens the
probabilities makes the ensemble bigger without a row more right. Caruana's paper adds with replacement (weights =
counts); here every run is added at most once, so the chosen set's plain mean is exactly what
``make ensemble RUNS="…"`` computes as its "plain mean" row.

Choosing runs on the same rows that score the choice flatters it. The honest figure is nested: for every fold,
select on the OOF rows of the other folds and score the held-out fold with that choice; the concatenated held-out
predictions give the expected local CV of "selection" as a procedure. The final choice is then made on every row.
Local-only code.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.ensemble import log_loss, nested_cv
from core.groups import EnsembleError, Group, check_compatible, load_group
from core.manifest import MANIFEST_NAME, ManifestError
from core.oof import local_cv
from core.stats import PairedTest, mcnemar_exact
from tools.journal import RunNotFound, classify, run_folder


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
        best_single: the candidate with the best OOF accuracy (picked on every row, which favours it), and
            ``vs_best_single`` the paired test of the nested predictions against it on the same rows.
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
        stable = sum(set(choice) == set(self.chosen) for choice in self.fold_choices.values())
        lines = [f"forward selection over {len(self.names)} runs chose: {', '.join(self.chosen)}",
                 f"expected local CV (nested: chosen without the scored fold): {self.nested_acc:.5f}; "
                 f"best single run {self.best_single} {self.best_single_acc:.5f} (picked on every row): {verdict}",
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
    picked_per_fit: list[list[int]] = []

    def equal_weights_of_the_chosen(train_probs: np.ndarray, train_labels: np.ndarray) -> np.ndarray:
        picked = forward_selection(train_probs, train_labels, max_size=max_size)
        picked_per_fit.append(picked)
        weights = np.zeros(train_probs.shape[1])
        weights[picked] = 1.0 / len(picked)
        return weights

    nested = nested_cv(probs, labels, folds, fit=equal_weights_of_the_chosen)  # the ensemble notebook's nesting
    fold_choices = {fold: [names[m] for m in picked]
                    for fold, picked in zip(nested.fold_weights, picked_per_fit, strict=True)}
    final = forward_selection(probs, labels, max_size=max_size)
    single = [float((probs[:, m].argmax(1) == labels).mean()) for m in range(len(names))]
    best = int(np.argmax(single))
    return Selection(names=names, chosen=[names[m] for m in final], nested_probs=nested.probs,
                     fold_choices=fold_choices, nested_acc=float((nested.probs.argmax(1) == labels).mean()),
                     in_sample_acc=float((probs[:, final].mean(axis=1).argmax(1) == labels).mean()),
                     best_single=names[best], best_single_acc=single[best],
                     vs_best_single=mcnemar_exact(probs[:, best].argmax(1) == labels,
                                                  nested.probs.argmax(1) == labels))


def candidate_folders(runs_dir: Path, weights_dir: Path, names: list[str]) -> list[Path]:
    """The named runs (tools.journal.run_folder), else every training run the journal lists: weights/ and each
    folder of runs/ that is a run and no ensemble (finished or not: load_group says why one is left out)."""
    if names:
        return [run_folder(name, runs_dir, weights_dir) for name in names]
    found = [weights_dir] if (weights_dir / MANIFEST_NAME).is_file() else []
    if runs_dir.is_dir():
        found += [p for p in sorted(runs_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")
                  and classify(p) is None and not (p / "ensemble.json").is_file()
                  and not (p / "ensemble.ipynb").is_file()]
    return found


def fusable(groups: list[Group]) -> tuple[list[Group], list[str]]:
    """The groups that can be fused with the best one — the most OOF rows (a folds_to_run run covers fewer), then
    the best local CV — and a line per reason the others were left out."""
    ranked = sorted(groups, key=lambda g: (-len(g.oof), -local_cv(g.oof)))
    kept, reasons = [ranked[0]], dict[str, list[str]]()
    for group in ranked[1:]:
        try:
            check_compatible([ranked[0], group])
            kept.append(group)
        except EnsembleError as err:  # "groups 'a' and 'b' <reason>: <fix>" → <reason>
            reason = str(err).removeprefix(f"groups {ranked[0].name!r} and {group.name!r} ").partition(": ")[0]
            reasons.setdefault(reason, []).append(group.name)
    return kept, [f"{', '.join(names)}: {reason} (checked against {ranked[0].name}, the best run)"
                  for reason, names in reasons.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", default=[], help="candidate runs (default: every finished run)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"))
    parser.add_argument("--max-size", type=int, default=None, help="at most this many runs in the choice")
    args = parser.parse_args(argv)
    groups, problems = [], []
    try:
        folders = candidate_folders(args.runs_dir, args.weights_dir, args.runs)
    except RunNotFound as err:
        print(f"make select: {err}", file=sys.stderr)
        return 1
    for folder in folders:
        try:
            groups.append(load_group(folder, folder.name))
        except (ManifestError, ValueError, OSError) as err:
            problems.append(f"{folder.name}: {err}")
    if len(groups) < 2:
        print("make select needs two or more finished runs on the same folds (make runs lists them); found "
              f"{len(groups)}" + "".join(f"\n  left out {p}" for p in problems), file=sys.stderr)
        return 1
    kept, left_out = fusable(groups)
    for line in problems + left_out:
        print(f"left out {line}")
    if left_out:
        print("  (a run is fused only with runs of the same train.csv, folds file and OOF rows; make ensemble "
              "refuses the others too)")
    if len(kept) < 2:
        print(f"make select: only {kept[0].name} can be fused with itself: train another run on its folds "
              "(make run on the same DATA reuses them)", file=sys.stderr)
        return 1
    first = kept[0].oof
    probs = np.stack([g.oof_probs for g in kept], axis=1)
    selection = select_runs([g.name for g in kept], probs, first["label"].to_numpy(), first["fold"].to_numpy(),
                            max_size=args.max_size)
    print(selection.describe())
    if len(selection.chosen) == 1:
        print(f"no run adds to {selection.chosen[0]} on these rows: submit it alone (nothing to fuse)")
    else:
        print(f"next: {selection.make_line()}   # expected local CV {selection.nested_acc:.5f} (nested)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
