"""Confidence from the model's own token probabilities: no extra model calls."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer


@SCORERS.register("mean-logprob", aliases=("logprob", "confidence"))
class MeanLogprob(Scorer):
    """Mean log-probability of the completion's tokens (of the last step, for a partial
    answer). Range (-inf, 0]; 0 means every token had probability 1."""

    name = "mean-logprob"
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
    Models via Self-Certainty"): the mean over tokens of KL(U || p), how far each next-token
    distribution is from uniform; confident answers score higher.

    HTTP backends return only the top-k alternatives per token, so p is the distribution
    renormalised over those k tokens and U is uniform over them:
    KL(U || p) = -log k - (1/k) * sum_j log p_j. Range [0, inf), higher is more certain.
    """

    name = "self-certainty"
    summary = "Kang et al. 2025: mean KL(uniform || next-token distribution) over top-k"
    score_range = (0.0, math.inf)
    process = True
    needs_logprobs = True
    top_logprobs = 5

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
