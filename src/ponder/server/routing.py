"""Which strategy a request asks for: the request parsed into a `StrategySpec`.

In the model name: `<model>` passes through (one backend call with the client's own
parameters, `n` included); `<strategy>@<n>/<model>`, `<strategy>/<model>`, `<strategy>@<n>`
or `<strategy>` (e.g. `self-consistency@8/qwen`) answers with that strategy over n samples
(the strategy's default n when none is given). In the body, the `ponder` field says the same
and wins over the model name:

    "ponder": {"strategy": "best-of-n", "n": 8, "scorer": "self-eval", "task": "math",
               "budget": {"samples": 8, "tokens": 20000}, "trace": true, "batch_size": 4}

`task` names the task that prompts and reads the answers (`math` by default; `code` takes
the last user message as a Python stub and answers with the program it completes).

Any other key of `ponder` is an option of the strategy, validated by the spec (a field of
the strategy, a value of the field's type). Scorer options a request cannot set (a reward
model's URL) come from the server's settings, so clients cannot point the server at other
hosts. The server's own limits (samples, tokens per request) are checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ponder.core import SamplingParams
from ponder.errors import ConfigError
from ponder.scorers.base import SCORERS
from ponder.server.schemas import PonderField
from ponder.strategies.base import STRATEGIES, check_scorer
from ponder.strategies.spec import StrategySpec, default_budget, required_options


@dataclass(frozen=True, slots=True)
class Route:
    spec: StrategySpec | None
    """None passes the request through to the backend."""
    trace: bool = False

    @property
    def label(self) -> str:
        return self.spec.strategy if self.spec else "pass-through"


def parse_model(model: str) -> tuple[str | None, int | None]:
    """(strategy name or None, n or None) from a model name."""
    head = model.split("/", 1)[0]
    name, at, count = head.partition("@")
    if at:
        if not (count.isascii() and count.isdigit()) or int(count) < 1:
            raise ConfigError(f"model {model!r}: write <strategy>@<n>/<model> with n >= 1")
        return name, int(count)
    return (name, None) if name in STRATEGIES else (None, None)


def route(
    model: str,
    ponder: PonderField | None,
    sampling: SamplingParams,
    seed: int,
    *,
    max_n: int,
    max_tokens: int,
    scorer_options: Mapping[str, Mapping[str, Any]],
    strategy_options: Mapping[str, Mapping[str, Any]] = {},
) -> Route:
    """The route of a request; raises ConfigError naming what to change."""
    name, n = parse_model(model)
    ponder = ponder or PonderField()
    if ponder.strategy is not None:
        name = ponder.strategy
    budget = ponder.budget
    if ponder.n is not None and budget is not None and budget.samples is not None:
        raise ConfigError("ponder: give n or budget.samples, not both")
    n = (budget.samples if budget else None) or ponder.n or n
    if name is None:
        asked = sorted(ponder.model_fields_set | set(ponder.strategy_options))
        if asked:
            raise ConfigError(
                f"ponder.{asked[0]} needs a strategy: name one in the model "
                "(<strategy>@<n>/<model>) or in ponder.strategy"
            )
        return Route(None)
    tokens = budget.tokens if budget else None
    if tokens is not None and tokens > max_tokens:
        raise ConfigError(
            f"budget.tokens={tokens} is above this server's limit of {max_tokens} tokens"
        )
    options: Mapping[str, Any] = {}
    if ponder.scorer is not None:
        scorer = SCORERS.canonical(ponder.scorer)
        check_scorer(STRATEGIES.get(name), SCORERS.get(scorer))  # before asking for options
        options = scorer_options.get(scorer, {})
        missing = sorted(required_options(SCORERS.get(scorer)) - set(options))
        if missing:
            raise ConfigError(
                f"scorer {scorer!r} needs {', '.join(missing)}, which this server was not "
                f"started with (ponder serve --scorer-option {scorer}.{missing[0]}=...)"
            )
    canonical = STRATEGIES.canonical(name)
    fixed = dict(strategy_options.get(canonical, {}))
    clashing = sorted(set(ponder.strategy_options) & set(fixed))
    if clashing:
        raise ConfigError(
            f"ponder.{clashing[0]} is set by the server for {canonical}; a request cannot set it"
        )
    # the strategy's default n even with a token budget: the server always caps the tokens
    samples = n or default_budget(STRATEGIES.get(name)).samples
    spec = StrategySpec(
        name,
        samples=samples,
        tokens=tokens or max_tokens,
        scorer=ponder.scorer,
        scorer_options=options,
        options={**ponder.strategy_options, **fixed},
        sampling=sampling,
        seed=seed,
        task=ponder.task or "math",
    )
    samples = spec.budget.samples or 1
    if samples > max_n:
        raise ConfigError(f"n={samples} is above this server's limit of {max_n} samples")
    return Route(spec, trace=ponder.trace)
