"""Early-Stopping Self-Consistency (Li et al. 2024, "Escape Sky-high Cost: Early-stopping
Self-Consistency for Multi-step Reasoning"): sample in windows and stop at the first window
whose answers all agree (zero entropy).

    repeat, one window of `window` samples at a time, until the sample budget:
        if every sample of the window gives the same answer: stop
    answer with the majority over every sample drawn (ties: the answer sampled first)

A window with an abstaining sample (no answer) does not agree. When a window stops the
sampling, its answer is the majority of all samples drawn (the paper's rule, and the same
answer: earlier windows can only have split the vote more).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ponder.errors import ConfigError
from ponder.result import Candidate
from ponder.strategies.base import STRATEGIES, Budget, Selection
from ponder.strategies.self_consistency import SelfConsistency

DEFAULT_WINDOW = 4


@STRATEGIES.register("esc", aliases=("early-stopping-self-consistency",))
@dataclass(frozen=True, kw_only=True)
class EarlyStoppingSelfConsistency(SelfConsistency):
    summary = "windows of samples, stop at the first window that agrees (Li et al. 2024)"

    budget: Budget = Budget(samples=16)
    window: int | None = None
    """Samples per window (one call each); None: 4, or the whole budget when smaller."""

    def __post_init__(self) -> None:
        window = self.window
        if window is None:
            window = min(DEFAULT_WINDOW, self.budget.samples or DEFAULT_WINDOW)
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ConfigError(f"window must be a positive integer, got {window!r}")
        if self.budget.samples is not None and window > self.budget.samples:
            raise ConfigError(
                f"a window of {window} samples is larger than the sample budget of "
                f"{self.budget.samples}; lower window or raise n"
            )
        object.__setattr__(self, "window", window)
        object.__setattr__(self, "batch_size", window)  # one call per window
        super().__post_init__()

    def settled(self, candidates: Sequence[Candidate]) -> str | None:
        window = self.window or DEFAULT_WINDOW
        last = candidates[-window:]
        if len(last) < window or any(c.cluster is None for c in last):
            return None
        if len({c.cluster for c in last}) > 1:
            return None
        return f"window {len(candidates) // window} of {window} samples agreed on {last[0].answer}"

    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        chosen = super().select(candidates, rng)
        return Selection(chosen.chosen, chosen.answer, f"esc: {chosen.decision}", chosen.votes)
