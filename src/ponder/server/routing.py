"""Which strategy a request asks for, and the strategy built for it.

In the model name: `<model>` passes through (one backend call with the client's own
parameters, `n` included); `<strategy>@<n>/<model>`, `<strategy>/<model>`, `<strategy>@<n>`
or `<strategy>` (e.g. `self-consistency@8/qwen`) answers with that strategy over n samples
(the strategy's default n when none is given). In the body, the `ponder` field says the same
and wins over the model name:

    "ponder": {"strategy": "best-of-n", "n": 8, "scorer": "self-eval",
               "budget": {"samples": 8, "tokens": 20000}, "trace": true, "batch_size": 4}

Any other key of `ponder` is an option of the strategy (a field of its dataclass, checked
against the field's type). Scorer options a request cannot set (a reward model's URL) come
from the server's settings, so clients cannot point the server at other hosts.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ponder.backends.base import Backend, SamplingParams
from ponder.errors import ConfigError
from ponder.scorers import SCORERS, build_scorer
from ponder.server.schemas import PonderField
from ponder.strategies import STRATEGIES, Budget, Strategy, build_strategy
from ponder.tasks import get_task

_COMPOSED = frozenset({"task", "scorer", "sampling", "budget", "seed"})
"""Strategy fields the server fills itself; the others are options a request may set."""


@dataclass(frozen=True, slots=True)
class Plan:
    strategy: str | None
    """Canonical strategy name; None passes the request through to the backend."""
    samples: int = 1
    tokens: int | None = None
    scorer: str | None = None
    trace: bool = False
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.strategy or "pass-through"


def parse_model(model: str) -> tuple[str | None, int | None]:
    """(strategy name or None, n or None) from a model name."""
    head = model.split("/", 1)[0]
    name, at, count = head.partition("@")
    if at:
        if not (count.isascii() and count.isdigit()) or int(count) < 1:
            raise ConfigError(f"model {model!r}: write <strategy>@<n>/<model> with n >= 1")
        return name, int(count)
    return (name, None) if name in STRATEGIES else (None, None)


def plan_for(model: str, ponder: PonderField | None, max_n: int, max_tokens: int) -> Plan:
    """The plan of a request; raises ConfigError naming what to change."""
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
        return Plan(None)
    canonical = STRATEGIES.canonical(name)
    cls = STRATEGIES.get(canonical)
    samples = n or cls.__dataclass_fields__["budget"].default.samples or 1  # type: ignore[union-attr]
    if samples > max_n:
        raise ConfigError(f"n={samples} is above this server's limit of {max_n} samples")
    tokens = budget.tokens if budget else None
    if tokens is not None and tokens > max_tokens:
        raise ConfigError(
            f"budget.tokens={tokens} is above this server's limit of {max_tokens} tokens"
        )
    scorer = None
    if ponder.scorer is not None:
        scorer = SCORERS.canonical(ponder.scorer)
        if SCORERS.get(scorer).uses_gold:
            raise ConfigError(f"scorer {scorer!r} knows the gold answer: it is for evaluation only")
    elif cls.needs_scorer:
        raise ConfigError(
            f"strategy {canonical!r} needs a scorer: add ponder: {{scorer: ...}} "
            f"(one of {', '.join(SCORERS.names())})"
        )
    return Plan(
        canonical,
        samples=samples,
        tokens=tokens or max_tokens,
        scorer=scorer,
        trace=ponder.trace,
        options=_check_options(cls, ponder.strategy_options),
    )


def build(
    plan: Plan,
    backend: Backend,
    sampling: SamplingParams,
    seed: int,
    scorer_options: Mapping[str, Mapping[str, Any]],
) -> Strategy:
    """The strategy a plan asks for, on `backend`."""
    assert plan.strategy is not None
    parts: dict[str, Any] = dict(plan.options)
    if plan.scorer is not None:
        options = dict(scorer_options.get(plan.scorer, {}))
        missing = sorted(_required(SCORERS.get(plan.scorer)) - set(options) - {"backend"})
        if missing:
            raise ConfigError(
                f"scorer {plan.scorer!r} needs {', '.join(missing)}, which this server was not "
                f"started with (ponder serve --scorer-option {plan.scorer}.{missing[0]}=...)"
            )
        parts["scorer"] = build_scorer(plan.scorer, backend=backend, **options)
    return build_strategy(
        plan.strategy,
        task=get_task(),
        sampling=sampling,
        budget=Budget(samples=plan.samples, tokens=plan.tokens),
        seed=seed,
        **parts,
    )


def strategy_options(cls: type[Strategy]) -> dict[str, Any]:
    """The options a request may set on a strategy, with their types."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init and f.name not in _COMPOSED
    }


def describe_strategies() -> list[dict[str, Any]]:
    """What `/v1/models` says about each strategy."""
    return [
        {
            "strategy": name,
            "summary": cls.summary,
            "step_level": cls.step_level,
            "needs_scorer": cls.needs_scorer,
            "default_n": cls.__dataclass_fields__["budget"].default.samples,  # type: ignore[union-attr]
            "options": {k: _type_name(t) for k, t in strategy_options(cls).items()},
        }
        for name, cls in STRATEGIES.items()
    ]


def _check_options(cls: type[Strategy], given: Mapping[str, Any]) -> dict[str, Any]:
    accepted = strategy_options(cls)
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ConfigError(
            f"ponder.{unknown[0]}: strategy {cls.name!r} has no such option; ponder takes "
            "strategy, n, scorer, budget, trace"
            + (f" and the options {', '.join(sorted(accepted))}" if accepted else "")
        )
    checked = {}
    for key, value in given.items():
        try:
            checked[key] = TypeAdapter(accepted[key]).validate_python(value, strict=True)
        except ValidationError as exc:
            message = exc.errors(include_url=False)[0]["msg"]
            raise ConfigError(f"ponder.{key}: {message}") from None
    return checked


def _required(scorer: type) -> set[str]:
    parameters = inspect.signature(scorer.__init__).parameters.values()
    return {
        p.name
        for p in parameters
        if p.name != "self"
        and p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal:
        return " | ".join(repr(a) for a in args)
    return getattr(hint, "__name__", str(hint))
