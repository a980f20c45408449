"""Scorers that run code: the public tests (the docstring's examples, an imperfect verifier)
and the hidden unit tests (the oracle, for evaluation only).

Both read a whole answer to a code question (`ponder.tasks.code`) and run it in the
sandbox; identical programs run once (the sandbox caches them).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer
from ponder.tasks.code import CodeTask


@SCORERS.register("public-tests", aliases=("doctests",))
class PublicTests(Scorer):
    """The share of the question's docstring examples (calls shown with their values) that
    the answer passes: 0 for an answer with no program or one that fails to run, NaN when
    the question shows no example with a value. Free: no model call. The examples are what
    the model saw; a program can pass them all and still be wrong (the fLaws setting)."""

    summary = "share of the docstring's examples a program passes (code; free, imperfect)"
    score_range = (0.0, 1.0)

    def __init__(self, task: CodeTask | None = None) -> None:
        self.task = task or CodeTask()

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        return await asyncio.to_thread(self._score, attempts)

    def _score(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        scores: list[float] = [math.nan] * len(attempts)
        by_question: dict[str, list[int]] = {}
        for i, attempt in enumerate(attempts):
            by_question.setdefault(attempt.question, []).append(i)
        for question, members in by_question.items():
            task = self.task.for_question(question)
            answers = [
                task.extract(attempts[i].text, complete=_complete(attempts[i])) for i in members
            ]
            for i, score in zip(members, task.public_tests(answers), strict=True):
                scores[i] = score
        return ScoreBatch(tuple(scores), informative=tuple(not math.isnan(s) for s in scores))


@SCORERS.register("unit-tests", aliases=("hidden-tests",))
class UnitTests(Scorer):
    """1 when the answer passes the hidden unit tests `gold` (a test program run after it),
    else 0. For evaluation only (`uses_gold`): strategies refuse it, and the eval's pass@k
    line is this oracle already."""

    summary = "1 if the program passes the hidden unit tests (evaluation only)"
    score_range = (0.0, 1.0)
    uses_gold = True

    def __init__(self, gold: str, task: CodeTask | None = None) -> None:
        self.gold = gold
        self.task = task or CodeTask()

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        return await asyncio.to_thread(self._score, attempts)

    def _score(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        answers = []
        for attempt in attempts:
            task = self.task.for_question(attempt.question)
            answers.append(task.extract(attempt.text, complete=_complete(attempt)))
        outcomes = self.task.run_tests(answers, self.gold)
        return ScoreBatch(tuple(float(o is not None and o.passed) for o in outcomes))


def _complete(attempt: Attempt) -> bool:
    return attempt.completion is None or attempt.completion.finish_reason != "length"
