"""Estimators, confidence intervals and paired tests for accuracies measured over questions.

* `pass_at_k`: the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
  Trained on Code"): with c right among n samples, 1 - C(n-c, k) / C(n, k).
* `wilson`: the Wilson score interval of one proportion (0/1 outcomes per question).
* `bootstrap_ci`: percentile bootstrap over questions, seeded, for a mean of per-question
  values that may be fractional (the chance that maj@k is right on that question).
* `interval`: Wilson when every per-question value is 0 or 1, the bootstrap otherwise.
* `paired_test`: two strategies on the same questions: the paired bootstrap of the mean
  difference (interval and two-sided p-value) and, when both are 0/1 per question, McNemar's
  exact test on the discordant questions.
* `flaws_ceiling`: the best-of-k accuracy an imperfect verifier allows (Stroebl et al. 2024).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP_ROUNDS = 2000
"""Resamples of the questions per bootstrap interval or paired test."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples drawn without replacement from n is right."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # the product form of 1 - C(n-c, k) / C(n, k): no huge binomials
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # at p = 0 or 1 the bound is exactly 0 or 1; rounding would leave it a hair inside
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return (low, high)


def bootstrap_means(values: np.ndarray, seed: int, rounds: int = BOOTSTRAP_ROUNDS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return values[rng.integers(0, len(values), size=(rounds, len(values)))].mean(axis=1)


def bootstrap_ci(
    values: Sequence[float], *, seed: int = 0, rounds: int = BOOTSTRAP_ROUNDS
) -> tuple[float, float]:
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        return (math.nan, math.nan)
    low, high = np.quantile(bootstrap_means(data, seed, rounds), [0.025, 0.975])
    return (float(low), float(high))


def is_binary(values: Sequence[float] | np.ndarray) -> bool:
    data = np.asarray(values, dtype=float)
    return bool(np.all((data == 0.0) | (data == 1.0)))


def interval(values: Sequence[float], *, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean: Wilson for 0/1 outcomes, else the bootstrap."""
    if len(values) == 0:
        return (math.nan, math.nan)
    if is_binary(values):
        return wilson(float(np.sum(values)), len(values))
    return bootstrap_ci(values, seed=seed)


@dataclass(frozen=True, slots=True)
class Paired:
    difference: float
    """Mean of a - b over the questions."""
    ci: tuple[float, float]
    p_bootstrap: float
    p_mcnemar: float | None
    """McNemar's exact p-value; None unless both are 0/1 per question."""
    a_only: int | None = None
    """Questions only a gets right (McNemar's discordant pairs)."""
    b_only: int | None = None


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar: the discordant questions as a fair coin under H0."""
    total = a_only + b_only
    if total == 0:
        return 1.0
    from scipy.stats import binomtest  # scipy.stats takes ~0.6 s to import: only when needed

    return float(binomtest(a_only, total, 0.5).pvalue)


def paired_test(
    a: Sequence[float], b: Sequence[float], *, seed: int = 0, rounds: int = BOOTSTRAP_ROUNDS
) -> Paired:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or len(x) == 0:
        raise ValueError("a paired test needs two equally long, non-empty lists")
    diff = x - y
    observed = float(diff.mean())
    means = bootstrap_means(diff, seed, rounds)
    low, high = np.quantile(means, [0.025, 0.975])
    # H0 (no difference) by shifting the bootstrap distribution to mean 0; the +1s keep a
    # Monte Carlo p-value honest (never 0 from finitely many rounds: at least 1/(rounds+1))
    extreme = int(np.sum(np.abs(means - observed) >= abs(observed) - 1e-12))
    p_boot = (extreme + 1) / (len(means) + 1)
    if not (is_binary(x) and is_binary(y)):
        return Paired(observed, (float(low), float(high)), p_boot, None)
    a_only = int(np.sum((x == 1) & (y == 0)))
    b_only = int(np.sum((x == 0) & (y == 1)))
    return Paired(
        observed, (float(low), float(high)), p_boot, mcnemar_exact(a_only, b_only), a_only, b_only
    )


def flaws_ceiling(p: Sequence[float], false_positive: float, k: float) -> float:
    """Best-of-k accuracy allowed by a verifier with false-positive rate f (Stroebl et al.
    2024, "Inference Scaling fLaws: The Limits of LLM Resampling with Imperfect Verifiers").

    Their resampling model: each sample of question i is right with probability p_i; the
    verifier accepts every right sample and a wrong one with probability f; the first of k
    samples it accepts is the answer. Then

        P(right) = p_i / (p_i + (1 - p_i) f) * (1 - ((1 - p_i)(1 - f))^k)

    averaged over questions. With f = 0 this is pass@k (with replacement); with f > 0 it
    stays below p_i / (p_i + (1 - p_i) f) however large k grows (k = inf gives that limit).
    """
    if not p:
        return math.nan
    f = false_positive
    total = 0.0
    for pi in p:
        accept = pi + (1.0 - pi) * f
        if accept <= 0.0:
            continue
        reach = 1.0 if math.isinf(k) else 1.0 - (1.0 - accept) ** k
        total += pi / accept * reach
    return total / len(p)
