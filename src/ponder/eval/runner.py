"""Fill the sample bank: N samples per question, every chosen scorer's score per sample,
and the results of the strategies that must run live; each stored as soon as it exists.

Per question, the missing samples are drawn in one backend call with `n` = how many are
missing (split only by the backend's `max_n`), so the embedded backend batches them. Sample
i of question q has seed `seeds.sample_seed(seed, q) + i` (a call starting at sample i passes
that seed and the backend gives sample i + j seed + j), so what is stored does not depend on
how many samples a call drew or on which run drew them. Samples are stored before they are
scored, and the scores of a question as soon as its scoring calls return, so `kill -9`
loses at most the calls in flight. Identical texts are scored once and the score (and its
cost) copied to each copy; the scoring calls of a question run concurrently and each sample
is charged an even share of their wall time.

Strategies that cannot be replayed from the samples (step-level search; sample strategies
that sample differently, such as greedy at temperature 0) run live per question and budget;
their `Result`s are stored too, so a rerun repeats none of them.

`max_tokens_total` (tokens decoded, scoring included) and `max_seconds` stop the run cleanly:
no new backend call starts once either is reached; calls in flight finish and are stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ponder.seeds import sample_seed
from ponder.backends.base import Backend, SamplingParams, TokenCallback
from ponder.errors import BudgetError, DataError
from ponder.eval.bank import Sample, SampleBank, StoredResult
from ponder.eval.datasets import Question
from ponder.scorers.base import Attempt, Scorer
from ponder.strategies.base import Strategy
from ponder.tasks.base import Task
from ponder.usage import Usage


def template_hash(task: Task) -> str:
    """Identifies the prompt the task builds: samples of another template never mix."""
    probe = [m.to_dict() for m in task.prompt("<<QUESTION>>")]
    return hashlib.sha256(json.dumps([task.name, probe]).encode()).hexdigest()[:12]


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
        self._unusable: set[tuple[str, int]] = set()
        """Live jobs whose strategy refused the budget (e.g. fewer beams than its width)."""

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
        wanted = {(j.label, j.k) for j in self.plan.live} - self._unusable
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
        base = sample_seed(plan.seed, question.question)
        prompt = self.task.prompt(question.question)
        for start, count in _calls(missing, self.backend.capabilities.max_n):
            if self.should_stop():
                return
            params = dataclasses.replace(plan.sampling, seed=base + start)
            generation = await self.backend.agenerate(
                prompt, params, n=count, on_tokens=self.on_tokens
            )
            self.progress.spent += generation.usage
            # the call's wall time, split evenly: batched samples finish together
            share = generation.usage.seconds / max(len(generation.completions), 1)
            for offset, completion in enumerate(generation.completions):
                top = plan.sampling.top_logprobs if completion.logprobs else -1
                sample = Sample(
                    idx=start + offset,
                    seed=base + start + offset,
                    text=completion.text,
                    answer=self.task.extract(completion.text),
                    finish_reason=completion.finish_reason,
                    usage=dataclasses.replace(completion.usage, seconds=share, calls=0),
                    mean_logprob=completion.mean_logprob,
                    sum_logprob=completion.sum_logprob,
                    top_logprobs=top,
                    logprobs=completion.logprobs,
                )
                self.bank.add_sample(plan.run, question, sample)
                self.progress.generated += 1

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
            by_text: dict[str, list[Sample]] = {}
            for sample in todo:
                by_text.setdefault(sample.text, []).append(sample)

            async def judge(sample: Sample, scorer: Scorer = scorer) -> tuple[float, Usage]:
                attempt = Attempt.whole(question.question, sample.completion(), prompt)
                batch = await scorer.ascore([attempt])
                return float(batch.scores[0]), batch.usage

            started = time.perf_counter()
            judged = await asyncio.gather(*(judge(copies[0]) for copies in by_text.values()))
            # the calls overlap (the backend batches them): each sample gets an even share
            # of the wall time, as samples of one generation call do
            share = (time.perf_counter() - started) / len(judged)
            for copies, (score, usage) in zip(by_text.values(), judged, strict=True):
                self.progress.spent += usage
                for sample in copies:
                    self.bank.add_score(
                        self.plan.run, question.id, sample.idx, scorer.name, score,
                        dataclasses.replace(usage, seconds=share),
                    )  # fmt: skip
                    self.progress.scored += 1
            changed = True
        return self.stored(question) if changed else samples

    def stored(self, question: Question, *, logprobs: bool = False) -> list[Sample]:
        """Samples 0..n-1 of the question that are in the bank, their answers extracted
        again by the task (an improved extractor applies to old samples too)."""
        stored = self.bank.samples(self.plan.run, question, logprobs=logprobs)
        return [
            dataclasses.replace(s, answer=self.task.extract(s.text))
            for s in stored
            if s.idx < self.plan.n
        ]

    async def run_live(self, question: Question) -> dict[tuple[str, int], StoredResult]:
        found: dict[tuple[str, int], StoredResult] = {}
        for job in self.plan.live:
            key = (job.label, job.k)
            if key in self._unusable:
                continue
            stored = self.bank.result(self.plan.run, question, job.config, job.k)
            if stored is not None:
                self.progress.live_reused += 1
                # judged again: the gold answer may have been corrected since
                right = self.task.is_correct(stored.data["answer"], question.answer)
                found[key] = dataclasses.replace(stored, correct=right)
                continue
            if self.should_stop():
                continue
            try:
                result = await job.strategy.arun(
                    question.question, self.backend, on_tokens=self.on_tokens
                )
            except BudgetError as exc:
                self._unusable.add(key)
                self.progress.notes.append(f"{job.label} at k={job.k} skipped: {exc}")
                continue
            self.progress.spent += result.usage
            correct = self.task.is_correct(result.answer, question.answer)
            self.bank.add_result(
                self.plan.run, question, job.config, job.k, job.label, result, correct
            )
            self.progress.live_runs += 1
            stored = self.bank.result(self.plan.run, question, job.config, job.k)
            assert stored is not None
            found[key] = stored
        return found

    @property
    def unusable(self) -> set[tuple[str, int]]:
        return set(self._unusable)


def _calls(indices: Sequence[int], max_n: int) -> list[tuple[int, int]]:
    """(start, count) per backend call: runs of consecutive indices, at most max_n long."""
    calls: list[tuple[int, int]] = []
    for i in indices:
        if calls and calls[-1][0] + calls[-1][1] == i and calls[-1][1] < max_n:
            calls[-1] = (calls[-1][0], calls[-1][1] + 1)
        else:
            calls.append((i, 1))
    return calls


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
