"""Estimators, confidence intervals and paired tests for accuracies measured over questions.

* `pass_at_k`: the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
  Trained on Code"): with c right among n samples, 1 - C(n-c, k) / C(n, k).
* `wilson`: the Wilson score interval of one proportion of independent 0/1 outcomes.
* `interval`: the 95% interval of a mean of per-question values in [0, 1], fractional (a
  subset mean, pass@k) or 0/1 alike: one method for every row of a table (see its docstring).
* `paired_test`: two lines on the same questions: a sign-flip permutation test of the mean
  difference, the interval that inverts it, and how many questions differ.
* `holm`: Holm's step-down adjustment of the p-values of one family of tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ponder import seeds

Z95 = 1.959963984540054
ALPHA = 0.05
"""Two-sided level of every interval (95%) and test here."""
POSTERIOR_DRAWS = 4000
"""Draws from the posterior of the mean per fractional interval (0/1 values need none)."""
JEFFREYS = 0.5
"""Prior weight `interval` puts at each of 0 and 1: Jeffreys' Beta(1/2, 1/2)."""
PERMUTATIONS = 10_000
"""Random sign flips per paired test when the exact distribution is too large to list."""
EXACT_SUPPORT = 30_000
"""Largest number of distinct sums the exact sign-flip distribution may have off a lattice."""
LATTICE_UNITS = 4096
"""Finest lattice 1/L of differences whose exact distribution is computed on it."""
LATTICE_WORK = 50_000_000
"""Largest (differing questions) x (sum of |differences| x L) the lattice computation does."""
INTERVAL = "dirichlet-jeffreys"
"""The name `interval`'s method goes by in tables."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples drawn without replacement from n is right."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    # the product form of 1 - C(n-c, k) / C(n, k): no huge binomials
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of `successes` in `n` independent 0/1 trials (n may be an
    effective, fractional count)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denominator
    # at p = 0 or 1 the bound is exactly 0 or 1; rounding would leave it a hair inside
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return (low, high)


def interval(
    values: Sequence[float], *, seed: int = 0, draws: int = POSTERIOR_DRAWS
) -> tuple[float, float]:
    """95% interval of the population mean of per-question values in [0, 1].

    The equal-tailed interval of the posterior of the mean under a Dirichlet-process prior
    whose base measure puts Jeffreys' weight 1/2 at 0 and at 1: the mean is sum_j w_j v_j
    over the distinct observed values v_j and the two pseudo-values 0 and 1, with weights
    Dirichlet(count_j, ..., 1/2, 1/2) (Rubin's Bayesian bootstrap, plus one pseudo-question
    split between the ends of [0, 1]). Why this one:

    * one method for every row: on 0/1 values the posterior is Beta(x + 1/2, n - x + 1/2),
      the Jeffreys interval (computed exactly; recommended by Brown, Cai & DasGupta 2001),
      so a line does not change method when its values become 0/1 at k = N;
    * it does not collapse: a percentile bootstrap of values that are nearly all 1 (pass@k
      at large k) is a point, while here the pseudo-question keeps the room that a few
      unseen low questions could take; on spread-out values it is the Bayesian bootstrap;
    * when every value is 0 (or every one is 1) the far bound is Clopper-Pearson's
      1 - (alpha/2)^(1/n) (or (alpha/2)^(1/n)): Brown, Cai & DasGupta's modification of
      Jeffreys at x = 0 and x = n, whose equal-tailed bound is too close there;
    * the bounds are moved to the observed mean in the rare case the shrinkage toward 1/2
      leaves it outside (values nearly all at one end), so the interval always holds it.

    Simulated coverage (tests/test_eval_stats.py) is 93-97% for 30-100 questions with rates
    near 0, near 1, in the middle and mixtures with many questions at exactly 0 or 1, for
    means of samples, pass@k and subset majority votes. Values that are all (or nearly all)
    0 or 1 inherit the binomial's coverage, which oscillates with the rate and the number of
    questions; averaged over a band of rates it is 95%. Draws are seeded by `seed`.
    """
    data = np.asarray(values, dtype=float)
    n = len(data)
    if n == 0:
        return (math.nan, math.nan)
    if np.any((data < 0.0) | (data > 1.0)):
        raise ValueError("interval needs per-question values in [0, 1]")
    tail = ALPHA / 2
    mean = float(data.mean())
    if mean == 0.0:
        return (0.0, 1.0 - tail ** (1.0 / n))
    if mean == 1.0:
        return (tail ** (1.0 / n), 1.0)
    # the distinct values with 0 and 1 always among them (levels[0] == 0, levels[-1] == 1)
    levels, counts = np.unique(np.concatenate([data, [0.0, 1.0]]), return_counts=True)
    weights = counts.astype(float)
    weights[[0, -1]] += JEFFREYS - 1.0  # the prior's weight in place of the listing's 1
    if len(levels) == 2:
        from scipy.stats import beta  # scipy.stats takes ~0.6 s to import: only when needed

        low, high = beta.ppf([tail, 1.0 - tail], weights[1], weights[0])
    else:
        rng = seeds.rng(seed, "interval")
        gammas = rng.gamma(weights, size=(draws, len(weights)))
        means = gammas @ levels / gammas.sum(axis=1)
        low, high = np.quantile(means, [tail, 1.0 - tail])
    return (min(float(low), mean), max(float(high), mean))


@dataclass(frozen=True, slots=True)
class Paired:
    """A sign-flip test of a - b on the same questions (see `paired_test`)."""

    difference: float
    """Mean of a - b over the questions."""
    ci: tuple[float, float]
    """95% interval of the mean difference: the shifts delta the sign-flip test does not
    reject, so it holds 0 exactly when p > 0.05. It assumes a shift model (a - b - delta
    symmetric about 0 on every question), so on the side where many questions tie it can be
    tight: with every question tied it is [0, 0]."""
    p: float
    """Two-sided sign-flip p-value of no difference."""
    exact: bool
    """Whether `p` is exact (every sign vector counted) or a Monte Carlo estimate."""
    differing: int
    """Questions where a and b differ."""
    a_better: int
    """Of those, the questions where a is higher."""
    b_better: int


def _lattice(magnitudes: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The magnitudes as integer multiples of 1/L for the smallest L <= LATTICE_UNITS, or None.

    0/1 outcomes (L = 1), means over 64 subsets (L = 64) and shares of N samples (L = N)
    all lie on one."""
    levels = np.unique(magnitudes)
    scales = np.arange(1, LATTICE_UNITS + 1, dtype=float)[:, None]
    scaled = levels[None, :] * scales
    fits = np.all(np.abs(scaled - np.round(scaled)) <= 1e-9 * np.maximum(1.0, scaled), axis=1)
    if not fits.any():
        return None
    scale = int(np.argmax(fits)) + 1
    return np.round(magnitudes * scale).astype(np.int64), scale


def _flip_distribution(magnitudes: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The distribution of sum_i s_i m_i over the 2^n equally likely sign vectors s: its
    distinct values and their probabilities, or None when it has too many values to list.

    Equal magnitudes are grouped: a group of c contributes m (2B - c), B ~ Binomial(c, 1/2).
    On a lattice (`_lattice`) the chance of every integer total is built one question at a
    time; otherwise sums are listed group by group, equal ones merged, up to `EXACT_SUPPORT`."""
    lattice = _lattice(magnitudes) if len(magnitudes) else None
    if lattice is not None and len(magnitudes) * lattice[0].sum() <= LATTICE_WORK:
        units, scale = lattice
        total = int(units.sum())
        # chance[t]: the chance that the units of the questions flipped positive add up to t;
        # each question halves the mass and shifts one half by its units
        chance = np.zeros(total + 1)
        chance[0] = 1.0
        reach = 0
        for unit in units:
            chance[unit : reach + unit + 1] += chance[: reach + 1]
            chance[: reach + unit + 1] *= 0.5
            reach += unit
        return (2 * np.arange(total + 1) - total) / scale, chance
    from scipy.stats import binom  # scipy.stats takes ~0.6 s to import: only when needed

    levels, counts = np.unique(magnitudes, return_counts=True)
    support, probability = np.zeros(1), np.ones(1)
    for level, count in sorted(zip(levels, counts, strict=True), key=lambda x: -x[1]):
        if len(support) * (count + 1) > 10 * EXACT_SUPPORT:  # too big to merge cheaply
            return None
        heads = np.arange(count + 1)
        sums = (support[:, None] + level * (2 * heads - count)[None, :]).ravel()
        weights = (probability[:, None] * binom.pmf(heads, count, 0.5)[None, :]).ravel()
        # sums reached by different sign vectors differ only by rounding: merge them
        support, inverse = np.unique(np.round(sums, 10), return_inverse=True)
        probability = np.bincount(inverse, weights=weights)
        if len(support) > EXACT_SUPPORT:
            return None
    return support, probability


def _sign_flip(diff: np.ndarray, seed: int, rounds: int) -> Callable[[float], tuple[float, bool]]:
    """p(delta): the two-sided sign-flip p-value of "a - b - delta is symmetric about 0", and
    whether it is exact.

    Exact when the distribution can be listed; otherwise from `rounds` random sign vectors
    (drawn once, the same for every delta, so p is one function of delta) as
    (extreme + 1) / (rounds + 1), which is never 0 and keeps the test valid. A delta other
    than 0 shifts every question, and the questions with equal differences stay equal: it is
    listed when those groups allow at most `EXACT_SUPPORT` sums whatever delta is, so every
    delta but 0 is treated alike."""
    signs = np.empty((0, len(diff)))
    cache: dict[float, tuple[float, bool]] = {}
    _, groups = np.unique(diff, return_counts=True)
    shifts_listable = float(np.sum(np.log(groups + 1.0))) <= math.log(EXACT_SUPPORT)

    def p(delta: float) -> tuple[float, bool]:
        nonlocal signs
        if delta in cache:
            return cache[delta]
        shifted = diff - delta
        magnitudes = np.abs(shifted)
        # sums equal up to rounding count as equally extreme: a tie is not a rejection
        observed = abs(float(shifted.sum())) - 1e-9 * max(1.0, float(magnitudes.sum()))
        listed = None
        if delta == 0.0 or shifts_listable:
            listed = _flip_distribution(magnitudes[magnitudes > 0])
        if listed is not None:
            support, probability = listed
            result = (min(1.0, float(probability[np.abs(support) >= observed].sum())), True)
        else:
            if not len(signs):
                rng = seeds.rng(seed, "sign-flip")
                signs = rng.choice(np.array([-1.0, 1.0]), size=(rounds, len(diff)))
            extreme = int(np.count_nonzero(np.abs(signs @ magnitudes) >= observed))
            result = ((extreme + 1) / (rounds + 1), False)
        cache[delta] = result
        return result

    return p


def _edge(test: Callable[[float], float], estimate: float, far: float, alpha: float) -> float:
    """The bound of {delta : test(delta) > alpha} between `estimate` (inside) and `far`.

    When 0 lies between them it is tried first and the search continues on its side, so the
    interval holds 0 exactly when test(0) > alpha whatever the shape of test elsewhere."""
    if test(far) > alpha:
        return far
    inside, outside = estimate, far
    if min(estimate, far) < 0.0 < max(estimate, far):
        if test(0.0) > alpha:
            inside = 0.0
        else:
            outside = 0.0
    while abs(outside - inside) > 1e-5:
        middle = (inside + outside) / 2
        if test(middle) > alpha:
            inside = middle
        else:
            outside = middle
    return inside


def _differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or len(x) == 0:
        raise ValueError("a paired test needs two equally long, non-empty lists")
    return x - y


def sign_flip_p(
    a: Sequence[float], b: Sequence[float], *, seed: int = 0, rounds: int = PERMUTATIONS
) -> tuple[float, bool]:
    """The p-value of `paired_test` (and whether it is exact) without its interval."""
    return _sign_flip(_differences(a, b), seed, rounds)(0.0)


def paired_test(
    a: Sequence[float],
    b: Sequence[float],
    *,
    seed: int = 0,
    rounds: int = PERMUTATIONS,
    alpha: float = ALPHA,
) -> Paired:
    """Sign-flip permutation test of mean(a - b) = 0 over questions, with its interval.

    Under no difference a and b are exchangeable on each question, so each difference is as
    likely to have either sign: p is the share of the 2^n sign vectors whose |sum| is at least
    the observed one. Only questions that differ matter. The distribution is computed
    exactly when the differences lie on a lattice (0/1 outcomes, where this is the exact
    McNemar test on the discordant questions; means over 64 subsets; shares of N samples) or
    few questions differ; otherwise it is sampled (`rounds`, seeded by `seed`).

    The p-value counts ties in full rather than by half (mid-p): its size is at most alpha
    for any number of differing questions, which Holm's correction needs; the price is a
    test that rejects less than alpha when very few questions differ (with 6, the smallest
    possible p is 1/32).

    The interval inverts the test: delta is inside when the test of a - b - delta (the
    question values shifted by delta) does not reject at `alpha`. It is bounded by [-1, 1]
    (values are in [0, 1]); with 5 or fewer questions no shift is ever rejected.
    """
    diff = _differences(a, b)
    estimate = float(diff.mean())
    p_of = _sign_flip(diff, seed, rounds)

    def test(delta: float) -> float:
        return p_of(delta)[0]

    p, exact = p_of(0.0)
    low = _edge(test, estimate, -1.0, alpha)
    high = _edge(test, estimate, 1.0, alpha)
    return Paired(
        difference=estimate,
        ci=(low, high),
        p=p,
        exact=exact,
        differing=int(np.count_nonzero(diff)),
        a_better=int(np.count_nonzero(diff > 0)),
        b_better=int(np.count_nonzero(diff < 0)),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: rejecting those <= alpha keeps the chance of any
    false rejection in the family at most alpha, whatever the dependence between tests."""
    p = np.asarray(p_values, dtype=float)
    if len(p) == 0:
        return []
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.tolist()
