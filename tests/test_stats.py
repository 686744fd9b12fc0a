import math

import numpy as np
import pytest

from core.stats import accuracy, binomial_two_sided_p, mcnemar_exact


def test_accuracy_takes_numpy_like_torch_and_soft_targets():
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    labels = np.array([0, 1, 0, 0])
    assert accuracy(probs, labels) == pytest.approx(0.75) and isinstance(accuracy(probs, labels), float)
    assert accuracy(probs, np.eye(3)[labels]) == pytest.approx(0.75)
    assert math.isnan(accuracy(probs[:0], labels[:0]))


@pytest.mark.parametrize("k, n, expected", [
    (0, 0, 1.0), (0, 1, 1.0), (0, 5, 2 / 32), (5, 5, 2 / 32), (2, 10, 2 * 56 / 1024), (8, 10, 2 * 56 / 1024),
    (5, 10, 1.0), (1, 20, 2 * 21 / 2**20), (3, 7, 1.0), (0, 6, 2 / 64),
])
def test_exact_binomial_matches_closed_form(k, n, expected):
    assert binomial_two_sided_p(k, n) == pytest.approx(expected, rel=1e-12)


def test_exact_binomial_matches_scipy_where_available():
    stats = pytest.importorskip("scipy.stats")  # not on the notebooks' allow-list: only the test compares with it
    for n in (1, 2, 7, 13, 40, 101, 500):
        for k in range(0, n + 1, max(1, n // 9)):
            assert binomial_two_sided_p(k, n) == pytest.approx(stats.binomtest(k, n, 0.5).pvalue, rel=1e-9), (k, n)


def test_exact_binomial_is_exact_for_many_disagreements():
    # n = 10000: 2 * P(X <= 4900), X ~ Bin(10000, 1/2) = 0.0465855277 (scipy.stats.binomtest(4900, 10000)).
    assert binomial_two_sided_p(4900, 10000) == pytest.approx(0.0465855277, rel=1e-8)
    assert binomial_two_sided_p(0, 5000) == 0.0  # 2 / 2**5000 underflows to 0, without an OverflowError


def test_mcnemar_counts_only_discordant_rows():
    a = np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 0], dtype=bool)
    b = np.array([1, 1, 0, 0, 0, 1, 1, 1, 1, 0], dtype=bool)
    test = mcnemar_exact(a, b)
    assert (test.only_a, test.only_b, test.n_rows) == (2, 1, 10)
    assert test.acc_a == pytest.approx(0.7) and test.acc_b == pytest.approx(0.6)
    assert test.p_value == pytest.approx(1.0)  # 1 of 3 discordant rows: no evidence
    assert mcnemar_exact(b, a).p_value == test.p_value  # symmetric


def test_mcnemar_textbook_example():
    # 0 vs 10 discordant rows: p = 2 / 2**10
    a = np.r_[np.ones(90, bool), np.zeros(10, bool)]
    b = np.ones(100, bool)
    test = mcnemar_exact(a, b)
    assert (test.only_a, test.only_b) == (0, 10)
    assert test.p_value == pytest.approx(2 / 1024)
    assert "significant at 5 %" in test.describe("none", "tta")
    assert math.isclose(test.as_dict()["p_value"], test.p_value)


def test_wilson_interval_closed_form():
    from core.stats import wilson_interval

    low, high = wilson_interval(81, 100)  # Wilson (1927) score interval, z = 1.959964: 0.7222 … 0.8749
    assert low == pytest.approx(0.72221, abs=1e-5) and high == pytest.approx(0.87485, abs=1e-5)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0  # stays in [0, 1]
    assert wilson_interval(3, 10)[0] == pytest.approx(1 - wilson_interval(7, 10)[1])  # symmetric
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    narrow, wide = wilson_interval(41844, 42000), wilson_interval(3988, 4000)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
