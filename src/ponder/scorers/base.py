"""The Scorer interface.

A scorer judges `Attempt`s: a question plus the steps of an answer so far. Outcome scorers
judge the whole text; process scorers (`process = True`) judge the last step given the ones
before it. Scores are floats in the range the scorer documents in `score_range`; higher is
better. A scorer that spends model tokens (self-evaluation) reports them per attempt in
`ScoreBatch.usages` so strategies and the eval harness add them up without counting anything
themselves.

**One score scale.** Each scorer says how its score becomes a probability that the answer
(or step) is right, `probability(score)`, and a vote weight, `weight(score)`: scores on
[0, 1] are probabilities already, log-probabilities (range up to 0) are exponentiated,
unbounded ones (a reward model's logit) go through the logistic; a scorer with another range
overrides `probability`. Step search aggregates these probabilities along a path and
weighted voting sums the weights, so both read a score the same way.

Scorers are registered by name in `SCORERS` and built with `build_scorer(name, backend=...,
**options)`; unknown options raise `ConfigError`.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ponder.backends.base import Backend
from ponder.core import Completion, Message, run_sync
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
    usages: tuple[Usage, ...] = ()
    """What judging each attempt cost, in order (empty: nothing, the scorer is free)."""
    informative: tuple[bool, ...] = ()
    """Per attempt, whether the scorer found anything to judge in it (empty: all). A step
    without a calculation gives the arithmetic checker nothing: its score is no evidence."""

    def __post_init__(self) -> None:
        for name in ("usages", "informative"):
            given = getattr(self, name)
            if given and len(given) != len(self.scores):
                raise ValueError(f"{len(given)} {name} for {len(self.scores)} scores")

    def informs(self, i: int) -> bool:
        return self.informative[i] if self.informative else True

    @property
    def usage(self) -> Usage:
        return Usage.total(self.usages)

    def usage_of(self, i: int) -> Usage:
        return self.usages[i] if self.usages else Usage()


class Scorer(ABC):
    name: ClassVar[str] = "scorer"
    """Set by the registry."""
    summary: ClassVar[str] = ""
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    outcome: ClassVar[bool] = True
    """Can judge a whole answer."""
    process: ClassVar[bool] = False
    """Can judge the last step of a partial answer."""
    judges_prefix: ClassVar[bool] = False
    """As a process scorer, judges the whole partial answer (a PRM's P(on track so far)),
    not only its last step: step search then aggregates its path score by `last`."""
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

    @classmethod
    def probability(cls, score: float) -> float:
        """The score as a probability that the answer (or step) is right; NaN stays NaN."""
        low, high = cls.score_range
        if math.isnan(score):
            return math.nan
        if low >= 0.0 and high <= 1.0:
            return min(max(score, 0.0), 1.0)
        if high <= 0.0:
            return math.exp(score)
        return 0.5 * (1.0 + math.tanh(score / 2.0))  # the logistic, without overflow

    @classmethod
    def weight(cls, score: float) -> float:
        """The vote this score gives its answer in weighted voting (NaN: not judged, 0)."""
        value = cls.probability(score)
        return 0.0 if math.isnan(value) else value

    @abstractmethod
    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        """Score each attempt."""

    def score(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        return run_sync(self.ascore(attempts))

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


SCORERS: Registry[type[Scorer]] = Registry("scorer", "ponder.scorers", Scorer)


def check_role(scorer: type[Scorer], *, process: bool) -> None:
    """Whether `scorer` may select answers: never the gold-answer oracle; a process scorer to
    judge the steps of a search (`process`), else one that judges whole answers."""
    if scorer.uses_gold:
        raise ConfigError(
            f"scorer {scorer.name!r} knows the gold answer; it is for evaluation only and "
            "cannot select answers (pass@k is already the oracle line)"
        )
    if process and not scorer.process:
        able = ", ".join(name for name, cls in SCORERS.items() if cls.process and not cls.uses_gold)
        raise ConfigError(
            f"scorer {scorer.name!r} cannot judge single steps; step-level search needs a "
            f"process scorer ({able})"
        )
    if not process and not scorer.outcome:
        raise ConfigError(f"scorer {scorer.name!r} only judges steps; give it as a process scorer")


async def score_distinct(
    scorer: Scorer, attempts: Sequence[Attempt]
) -> tuple[list[float], list[Usage]]:
    """Score each attempt, judging each distinct text once (its copies get the same score).

    Returns a score per attempt and what judging it cost: the cost of a text is charged to
    its first copy, so the usages add up to what the scorer spent.
    """
    first: dict[str, int] = {}
    for i, attempt in enumerate(attempts):
        first.setdefault(attempt.text, i)
    unique = list(first.values())
    batch = await scorer.ascore([attempts[i] for i in unique])
    by_text = {attempts[i].text: j for j, i in enumerate(unique)}
    scores = [float(batch.scores[by_text[a.text]]) for a in attempts]
    usages = [
        batch.usage_of(by_text[a.text]) if first[a.text] == i else Usage()
        for i, a in enumerate(attempts)
    ]
    return scores, usages


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
