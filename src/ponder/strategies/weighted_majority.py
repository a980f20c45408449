"""Weighted majority voting: each sample votes for its answer with a weight.

Without a scorer the weight is the sample's own probability per token, exp(mean token
logprob): the perplexity consistency of RPC (Zhou et al. 2025, "Bridging Internal
Probability and Self-Consistency for Effective and Efficient LLM Reasoning"), without RPC's
second part, reasoning pruning. With a scorer the votes are weighted by a verifier, as in
Li et al. 2023 ("Making Large Language Models Better Reasoners with Step-Aware Verifier");
the weight is the scorer's `weight(score)`, the probability its score stands for (P(Yes) as
is, exp of a log-probability, the logistic of a reward logit). A NaN score (not judged)
weighs 0.

    candidates = sample(prompt, N)
    for each answer cluster A: W(A) = sum_{c in A} weight(c)     (abstentions do not vote)
    return argmax_A W(A)      (ties: the cluster sampled first)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ponder.core import SamplingParams
from ponder.result import Candidate
from ponder.strategies.base import (
    STRATEGIES,
    SampleStrategy,
    Selection,
    score_of,
    vote_table,
)


@STRATEGIES.register("weighted-majority", aliases=("weighted", "weighted-vote"))
@dataclass(frozen=True, kw_only=True)
class WeightedMajority(SampleStrategy):
    summary = "votes weighted by a scorer, or by the sample's probability (RPC, Zhou et al. 2025)"

    def sampling_params(self) -> SamplingParams:
        params = super().sampling_params()
        if self.scorer is None:
            params = dataclasses.replace(params, logprobs=True)
        return params

    def weight(self, candidate: Candidate) -> float:
        if self.scorer is None:
            lp = candidate.mean_logprob
            return math.nan if lp is None else math.exp(lp)
        return self.scorer.weight(score_of(candidate, self.scorer))

    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        del rng
        votes = vote_table(candidates, [self.weight(c) for c in candidates])
        if not votes:
            return Selection(None, None, f"all {len(candidates)} samples abstained (no answer)")
        top = votes[0]
        by = self.scorer.name if self.scorer else "exp(mean token logprob)"
        return Selection(
            top.members[0],
            top.answer,
            f"weighted majority by {by}: weight {top.weight:.4g} from {top.count} of "
            f"{len(candidates)} samples",
            votes,
        )
