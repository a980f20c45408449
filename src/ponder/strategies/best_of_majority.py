"""Best-of-Majority (Di et al. 2025, "Best-of-Majority: Minimax-Optimal Strategy for Pass@k
Inference Scaling"): keep only frequent answers, then trust the reward model among them.

    candidates = sample(prompt, N)
    frequent = {clusters A : |A| >= min_fraction * N}
    if frequent is empty: frequent = {clusters of the largest size}
    return argmax_{c in union(frequent)} score(c)     (ties: the earliest sample)

The paper picks the top k for pass@k; this is k = 1. Abstentions never enter the pool.

The frequency filter protects best-of-N from a reward model that likes a rare wrong
answer; the scorer then picks among answers the model itself found often.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ponder.errors import ConfigError
from ponder.result import Candidate
from ponder.strategies.base import STRATEGIES, SampleStrategy, Selection, score_of, vote_table
from ponder.strategies.best_of_n import best_scored


@STRATEGIES.register("best-of-majority", aliases=("bom",))
@dataclass(frozen=True, kw_only=True)
class BestOfMajority(SampleStrategy):
    summary = "answers seen in >= min_fraction of samples, then the best-scored (Di et al. 2025)"
    needs_scorer = True

    min_fraction: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.min_fraction <= 1.0:
            raise ConfigError(f"min_fraction must be in (0, 1], got {self.min_fraction!r}")

    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        del rng
        votes = vote_table(candidates)
        if not votes:
            return Selection(None, None, f"all {len(candidates)} samples abstained (no answer)")
        need = self.min_fraction * len(candidates)
        frequent = [v for v in votes if v.count >= need] or [
            v for v in votes if v.count == votes[0].count
        ]
        pool = [i for v in frequent for i in v.members]
        chosen = best_scored(candidates, pool, self.scorer)
        scorer = self.scorer.name if self.scorer else "?"
        return Selection(
            chosen,
            candidates[chosen].answer,
            f"best-of-majority: {len(frequent)} answer(s) seen in >= {need:.3g} of "
            f"{len(candidates)} samples, then highest {scorer} "
            f"({score_of(candidates[chosen], self.scorer):.4g})",
            votes,
        )
