"""Verifier statistics against scorers whose truth is known: pure noise, perfect,
adversarial, and one with a set per-sample true- and false-positive rate."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ponder.eval.bank import Sample
from ponder.eval.collect import QuestionData
from ponder.eval.datasets import Question
from ponder.eval.stats import wilson
from ponder.eval.verifiers import (
    THRESHOLDS,
    acceptance_rate,
    best_of_k,
    resampling_accuracy,
    verifier,
)
from ponder.tasks import get_task
from ponder.usage import Usage

TASK = get_task("math")
SCORER = "self-eval"
"""Scores on [0, 1]: probability(score) is the score itself."""


def _bank(right: np.ndarray, scores: np.ndarray) -> list[QuestionData]:
    """Questions whose gold answer is 1, their samples answering 1 (right) or 2 (wrong)."""
    out = []
    for q, (oks, marks) in enumerate(zip(right, scores, strict=True)):
        samples = tuple(
            Sample(i, i, "", "1" if ok else "2", "stop", Usage(), scores={SCORER: float(s)})
            for i, (ok, s) in enumerate(zip(oks, marks, strict=True))
        )
        out.append(QuestionData(Question(str(q), f"question {q}", "1"), samples, {}, True))
    return out


def _draw(questions: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True per-question rates (Beta(5, 5.4): mean 0.48) and the right/wrong of n samples."""
    rng = np.random.default_rng(seed)
    p = rng.beta(5.0, 5.4, size=questions)
    return p, rng.random((questions, n)) < p[:, None]


def _pooled(right: np.ndarray, accepted: np.ndarray) -> tuple[float, float]:
    tpr = acceptance_rate((accepted & right).sum(axis=1), right.sum(axis=1)).rate
    fpr = acceptance_rate((accepted & ~right).sum(axis=1), (~right).sum(axis=1)).rate
    return tpr, fpr


def _old_ceiling(right: np.ndarray, scores: np.ndarray) -> float:
    """What ponder reported before: the rate at which the top wrong sample outranks every
    right one on questions with both, put into p / (p + (1 - p) f) as if it were per sample."""
    mixed = right.any(axis=1) & ~right.all(axis=1)
    worst = np.where(right, -np.inf, scores).max(axis=1)
    best = np.where(right, scores, -np.inf).max(axis=1)
    f = float(np.mean(worst[mixed] > best[mixed]))
    p = right.mean(axis=1)
    return float(np.mean(np.where(p > 0, p / np.maximum(p + (1 - p) * f, 1e-300), 0.0)))


def _best_of_n(right: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean([best_of_k(s, r, len(s)) for s, r in zip(scores, right, strict=True)]))


def test_a_noise_scorer_allows_what_a_random_pick_gets_not_the_old_ceiling() -> None:
    """The issue's first case: random scores. Best-of-N picks a random sample, so it and the
    resampling limit both are the mean share of right samples (about 0.48), while the old
    "ceiling" said about 0.62."""
    _, right = _draw(2000, 16, seed=1)
    scores = np.random.default_rng(2).random(right.shape)
    share = right.mean(axis=1)
    tpr, fpr = _pooled(right, scores >= 0.5)
    limit = resampling_accuracy(share, tpr, fpr, math.inf)
    measured = _best_of_n(right, scores)
    # best-of-N is right on question i with chance share_i: 4 standard errors of the mean
    tolerance = 4 * math.sqrt(float(np.mean(share * (1 - share))) / len(share))
    assert abs(measured - share.mean()) < tolerance
    assert abs(limit - share.mean()) < tolerance
    assert abs(limit - measured) < 2 * tolerance
    assert 0.46 < measured < 0.50
    assert _old_ceiling(right, scores) == pytest.approx(0.62, abs=0.02)


def test_an_adversarial_scorer_allows_nothing_on_mixed_questions() -> None:
    """The issue's second case: wrong samples always score higher. The old "ceiling" was the
    mean share of right samples; best-of-N and the new limit are 0 on every question with a
    wrong sample and 1 on the questions that are all right."""
    _, right = _draw(500, 8, seed=3)
    scores = np.where(right, 0.2, 0.8)
    share = right.mean(axis=1)
    all_right = float(np.mean(right.all(axis=1)))
    tpr, fpr = _pooled(right, scores >= 0.5)
    assert (tpr, fpr) == (0.0, 1.0)
    assert _best_of_n(right, scores) == pytest.approx(all_right)
    assert resampling_accuracy(share, tpr, fpr, math.inf) == pytest.approx(all_right)
    assert _old_ceiling(right, scores) == pytest.approx(share.mean())
    assert share.mean() > all_right + 0.3


def test_a_perfect_scorer_reaches_pass_at_k() -> None:
    _, right = _draw(300, 8, seed=4)
    scores = np.where(right, 0.9, 0.1)
    share = right.mean(axis=1)
    tpr, fpr = _pooled(right, scores >= 0.5)
    assert (tpr, fpr) == (1.0, 0.0)
    any_right = float(np.mean(right.any(axis=1)))
    assert resampling_accuracy(share, tpr, fpr, math.inf) == pytest.approx(any_right)
    assert _best_of_n(right, scores) == pytest.approx(any_right)
    for k in (1, 2, 5):  # with replacement: 1 - (1 - p)^k
        expected = float(np.mean(1 - (1 - share) ** k))
        assert resampling_accuracy(share, tpr, fpr, k) == pytest.approx(expected)


def _simulate(p: np.ndarray, tpr: float, fpr: float, k: int, runs: int, seed: int) -> np.ndarray:
    """Resample until accepted, literally: per question and run, up to k tries, each right
    with chance p and accepted with chance tpr (right) or fpr (wrong); the first accepted
    try is the answer, and with none accepted the last try is. Returns 0/1 per run."""
    rng = np.random.default_rng(seed)
    right = rng.random((len(p), runs, k)) < p[:, None, None]
    accepted = rng.random(right.shape) < np.where(right, tpr, fpr)
    first = np.argmax(accepted, axis=2)
    chosen = np.where(accepted.any(axis=2), first, k - 1)
    return np.take_along_axis(right, chosen[..., None], axis=2)[..., 0].astype(float)


@pytest.mark.parametrize("k", [1, 3, 10, 80])
def test_resampling_accuracy_matches_a_simulated_resample_until_accept_run(k: int) -> None:
    """A verifier with a set per-sample TPR t = 0.7 and FPR f = 0.2. Given the same p_i the
    only randomness is the runs' outcomes, so the tolerance is 4 of their standard errors
    (computed from the formula's own per-question accuracies). k = 80 stands for k -> inf:
    a try is accepted with chance >= f = 0.2, so 80 tries all fail with chance < 2e-8."""
    t, f, runs = 0.7, 0.2, 20
    p = np.random.default_rng(5).beta(1.0, 1.5, size=2000)
    outcomes = _simulate(p, t, f, k, runs, seed=6)
    per_question = np.array([resampling_accuracy(np.array([x]), t, f, k) for x in p])
    se = math.sqrt(float(np.sum(per_question * (1 - per_question))) * runs) / outcomes.size
    assert resampling_accuracy(p, t, f, k) == pytest.approx(float(per_question.mean()))
    assert abs(float(outcomes.mean()) - resampling_accuracy(p, t, f, k)) < 4 * se
    if k == 80:
        limit = resampling_accuracy(p, t, f, math.inf)
        assert limit == pytest.approx(float(np.mean(p * t / (p * t + (1 - p) * f))))
        assert abs(float(outcomes.mean()) - limit) < 4 * se
    if k == 1:
        assert resampling_accuracy(p, t, f, 1) == pytest.approx(float(p.mean()))


def test_resampling_conventions_when_nothing_is_ever_accepted() -> None:
    # a = 0: all right but never accepted, or all wrong and never falsely accepted
    p = np.array([1.0, 0.0])
    for k in (1, 4, math.inf):
        assert resampling_accuracy(p, 0.0, 0.0, k) == pytest.approx(0.5)
        assert resampling_accuracy(np.array([1.0]), 0.0, 0.3, k) == 1.0
    # a rate measured on no samples (NaN) only meets p = 0 or 1, where it does not matter
    assert resampling_accuracy(np.array([0.0, 0.0]), math.nan, 0.4, math.inf) == 0.0
    assert resampling_accuracy(np.array([1.0]), 0.6, math.nan, 3) == 1.0
    assert math.isnan(resampling_accuracy(np.array([]), 0.5, 0.5, 2))
    # a useful verifier gains with k, up to its limit
    values = [resampling_accuracy(np.array([0.2, 0.5]), 0.8, 0.1, k) for k in (1, 2, 8, 64)]
    assert values == sorted(values)
    assert values[-1] == pytest.approx(
        resampling_accuracy(np.array([0.2, 0.5]), 0.8, 0.1, math.inf), abs=1e-6
    )


def test_best_of_k_equals_enumeration_of_every_subset_with_ties_sharing_credit() -> None:
    cases = [
        ([0.9, 0.9, 0.1, 0.5, 0.9], [True, False, True, False, False]),
        ([0.3, 0.3, 0.3], [True, False, False]),
        ([0.1, 0.7, 0.4, 0.7, 0.2, 0.4], [False, True, True, False, True, False]),
    ]
    for scores, right in cases:
        for k in range(1, len(scores) + 2):
            size = min(k, len(scores))
            credits = []
            for subset in itertools.combinations(range(len(scores)), size):
                top = max(scores[i] for i in subset)
                tied = [right[i] for i in subset if scores[i] == top]
                credits.append(sum(tied) / len(tied))
            expected = sum(credits) / len(credits)
            assert best_of_k(np.array(scores), np.array(right), k) == pytest.approx(expected)
    assert math.isnan(best_of_k(np.array([]), np.array([], dtype=bool), 2))


def test_the_report_wrapper_recovers_a_set_tpr_and_fpr() -> None:
    """Scores from a verifier with TPR 0.7 and FPR 0.2 (accepted samples score in [0.5, 1),
    rejected ones in [0, 0.5)); some samples are unjudged (NaN): left out and counted."""
    _, right = _draw(150, 16, seed=7)
    rng = np.random.default_rng(8)
    accept = rng.random(right.shape) < np.where(right, 0.7, 0.2)
    scores = np.where(accept, 0.5 + rng.random(right.shape) / 2, rng.random(right.shape) / 2)
    scores[rng.random(right.shape) < 0.05] = math.nan
    scores[0] = math.nan  # a question nothing was judged on
    report = verifier(_bank(right, scores), TASK, SCORER, 16)
    judged = ~np.isnan(scores)
    assert report.unjudged == int((~judged).sum()) and report.samples == right.size
    assert report.judged_questions == 149 and report.questions == 150
    assert report.tpr.samples == int((right & judged).sum())
    assert report.fpr.samples == int((~right & judged).sum())
    for rate, truth in ((report.tpr, 0.7), (report.fpr, 0.2)):
        se = math.sqrt(truth * (1 - truth) / rate.samples)
        assert abs(rate.rate - truth) < 4 * se
        assert rate.ci[0] < rate.rate < rate.ci[1]
    assert dict((t, (tp, fp)) for t, tp, fp in report.curve)[0.5] == (
        report.tpr.rate,
        report.fpr.rate,
    )
    assert [t for t, _, _ in report.curve] == list(THRESHOLDS)
    fprs = [fp for _, _, fp in report.curve]
    assert fprs == sorted(fprs, reverse=True)  # a higher bar accepts fewer
    share = np.array([r[j].mean() for r, j in zip(right[1:], judged[1:], strict=True)])
    assert report.pass_at_1 == pytest.approx(float(share.mean()))
    assert report.resampling[1] == pytest.approx(report.pass_at_1)
    assert report.best_of[1] == pytest.approx(report.pass_at_1)
    assert report.resampling_limit == pytest.approx(
        resampling_accuracy(share, report.tpr.rate, report.fpr.rate, math.inf)
    )
    assert report.resampling[16] < report.resampling_limit
    assert set(report.to_dict()) >= {"false_positive_rate", "resampling_limit", "curve"}


def test_rate_intervals_allow_for_questions_that_differ() -> None:
    """A verifier whose false-positive rate differs between questions (Beta(1, 4), mean 0.2):
    samples of one question are not independent, and a Wilson interval that treats them as
    such covers the mean rate far less than 95% of the time. The design-effect interval is
    within Monte Carlo error of 95% (500 runs: standard error 1%)."""
    rng = np.random.default_rng(9)
    runs, questions, wrong = 500, 60, 12
    rates = rng.beta(1.0, 4.0, size=(runs, questions))
    accepted = rng.binomial(wrong, rates)
    trials = np.full(questions, wrong)
    ours = plain = 0
    for hits in accepted:
        rate = acceptance_rate(hits, trials)
        ours += rate.ci[0] <= 0.2 <= rate.ci[1]
        low, high = wilson(float(hits.sum()), int(trials.sum()))
        plain += low <= 0.2 <= high
    assert 0.92 <= ours / runs <= 0.98
    assert plain / runs < 0.85
    assert acceptance_rate(np.array([0, 0]), np.array([0, 0])).samples == 0
