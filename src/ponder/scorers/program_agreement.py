"""Program agreement (after the seeds' Collaborative Verification): does a math completion's
own reasoning agree with the result of the program it wrote?

1 when the answer its words state equals what its program prints when run in the sandbox,
0 when they differ or the program fails; NaN (not informative) for a completion without a
program that prints, or whose words state no answer. A model that invents its program's
output and gets it wrong scores 0.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from ponder.sandbox import Sandbox
from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer
from ponder.tasks.math import (
    PROGRAM_LIMITS,
    MathTask,
    extract_answer,
    program_answer,
    program_of,
    without_programs,
)


@SCORERS.register("program-agreement")
class ProgramAgreement(Scorer):
    summary = "1 if a math answer's words agree with what its own program prints (sandboxed)"
    score_range = (0.0, 1.0)

    def __init__(self) -> None:
        self.sandbox = Sandbox(PROGRAM_LIMITS)
        self.task = MathTask()

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        return await asyncio.to_thread(self._score, attempts)

    def _score(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        programs = [program_of(a.text) for a in attempts]
        self.sandbox.run_many([p for p in programs if p is not None])  # in parallel
        scores = []
        for attempt, program in zip(attempts, programs, strict=True):
            stated = extract_answer(without_programs(attempt.text))
            if program is None or stated is None:
                scores.append(math.nan)
                continue
            ran = program_answer(self.sandbox, program)
            scores.append(float(ran is not None and self.task.equivalent(stated, ran)))
        return ScoreBatch(tuple(scores), informative=tuple(not math.isnan(s) for s in scores))
