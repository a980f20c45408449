"""A process reward model (PRM) behind an HTTP endpoint: one score per reasoning step.

Request: `POST <url>` with a JSON body, a batch of partial solutions cut into steps:

    {
      "model": "<name>",                      (only when given)
      "items": [
        {"question": "Tom has 3 apples ...", "steps": ["3 + 5 = 8", "The answer is 8."]},
        ...
      ]
    }

Steps are sent without their surrounding whitespace (the delimiter is ponder's business);
how the server joins them for its model (Math-Shepherd's step tag, Qwen2.5-Math-PRM's
`<extra_0>`) is the server's.

Response (200, JSON): one list per item, one score per step, in the order sent:

    {"scores": [[0.93, 0.71], ...]}

Each score is the probability in [0, 1] that the solution is still on track after that step
(what PRMs such as Math-Shepherd or Qwen2.5-Math-PRM output); `null` marks a step the model
could not judge. The score of an attempt is the score of its last step (search strategies
aggregate along the path themselves); as an outcome scorer, the whole answer is one step.

Errors: a server that cannot be reached, does not answer within `timeout` seconds, answers
with an HTTP error, or sends anything but the shape above (a wrong count, a score outside
[0, 1]) raises `ScorerError`; `null` becomes NaN, which search strategies drop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ponder.scorers._http import HTTPScorer
from ponder.scorers.base import SCORERS, Attempt, ScoreBatch


@SCORERS.register("prm-http", aliases=("prm",))
class PRMHTTP(HTTPScorer):
    summary = "a process reward model over HTTP: P(step on track) for every step"
    score_range = (0.0, 1.0)
    outcome = True
    process = True
    endpoint_name = "process reward model"

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        items = [
            {"question": a.question, "steps": [s.strip() for s in a.steps] or [""]}
            for a in attempts
        ]
        return ScoreBatch(tuple(await self.endpoint.score(items, self._body, _last_step_scores)))

    def _body(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {"items": list(items)}
        if self.model:
            body["model"] = self.model
        return body


def _last_step_scores(payload: Any, items: Sequence[dict[str, Any]]) -> list[float]:
    steps = [len(item["steps"]) for item in items]
    rows = payload.get("scores") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or len(rows) != len(steps):
        raise ValueError(f'expected {{"scores": [...]}} with {len(steps)} lists of step scores')
    out = []
    for i, (row, count) in enumerate(zip(rows, steps, strict=True)):
        if not isinstance(row, list) or len(row) != count:
            raise ValueError(f"item {i} has {count} steps, the reply gives {row!r}")
        last = row[-1]
        if last is None:
            out.append(math.nan)
            continue
        if isinstance(last, bool) or not isinstance(last, int | float) or not 0 <= last <= 1:
            raise ValueError(f"item {i}: step score {last!r} is not a probability in [0, 1]")
        out.append(float(last))
    return out
