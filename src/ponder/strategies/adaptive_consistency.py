"""Adaptive-Consistency (Aggarwal, Madaan, Yang & Mausam 2023, "Let's Sample Step by Step:
Adaptive-Consistency for Efficient Reasoning and Coding with LLMs"): sample a few answers at a
time and stop as soon as a posterior over the answers' probabilities is confident that the
leading answer is the majority one.

    repeat, `batch_size` samples at a time, until the sample budget:
        v_1 >= v_2 >= ...: the vote counts of the answers so far
        beta:      P(p > 1/2) for p ~ Beta(v_1 + 1, v_2 + 1)          (the paper's default)
        dirichlet: P(p_1 = max_j p_j) for p ~ Dirichlet(v + 1), one more class standing
                   for every answer not seen yet
        stop when that probability reaches `threshold`
    answer with the majority (ties: the answer sampled first)

The Beta rule compares the two leading answers only (what the authors ship as their default
`BetaStoppingCriteria`); the Dirichlet rule is the paper's full criterion, with the unseen
answers as one more category of count 0, computed exactly as a one-dimensional integral
over Gamma variables (p_i = G_i / sum G, G_i ~ Gamma(alpha_i)). Abstaining samples do not
vote. The rule looks after each batch, so a replay from stored samples stops exactly where
a live run does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from ponder.errors import ConfigError
from ponder.result import Candidate
from ponder.strategies.base import STRATEGIES, Budget, Selection, vote_table
from ponder.strategies.self_consistency import SelfConsistency

Criterion = Literal["beta", "dirichlet"]
DEFAULT_BATCH = 2


@STRATEGIES.register("adaptive-consistency", aliases=("asc", "adaptive"))
@dataclass(frozen=True, kw_only=True)
class AdaptiveConsistency(SelfConsistency):
    summary = "majority vote that stops once a Beta posterior trusts the leader (Aggarwal 2023)"

    budget: Budget = Budget(samples=16)
    batch_size: int | None = None
    """Samples per call and between looks; None: 2 (the authors look after every sample;
    pairs keep the embedded backend batching at little extra cost)."""
    threshold: float = 0.95
    criterion: Criterion = "beta"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.threshold, int | float) and 0.0 < self.threshold <= 1.0):
            raise ConfigError(f"threshold must be in (0, 1], got {self.threshold!r}")
        if self.criterion not in ("beta", "dirichlet"):
            raise ConfigError(f"criterion must be beta or dirichlet, got {self.criterion!r}")

    def next_batch(self, drawn: Sequence[Candidate], total: int | None) -> int:
        step = self.batch_size or DEFAULT_BATCH
        return step if total is None else max(min(step, total - len(drawn)), 0)

    def settled(self, candidates: Sequence[Candidate]) -> str | None:
        counts = [v.count for v in vote_table(candidates)]
        if not counts:
            return None
        confidence = posterior(tuple(counts), self.criterion)
        if confidence < self.threshold:
            return None
        return (
            f"P(the leader is the majority) = {confidence:.3f} >= {self.threshold:g} "
            f"({self.criterion}) after {len(candidates)} samples"
        )

    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        chosen = super().select(candidates, rng)
        return Selection(
            chosen.chosen,
            chosen.answer,
            f"adaptive-consistency: {chosen.decision}",
            chosen.votes,
        )


@lru_cache(maxsize=4096)
def posterior(counts: tuple[int, ...], criterion: Criterion) -> float:
    """The stopping statistic for vote counts sorted from the largest."""
    from scipy import integrate, special, stats  # ~0.6 s to import: only when first needed

    leader = counts[0]
    if criterion == "beta":
        runner = counts[1] if len(counts) > 1 else 0
        return float(stats.beta.sf(0.5, leader + 1, runner + 1))
    # Dirichlet(counts + 1, 1): P(G_1 > G_j for every j), G_i ~ Gamma(alpha_i), independent
    alphas = [c + 1.0 for c in counts] + [1.0]
    rest = alphas[1:]

    def density(x: float) -> float:
        if x <= 0.0:
            return 0.0
        log_f = (alphas[0] - 1.0) * math.log(x) - x - special.gammaln(alphas[0])
        return math.exp(log_f) * math.prod(special.gammainc(a, x) for a in rest)

    top = stats.gamma.ppf(1 - 1e-12, alphas[0])
    value, _ = integrate.quad(density, 0.0, top, limit=200)
    return float(min(max(value, 0.0), 1.0))
