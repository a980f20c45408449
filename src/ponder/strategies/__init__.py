"""Strategies spend a budget of samples and tokens to answer better. One module each."""

from ponder.strategies.base import (
    STRATEGIES,
    Budget,
    SampleStrategy,
    Selection,
    Strategy,
    build_strategy,
)

__all__ = [
    "STRATEGIES",
    "Budget",
    "SampleStrategy",
    "Selection",
    "Strategy",
    "build_strategy",
]
