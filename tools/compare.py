"""`make compare A=<run> B=<run>`: is B really better than A? Only on the same folds file.

    python -m tools.compare --a cpu-recipe --b cpu-recipe-s7 [--runs-dir runs] [--data data/digit-recognizer]

Runs are folders of runs/ (or weights/ for the Kaggle train output) holding manifest.json and oof.csv. Prints
McNemar's exact test on the OOF rows both predicted, the rows only A / only B gets right, the accuracy per digit,
and the verdict in one line; writes runs/compare/<A>-vs-<B>/ (compare.json, per_class.csv and flips.png, the digits
that flipped, drawn from DATA's train.csv when it is the one the runs trained on).

The same folds file is required, not merely the same train.csv: with other folds a row is out-of-fold for different
models in the two runs, and the paired test would compare different experiments on each row. Local-only code.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd

from core.atomic import write_text_atomic
from core.data import NUM_CLASSES, DataError, find_competition_file, read_train
from core.groups import EnsembleError, Group, load_group
from core.manifest import ManifestError
from core.plots import plot_digits
from core.stats import PairedTest, mcnemar_exact
from tools.journal import RunNotFound, run_folder

SIGNIFICANCE = 0.05


class CompareError(EnsembleError):
    """The two runs cannot be compared; the message names both runs, what differs and the fix."""


@dataclasses.dataclass
class RunComparison:
    """``a`` vs ``b`` on their shared OOF rows.

    Attributes:
        row_ids: int (n,) the train.csv rows both runs predicted out-of-fold, ascending.
        labels, pred_a, pred_b: int (n,) on those rows.
        conf_a, conf_b: (n,) each run's probability of its own prediction.
        test: McNemar's exact test (``only_a``: rows only ``a`` gets right).
    """

    a: str
    b: str
    row_ids: np.ndarray
    labels: np.ndarray
    pred_a: np.ndarray
    pred_b: np.ndarray
    conf_a: np.ndarray
    conf_b: np.ndarray
    test: PairedTest

    @property
    def verdict(self) -> str:
        """One line: "<b> is better, p = 0.003" / "no detectable difference (p = 0.39)"."""
        test = self.test
        if test.p_value >= SIGNIFICANCE or test.only_a == test.only_b:
            return (f"no detectable difference between {self.a} and {self.b} (McNemar exact p = {test.p_value:.2g}; "
                    f"{test.only_a} vs {test.only_b} rows only one of them gets right)")
        better, worse = (self.b, self.a) if test.only_b > test.only_a else (self.a, self.b)
        return f"{better} is better than {worse}, p = {test.p_value:.2g}"

    def per_class(self) -> pd.DataFrame:
        """One row per digit: rows, each run's accuracy, the difference b − a, and the rows each alone gets right."""
        right_a, right_b = self.pred_a == self.labels, self.pred_b == self.labels
        rows = []
        for digit in range(NUM_CLASSES):
            mine = self.labels == digit
            n = int(mine.sum())
            acc_a = float(right_a[mine].mean()) if n else float("nan")
            acc_b = float(right_b[mine].mean()) if n else float("nan")
            rows.append({"digit": digit, "rows": n, f"acc {self.a}": acc_a, f"acc {self.b}": acc_b,
                         "diff (b − a)": acc_b - acc_a, f"only {self.a}": int((right_a & ~right_b & mine).sum()),
                         f"only {self.b}": int((right_b & ~right_a & mine).sum())})
        return pd.DataFrame(rows)

    def flipped(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions (into ``row_ids``) of the rows only ``b`` gets right, then only ``a``; each ordered by how sure
        the wrong run was of its wrong answer (the most striking first)."""
        right_a, right_b = self.pred_a == self.labels, self.pred_b == self.labels
        only_b, only_a = np.flatnonzero(right_b & ~right_a), np.flatnonzero(right_a & ~right_b)
        return only_b[np.argsort(-self.conf_a[only_b], kind="stable")], \
            only_a[np.argsort(-self.conf_b[only_a], kind="stable")]

    def plot_flips(self, images: np.ndarray, *, max_tiles: int = 48, path=None):
        """A grid of the digits that flipped: uint8 (N, 28, 28) train images indexed by train row. Each caption
        reads "<true>: a→<pred> b→<pred>"; the rows only ``b`` gets right come first."""
        only_b, only_a = self.flipped()
        share_b = min(len(only_b), max(max_tiles - len(only_a), max_tiles // 2))
        picked = np.concatenate([only_b[:share_b], only_a[:max_tiles - share_b]]).astype(np.int64)
        captions = [f"{self.labels[i]}: a→{self.pred_a[i]} b→{self.pred_b[i]}" for i in picked]
        title = (f"a = {self.a}, b = {self.b}: first the {min(share_b, len(only_b))} of {len(only_b)} rows only b "
                 f"gets right, then {len(picked) - min(share_b, len(only_b))} of {len(only_a)} only a")
        return plot_digits(images[self.row_ids[picked]], captions, title=title, path=path)


def compare_runs(a: Group, b: Group) -> RunComparison:
    """``a`` vs ``b`` on the OOF rows both predicted.

    Raises:
        CompareError: the runs were made on different folds files or train.csv files, or share no OOF row.
    """
    pair = f"runs {a.name!r} and {b.name!r}"
    fix = (f"retrain one of them on the other's folds: make run reuses one folds.csv per DATA folder; set "
           f"folds_path to {a.path / 'folds.csv'} otherwise")
    if a.manifest.get("train_sha256") != b.manifest.get("train_sha256"):
        raise CompareError(f"{pair} were trained on different train.csv files (train_sha256 "
                           f"{str(a.manifest.get('train_sha256'))[:12]} vs "
                           f"{str(b.manifest.get('train_sha256'))[:12]}): "
                           "their OOF rows are different digits; compare runs of the same data")
    if a.folds_sha256 is None or a.folds_sha256 != b.folds_sha256:
        raise CompareError(f"{pair} used different folds files (folds.csv sha256 {str(a.folds_sha256)[:12]} vs "
                           f"{str(b.folds_sha256)[:12]}): a row's OOF prediction comes from models trained on "
                           f"different rows in each, so a paired test would not compare like with like; {fix}")
    shared, in_a, in_b = np.intersect1d(a.oof["row_id"].to_numpy(), b.oof["row_id"].to_numpy(), return_indices=True)
    if not len(shared):
        raise CompareError(f"{pair} share no OOF row (each trained other folds: folds_to_run); train both on all "
                           "folds, or on common ones")
    labels = a.oof["label"].to_numpy()[in_a]
    probs_a, probs_b = a.oof_probs[in_a], b.oof_probs[in_b]
    pred_a, pred_b = probs_a.argmax(1), probs_b.argmax(1)
    return RunComparison(a=a.name, b=b.name, row_ids=shared, labels=labels, pred_a=pred_a, pred_b=pred_b,
                         conf_a=probs_a.max(1), conf_b=probs_b.max(1),
                         test=mcnemar_exact(pred_a == labels, pred_b == labels))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="the reference run")
    parser.add_argument("--b", required=True, help="the challenger run")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"), help='the run named "weights"')
    parser.add_argument("--data", type=Path, default=Path("data/digit-recognizer"),
                        help="the runs' competition folder (for the grid of flipped digits)")
    args = parser.parse_args(argv)
    try:
        a, b = (load_group(run_folder(name, args.runs_dir, args.weights_dir), name) for name in (args.a, args.b))
        comparison = compare_runs(a, b)
    except (EnsembleError, ManifestError, RunNotFound, ValueError) as err:
        print(f"make compare: {err}", file=sys.stderr)
        return 1
    out_dir = args.runs_dir / "compare" / f"{Path(args.a).name}-vs-{Path(args.b).name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    test = comparison.test
    per_class = comparison.per_class()
    assert a.folds_sha256 is not None  # compare_runs refuses runs without one
    print(f"A = {a.name} ({a.model}), B = {b.name} ({b.model}); same folds file {a.folds_sha256[:12]}")
    print(test.describe(a.name, b.name))
    with pd.option_context("display.width", 200):
        print(per_class.to_string(index=False, formatters={"diff (b − a)": lambda v: f"{v:+.4f}"},
                                  float_format=lambda v: f"{v:.4f}"))
    write_text_atomic(out_dir / "per_class.csv", per_class.to_csv(index=False, float_format="%.6g"))
    figure = None
    try:
        train = read_train(find_competition_file(args.data, "train"))
        if train.fingerprint != a.manifest.get("train_sha256"):
            print(f"grid of flipped digits skipped: {args.data}'s train.csv is not the one these runs trained on "
                  f"(sha256 {train.fingerprint[:12]} vs {str(a.manifest.get('train_sha256'))[:12]}); pass "
                  "DATA=<their competition folder>")
        else:
            comparison.plot_flips(train.images, path=out_dir / "flips.png")
            figure = out_dir / "flips.png"
    except (DataError, FileNotFoundError) as err:
        print(f"grid of flipped digits skipped: {err}")
    report = {"a": a.name, "b": b.name, "folds_sha256": a.folds_sha256, "test": test.as_dict(),
              "verdict": comparison.verdict, "per_class": json.loads(per_class.to_json(orient="records"))}
    write_text_atomic(out_dir / "compare.json", json.dumps(report, indent=2) + "\n")
    print(f"files: {out_dir}/ (compare.json, per_class.csv{', flips.png' if figure else ''})")
    print(comparison.verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
