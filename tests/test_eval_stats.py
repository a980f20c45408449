"""Estimators against brute force, and interval coverage by simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ponder.eval.replay import budgets
from ponder.eval.stats import bootstrap_ci, paired_test, pass_at_k, wilson


@pytest.mark.parametrize("n", [1, 2, 3, 5, 6])
def test_pass_at_k_matches_enumeration(n: int) -> None:
    for c in range(n + 1):
        outcomes = [1] * c + [0] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(outcomes, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, c, k) == pytest.approx(brute)


def test_budgets_are_powers_of_two_up_to_n() -> None:
    assert budgets(16) == [1, 2, 4, 8, 16]
    assert budgets(12) == [1, 2, 4, 8, 12]
    assert budgets(1) == [1]


def _coverage(interval, p: float, n: int, runs: int = 2000, seed: int = 1) -> float:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(runs):
        low, high = interval(rng.random(n) < p)
        hits += low <= p <= high
    return hits / runs


def test_wilson_interval_covers_95_percent() -> None:
    coverage = _coverage(lambda xs: wilson(float(xs.sum()), len(xs)), p=0.3, n=100)
    assert 0.93 <= coverage <= 0.97


def test_bootstrap_interval_covers_95_percent() -> None:
    def interval(xs: np.ndarray) -> tuple[float, float]:
        return bootstrap_ci(xs.astype(float), rounds=1000)

    coverage = _coverage(interval, p=0.4, n=200)
    assert 0.93 <= coverage <= 0.97


def test_paired_test_finds_a_real_difference_and_not_a_fake_one() -> None:
    rng = np.random.default_rng(0)
    base = (rng.random(200) < 0.4).astype(float)
    better = np.maximum(base, (rng.random(200) < 0.3).astype(float))
    real = paired_test(better, base)
    assert real.difference > 0 and real.p_bootstrap < 0.01
    assert real.p_mcnemar is not None and real.p_mcnemar < 0.01
    same = paired_test(base, base)
    assert same.difference == 0 and same.p_mcnemar == 1.0


def test_degenerate_inputs() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = bootstrap_ci([1.0] * 10)
    assert low < 0.8 and high == pytest.approx(1.0)
    assert math.isnan(bootstrap_ci([])[0])
    with pytest.raises(ValueError):
        paired_test([1.0], [1.0, 0.0])
