"""Fill the sample bank: N samples per question, every chosen scorer's score per sample,
and the results of the strategies that must run live; each stored as soon as it exists.

Samples are drawn by the one sampler (`strategies/sampler.py`): sample i of a question has
seed `seeds.sample_seed(seed, question) + i`, whichever call draws it, so what is stored
does not depend on how many samples a call drew, on which run drew them, or on whether a
strategy drew them live (`ponder solve --seed S` draws the same samples). The missing
samples of a question are drawn in as few calls as the backend allows, so the embedded
backend batches them. Samples are stored before they are scored, and the scores of a
question as soon as its scoring calls return, so `kill -9` loses at most the calls in
flight. Identical texts are scored once (`scorers.base.score_distinct`); the scoring calls
of a question run concurrently and each sample is charged an even share of their wall time.

Strategies that cannot be replayed from the samples (step-level search, sequential ones,
sample strategies that sample differently such as greedy at temperature 0) run live per
question and budget; their `Result`s are stored too, so a rerun repeats none of them.

`max_tokens_total` (tokens decoded, scoring included) and `max_seconds` stop the run cleanly:
no new backend call starts once either is reached; calls in flight finish and are stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ponder import seeds
from ponder.backends.base import Backend
from ponder.core import SamplingParams, TokenCallback, token_confidences
from ponder.errors import DataError
from ponder.eval.bank import Sample, SampleBank, StoredResult
from ponder.eval.question import Question
from ponder.scorers.base import Attempt, Scorer, score_distinct
from ponder.strategies.base import Strategy
from ponder.strategies.sampler import Sampler
from ponder.tasks.base import Task
from ponder.usage import Usage


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
    """Runs a `Plan` against a backend and a bank."""

    def __init__(
        self,
        bank: SampleBank,
        backend: Backend,
        task: Task,
        plan: Plan,
        *,
        on_question: QuestionCallback | None = None,
        on_tokens: TokenCallback | None = None,
    ) -> None:
        self.bank = bank
        self.backend = backend
        self.task = task
        self.plan = plan
        self.on_question = on_question
        self.on_tokens = on_tokens
        self.progress = Progress()

    async def run(self) -> list[QuestionData]:
        gate = asyncio.Semaphore(max(1, self.plan.concurrency))

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
        await self.draw(question)
        samples = await self.score(question, self.stored(question))
        live = await self.run_live(question)
        wanted = {(j.label, j.k) for j in self.plan.live}
        complete = (
            len(samples) == self.plan.n
            and all(s.name in x.scores for s in self.plan.scorers for x in samples)
            and wanted <= set(live)
        )
        data = QuestionData(question, tuple(samples), live, complete)
        if self.on_question is not None:
            self.on_question(data)
        return data

    async def draw(self, question: Question) -> None:
        plan = self.plan
        self.bank.check_question(plan.run, question)
        have = self.bank.indices(plan.run, question.id)
        missing = [i for i in range(plan.n) if i not in have]
        self.progress.reused += plan.n - len(missing)
        if not missing or self.should_stop():
            return
        base = seeds.sample_seed(plan.seed, question.question)
        task = self.task.for_question(question.question)
        prompt = task.prompt(question.question)
        sampler = Sampler(self.backend, prompt, plan.sampling, base, self.on_tokens)
        async for start, completions, usage in sampler.calls(missing):
            self.progress.spent += usage
            # the call's wall time, split evenly: batched samples finish together
            share = usage.seconds / max(len(completions), 1)
            for offset, completion in enumerate(completions):
                top = plan.sampling.top_logprobs if completion.logprobs else -1
                sample = Sample(
                    idx=start + offset,
                    seed=base + start + offset,
                    text=completion.text,
                    answer=task.extract(
                        completion.text, complete=completion.finish_reason != "length"
                    ),
                    finish_reason=completion.finish_reason,
                    usage=dataclasses.replace(completion.usage, seconds=share, calls=0),
                    mean_logprob=completion.mean_logprob,
                    sum_logprob=completion.sum_logprob,
                    top_logprobs=top,
                    logprobs=completion.logprobs,
                )
                self.bank.add_sample(plan.run, question, sample)
                self.progress.generated += 1
            if self.should_stop():
                return

    async def score(self, question: Question, samples: list[Sample]) -> list[Sample]:
        """Every scorer's score on every stored sample that lacks it."""
        changed = False
        prompt = self.task.prompt(question.question)
        if any(
            scorer.needs_logprobs and scorer.name not in s.scores
            for scorer in self.plan.scorers
            for s in samples
        ):
            samples = self.stored(question, logprobs=True)
        for scorer in self.plan.scorers:
            todo = [s for s in samples if scorer.name not in s.scores]
            if not todo:
                continue
            for sample in todo:
                _check_logprobs(scorer, sample, question)
            if scorer.needs_backend and self.should_stop():
                break  # only scorers that call a model spend tokens
            attempts = [Attempt.whole(question.question, s.completion(), prompt) for s in todo]
            started = time.perf_counter()
            scores, usages = await score_distinct(scorer, attempts)
            # the calls overlap (the backend batches them): each sample gets an even share
            # of the wall time, as samples of one generation call do
            share = (time.perf_counter() - started) / len(todo)
            for sample, score, usage in zip(todo, scores, usages, strict=True):
                self.progress.spent += usage
                self.bank.add_score(
                    self.plan.run, question.id, sample.idx, scorer.name, score,
                    dataclasses.replace(usage, seconds=share),
                )  # fmt: skip
                self.progress.scored += 1
            changed = True
        return self.stored(question) if changed else samples

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

    async def run_live(self, question: Question) -> dict[tuple[str, int], StoredResult]:
        found: dict[tuple[str, int], StoredResult] = {}
        task = self.task.for_question(question.question)
        for job in self.plan.live:
            key = (job.label, job.k)
            stored = self.bank.result(self.plan.run, question, job.config, job.k)
            if stored is not None:
                self.progress.live_reused += 1
                # judged again: the gold answer may have been corrected since
                right = task.is_correct(stored.data["answer"], question.answer)
                found[key] = dataclasses.replace(stored, correct=right)
                continue
            if self.should_stop():
                continue
            result = await job.strategy.arun(
                question.question, self.backend, on_tokens=self.on_tokens
            )
            self.progress.spent += result.usage
            correct = task.is_correct(result.answer, question.answer)
            self.bank.add_result(
                self.plan.run, question, job.config, job.k, job.label, result, correct
            )
            self.progress.live_runs += 1
            stored = self.bank.result(self.plan.run, question, job.config, job.k)
            assert stored is not None
            found[key] = stored
        return found


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
