"""Greedy decoding: one sample at temperature 0. The baseline every other strategy must beat.

answer = extract(decode_argmax(prompt))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ponder.core import SamplingParams
from ponder.result import Candidate
from ponder.strategies.base import STRATEGIES, Budget, SampleStrategy, Selection, vote_table


@STRATEGIES.register("greedy")
@dataclass(frozen=True, kw_only=True)
class Greedy(SampleStrategy):
    summary = "one sample at temperature 0 (the baseline)"

    budget: Budget = Budget(samples=1)

    def sampling_params(self) -> SamplingParams:
        return dataclasses.replace(super().sampling_params(), temperature=0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.budget.samples != 1:  # one sample whatever the budget offers
            object.__setattr__(self, "budget", Budget(samples=1, tokens=self.budget.tokens))

    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        del rng
        first = candidates[0]
        return Selection(
            0, first.answer, "greedy: the single temperature-0 sample", vote_table(candidates[:1])
        )
