"""The gold-answer oracle: 1 when the extracted answer equals the gold one, else 0 (range
[0, 1], only ever 0 or 1).

For evaluation only (`uses_gold`): strategies refuse it, so no reported accuracy can come
from peeking at the answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer
from ponder.tasks.base import Task, get_task


@SCORERS.register("oracle", aliases=("gold",))
class Oracle(Scorer):
    summary = "1 if the answer equals the gold answer (evaluation only; strategies refuse it)"
    score_range = (0.0, 1.0)
    uses_gold = True

    def __init__(self, gold: str, task: Task | None = None) -> None:
        self.gold = gold
        self.task = task or get_task("math")

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        return ScoreBatch(
            tuple(
                float(self.task.is_correct(self.task.extract(a.text), self.gold)) for a in attempts
            )
        )
