"""Scoring classifiers: accuracy with its Wilson interval, and the paired comparison of two on the same rows,
McNemar's exact test (no scipy); and the percentile interval every bootstrap of the project reports.

Only the rows where exactly one of the two is right carry information. Under "no difference" each such row is a fair
coin flip, so the count won by one side is Binomial(n, 1/2) and the two-sided p-value is exact, from integer
binomial coefficients (Python's big integers: no overflow, no approximation, even for tens of thousands of rows).
"""
from __future__ import annotations

import dataclasses
import math
from statistics import NormalDist
from typing import Any

import numpy as np


def accuracy(scores: Any, labels: Any) -> float:
    """Fraction of rows whose highest score is the label: the one accuracy of digitkit, for numpy arrays and torch
    tensors alike (on any device).

    Args:
        scores: logits or probabilities, (N, C).
        labels: class indices (N,), or one-hot / smoothed / soft targets (N, C) whose argmax is the class (ties in a
            soft mixture go to the lower index).

    Returns:
        Accuracy in [0, 1] as a Python float; NaN for N = 0.
    """
    if labels.ndim == 2:
        labels = labels.argmax(-1)
    return float((scores.argmax(-1) == labels).sum()) / len(labels) if len(labels) else math.nan


def wilson_interval(correct: int, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of an accuracy of ``correct`` out of ``n`` rows (rows taken as independent draws):
    unlike the normal approximation it stays inside [0, 1] and is honest near 1, where local CVs of digits live.
    (NaN, NaN) for n = 0."""
    assert 0 <= correct <= n, (correct, n)
    if n == 0:
        return math.nan, math.nan
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p, z2 = correct / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (0.0 if correct == 0 else centre - half), (1.0 if correct == n else centre + half)


@dataclasses.dataclass(frozen=True)
class PairedTest:
    """McNemar's exact test of ``a`` vs ``b`` on the same rows.

    Attributes:
        n_rows: rows compared.
        acc_a, acc_b: accuracy of each on those rows.
        only_a: rows ``a`` got right and ``b`` wrong.
        only_b: rows ``b`` got right and ``a`` wrong.
        p_value: exact two-sided p-value of "a and b are equally accurate".
    """

    n_rows: int
    acc_a: float
    acc_b: float
    only_a: int
    only_b: int
    p_value: float

    def as_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)

    def describe(self, a: str = "a", b: str = "b") -> str:
        verdict = "significant at 5 %" if self.p_value < 0.05 else "not significant: treat as noise"
        return (f"{b} {self.acc_b:.5f} vs {a} {self.acc_a:.5f} on {self.n_rows} rows; rows only {b} gets right: "
                f"{self.only_b}, only {a}: {self.only_a}; McNemar exact p = {self.p_value:.4g} ({verdict})")


def binomial_two_sided_p(k: int, n: int) -> float:
    """Exact two-sided p-value of ``k`` successes in ``n`` fair coin flips: P(X ≤ m) + P(X ≥ n − m), m = min(k, n − k).

    The distribution is symmetric, so this equals the "sum of outcomes no more likely than k" definition (R's
    ``binom.test``, scipy's ``binomtest``). 1.0 when n = 0 or k = n / 2.
    """
    assert 0 <= k <= n, (k, n)
    m = min(k, n - k)
    if n == 0 or 2 * m == n:
        return 1.0
    term, tail = 1, 1  # C(n, 0)
    for i in range(m):
        term = term * (n - i) // (i + 1)  # C(n, i + 1), exact
        tail += term
    return min(1.0, (2 * tail) / (1 << n))  # int / int rounds correctly even for huge n


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> PairedTest:
    """Compare two classifiers from their per-row correctness, bool (N,) each, same rows in the same order."""
    correct_a, correct_b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    assert correct_a.shape == correct_b.shape and correct_a.ndim == 1, (correct_a.shape, correct_b.shape)
    only_a = int((correct_a & ~correct_b).sum())
    only_b = int((correct_b & ~correct_a).sum())
    n = len(correct_a)
    return PairedTest(n_rows=n, acc_a=float(correct_a.mean()) if n else float("nan"),
                      acc_b=float(correct_b.mean()) if n else float("nan"), only_a=only_a, only_b=only_b,
                      p_value=binomial_two_sided_p(min(only_a, only_b), only_a + only_b))


def percentile_interval(samples: Any, *, level: float = 0.95, min_samples: int = 20) -> tuple[float, float]:
    """The ``level`` percentile interval of bootstrap ``samples`` (the nearest sample at each end, so that an
    infinite sample stays infinite); (NaN, NaN) with fewer than ``min_samples`` samples."""
    samples = np.asarray(samples, dtype=float)
    if len(samples) < min_samples:
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail], method="nearest")
    return float(low), float(high)
