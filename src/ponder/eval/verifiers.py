"""A scorer used as a verifier: its per-sample error rates and the accuracy they allow
(Stroebl et al. 2024, "Inference Scaling fLaws: The Limits of LLM Resampling with Imperfect
Verifiers").

The verifier *accepts* a sample when the scorer's `probability(score)` is at least a
threshold (`THRESHOLD`, 0.5, unless stated). Over the judged samples of every question:

* true-positive rate (TPR): the share of right samples it accepts; false-positive rate
  (FPR): the share of wrong samples it accepts. Each has a 95% Wilson interval at the
  effective number of samples (`acceptance_rate`): samples of one question are not
  independent, so the spread between questions sets the width, never narrower than for
  independent samples. `THRESHOLDS` gives the same two rates at other thresholds.
* Resampling until the verifier accepts (the paper's model): on question i, with p_i its
  share of right samples, each try is accepted with chance a_i = p_i TPR + (1 - p_i) FPR and
  the accepted sample is right with chance p_i TPR / a_i. `resampling_accuracy` gives the
  accuracy within k tries and as k grows without bound, averaged over questions.
* Best-of-k by score, as measured: the mean over every k-subset of a question's judged
  samples of whether the top-scored one is right (`best_of_k`), ties sharing the credit.

Samples without a score (NaN) are left out of everything and counted; so are questions none
of whose samples was judged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ponder.eval.collect import QuestionData
from ponder.eval.lines import budgets
from ponder.eval.stats import wilson
from ponder.scorers.base import SCORERS
from ponder.tasks.base import Task

THRESHOLD = 0.5
"""The verifier accepts a sample when probability(score) >= this."""
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""Thresholds of the TPR/FPR curve."""


@dataclass(frozen=True, slots=True)
class Rate:
    """A share of samples accepted, pooled over questions."""

    accepted: int
    samples: int
    rate: float
    """accepted / samples (NaN without samples)."""
    ci: tuple[float, float]
    """95% Wilson interval at the effective number of samples (see `acceptance_rate`)."""


def acceptance_rate(accepted: np.ndarray, samples: np.ndarray) -> Rate:
    """The pooled rate sum(accepted) / sum(samples) over questions, with its interval.

    The interval is Wilson's at n / d samples, d being Kish's design effect: the variance of
    the ratio estimator across questions (the spread of accepted - rate x samples) over the
    variance independent samples would give, taken as 1 when smaller (or with one question)."""
    accepted = np.asarray(accepted, dtype=float)
    samples = np.asarray(samples, dtype=float)
    total, hits = float(samples.sum()), float(accepted.sum())
    if total == 0:
        return Rate(0, 0, math.nan, (math.nan, math.nan))
    rate = hits / total
    used = samples > 0
    questions = int(used.sum())
    independent = rate * (1 - rate) / total
    effect = 1.0
    if questions > 1 and independent > 0:
        residual = accepted[used] - rate * samples[used]
        clustered = questions / (questions - 1) * float(np.sum(residual**2)) / total**2
        effect = max(1.0, clustered / independent)
    return Rate(int(hits), int(total), rate, wilson(hits / effect, total / effect))


def resampling_accuracy(p: np.ndarray, tpr: float, fpr: float, k: float) -> float:
    """Mean accuracy over questions of drawing samples until the verifier accepts one, at
    most k tries (k = math.inf: no limit), in the paper's model: question i's samples are right
    with chance p[i], and the verifier accepts right ones with chance `tpr`, wrong ones `fpr`.

    Per question, with a = p tpr + (1 - p) fpr the chance a try is accepted:

        P(right) = p tpr (1 - (1 - a)^k) / a + p (1 - tpr) (1 - a)^(k-1)

    The first term is a right sample accepted within k tries. The second is the convention
    when nothing is accepted within k tries: answer with the last sample drawn (rejected: right
    with chance p (1 - tpr) / (1 - a)); the paper abstains there instead, which would drop
    that term. So k = 1 gives p (one sample, no choice), and as k grows the second term
    vanishes and P(right) -> p tpr / a. When a = 0 (p = 0 and fpr = 0, or p = 1 and tpr = 0)
    nothing is ever accepted and every k gives p: the answer is whatever sample was drawn.
    A NaN rate (no right, or no wrong, samples to measure it on) only meets p = 0 (or 1),
    where it does not matter."""
    p = np.asarray(p, dtype=float)
    if len(p) == 0:
        return math.nan
    tpr = 0.0 if math.isnan(tpr) else tpr
    fpr = 0.0 if math.isnan(fpr) else fpr
    accept = p * tpr + (1 - p) * fpr
    safe = np.where(accept > 0, accept, 1.0)
    if math.isinf(k):
        return float(np.mean(np.where(accept > 0, p * tpr / safe, p)))
    found = p * tpr * (1 - (1 - accept) ** k) / safe
    return float(np.mean(found + p * (1 - tpr) * (1 - accept) ** (k - 1)))


def best_of_k(scores: np.ndarray, right: np.ndarray, k: int) -> float:
    """Mean over every k-subset of one question's samples (all of them when k exceeds
    their number) of the share of right samples among the subset's top-scored ones.

    Exact, without listing subsets: the subset's top score is level l when it holds none of
    the samples above l and at least one at l, and whichever of the c_l samples at l it holds,
    the expected share of right ones among them is r_l / c_l."""
    scores = np.asarray(scores, dtype=float)
    right = np.asarray(right, dtype=bool)
    size = len(scores)
    if size == 0:
        return math.nan
    k = min(k, size)
    levels, inverse = np.unique(scores, return_inverse=True)
    count = np.bincount(inverse, minlength=len(levels))
    hits = np.bincount(inverse, weights=right, minlength=len(levels))
    at_or_below = np.cumsum(count)
    total = math.comb(size, k)
    chance = [
        (math.comb(int(b), k) - math.comb(int(b - c), k)) / total
        for b, c in zip(at_or_below, count, strict=True)
    ]
    return float(np.dot(chance, hits / count))


@dataclass(frozen=True, slots=True)
class Judged:
    """The judged samples of one question."""

    scores: np.ndarray
    probabilities: np.ndarray
    right: np.ndarray


def judged(data: Sequence[QuestionData], task: Task, scorer: str, n: int) -> list[Judged]:
    """Per question, its first n samples that `scorer` judged (NaN scores left out)."""
    to_probability = SCORERS.get(scorer).probability
    out = []
    for item in data:
        samples = item.samples[:n]
        scores = np.array([s.scores.get(scorer, math.nan) for s in samples], dtype=float)
        right = np.array([task.is_correct(s.answer, item.question.answer) for s in samples])
        keep = ~np.isnan(scores)
        probabilities = np.array([to_probability(x) for x in scores[keep]], dtype=float)
        out.append(Judged(scores[keep], probabilities, right[keep].astype(bool)))
    return out


@dataclass(frozen=True, slots=True)
class Verifier:
    scorer: str
    threshold: float
    """Accepts a sample when probability(score) >= this."""
    questions: int
    judged_questions: int
    """Questions with at least one judged sample: the ones every average runs over."""
    samples: int
    unjudged: int
    """Samples the scorer gave no score (NaN): left out."""
    tpr: Rate
    """Right samples accepted."""
    fpr: Rate
    """Wrong samples accepted."""
    curve: tuple[tuple[float, float, float], ...]
    """(threshold, TPR, FPR) at each of `THRESHOLDS`."""
    pass_at_1: float
    """Mean over judged questions of the share of right samples (both curves at k = 1)."""
    resampling: dict[int, float]
    """k -> accuracy of resampling until accepted, at most k tries (`resampling_accuracy`)."""
    resampling_limit: float
    """The same with no limit on tries: the ceiling the verifier's error rates impose."""
    best_of: dict[int, float]
    """k -> measured best-of-k by score over k-subsets of the judged samples (`best_of_k`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "threshold": self.threshold,
            "questions": self.questions,
            "judged_questions": self.judged_questions,
            "samples": self.samples,
            "unjudged_samples": self.unjudged,
            "right_samples": self.tpr.samples,
            "wrong_samples": self.fpr.samples,
            "true_positive_rate": self.tpr.rate,
            "true_positive_ci_low": self.tpr.ci[0],
            "true_positive_ci_high": self.tpr.ci[1],
            "false_positive_rate": self.fpr.rate,
            "false_positive_ci_low": self.fpr.ci[0],
            "false_positive_ci_high": self.fpr.ci[1],
            "curve": [
                {"threshold": t, "true_positive_rate": tp, "false_positive_rate": fp}
                for t, tp, fp in self.curve
            ],
            "pass_at_1": self.pass_at_1,
            "resampling_by_k": {str(k): v for k, v in self.resampling.items()},
            "resampling_limit": self.resampling_limit,
            "best_of_k": {str(k): v for k, v in self.best_of.items()},
        }


def _rates(questions: Sequence[Judged], threshold: float) -> tuple[Rate, Rate]:
    accepted = [q.probabilities >= threshold for q in questions]
    tp = np.array([float(np.sum(a & q.right)) for a, q in zip(accepted, questions, strict=True)])
    fp = np.array([float(np.sum(a & ~q.right)) for a, q in zip(accepted, questions, strict=True)])
    right = np.array([float(np.sum(q.right)) for q in questions])
    wrong = np.array([float(np.sum(~q.right)) for q in questions])
    return acceptance_rate(tp, right), acceptance_rate(fp, wrong)


def verifier(
    data: Sequence[QuestionData], task: Task, scorer: str, n: int, threshold: float = THRESHOLD
) -> Verifier:
    every = judged(data, task, scorer, n)
    questions = [q for q in every if len(q.scores)]
    samples = sum(len(item.samples[:n]) for item in data)
    unjudged = samples - sum(len(q.scores) for q in every)
    tpr, fpr = _rates(questions, threshold)
    curve = []
    for t in THRESHOLDS:
        right, wrong = _rates(questions, t)
        curve.append((t, right.rate, wrong.rate))
    p = np.array([float(np.mean(q.right)) for q in questions])
    ks = budgets(n)
    return Verifier(
        scorer=scorer,
        threshold=threshold,
        questions=len(data),
        judged_questions=len(questions),
        samples=samples,
        unjudged=unjudged,
        tpr=tpr,
        fpr=fpr,
        curve=tuple(curve),
        pass_at_1=float(p.mean()) if len(p) else math.nan,
        resampling={k: resampling_accuracy(p, tpr.rate, fpr.rate, k) for k in ks},
        resampling_limit=resampling_accuracy(p, tpr.rate, fpr.rate, math.inf),
        best_of={
            k: float(np.mean([best_of_k(q.scores, q.right, k) for q in questions]))
            if questions
            else math.nan
            for k in ks
        },
    )
