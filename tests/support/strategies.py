"""Building strategies in tests: a `StrategySpec`, with a test's own scorer object if any."""

from __future__ import annotations

from typing import Any

from ponder.backends.base import Backend
from ponder.core import SamplingParams
from ponder.scorers.base import Scorer
from ponder.strategies.base import Strategy
from ponder.strategies.spec import StrategySpec


def make(
    name: str,
    *,
    backend: Backend,
    n: int | None = None,
    token_budget: int | None = None,
    scorer: str | Scorer | None = None,
    scorer_options: dict[str, Any] | None = None,
    sampling: SamplingParams | None = None,
    seed: int = 0,
    **options: Any,
) -> Strategy:
    spec = StrategySpec(
        name,
        samples=n,
        tokens=token_budget,
        scorer=scorer if isinstance(scorer, str) else None,
        scorer_options=scorer_options or {},
        options=options,
        sampling=sampling or SamplingParams(),
        seed=seed,
    )
    return spec.build(backend, scorer=scorer if isinstance(scorer, Scorer) else None)
