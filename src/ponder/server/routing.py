"""Which strategy a request asks for: in the model name or in the `ponder` body field.

Model names: `<model>` passes through (one call to the backend with the client's own
parameters); `<strategy>@<n>/<model>` or `<strategy>@<n>` (e.g. `self-consistency@8/qwen`)
spends n samples with that strategy. The body field `ponder: {"strategy": ..., "n": ...,
"scorer": ..., "budget": {"samples": ..., "tokens": ...}, "trace": true}` says the same and
wins over the model name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ponder.errors import ConfigError
from ponder.strategies import STRATEGIES


@dataclass(frozen=True, slots=True)
class Plan:
    strategy: str | None
    """None: pass through."""
    n: int | None
    scorer: str | None
    token_budget: int | None
    trace: bool
    options: dict[str, Any]


def plan_for(model: str, ponder: Any, max_n: int) -> Plan:
    strategy: str | None = None
    n: int | None = None
    head = model.split("/", 1)[0]
    if "@" in head:
        name, _, count = head.partition("@")
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"model {model!r}: write <strategy>@<n>/<model> with n >= 1")
        strategy, n = name, int(count)
    elif head in STRATEGIES:
        strategy = head
    scorer = None
    token_budget = None
    trace = False
    options: dict[str, Any] = {}
    if ponder is not None:
        if not isinstance(ponder, dict):
            raise ConfigError("'ponder' must be an object: {strategy, n, scorer, budget, trace}")
        known = {"strategy", "n", "scorer", "budget", "trace", "options"}
        unknown = sorted(set(ponder) - known)
        if unknown:
            raise ConfigError(f"'ponder' has unknown fields {unknown}; it takes {sorted(known)}")
        strategy = ponder.get("strategy", strategy)
        n = ponder.get("n", n)
        scorer = ponder.get("scorer")
        trace = ponder.get("trace", False)
        options = ponder.get("options") or {}
        budget = ponder.get("budget") or {}
        if not isinstance(budget, dict) or not isinstance(options, dict):
            raise ConfigError("'ponder.budget' and 'ponder.options' must be objects")
        n = budget.get("samples", n)
        token_budget = budget.get("tokens")
        for name, value in (("strategy", strategy), ("scorer", scorer)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"'ponder.{name}' must be a string")
        for name, value in (("n", n), ("budget.tokens", token_budget)):
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ConfigError(f"'ponder.{name}' must be a positive integer")
        if not isinstance(trace, bool):
            raise ConfigError("'ponder.trace' must be true or false")
    if strategy is not None:
        strategy = STRATEGIES.canonical(strategy)
    if n is not None and n > max_n:
        raise ConfigError(f"n={n} is above this server's limit of {max_n} samples per request")
    return Plan(strategy, n, scorer, token_budget, trace, options)
