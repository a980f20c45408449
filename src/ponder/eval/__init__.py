"""Evaluation: a resumable sample bank, strategy x budget replay, statistics and reports.

`Evaluation(EvalConfig(...)).run(backend)` is the whole pipeline as a library (`eval/api.py`);
`ponder eval` is flags and printing over it. The names are imported on first use, so that
`ponder --help` does not load the statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ponder.eval.api import EvalConfig, EvalSummary, Evaluation, evaluate

__all__ = ["EvalConfig", "EvalSummary", "Evaluation", "evaluate"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'ponder.eval' has no attribute {name!r}")
    from ponder.eval import api

    return getattr(api, name)
