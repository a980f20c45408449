"""Estimators against brute-force enumeration, and interval coverage by simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ponder.eval.lines import budgets
from ponder.eval.stats import (
    bootstrap_ci,
    flaws_ceiling,
    interval,
    mcnemar_exact,
    paired_test,
    pass_at_k,
    wilson,
)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_pass_at_k_equals_enumeration_of_every_subset(n: int) -> None:
    for c in range(n + 1):
        outcomes = [1] * c + [0] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(outcomes, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_budgets_are_powers_of_two_then_n() -> None:
    assert budgets(16) == [1, 2, 4, 8, 16]
    assert budgets(12) == [1, 2, 4, 8, 12]
    assert budgets(1) == [1]


def _coverage(make_interval, p: float, n: int, runs: int = 2000, seed: int = 7) -> float:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    draws = rng.random((runs, n)) < p
    hits = 0
    for row in draws:
        low, high = make_interval(row)
        hits += low <= p <= high
    return hits / runs


@pytest.mark.parametrize(("p", "n"), [(0.3, 100), (0.7, 50)])
def test_wilson_interval_covers_the_true_rate_95_percent_of_the_time(p: float, n: int) -> None:
    coverage = _coverage(lambda xs: wilson(float(xs.sum()), len(xs)), p, n)
    assert 0.93 <= coverage <= 0.97


def test_bootstrap_interval_covers_the_true_mean_95_percent_of_the_time() -> None:
    # fractional per-question values, as maj@k replay gives: Beta-distributed, mean 0.4
    rng = np.random.default_rng(3)
    true_mean, runs, n = 0.4, 2000, 200
    hits = 0
    for i in range(runs):
        values = rng.beta(2.0, 3.0, size=n)
        low, high = bootstrap_ci(values, seed=i, rounds=1000)
        hits += low <= true_mean <= high
    assert 0.93 <= hits / runs <= 0.97


def test_interval_is_wilson_for_01_outcomes_and_bootstrap_otherwise() -> None:
    assert interval([1.0, 0.0, 1.0, 1.0]) == wilson(3, 4)
    low, high = interval([1.0] * 10)
    assert low < 0.8 and high == 1.0  # all right still leaves room below
    low, high = interval([0.25, 0.5, 0.75, 0.5], seed=1)
    assert 0.25 <= low <= 0.5 <= high <= 0.75
    assert math.isnan(interval([])[0])
    assert wilson(0, 0) == (0.0, 1.0)


def _mcnemar_by_enumeration(a_only: int, b_only: int) -> float:
    total = a_only + b_only
    probability = [math.comb(total, i) / 2**total for i in range(total + 1)]
    observed = probability[a_only]
    return min(1.0, sum(p for p in probability if p <= observed + 1e-15))


@pytest.mark.parametrize(("a_only", "b_only"), [(0, 0), (3, 0), (5, 1), (7, 7), (2, 9)])
def test_mcnemar_exact_equals_the_binomial_enumeration(a_only: int, b_only: int) -> None:
    if a_only + b_only == 0:
        assert mcnemar_exact(0, 0) == 1.0
        return
    assert mcnemar_exact(a_only, b_only) == pytest.approx(_mcnemar_by_enumeration(a_only, b_only))


def test_paired_test_finds_a_real_difference_and_not_a_fake_one() -> None:
    rng = np.random.default_rng(0)
    base = (rng.random(200) < 0.4).astype(float)
    better = np.maximum(base, (rng.random(200) < 0.3).astype(float))
    real = paired_test(better, base)
    assert real.difference > 0 and real.ci[0] > 0 and real.p_bootstrap < 0.01
    assert real.p_mcnemar is not None and real.p_mcnemar < 0.01 and real.b_only == 0
    same = paired_test(base, base)
    assert same.difference == 0 and same.p_mcnemar == 1.0 and same.p_bootstrap == 1.0
    fractional = paired_test([0.5, 0.25, 1.0], [0.5, 0.5, 0.0])
    assert fractional.p_mcnemar is None
    with pytest.raises(ValueError):
        paired_test([1.0], [1.0, 0.0])


def test_paired_bootstrap_rejects_about_5_percent_under_no_difference() -> None:
    rng = np.random.default_rng(11)
    rejections = 0
    runs = 300
    for i in range(runs):
        a = (rng.random(120) < 0.5).astype(float)
        b = (rng.random(120) < 0.5).astype(float)
        rejections += paired_test(a, b, seed=i, rounds=500).p_bootstrap < 0.05
    assert 0.02 <= rejections / runs <= 0.09


def test_flaws_ceiling_is_pass_at_k_for_a_perfect_verifier_and_capped_otherwise() -> None:
    rates = [0.1, 0.5, 0.0, 1.0]
    for k in (1, 2, 8, 64):
        with_replacement = np.mean([1 - (1 - p) ** k for p in rates])
        assert flaws_ceiling(rates, 0.0, k) == pytest.approx(with_replacement)
    capped = [flaws_ceiling(rates, 0.2, k) for k in (1, 4, 16, 256)]
    assert capped == sorted(capped)
    limit = flaws_ceiling(rates, 0.2, math.inf)
    assert capped[-1] == pytest.approx(limit, abs=1e-9)
    expected = np.mean([p / (p + (1 - p) * 0.2) for p in rates if p > 0] + [0.0])
    assert limit == pytest.approx(expected)
    assert limit < flaws_ceiling(rates, 0.0, math.inf)
