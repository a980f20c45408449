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
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ponder import seeds
from ponder.backends.base import (
    Backend,
    Completion,
    Message,
    SamplingParams,
    TokenCallback,
    run_sync,
)
from ponder.errors import BudgetError, ConfigError, UnsupportedError
from ponder.registry import Registry
from ponder.result import Candidate, Result, Trace, Vote
from ponder.scorers.base import Attempt, Scorer
from ponder.tasks.base import Task, get_task
from ponder.usage import Usage


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
        return seeds.rng(self.seed, "strategy", question.strip())

    def sample_seed(self, question: str) -> int:
        """Seed of sample 0 (sample i: + i), unless the sampling parameters fix one."""
        given = self.sampling.seed
        return given if given is not None else seeds.sample_seed(self.seed, question)

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

    batch_size: int = 16
    """Samples per backend call when the budget is in tokens only."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        tokens, longest = self.budget.tokens, self.sampling.max_tokens
        if tokens is not None and tokens < longest:
            raise BudgetError(
                f"the token budget ({tokens}) is below max_tokens ({longest}), what one sample "
                "may take: raise the token budget or lower max_tokens"
            )

    @abstractmethod
    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        """Pick the answer among candidates whose `answer`, `cluster` and `scores` are set."""

    def sampling_params(self) -> SamplingParams:
        """What to ask the backend for: logprobs when the scorer reads them."""
        params = self.sampling
        if self.scorer is not None and self.scorer.needs_logprobs:
            params = dataclasses.replace(
                params,
                logprobs=True,
                top_logprobs=max(params.top_logprobs, self.scorer.top_logprobs),
            )
        return params

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        started = time.perf_counter()
        if self.scorer is not None:
            self.scorer.check(backend)
        params = self.sampling_params()
        if params.logprobs and not backend.capabilities.logprobs:
            raise UnsupportedError(
                f"strategy {self.name!r} reads token logprobs, which backend "
                f"{backend.model_id!r} does not return"
            )
        rng = self.rng(question)
        seed = self.sample_seed(question)
        completions, usage, notes = await self.draw(question, backend, params, seed, on_tokens)
        candidates = self.judge(question, completions)
        sampled = usage
        if self.scorer is not None:
            candidates, scored = await score_candidates(
                self.scorer, question, completions, candidates, self.task.prompt(question)
            )
            usage += scored
        if self.budget.tokens is not None and usage.decoded_tokens > self.budget.tokens:
            notes.append(
                f"{usage.decoded_tokens} tokens decoded in all ({sampled.decoded_tokens} "
                f"sampling, the rest scoring), above the token budget of {self.budget.tokens}: "
                "a call cannot be stopped halfway and scoring comes after sampling"
            )
        selection = self.select(candidates, rng)
        trace = Trace(
            strategy=self.name,
            decision=selection.decision,
            params=self.params(),
            votes=selection.votes,
            notes=tuple(notes),
        )
        return Result(
            question=question,
            answer=selection.answer,
            chosen=selection.chosen,
            candidates=tuple(candidates),
            usage=usage,
            trace=trace,
            seconds=time.perf_counter() - started,
        )

    async def draw(
        self,
        question: str,
        backend: Backend,
        params: SamplingParams,
        seed: int,
        on_tokens: TokenCallback | None,
    ) -> tuple[list[Completion], Usage, list[str]]:
        """Sample in as few backend calls as the budget and the backend allow.

        More samples than the backend's `max_n` are drawn over several calls; sample i is
        seeded `seed + i` whichever call draws it.
        """
        wanted = self.budget.samples
        limit = backend.capabilities.max_n
        prompt = self.task.prompt(question)
        completions: list[Completion] = []
        usage = Usage()
        notes: list[str] = []
        prompt_cost = 0
        while wanted is None or len(completions) < wanted:
            n = min(wanted - len(completions) if wanted is not None else self.batch_size, limit)
            if self.budget.tokens is not None:
                n = min(n, self._affordable(usage, len(completions), prompt_cost, params))
                if n < 1:
                    notes.append(
                        f"token budget of {self.budget.tokens} reached after "
                        f"{len(completions)} samples ({usage.decoded_tokens} tokens decoded)"
                    )
                    break
            batch = dataclasses.replace(params, seed=seed + len(completions))
            generation = await backend.agenerate(prompt, batch, n=n, on_tokens=on_tokens)
            completions.extend(generation.completions)
            usage += generation.usage
            prompt_cost = generation.usage.decoded_prompt_tokens
        return completions, usage, notes

    def _affordable(
        self, spent: Usage, drawn: int, prompt_cost: int, params: SamplingParams
    ) -> int:
        """How many more samples fit the token budget.

        The first call assumes max_tokens per sample (the budget holds at least one); later
        calls expect the prompt to cost what the last call paid for it (little when the
        backend reuses its KV) and each sample the mean length so far.
        """
        assert self.budget.tokens is not None
        left = self.budget.tokens - spent.decoded_tokens
        if not drawn:
            return left // params.max_tokens
        each = max(spent.completion_tokens / drawn, 1.0)
        return math.floor((left - prompt_cost) / each)

    def judge(self, question: str, completions: Sequence[Completion]) -> list[Candidate]:
        """Extract each answer and label equivalent answers with the same cluster."""
        del question
        candidates = [Candidate.from_completion(c, self.task.extract(c.text)) for c in completions]
        labels = self.task.cluster([c.answer for c in candidates])
        return [dataclasses.replace(c, cluster=k) for c, k in zip(candidates, labels, strict=True)]


async def score_candidates(
    scorer: Scorer,
    question: str,
    completions: Sequence[Completion],
    candidates: Sequence[Candidate],
    prompt: tuple[Message, ...] = (),
) -> tuple[list[Candidate], Usage]:
    """Score each distinct text once and map the scores back to every candidate."""
    first_of: dict[str, int] = {}
    for i, completion in enumerate(completions):
        first_of.setdefault(completion.text, i)
    unique = list(first_of.values())
    batch = await scorer.ascore([Attempt.whole(question, completions[i], prompt) for i in unique])
    by_text = {completions[i].text: s for i, s in zip(unique, batch.scores, strict=True)}
    scored = [
        dataclasses.replace(c, scores={**c.scores, scorer.name: by_text[comp.text]})
        for c, comp in zip(candidates, completions, strict=True)
    ]
    return scored, batch.usage


def vote_table(
    candidates: Sequence[Candidate], weights: Sequence[float] | None = None
) -> tuple[Vote, ...]:
    """One row per equivalence class, heaviest first; ties keep first-appearance order.

    Abstaining candidates (no answer) never vote. A NaN weight counts as 0.
    """
    rows: dict[int, list[int]] = {}
    for i, candidate in enumerate(candidates):
        if candidate.cluster is not None and candidate.answer is not None:
            rows.setdefault(candidate.cluster, []).append(i)
    votes = []
    for members in rows.values():
        weight = (
            float(len(members))
            if weights is None
            else math.fsum(0.0 if math.isnan(weights[i]) else weights[i] for i in members)
        )
        votes.append(
            Vote(candidates[members[0]].answer or "", len(members), weight, tuple(members))
        )
    return tuple(sorted(votes, key=lambda v: (-v.weight, v.members[0])))


def score_of(candidate: Candidate, scorer: Scorer | None) -> float:
    """The candidate's score by `scorer` (NaN when missing)."""
    if scorer is None:
        return math.nan
    return candidate.scores.get(scorer.name, math.nan)


STRATEGIES: Registry[type[Strategy]] = Registry(
    "strategy", "ponder.strategies", plural="strategies"
)


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
