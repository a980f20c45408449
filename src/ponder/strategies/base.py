"""The Strategy interface, its kinds, the Budget, the `Run` every Result is built by, and the
registry.

A strategy is a frozen dataclass: its fields are its parameters (validated at construction),
so the CLI, the server and the eval harness build any of them from a `StrategySpec`
(`strategies/spec.py`) and no code of theirs names a strategy. `arun` takes the question and
a backend and returns a `Result`; the backend counts the tokens, the strategy only adds up
the `Usage` it gets back (its `Run` does that).

Each strategy declares its **kind**:

* `Kind.SAMPLE`: draws complete answers and selects one with a pure `select(candidates,
  rng)`; it may stop drawing early (`settled`), and says how many samples it used. The eval
  harness replays it on stored samples at every budget, charging only what it used.
* `Kind.STEP`: a step-level search over partial answers, run live.
* `Kind.SEQUENTIAL`: any other loop (draft, critique, revise), run live.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from ponder import seeds
from ponder.backends.base import Backend
from ponder.core import (
    Completion,
    Generation,
    Prompt,
    SamplingParams,
    TokenCallback,
    TokenWatch,
    run_sync,
)
from ponder.errors import BudgetError, ConfigError, UnsupportedError
from ponder.registry import Registry
from ponder.result import Candidate, Node, Result, Trace, Vote
from ponder.scorers.base import Attempt, ScoreBatch, Scorer, check_role, score_distinct
from ponder.strategies.sampler import Sampler
from ponder.tasks.base import Task, get_task
from ponder.usage import Usage


class Kind(enum.StrEnum):
    SAMPLE = "sample"
    """Complete answers and a pure selection: replayed from a sample bank."""
    STEP = "step"
    """Step-level search over partial answers: run live."""
    SEQUENTIAL = "sequential"
    """Any other loop of calls (draft, critique, revise): run live."""


@dataclass(frozen=True, slots=True)
class Budget:
    """What a strategy may spend on one question.

    `samples`: complete answers (N of best-of-N, beams or particles of a search).
    `tokens`: tokens the model decodes for this question (prompt tokens not reused from the
    cache plus sampled tokens, scoring included). Either or both; the first limit hit stops.
    """

    samples: int | None = 8
    tokens: int | None = None

    MAX_SAMPLES: ClassVar[int] = 100_000
    """More samples than one question could get in any sensible time: a typo, refused."""

    def __post_init__(self) -> None:
        for name in ("samples", "tokens"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise BudgetError(f"budget {name} must be a positive integer, got {value!r}")
        if self.samples is not None and self.samples > self.MAX_SAMPLES:
            raise BudgetError(
                f"a budget of {self.samples:,} samples is above ponder's limit of "
                f"{self.MAX_SAMPLES:,} per question"
            )
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
    """What a strategy decided."""

    chosen: int | None
    """Index of the chosen candidate (None: every candidate abstained)."""
    answer: str | None
    decision: str
    votes: tuple[Vote, ...] = ()
    used: int | None = None
    """Samples the decision read (an early stop reads fewer than were offered)."""
    stop: str | None = None
    """Why the strategy stopped drawing before its budget, if it did."""
    tokens: tuple[int, ...] = ()
    """Completion tokens each used sample cost, when a strategy halted some of them
    mid-generation (empty: each cost what it was drawn with)."""


def default_task() -> Task:
    return get_task("math")


def check_scorer(strategy: type[Strategy], scorer: type[Scorer] | None) -> None:
    """Whether `scorer` may serve `strategy`: the one place this is checked, on classes, so
    a spec can check before any backend exists and a strategy when it is built."""
    if scorer is None:
        if strategy.needs_scorer:
            role = "process scorer" if strategy.kind is Kind.STEP else "scorer"
            raise ConfigError(f"strategy {strategy.name!r} needs a {role}")
        return
    check_role(scorer, process=strategy.kind is Kind.STEP)


@dataclass(frozen=True, kw_only=True)
class Strategy(ABC):
    name: ClassVar[str] = "strategy"
    """Set by the registry."""
    summary: ClassVar[str] = ""
    kind: ClassVar[Kind] = Kind.SEQUENTIAL
    needs_scorer: ClassVar[bool] = False
    reads_confidences: ClassVar[bool] = False
    """Reads each candidate's token confidences (so a replay loads the stored logprobs)."""
    required_options: ClassVar[tuple[str, ...]] = ()
    """Options without a usable default (a policy file): an evaluation that names no
    strategies leaves this one out unless they are given."""

    task: Task = field(default_factory=default_task)
    scorer: Scorer | None = None
    sampling: SamplingParams = SamplingParams()
    budget: Budget = Budget()
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.scorer is not None:
            check_scorer(type(self), type(self.scorer))

    @classmethod
    def example_options(cls, folder: Path, model_id: str) -> dict[str, Any]:
        """Options that make a working example of this strategy for `model_id` (the
        contract test builds every registered strategy with them): none by default; a
        strategy with a required option (a policy file) writes what it needs in `folder`."""
        del folder, model_id
        return {}

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

    def begin(self, question: str, backend: Backend, on_tokens: TokenCallback | None) -> Run:
        """A new run of this strategy on `question`, after checking it can run at all."""
        check_scorer(type(self), type(self.scorer) if self.scorer else None)
        if self.scorer is not None:
            self.scorer.check(backend)
        return Run(self, question, backend, on_tokens)

    @abstractmethod
    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        """Answer `question` with `backend` within the budget."""

    def run(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        return run_sync(self.arun(question, backend, on_tokens=on_tokens))


class Run:
    """One run of a strategy on one question: it makes the strategy's backend and scorer
    calls, adds up what they spent, keeps notes, and builds the `Result` and its `Trace`.

    Strategies are frozen and shared between runs, so everything a run changes lives here.
    """

    def __init__(
        self,
        strategy: Strategy,
        question: str,
        backend: Backend,
        on_tokens: TokenCallback | None,
    ) -> None:
        self.strategy, self.question, self.backend = strategy, question, backend
        self.on_tokens = on_tokens
        self.task = strategy.task.for_question(question)
        """The strategy's task bound to this question."""
        self.prompt = self.task.prompt(question)
        self.rng = strategy.rng(question)
        self.usage = Usage()
        self.notes: list[str] = []
        self.started = time.perf_counter()
        self._sampler: Sampler | None = None

    def sampler(self, params: SamplingParams) -> Sampler:
        """The sampler of this run's samples (one per run: sample i keeps seed + i)."""
        if self._sampler is None:
            seed = self.strategy.sample_seed(self.question)
            self._sampler = Sampler(self.backend, self.prompt, params, seed, self.on_tokens)
        return self._sampler

    async def sample(
        self, params: SamplingParams, count: int, watch: TokenWatch | None = None
    ) -> list[Completion]:
        """The next `count` samples of the question's prompt (`watch` may halt them)."""
        completions, usage = await self.sampler(params).next(count, watch)
        self.usage += usage
        return completions

    async def generate(
        self, params: SamplingParams, *, n: int = 1, prompt: Prompt | None = None
    ) -> Generation:
        """`n` samples of `prompt` (the task's prompt of the question by default)."""
        generation = await self.backend.agenerate(
            self.prompt if prompt is None else prompt, params, n=n, on_tokens=self.on_tokens
        )
        self.usage += generation.usage
        return generation

    async def extend(
        self,
        prefixes: Sequence[str],
        params: SamplingParams,
        *,
        n: int = 1,
        prompt: Prompt | None = None,
    ) -> Generation:
        """`n` continuations of each assistant prefix."""
        generation = await self.backend.acontinue(
            self.prompt if prompt is None else prompt,
            prefixes,
            params,
            n=n,
            on_tokens=self.on_tokens,
        )
        self.usage += generation.usage
        return generation

    async def judge(self, scorer: Scorer, attempts: Sequence[Attempt]) -> ScoreBatch:
        batch = await scorer.ascore(attempts)
        self.usage += batch.usage
        return batch

    async def scores(self, completions: Sequence[Completion]) -> list[dict[str, float]]:
        """The strategy's scorer's score of each completion (each distinct text once)."""
        scorer = self.strategy.scorer
        if scorer is None:
            return [{} for _ in completions]
        attempts = [Attempt.whole(self.question, c, self.prompt) for c in completions]
        scores, usages = await score_distinct(scorer, attempts)
        self.usage += Usage.total(usages)
        return [{scorer.name: s} for s in scores]

    def candidates(
        self, completions: Sequence[Completion], scores: Sequence[Mapping[str, float]] = ()
    ) -> list[Candidate]:
        """Candidates of completions: answers extracted, equivalent answers clustered."""
        task = self.task
        made = [
            Candidate.from_completion(
                c,
                None  # a halted sample was stopped for lack of confidence: it gives no answer
                if c.finish_reason == "halted"
                else task.extract(c.text, complete=c.finish_reason != "length"),
            )
            for c in completions
        ]
        labels = task.cluster([c.answer for c in made])
        return [
            dataclasses.replace(c, cluster=k, scores=dict(scores[i]) if i < len(scores) else {})
            for i, (c, k) in enumerate(zip(made, labels, strict=True))
        ]

    def note(self, text: str) -> None:
        self.notes.append(text)

    def result(
        self,
        candidates: Sequence[Candidate],
        selection: Selection,
        *,
        nodes: Sequence[Node] = (),
        chosen_path: Sequence[int] = (),
    ) -> Result:
        strategy = self.strategy
        trace = Trace(
            strategy=strategy.name,
            kind=strategy.kind.value,
            decision=selection.decision,
            params=strategy.params(),
            votes=selection.votes,
            nodes=tuple(nodes),
            chosen_path=tuple(chosen_path),
            notes=tuple(self.notes),
            used=selection.used if selection.used is not None else len(candidates),
            stop=selection.stop,
        )
        return Result(
            question=self.question,
            answer=selection.answer,
            chosen=selection.chosen,
            candidates=tuple(candidates),
            usage=self.usage,
            trace=trace,
            seconds=time.perf_counter() - self.started,
        )


DEFAULT_TOKEN_BATCH = 16
"""Samples per call when a budget counts only tokens and no batch size is set."""


@dataclass(frozen=True, kw_only=True)
class SampleStrategy(Strategy):
    """Draw complete answers a batch at a time, stop when `settled` says so (or at the
    budget), then `select` one. `select` and `settled` must be pure given their inputs, so
    a replay on stored samples decides what a live run decides (`decide`)."""

    kind: ClassVar[Kind] = Kind.SAMPLE

    batch_size: int | None = None
    """Samples per backend call, and how often a stopping rule looks at them; None: the
    whole sample budget in one call (16 a call when the budget counts only tokens)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size is not None and (
            isinstance(self.batch_size, bool)
            or not isinstance(self.batch_size, int)
            or self.batch_size < 1
        ):
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        samples = self.budget.samples
        if self.batch_size is not None and samples is not None and self.batch_size > samples:
            raise BudgetError(
                f"batch_size {self.batch_size} is larger than the sample budget of {samples}; "
                "lower batch_size or raise n"
            )
        tokens, longest = self.budget.tokens, self.sampling.max_tokens
        if tokens is not None and tokens < longest:
            raise BudgetError(
                f"the token budget ({tokens}) is below max_tokens ({longest}), what one sample "
                "may take: raise the token budget or lower max_tokens"
            )

    @abstractmethod
    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        """Pick the answer among candidates whose `answer`, `cluster` and `scores` are set."""

    def settled(self, candidates: Sequence[Candidate]) -> str | None:
        """Why drawing may stop after these samples (None: draw on). Never stops by default."""
        del candidates
        return None

    def halting(self, candidates: Sequence[Candidate]) -> Halting | None:
        """The rule that may halt the samples of the next batch mid-generation, given the
        samples so far (None: none; the default)."""
        del candidates
        return None

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

    def next_batch(self, drawn: Sequence[Candidate], total: int | None) -> int:
        """How many samples to draw next, given those drawn so far, for a budget of `total`
        samples (None: no sample limit, the token budget decides); 0 ends the drawing. It may
        look at what was drawn (a rule that first probes, then decides how far to go), and
        must be pure, as `settled` is: replay asks it the same questions."""
        step = self.batch_size or total or DEFAULT_TOKEN_BATCH
        return step if total is None else max(min(step, total - len(drawn)), 0)

    def decide(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        """The strategy on samples already drawn, in the order they were drawn (what replay
        calls): the stopping rule sees them a batch at a time, and the selection reads only
        the samples before the stop."""
        drawn = list(candidates)
        used, stop, halted = len(drawn), None, False
        seen = 0
        while (size := min(self.next_batch(drawn[:seen], len(drawn)), len(drawn) - seen)) > 0:
            rule = self.halting(drawn[:seen])
            if rule is not None:
                for i in range(seen, seen + size):
                    at = rule.halts(drawn[i].confidences or ())
                    if at is not None:
                        drawn[i] = halted_copy(drawn[i], at + 1)
                        halted = True
            seen += size
            used = seen
            stop = self.settled(drawn[:seen])
            if stop is not None:
                break
        selection = self.select(drawn[:used], rng)
        tokens = tuple(c.completion_tokens for c in drawn[:used]) if halted else ()
        return dataclasses.replace(selection, used=used, stop=stop, tokens=tokens)

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        run = self.begin(question, backend, on_tokens)
        params = self.sampling_params()
        if params.logprobs and not backend.capabilities.logprobs:
            raise UnsupportedError(
                f"strategy {self.name!r} reads token logprobs, which backend "
                f"{backend.model_id!r} does not return"
            )
        completions: list[Completion] = []
        scores: list[dict[str, float]] = []
        candidates: list[Candidate] = []
        stop = None
        while (size := self.next_batch(candidates, self.budget.samples)) > 0:
            if self.budget.tokens is not None:
                size = min(size, self._affordable(run, len(completions), params))
                if size < 1:
                    run.note(
                        f"token budget of {self.budget.tokens} reached after "
                        f"{len(completions)} samples ({run.usage.decoded_tokens} tokens decoded)"
                    )
                    break
            rule = self.halting(candidates)
            fresh = await run.sample(params, size, rule.watch() if rule is not None else None)
            completions += fresh
            scores += await run.scores(fresh)
            candidates = run.candidates(completions, scores)
            stop = self.settled(candidates)
            if stop is not None:
                break
        if self.budget.tokens is not None and run.usage.decoded_tokens > self.budget.tokens:
            run.note(
                f"{run.usage.decoded_tokens} tokens decoded in all, above the token budget of "
                f"{self.budget.tokens}: a call cannot be stopped halfway, and scoring comes "
                "after sampling"
            )
        selection = self.select(candidates, run.rng)
        return run.result(
            candidates, dataclasses.replace(selection, used=len(candidates), stop=stop)
        )

    def _affordable(self, run: Run, drawn: int, params: SamplingParams) -> int:
        """How many more samples fit the token budget.

        The first call assumes max_tokens per sample (the budget holds at least one); later
        calls expect the prompt to cost what the last call paid for it (little when the
        backend reuses its KV) and each sample the mean length so far.
        """
        assert self.budget.tokens is not None
        spent = run.usage
        left = self.budget.tokens - spent.decoded_tokens
        if not drawn:
            return left // params.max_tokens
        sampler = run.sampler(params)
        each = max(sampler.usage.completion_tokens / drawn, 1.0)
        return math.floor((left - sampler.last_prompt_cost) / each)


class Halting(Protocol):
    """A rule that halts a sample mid-generation: the same rule, live (`watch`, fed every
    token as it is sampled) and in replay (`halts`, fed a stored sample's confidences), so
    a replay halts exactly where a live run does."""

    def watch(self) -> TokenWatch:
        """A fresh per-call watch (it keeps state per sample index)."""

    def halts(self, confidences: Sequence[float]) -> int | None:
        """The index of the token at which the rule halts a sample, if it does."""


def halted_copy(candidate: Candidate, tokens: int) -> Candidate:
    """A stored candidate as a live run that halted it after `tokens` tokens would have it:
    no answer, and only those tokens spent."""
    full = max(candidate.completion_tokens, 1)
    usage = dataclasses.replace(
        candidate.usage,
        completion_tokens=min(tokens, candidate.completion_tokens),
        seconds=candidate.usage.seconds * min(tokens, full) / full,
    )
    return dataclasses.replace(
        candidate, answer=None, cluster=None, finish_reason="halted", usage=usage
    )


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
    "strategy", "ponder.strategies", Strategy, plural="strategies"
)
