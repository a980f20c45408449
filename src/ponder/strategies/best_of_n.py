"""Best-of-N: sample N answers, keep the one the scorer likes best.

Cobbe et al. 2021 ("Training Verifiers to Solve Math Word Problems"); Lightman et al. 2023.

    candidates = sample(prompt, N)
    return argmax_{c in candidates} score(c)

Ties go to the earliest sample. Candidates without an extractable answer, or whose score
is NaN, are only chosen when no other candidate is left.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ponder.result import Candidate
from ponder.scorers.base import Scorer
from ponder.strategies.base import STRATEGIES, SampleStrategy, Selection, score_of, vote_table


@STRATEGIES.register("best-of-n", aliases=("bon", "best-of-N"))
@dataclass(frozen=True, kw_only=True)
class BestOfN(SampleStrategy):
    summary = "N samples, the one the scorer ranks highest (Cobbe et al. 2021)"
    needs_scorer = True

    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        del rng
        chosen = best_scored(candidates, range(len(candidates)), self.scorer)
        scorer = self.scorer.name if self.scorer else "?"
        score = score_of(candidates[chosen], self.scorer)
        return Selection(
            chosen,
            candidates[chosen].answer,
            f"best-of-{len(candidates)}: highest {scorer} score ({score:.4g}); ties to the "
            "earliest sample",
            vote_table(candidates),
        )


def best_scored(
    candidates: Sequence[Candidate], pool: Sequence[int] | range, scorer: Scorer | None
) -> int:
    """Index of the best-scored candidate in `pool`, preferring ones with an answer and a score."""

    def rank(i: int) -> tuple[bool, bool, float, int]:
        score = score_of(candidates[i], scorer)
        usable = not math.isnan(score)
        return (candidates[i].answer is not None, usable, score if usable else -math.inf, -i)

    return max(pool, key=rank)
