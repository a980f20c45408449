"""Strategies spend a budget of samples and tokens to answer better. One module each; a
`StrategySpec` (`spec.py`) is how every front end builds one."""

from ponder.strategies.base import (
    STRATEGIES,
    Budget,
    Kind,
    SampleStrategy,
    Selection,
    Strategy,
)

__all__ = ["STRATEGIES", "Budget", "Kind", "SampleStrategy", "Selection", "Strategy"]
