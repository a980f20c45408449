"""Fill the sample bank: N samples per question, every chosen scorer's score per sample,
and the results of the strategies that must run live; each stored as soon as it exists.

Samples are drawn by the one sampler (`strategies/sampler.py`): sample i of a question has
seed `seeds.sample_seed(seed, question) + i`, whichever call draws it, so what is stored
does not depend on how many samples a call drew, on which run drew them, on which process
drew them, or on whether a strategy drew them live (`ponder solve --seed S` draws the same
samples). The missing samples of a question are drawn in as few calls as the backend allows,
so the embedded backend batches them. Samples are stored before they are scored, and the
scores of a question as soon as its scoring calls return, so `kill -9` loses at most the
calls in flight. Identical texts are scored once (`scorers.base.score_distinct`); the
scoring calls of a question run concurrently and each sample is charged an even share of
their wall time.

Strategies that cannot be replayed from the samples (step-level search, sequential ones,
sample strategies that sample differently such as greedy at temperature 0) run live per
question and budget; their `Result`s are stored too, so a rerun repeats none of them.

The work on a question is split in two. The `Collector`, the only one that opens the bank,
reads what the bank lacks (a `Todo`) and stores what comes back; a `Worker`, which never
sees the bank, does the backend work of a `Todo` and streams it back as events (`Drawn`
after each generation call, `Scored` after each scorer, `Ran` after each live run). The
worker runs in this process by default; `eval/distributed.py` runs the same worker in Ray
actors. A worker lost mid-question (`WorkerLost`) costs only what it had not sent: the
question's `Todo` is read from the bank again and sent to another worker.

`max_tokens_total` (tokens decoded, scoring included) and `max_seconds` stop the run cleanly:
no new backend call starts once either is reached; calls in flight finish and are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ponder import seeds
from ponder.backends.base import Backend
from ponder.core import Completion, SamplingParams, TokenCallback, token_confidences
from ponder.errors import BackendError, DataError
from ponder.eval.bank import Sample, SampleBank, StoredResult
from ponder.eval.question import Question
from ponder.result import Result
from ponder.scorers.base import Attempt, Scorer, score_distinct
from ponder.strategies.base import Strategy
from ponder.strategies.sampler import Sampler
from ponder.tasks.base import Task
from ponder.usage import Usage

MAX_TRIES = 3
"""Workers a question may be sent to before its loss is taken for a fault of the question
(one that kills every worker it reaches, such as running out of memory)."""


@dataclass(frozen=True, slots=True)
class LiveJob:
    """One strategy configuration run live at one budget."""

    label: str
    config: str
    """Hash of the strategy's name and parameters: the key of its stored results."""
    k: int
    strategy: Strategy


@dataclass(frozen=True, slots=True)
class Plan:
    run: str
    questions: Sequence[Question]
    n: int
    sampling: SamplingParams
    """How samples are drawn (logprobs included when a scorer reads them); seeds are set
    per question and sample."""
    seed: int
    scorers: Sequence[Scorer] = ()
    live: Sequence[LiveJob] = ()
    max_tokens_total: int | None = None
    max_seconds: float | None = None
    concurrency: int = 1
    confidences: int = 0
    """> 0: a replayed strategy reads token confidences over this many top alternatives;
    they are computed from the stored logprobs (which must hold that many)."""


@dataclass(frozen=True, slots=True)
class QuestionData:
    """What the bank holds for one question after the run."""

    question: Question
    samples: tuple[Sample, ...]
    """Samples 0..n-1 that exist, by index."""
    live: dict[tuple[str, int], StoredResult]
    """(label, k) -> stored result of a live strategy."""
    complete: bool
    """All n samples, every scorer's score and every live result are there."""


@dataclass(frozen=True, slots=True)
class Todo:
    """What the bank lacks for one question: the work a worker is sent."""

    question: Question
    draw: tuple[int, ...]
    """Indices of the samples to draw."""
    unscored: tuple[Sample, ...] = ()
    """Stored samples that lack some scorer's score (with their token logprobs when a
    scorer that lacks them reads them)."""
    live: tuple[tuple[str, int], ...] = ()
    """(config, k) of each live job without a stored result."""


@dataclass(frozen=True, slots=True)
class Drawn:
    """The samples one generation call drew, and what the call cost."""

    samples: tuple[Sample, ...]
    usage: Usage


@dataclass(frozen=True, slots=True)
class Scored:
    """One scorer's scores of a question's samples: (sample index, score, cost) each."""

    scorer: str
    scores: tuple[tuple[int, float, Usage], ...]

    @property
    def usage(self) -> Usage:
        return Usage.total(usage for _, _, usage in self.scores)


@dataclass(frozen=True, slots=True)
class Ran:
    """One live strategy's result at one budget."""

    config: str
    k: int
    label: str
    result: Result

    @property
    def usage(self) -> Usage:
        return self.result.usage


Event = Drawn | Scored | Ran
StopCheck = Callable[[], bool]


class WorkerLost(BackendError):
    """The worker doing a question's work went away (killed, out of memory, node lost);
    what it sent is stored, the rest can go to another worker."""


class Workers(Protocol):
    """Where the backend work of questions is done: a `Worker` here, or a pool of them
    elsewhere (`eval.distributed`)."""

    @property
    def slots(self) -> int:
        """Questions worked on at once."""
        ...

    def work(self, todo: Todo, should_stop: StopCheck) -> AsyncIterator[Event]:
        """The events of `todo`'s work, each as soon as it exists; no backend call starts
        once `should_stop()` is true. Raises `WorkerLost` when the worker goes away."""
        ...


class Worker:
    """Does the backend work of questions (draws, scores, runs live strategies) and never
    touches the bank: the same code in the collecting process and in a Ray actor."""

    def __init__(
        self,
        backend: Backend,
        task: Task,
        sampling: SamplingParams,
        seed: int,
        scorers: Sequence[Scorer] = (),
        jobs: Sequence[LiveJob] = (),
        *,
        slots: int = 1,
        on_tokens: TokenCallback | None = None,
    ) -> None:
        self.backend = backend
        self.task = task
        self.sampling = sampling
        self.seed = seed
        self.scorers = list(scorers)
        self.jobs = {(job.config, job.k): job for job in jobs}
        self._slots = max(1, slots)
        self.on_tokens = on_tokens

    @property
    def slots(self) -> int:
        return self._slots

    async def work(self, todo: Todo, should_stop: StopCheck) -> AsyncIterator[Event]:
        question = todo.question
        task = self.task.for_question(question.question)
        drawn: list[Sample] = []
        if todo.draw and not should_stop():
            base = seeds.sample_seed(self.seed, question.question)
            prompt = task.prompt(question.question)
            sampler = Sampler(self.backend, prompt, self.sampling, base, self.on_tokens)
            async for start, completions, usage in sampler.calls(todo.draw):
                # the call's wall time, split evenly: batched samples finish together
                share = usage.seconds / max(len(completions), 1)
                samples = tuple(
                    self._sample(task, start + offset, base + start + offset, completion, share)
                    for offset, completion in enumerate(completions)
                )
                drawn += samples
                yield Drawn(samples, usage)
                if should_stop():
                    break
        samples = sorted([*todo.unscored, *drawn], key=lambda s: s.idx)
        async for scored in self._score(question, samples, should_stop):
            yield scored
        for key in todo.live:
            if should_stop():
                break
            job = self.jobs.get(key)
            if job is None:
                raise DataError(
                    f"a worker was asked for a live run it does not know ({key}): the "
                    "workers run another version of ponder or its plug-ins than this process"
                )
            result = await job.strategy.arun(
                question.question, self.backend, on_tokens=self.on_tokens
            )
            yield Ran(job.config, job.k, job.label, result)

    def _sample(
        self, task: Task, idx: int, seed: int, completion: Completion, share: float
    ) -> Sample:
        top = self.sampling.top_logprobs if completion.logprobs else -1
        complete = completion.finish_reason != "length"
        return Sample(
            idx=idx,
            seed=seed,
            text=completion.text,
            answer=task.extract(completion.text, complete=complete),
            finish_reason=completion.finish_reason,
            usage=dataclasses.replace(completion.usage, seconds=share, calls=0),
            mean_logprob=completion.mean_logprob,
            sum_logprob=completion.sum_logprob,
            top_logprobs=top,
            logprobs=completion.logprobs,
        )

    async def _score(
        self, question: Question, samples: list[Sample], should_stop: StopCheck
    ) -> AsyncIterator[Scored]:
        """Every scorer's score on every sample that lacks it, one event per scorer."""
        prompt = self.task.for_question(question.question).prompt(question.question)
        for scorer in self.scorers:
            todo = [s for s in samples if scorer.name not in s.scores]
            if not todo:
                continue
            for sample in todo:
                _check_logprobs(scorer, sample, question)
            if scorer.needs_backend and should_stop():
                break  # only scorers that call a model spend tokens
            attempts = [Attempt.whole(question.question, s.completion(), prompt) for s in todo]
            started = time.perf_counter()
            scores, usages = await score_distinct(scorer, attempts)
            # the calls overlap (the backend batches them): each sample gets an even share
            # of the wall time, as samples of one generation call do
            share = (time.perf_counter() - started) / len(todo)
            yield Scored(
                scorer.name,
                tuple(
                    (sample.idx, score, dataclasses.replace(usage, seconds=share))
                    for sample, score, usage in zip(todo, scores, usages, strict=True)
                ),
            )


@dataclass
class Progress:
    generated: int = 0
    reused: int = 0
    scored: int = 0
    live_runs: int = 0
    live_reused: int = 0
    spent: Usage = Usage()
    """Everything this process spent (generation, scoring, live strategies)."""
    stopped: str | None = None
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


QuestionCallback = Callable[[QuestionData], None]


class Collector:
    """Runs a `Plan` against a bank: what is missing goes to `workers` (default: a `Worker`
    on `backend` in this process), and what they send back is stored as it arrives."""

    def __init__(
        self,
        bank: SampleBank,
        backend: Backend,
        task: Task,
        plan: Plan,
        *,
        on_question: QuestionCallback | None = None,
        on_tokens: TokenCallback | None = None,
        workers: Workers | None = None,
    ) -> None:
        self.bank = bank
        self.task = task
        self.plan = plan
        self.on_question = on_question
        self.workers: Workers = workers or Worker(
            backend, task, plan.sampling, plan.seed, plan.scorers, plan.live,
            slots=plan.concurrency, on_tokens=on_tokens,
        )  # fmt: skip
        self.progress = Progress()

    async def run(self) -> list[QuestionData]:
        gate = asyncio.Semaphore(self.workers.slots)

        async def guarded(question: Question) -> QuestionData:
            async with gate:
                return await self.question(question)

        return list(await asyncio.gather(*(guarded(q) for q in self.plan.questions)))

    def should_stop(self) -> bool:
        plan, progress = self.plan, self.progress
        if progress.stopped:
            return True
        if plan.max_tokens_total is not None and progress.spent.decoded_tokens >= (
            plan.max_tokens_total
        ):
            progress.stopped = f"--max-tokens-total {plan.max_tokens_total} reached"
        elif plan.max_seconds is not None and progress.elapsed >= plan.max_seconds:
            progress.stopped = f"--max-seconds {plan.max_seconds:g} reached"
        return progress.stopped is not None

    async def question(self, question: Question) -> QuestionData:
        for tries in range(1, MAX_TRIES + 1):
            todo = self.todo(question, first=tries == 1)
            events = self.workers.work(todo, self.should_stop)
            try:
                async with contextlib.aclosing(events):
                    async for event in events:
                        self.store(question, event)
            except WorkerLost as lost:
                if tries == MAX_TRIES:
                    raise WorkerLost(
                        f"question {question.id!r} lost {tries} workers in a row (last: {lost}); "
                        "it may be what kills them (memory?): rerun to continue, or leave it out"
                    ) from None
                self.progress.notes.append(
                    f"{lost}; what it had not sent of question {question.id!r} went to another "
                    "worker"
                )
                continue
            break
        data = self.data(question)
        if self.on_question is not None:
            self.on_question(data)
        return data

    def todo(self, question: Question, *, first: bool = True) -> Todo:
        """What the bank lacks for `question` (counted as reused on the `first` look)."""
        plan = self.plan
        self.bank.check_question(plan.run, question)
        have = self.bank.indices(plan.run, question.id)
        draw = tuple(i for i in range(plan.n) if i not in have)
        stored = self.stored(question)
        if any(
            scorer.needs_logprobs and scorer.name not in s.scores
            for scorer in plan.scorers
            for s in stored
        ):
            stored = self.stored(question, logprobs=True)
        unscored = tuple(s for s in stored if any(x.name not in s.scores for x in plan.scorers))
        live = tuple(
            (job.config, job.k)
            for job in plan.live
            if self.bank.result(plan.run, question, job.config, job.k) is None
        )
        if first:
            self.progress.reused += plan.n - len(draw)
            self.progress.live_reused += len(plan.live) - len(live)
        return Todo(question, draw, unscored, live)

    def store(self, question: Question, event: Event) -> None:
        """Store one event of a worker, each row committed on its own."""
        run, progress = self.plan.run, self.progress
        progress.spent += event.usage
        if isinstance(event, Drawn):
            for sample in event.samples:
                self.bank.add_sample(run, question, sample)
                progress.generated += 1
        elif isinstance(event, Scored):
            for idx, score, usage in event.scores:
                self.bank.add_score(run, question.id, idx, event.scorer, score, usage)
                progress.scored += 1
        else:
            task = self.task.for_question(question.question)
            correct = task.is_correct(event.result.answer, question.answer)
            self.bank.add_result(
                run, question, event.config, event.k, event.label, event.result, correct
            )
            progress.live_runs += 1

    def data(self, question: Question) -> QuestionData:
        """What the bank holds for `question`."""
        plan = self.plan
        samples = self.stored(question)
        live: dict[tuple[str, int], StoredResult] = {}
        task = self.task.for_question(question.question)
        for job in plan.live:
            stored = self.bank.result(plan.run, question, job.config, job.k)
            if stored is not None:
                # judged again: the gold answer may have been corrected since
                right = task.is_correct(stored.data["answer"], question.answer)
                live[(job.label, job.k)] = dataclasses.replace(stored, correct=right)
        complete = (
            len(samples) == plan.n
            and all(s.name in x.scores for s in plan.scorers for x in samples)
            and {(j.label, j.k) for j in plan.live} <= set(live)
        )
        return QuestionData(question, tuple(samples), live, complete)

    def stored(self, question: Question, *, logprobs: bool = False) -> list[Sample]:
        """Samples 0..n-1 of the question that are in the bank, their answers extracted
        again by the task (an improved extractor applies to old samples too), with their
        token confidences when a strategy reads them."""
        top = self.plan.confidences
        stored = self.bank.samples(self.plan.run, question, logprobs=logprobs or bool(top))
        task = self.task.for_question(question.question)
        out = []
        for s in stored:
            if s.idx >= self.plan.n:
                continue
            answer = task.extract(s.text, complete=s.finish_reason != "length")
            if top:
                if 0 <= s.top_logprobs < top:
                    raise DataError(
                        f"a replayed strategy reads {top} top logprobs per token, but sample "
                        f"{s.idx} of {question.id!r} was stored with {s.top_logprobs}; draw a "
                        f"new bank with --top-logprobs {top}"
                    )
                s = dataclasses.replace(
                    s,
                    confidences=token_confidences(s.logprobs),
                    logprobs=s.logprobs if logprobs else None,
                )
            out.append(dataclasses.replace(s, answer=answer))
        return out


def _check_logprobs(scorer: Scorer, sample: Sample, question: Question) -> None:
    if not scorer.needs_logprobs:
        return
    if sample.top_logprobs < 0 or sample.top_logprobs < scorer.top_logprobs:
        kept = (
            "no token logprobs"
            if sample.top_logprobs < 0
            else (f"{sample.top_logprobs} alternatives per token")
        )
        raise DataError(
            f"scorer {scorer.name!r} reads {max(scorer.top_logprobs, 1)} logprob(s) per token, "
            f"but sample {sample.idx} of {question.id!r} was stored with {kept}; ask for this "
            "scorer when the samples are first drawn (a new --bank)"
        )
