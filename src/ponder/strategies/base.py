"""The Strategy interface, the Budget, and the registry.

A strategy is a frozen dataclass: its fields are its parameters (validated at
construction), so the CLI, the server and the eval harness build any of them from a dict
with `build_strategy(name, **options)` and no code of theirs names a strategy. `arun` takes
the question and a backend and returns a `Result`; the backend counts the tokens, the
strategy only adds up the `Usage` it gets back.

Sample-based strategies (`SampleStrategy`) split into drawing candidates and a pure
`select(candidates, rng)`, so the eval harness can replay selection on stored samples at
every budget without generating again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ponder.backends.base import Backend, SamplingParams, TokenCallback, run_sync
from ponder.errors import BudgetError, ConfigError
from ponder.registry import Registry
from ponder.result import Candidate, Result, Vote
from ponder.scorers.base import Scorer
from ponder.tasks.base import Task, get_task


@dataclass(frozen=True, slots=True)
class Budget:
    """What a strategy may spend on one question.

    `samples`: complete answers (N of best-of-N, beams or particles of a search).
    `tokens`: tokens the model decodes for this question (prompt tokens not reused from the
    cache plus sampled tokens, scoring included). Either or both; the first limit hit stops.
    """

    samples: int | None = 8
    tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("samples", "tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise BudgetError(f"budget {name} must be a positive integer, got {value!r}")
        if self.samples is None and self.tokens is None:
            raise BudgetError("a budget needs a number of samples, of tokens, or both")

    def require_samples(self, n: int, why: str) -> None:
        """Raise `BudgetError` when `n` samples do not fit."""
        if self.samples is not None and n > self.samples:
            raise BudgetError(
                f"{why} needs {n} samples but the budget allows {self.samples}; "
                "raise the sample budget or lower n"
            )

    def to_dict(self) -> dict[str, int | None]:
        return {"samples": self.samples, "tokens": self.tokens}


@dataclass(frozen=True, slots=True)
class Selection:
    """What `select` decided."""

    chosen: int | None
    answer: str | None
    decision: str
    votes: tuple[Vote, ...] = ()


def default_task() -> Task:
    return get_task("math")


@dataclass(frozen=True, kw_only=True)
class Strategy(ABC):
    name: ClassVar[str] = "strategy"
    summary: ClassVar[str] = ""
    needs_scorer: ClassVar[bool] = False
    step_level: ClassVar[bool] = False

    task: Task = field(default_factory=default_task)
    scorer: Scorer | None = None
    sampling: SamplingParams = SamplingParams()
    budget: Budget = Budget()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scorer is not None and self.scorer.uses_gold:
            raise ConfigError(
                f"scorer {self.scorer.name!r} knows the gold answer; it is for evaluation "
                "only and cannot select answers"
            )
        if self.needs_scorer and self.scorer is None:
            raise ConfigError(f"strategy {self.name!r} needs a scorer (--scorer)")

    def rng(self, question: str) -> np.random.Generator:
        """The generator for every random choice on `question` (ties, subsets, resampling)."""
        digest = hashlib.sha256(f"{self.seed}\0{question}".encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def params(self) -> dict[str, Any]:
        """This strategy's own parameters, for the trace."""
        skip = {"task", "scorer", "sampling"}
        out = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip
        }
        out["budget"] = self.budget.to_dict()
        out["scorer"] = self.scorer.name if self.scorer else None
        return out

    @abstractmethod
    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        """Answer `question` with `backend` within the budget."""

    def run(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        return run_sync(self.arun(question, backend, on_tokens=on_tokens))


@dataclass(frozen=True, kw_only=True)
class SampleStrategy(Strategy):
    """Draw complete answers, then `select` one. `select` must be pure given `rng`."""

    @abstractmethod
    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        """Pick the answer among candidates whose `answer`, `cluster` and `scores` are set."""


STRATEGIES: Registry[type[Strategy]] = Registry("strategy", "ponder.strategies")


def build_strategy(name: str, **options: Any) -> Strategy:
    """Build a registered strategy from keyword options; unknown options raise ConfigError."""
    cls = STRATEGIES.get(name)
    accepted = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"strategy {cls.name!r} has no option {', '.join(unknown)}; "
            f"its options: {', '.join(sorted(accepted))}"
        )
    return cls(**options)
