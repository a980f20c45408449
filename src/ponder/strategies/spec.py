"""The one way in: a `StrategySpec` names a strategy and everything it runs with, validates
all of it without a backend, and builds the strategy given one.

The CLI, the server, the eval harness and `ponder.solve` only parse their input into a spec:

    spec = StrategySpec("best-of-n", samples=8, scorer="self-eval",
                        sampling=SamplingParams(max_tokens=400), seed=0)
    strategy = spec.build(backend)

Validation, in order: the strategy's name (with "did you mean"), its options (known fields,
values of the field's type, the strategy's own range checks), the scorer (known name, not
the gold-answer oracle, an outcome scorer for strategies that judge whole answers and a
process scorer for step-level search), and the budget. A strategy that needs a scorer and is
given none gets its task's default, one that costs no extra model call (mean-logprob for
whole math answers, the arithmetic checker for math steps); `defaulted_scorer` says so.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from ponder.backends.base import Backend
from ponder.core import SamplingParams
from ponder.errors import ConfigError
from ponder.scorers.base import SCORERS, Scorer, build_scorer
from ponder.strategies.base import STRATEGIES, Budget, Kind, Strategy, check_scorer
from ponder.tasks.base import TASKS, get_task

COMPOSED = frozenset({"task", "scorer", "sampling", "budget", "seed"})
"""Strategy fields a spec fills from its own fields; every other field is an option."""


@dataclass(frozen=True)
class StrategySpec:
    strategy: str = "self-consistency"
    samples: int | None = None
    """The sample budget (N); None: the strategy's default (none when `tokens` is given)."""
    tokens: int | None = None
    """The token budget; None: no token limit."""
    scorer: str | None = None
    scorer_options: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    """The strategy's own parameters (`beam_width=4`, `min_fraction=0.3`)."""
    sampling: SamplingParams = SamplingParams()
    seed: int = 0
    task: str = "math"

    def __post_init__(self) -> None:
        cls = STRATEGIES.get(self.strategy)
        object.__setattr__(self, "strategy", cls.name)
        object.__setattr__(self, "task", TASKS.canonical(self.task))
        object.__setattr__(self, "options", _check_options(cls, self.options))
        if self.scorer is not None:
            object.__setattr__(self, "scorer", SCORERS.canonical(self.scorer))
        elif cls.needs_scorer:
            object.__setattr__(self, "scorer", self.default_scorer)
        check_scorer(cls, self.scorer_class)
        if self.scorer_class is not None:
            _check_scorer_options(self.scorer_class, self.scorer_options)
        self.construct()  # the strategy's own checks, before any backend exists

    @property
    def strategy_class(self) -> type[Strategy]:
        return STRATEGIES.get(self.strategy)

    @property
    def scorer_class(self) -> type[Scorer] | None:
        return SCORERS.get(self.scorer) if self.scorer is not None else None

    @property
    def default_scorer(self) -> str | None:
        """The scorer the task gives a strategy that needs one and names none."""
        task = TASKS.get(self.task)
        step = self.strategy_class.kind is Kind.STEP
        name = task.default_process_scorer if step else task.default_scorer
        if name is None:
            raise ConfigError(
                f"strategy {self.strategy!r} needs a {'process ' if step else ''}scorer and "
                f"task {self.task!r} has no default one: name a scorer"
            )
        return name

    @property
    def defaulted_scorer(self) -> bool:
        """The scorer is the task's default, not one the caller named."""
        return self.strategy_class.needs_scorer and self.scorer == self.default_scorer

    @property
    def budget(self) -> Budget:
        if self.samples is None and self.tokens is None:
            return default_budget(self.strategy_class)
        return Budget(samples=self.samples, tokens=self.tokens)

    def construct(self, scorer: Scorer | None = None) -> Strategy:
        """The strategy with this spec's settings and `scorer` (None: none yet)."""
        cls = self.strategy_class
        try:
            return cls(  # type: ignore[call-arg]
                task=get_task(self.task),
                scorer=scorer,
                sampling=self.sampling,
                budget=self.budget,
                seed=self.seed,
                **self.options,
            )
        except TypeError as exc:
            raise ConfigError(f"strategy {self.strategy!r}: {exc}") from None

    def build(self, backend: Backend, *, scorer: Scorer | None = None) -> Strategy:
        """The strategy, its scorer built for `backend` (and checked against it).

        `scorer`: a scorer you built yourself (one not in the registry, say), used instead of
        the spec's."""
        if scorer is not None:
            scorer.check(backend)
        elif self.scorer is not None:
            scorer = build_scorer(self.scorer, backend=backend, **dict(self.scorer_options))
        return self.construct(scorer)

    def describe(self) -> dict[str, Any]:
        """What the spec asks for, as JSON data (for traces, reports and run keys)."""
        return {
            "strategy": self.strategy,
            "samples": self.samples,
            "tokens": self.tokens,
            "scorer": self.scorer,
            "options": dict(self.options),
            "sampling": dataclasses.asdict(self.sampling),
            "seed": self.seed,
            "task": self.task,
        }


def strategy_options(cls: type[Strategy]) -> dict[str, Any]:
    """The options a caller may set on a strategy, with their types."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init and f.name not in COMPOSED
    }


def describe_strategies() -> list[dict[str, Any]]:
    """Every registered strategy: its kind, summary, default budget and options."""
    out = []
    for name, cls in STRATEGIES.items():
        budget = default_budget(cls)
        out.append(
            {
                "strategy": name,
                "kind": cls.kind.value,
                "summary": cls.summary,
                "needs_scorer": cls.needs_scorer,
                "default_n": budget.samples,
                "options": {k: _type_name(t) for k, t in strategy_options(cls).items()},
            }
        )
    return out


def default_budget(cls: type[Strategy]) -> Budget:
    default = cls.__dataclass_fields__["budget"].default
    return default if isinstance(default, Budget) else Budget()


def _check_options(cls: type[Strategy], given: Mapping[str, Any]) -> dict[str, Any]:
    accepted = strategy_options(cls)
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        listed = ", ".join(sorted(accepted)) or "none"
        raise ConfigError(
            f"strategy {cls.name!r} has no option {', '.join(unknown)}; its options: {listed}"
        )
    checked = {}
    for key, value in given.items():
        try:
            checked[key] = TypeAdapter(accepted[key]).validate_python(value, strict=True)
        except ValidationError as exc:
            message = exc.errors(include_url=False)[0]["msg"]
            raise ConfigError(f"strategy {cls.name!r} option {key}: {message}") from None
    return checked


def _check_scorer_options(cls: type[Scorer], given: Mapping[str, Any]) -> None:
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "backend"}
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise ConfigError(
            f"scorer {cls.name!r} has no option {', '.join(unknown)}; "
            f"its options: {', '.join(sorted(accepted)) or 'none'}"
        )
    missing = sorted(required_options(cls) - set(given))
    if missing:
        raise ConfigError(f"scorer {cls.name!r} needs {', '.join(missing)}")


def required_options(cls: type[Scorer]) -> set[str]:
    """The options a scorer cannot do without (a reward model's url)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {
        p.name
        for p in parameters
        if p.name not in ("self", "backend")
        and p.default is inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal:
        return " | ".join(repr(a) for a in args)
    return getattr(hint, "__name__", str(hint))
