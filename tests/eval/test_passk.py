"""pass@k (unbiased estimator against subset enumeration, monotone in k and c), its mean, maj@k
(rlobj/eval/passk.py), golden values and bad input (with the mean over problems of
rlobj/eval/plots.py's pass_at_k_curve)."""

import itertools
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlobj.eval import maj_at_k, pass_at_k, pass_at_k_curve, pass_at_k_mean


def test_hand_values():
    assert pass_at_k(8, 2, 1) == pytest.approx(0.25)
    # 1 - C(6,4)/C(8,4) = 1 - 15/70
    assert pass_at_k(8, 2, 4) == pytest.approx(1 - 15 / 70)
    assert pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(8, 1, 8) == 1.0
    assert pass_at_k(5, 5, 3) == 1.0


def _brute(n, c, k):
    # fraction of k-subsets of n samples (c of them correct) that contain a correct one
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_matches_subset_enumeration(args):
    n, c, k = args
    assert pass_at_k(n, c, k) == pytest.approx(_brute(n, c, k), abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


@settings(max_examples=40)
@given(st.integers(2, 20).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n - 1))))
def test_monotone_in_k_and_c(args):
    n, c, k = args
    assert pass_at_k(n, c, k) <= pass_at_k(n, c, k + 1) + 1e-12
    if c < n:
        assert pass_at_k(n, c, k) <= pass_at_k(n, c + 1, k) + 1e-12
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_mean_and_errors():
    assert pass_at_k_mean([(4, 4), (4, 0)], 1) == 0.5
    with pytest.raises(ValueError, match="k must lie"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="c \\(correct"):
        pass_at_k(4, 5, 1)
    with pytest.raises(TypeError, match="n must be an int"):
        pass_at_k(4.0, 1, 1)
    with pytest.raises(ValueError, match="at least one"):
        pass_at_k_mean([], 1)


def test_maj_at_k():
    assert maj_at_k(["3", "4", "3", None], [True, False, True, False]) == 1.0
    assert maj_at_k(["4", "3", "3", "4"], [False, True, True, False]) == 0.0  # tie -> first seen
    assert maj_at_k([None, None], [False, False]) == 0.0
    assert maj_at_k(["1", "2", "2"], [True, False, False], k=1) == 1.0
    with pytest.raises(ValueError, match="same length"):
        maj_at_k(["1"], [True, False])
    with pytest.raises(ValueError, match="k must lie"):
        maj_at_k(["1"], [True], k=2)


# =========================================================================== pass@k
@settings(max_examples=80)
@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_is_the_exact_expectation_over_all_subsets(args):
    n, c, k = args
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    exact = Fraction(sum(any(samples[i] for i in subset) for subset in subsets), len(subsets))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12)
    # monotone in k (non-decreasing), and in c
    assert all(pass_at_k(n, c, j) <= pass_at_k(n, c, j + 1) + 1e-12 for j in range(1, n))
    if c < n:
        assert pass_at_k(n, c, k) <= pass_at_k(n, c + 1, k) + 1e-12


def test_pass_at_k_golden_and_bad_input():
    # n = 5, c = 2, k = 2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k_curve([(5, 2), (5, 0)], [1, 2]) == {1: pytest.approx(0.2), 2: pytest.approx(0.35)}
    with pytest.raises(ValueError, match=r"k must lie in \[1, n=4\]"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="pass_at_k_curve: counts must hold"):
        pass_at_k_curve([], [1])


def test_maj_at_k_golden():
    answers = ["7", "5", "7", "5", "5", None]
    correct = [True, False, True, False, False, False]
    assert maj_at_k(answers, correct, k=1) == 1.0   # "7" alone
    assert maj_at_k(answers, correct, k=4) == 1.0   # 7:2, 5:2 -> tie, "7" seen first
    assert maj_at_k(answers, correct, k=5) == 0.0   # 5:3 beats 7:2
    assert maj_at_k([None, None], [False, False]) == 0.0
