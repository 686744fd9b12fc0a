"""Two runs compared honestly: only on the same folds, McNemar's exact test on the OOF rows both predicted, what each
gets right that the other does not, per digit, and the digits that flipped.

The same folds file is required, not merely the same train.csv: with other folds a row is out-of-fold for different
models in the two runs, and the paired test would compare different experiments on each row.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from .data import NUM_CLASSES
from .groups import EnsembleError, Group
from .plots import plot_digits
from .stats import PairedTest, mcnemar_exact

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
                           f"{str(a.manifest.get('train_sha256'))[:12]} vs {str(b.manifest.get('train_sha256'))[:12]}): "
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
