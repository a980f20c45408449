"""Estimators and confidence intervals.

* `pass_at_k`: the unbiased estimator of Chen et al. 2021: 1 - C(n-c, k) / C(n, k).
* `wilson`: Wilson score interval for one proportion.
* `bootstrap_ci`: percentile bootstrap over questions (seeded) for a mean of per-question
  values (which may be fractional, e.g. the chance that maj@k is right).
* `paired_test`: paired bootstrap of the difference of two strategies on the same
  questions (two-sided p-value), with McNemar's exact test when both are 0/1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

Z95 = 1.959963984540054
BOOTSTRAP = 2000


def pass_at_k(n: int, c: int, k: int) -> float:
    if k > n:
        raise ValueError(f"k={k} > n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return (low, high)


def bootstrap_ci(
    values: Sequence[float], *, seed: int = 0, rounds: int = BOOTSTRAP
) -> tuple[float, float]:
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return (math.nan, math.nan)
    if np.all(data == data[0]):
        # every resample has the same mean; a 0/1 constant still deserves an interval
        return wilson(float(data.sum()), len(data)) if data[0] in (0.0, 1.0) else (data[0],) * 2
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(rounds, len(data)))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return (float(low), float(high))


@dataclass(frozen=True, slots=True)
class Paired:
    difference: float
    ci: tuple[float, float]
    p_bootstrap: float
    p_mcnemar: float | None


def paired_test(
    a: Sequence[float], b: Sequence[float], *, seed: int = 0, rounds: int = BOOTSTRAP
) -> Paired:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or len(x) == 0:
        raise ValueError("a paired test needs two equally long, non-empty lists")
    diff = x - y
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(rounds, len(diff)))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    centred = means - diff.mean()
    p_boot = float(np.mean(np.abs(centred) >= abs(diff.mean()) - 1e-12))
    p_mcnemar = None
    if set(np.unique(np.concatenate([x, y]))) <= {0.0, 1.0}:
        only_a = int(np.sum((x == 1) & (y == 0)))
        only_b = int(np.sum((x == 0) & (y == 1)))
        total = only_a + only_b
        p_mcnemar = 1.0 if total == 0 else float(sps.binomtest(only_a, total, 0.5).pvalue)
    return Paired(float(diff.mean()), (float(low), float(high)), p_boot, p_mcnemar)
