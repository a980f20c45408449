"""The Scorer interface.

A scorer judges `Attempt`s: a question plus the steps of an answer so far. Outcome scorers
judge the whole text; process scorers (`process = True`) judge the last step given the ones
before it. Scores are floats in the range the scorer documents in `score_range`; higher is
better. A scorer that spends model tokens (self-evaluation) reports them in `ScoreBatch.usage`
so strategies can add them to the run's Usage without counting anything themselves.

Scorers are registered by name in `SCORERS` and built with `build_scorer(name, backend=...,
**options)`; unknown options raise `ConfigError`.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ponder.backends.base import Backend, Completion, Message, run_sync
from ponder.errors import ConfigError, UnsupportedError
from ponder.registry import Registry
from ponder.usage import Usage


@dataclass(frozen=True, slots=True)
class Attempt:
    """An answer (or partial answer) to judge."""

    question: str
    steps: tuple[str, ...]
    """The answer's text cut into steps; an outcome answer is a single step."""
    completion: Completion | None = None
    """The completion of the last step, with logprobs when the backend returned them."""
    prompt: tuple[Message, ...] = ()
    """The conversation the answer was written in, when known: a judge that continues it
    finds the answer already in the backend's KV cache instead of reading it again."""

    @property
    def text(self) -> str:
        return "".join(self.steps)

    @classmethod
    def whole(
        cls, question: str, completion: Completion, prompt: tuple[Message, ...] = ()
    ) -> Attempt:
        return cls(question, (completion.text,), completion, prompt)


@dataclass(frozen=True, slots=True)
class ScoreBatch:
    scores: tuple[float, ...]
    """One score per attempt, in order. NaN marks an attempt the scorer could not judge."""
    usage: Usage = Usage()


class Scorer(ABC):
    name: ClassVar[str] = "scorer"
    summary: ClassVar[str] = ""
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    outcome: ClassVar[bool] = True
    """Can judge a whole answer."""
    process: ClassVar[bool] = False
    """Can judge the last step of a partial answer."""
    needs_logprobs: ClassVar[bool] = False
    """Reads the completion's logprobs: the strategy must ask the backend for them."""
    top_logprobs: ClassVar[int] = 0
    """Alternatives per token it reads (the strategy asks the backend for that many)."""
    needs_backend: ClassVar[bool] = False
    uses_gold: ClassVar[bool] = False
    """Knows the right answer: for evaluation only, strategies refuse it."""

    def check(self, backend: Backend) -> None:
        """Raise before any sampling when this scorer cannot work with `backend`."""
        if self.needs_logprobs and not backend.capabilities.logprobs:
            raise UnsupportedError(
                f"scorer {self.name!r} needs token logprobs, which backend "
                f"{backend.model_id!r} does not return; pick another scorer"
            )
        if self.top_logprobs > backend.capabilities.top_logprobs:
            raise UnsupportedError(
                f"scorer {self.name!r} needs {self.top_logprobs} top logprobs per token; backend "
                f"{backend.model_id!r} gives {backend.capabilities.top_logprobs}"
            )

    @abstractmethod
    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        """Score each attempt."""

    def score(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        return run_sync(self.ascore(attempts))

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


SCORERS: Registry[type[Scorer]] = Registry("scorer", "ponder.scorers")


def build_scorer(name: str, *, backend: Backend | None = None, **options: Any) -> Scorer:
    """Build a registered scorer; `backend` is passed to the scorers that need one."""
    cls = SCORERS.get(name)
    if cls.needs_backend:
        if backend is None:
            raise ConfigError(f"scorer {cls.name!r} needs a backend")
        options["backend"] = backend
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"scorer {cls.name!r} has no option {', '.join(unknown)}; "
            f"its options: {', '.join(sorted(accepted)) or 'none'}"
        )
    scorer = cls(**options)
    if backend is not None:
        scorer.check(backend)
    return scorer
