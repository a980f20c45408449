"""Confidence from the model's own token probabilities: no extra model calls."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer


@SCORERS.register("mean-logprob", aliases=("logprob", "confidence"))
class MeanLogprob(Scorer):
    """Mean log-probability of the completion's tokens (of the last step, for a partial
    answer). Range (-inf, 0]; 0 means every token had probability 1."""

    summary = "mean token log-probability of the answer (or step); free, needs logprobs"
    score_range = (-math.inf, 0.0)
    process = True
    needs_logprobs = True

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        return ScoreBatch(tuple(_mean_logprob(a) for a in attempts))


def _mean_logprob(attempt: Attempt) -> float:
    completion = attempt.completion
    if completion is None or completion.mean_logprob is None:
        return math.nan
    return completion.mean_logprob


@SCORERS.register("self-certainty")
class SelfCertainty(Scorer):
    """Self-certainty (Kang et al. 2025, "Scalable Best-of-N Selection for Large Language
    Models via Self-Certainty"): the mean over the answer's tokens of KL(U || p), how far
    each next-token distribution p is from uniform U; confident answers score higher.

    Approximation: the paper sums over the whole vocabulary, but backends return only the
    top-k alternatives per token (k = 5 here; HTTP APIs cap it at 20), so p is renormalised
    over those k tokens and U is uniform over them:

        KL(U || p_k) = -log k - (1/k) * sum_{j <= k} log p_j

    The full-vocabulary value is dominated by the tail of tiny probabilities, which the top
    k cannot see; this version measures how peaked the head of the distribution is (0 when
    the k alternatives are equally likely). It ranks answers by the same intuition, not by
    the same numbers. Positions with fewer than two alternatives are skipped.
    Range [0, inf), higher is more certain. As a probability (step search, weighted voting):
    1 - exp(-score), 0 when the alternatives are equally likely, near 1 when one dominates.
    """

    summary = "Kang et al. 2025: mean KL(uniform || next-token distribution) over top-k"
    score_range = (0.0, math.inf)
    process = True
    needs_logprobs = True
    top_logprobs = 5

    @classmethod
    def probability(cls, score: float) -> float:
        return -math.expm1(-score) if score >= 0 else math.nan

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        return ScoreBatch(tuple(_self_certainty(a) for a in attempts))


def _self_certainty(attempt: Attempt) -> float:
    completion = attempt.completion
    if completion is None or not completion.logprobs:
        return math.nan
    values = []
    for token in completion.logprobs:
        alternatives = [lp for _, lp in token.top] or [token.logprob]
        k = len(alternatives)
        if k < 2:
            continue
        peak = max(alternatives)
        norm = peak + math.log(sum(math.exp(lp - peak) for lp in alternatives))
        values.append(-math.log(k) - sum(lp - norm for lp in alternatives) / k)
    return sum(values) / len(values) if values else math.nan
