"""Fill the sample bank: N samples per question, scored, each stored as it arrives."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ponder.backends.base import Backend, SamplingParams
from ponder.eval.bank import SampleBank, SampleRow
from ponder.eval.datasets import Question
from ponder.scorers.base import Attempt, Scorer
from ponder.tasks.base import Task


def template_hash(task: Task) -> str:
    """Identifies the prompt the task builds (a changed template must not reuse samples)."""
    probe = [m.to_dict() for m in task.prompt("<<QUESTION>>")]
    return hashlib.sha256(json.dumps([task.name, probe]).encode()).hexdigest()[:12]


def question_seed(base: int, question_id: str) -> int:
    digest = hashlib.sha256(f"{base}\0{question_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x3FFFFFFF


@dataclass
class Progress:
    generated: int = 0
    reused: int = 0
    decoded_tokens: int = 0
    stopped: str | None = None


async def collect(
    bank: SampleBank,
    key: str,
    questions: Sequence[Question],
    backend: Backend,
    task: Task,
    params: SamplingParams,
    n: int,
    scorers: Sequence[Scorer],
    *,
    seed: int = 0,
    max_tokens_total: int | None = None,
    max_seconds: float | None = None,
    on_question: Callable[[Question, list[SampleRow]], None] | None = None,
) -> Progress:
    """Make sure every question has samples 0..n-1 scored by every scorer."""
    progress = Progress()
    started = time.monotonic()
    for question in questions:
        if max_tokens_total is not None and progress.decoded_tokens >= max_tokens_total:
            progress.stopped = f"--max-tokens-total {max_tokens_total} reached"
            break
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            progress.stopped = f"--max-seconds {max_seconds:g} reached"
            break
        have = bank.indices(key, question.id)
        missing = [i for i in range(n) if i not in have]
        progress.reused += n - len(missing)
        base = question_seed(seed, question.id)
        for start, count in _runs(missing):
            batch = dataclasses.replace(params, seed=base + start)
            generation = await backend.agenerate(task.prompt(question.question), batch, n=count)
            progress.decoded_tokens += generation.usage.decoded_tokens
            share = generation.usage.seconds / count
            rows = []
            for offset, completion in enumerate(generation.completions):
                u = completion.usage
                rows.append(
                    SampleRow(
                        idx=start + offset,
                        seed=base + start + offset,
                        text=completion.text,
                        answer=task.extract(completion.text),
                        finish_reason=completion.finish_reason,
                        prompt_tokens=u.prompt_tokens,
                        cached_tokens=u.cached_prompt_tokens,
                        completion_tokens=u.completion_tokens,
                        mean_logprob=completion.mean_logprob,
                        sum_logprob=completion.sum_logprob,
                        seconds=share,
                        flops=u.flops,
                    )
                )
            rows, spent = await _score(question, rows, generation.completions, scorers)
            progress.decoded_tokens += spent
            bank.add(key, question.id, rows)
            progress.generated += count
        stored = bank.samples(key, question.id)
        stored = await _score_missing(bank, key, question, stored, scorers, progress)
        if on_question is not None:
            on_question(question, stored[:n])
    return progress


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs (start, length) of sorted indices: one backend call each."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][0] + runs[-1][1] == i:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs


async def _score(
    question: Question, rows: list[SampleRow], completions: Sequence, scorers: Sequence[Scorer]
) -> tuple[list[SampleRow], int]:
    spent = 0
    for scorer in scorers:
        batch = await scorer.ascore([Attempt.whole(question.question, c) for c in completions])
        share = batch.usage.decoded_tokens // max(len(rows), 1)
        spent += batch.usage.decoded_tokens
        rows = [
            dataclasses.replace(
                r, scores={**r.scores, scorer.name: s}, score_tokens=r.score_tokens + share
            )
            for r, s in zip(rows, batch.scores, strict=True)
        ]
    return rows, spent


async def _score_missing(
    bank: SampleBank,
    key: str,
    question: Question,
    stored: list[SampleRow],
    scorers: Sequence[Scorer],
    progress: Progress,
) -> list[SampleRow]:
    """Scorers added since the samples were drawn score them now (stored samples need no
    logprobs again: only scorers reading the text can be added later)."""
    from ponder.backends.base import Completion
    from ponder.usage import Usage

    for scorer in scorers:
        todo = [r for r in stored if scorer.name not in r.scores]
        if not todo:
            continue
        if scorer.needs_logprobs:
            continue  # the stored sample kept only summaries of its logprobs
        attempts = [
            Attempt.whole(question.question, Completion(r.text, r.finish_reason, Usage()))  # type: ignore[arg-type]
            for r in todo
        ]
        batch = await scorer.ascore(attempts)
        progress.decoded_tokens += batch.usage.decoded_tokens
        share = batch.usage.decoded_tokens // max(len(todo), 1)
        for row, score in zip(todo, batch.scores, strict=True):
            bank.update_scores(
                key,
                question.id,
                row.idx,
                {**row.scores, scorer.name: score},
                row.score_tokens + share,
            )
        stored = bank.samples(key, question.id)
    return stored


def run_collect(*args, **kwargs) -> Progress:  # type: ignore[no-untyped-def]
    return asyncio.run(collect(*args, **kwargs))
