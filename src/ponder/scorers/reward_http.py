"""A reward model behind an HTTP endpoint (outcome or process).

Request (POST to the URL you give, JSON):

    {"model": "<model or omitted>", "input": ["<text 1>", "<text 2>", ...]}

where each text is the question, a blank line, then the answer (for a process reward: the
steps so far). This is the body vLLM's `/pooling` and `/classify` endpoints take for a
reward or classification model.

Response: one of
  * vLLM `/classify`: `{"data": [{"probs": [p_0, ..., p_k]}, ...]}`: the score is the last
    class probability (the "good" class of a binary reward head);
  * vLLM `/pooling`: `{"data": [{"data": x}, ...]}`: x a number, or a list whose last
    element is taken (per-token rewards: the reward at the final token; per-step lists:
    the last step's score);
  * `{"scores": [s_1, ...]}` or `{"rewards": [...]}`: one number per input.

Texts go in batches of `batch_size` per request. Scores are passed through as the server
gives them (their range is the model's). A server that is down, takes longer than `timeout`
seconds for a request (the whole request, not each read), or answers with something else
raises `ScorerError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ponder.scorers._http import HTTPScorer
from ponder.scorers.base import SCORERS, Attempt, ScoreBatch


@SCORERS.register("reward-http", aliases=("reward", "rm"))
class RewardHTTP(HTTPScorer):
    summary = "a reward model behind an HTTP endpoint (vLLM /pooling or /classify shape)"
    score_range = (-math.inf, math.inf)
    process = True
    endpoint_name = "reward model"

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        texts = [f"{a.question.strip()}\n\n{a.text.strip()}" for a in attempts]
        return ScoreBatch(tuple(await self.endpoint.score(texts, self._body, _scores)))

    def _body(self, texts: Sequence[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"input": list(texts)}
        if self.model:
            body["model"] = self.model
        return body


def _scores(payload: Any, texts: Sequence[str]) -> list[float]:
    expected = len(texts)
    if isinstance(payload, dict) and ("scores" in payload or "rewards" in payload):
        values = [float(v) for v in payload.get("scores", payload.get("rewards"))]
    else:
        values = [_one(item) for item in payload["data"]]
    if len(values) != expected:
        raise ValueError(f"{len(values)} scores for {expected} inputs")
    return values


def _one(item: Any) -> float:
    if isinstance(item, dict):
        item = item["probs"] if "probs" in item else item.get("data", item.get("score"))
    while isinstance(item, list):
        item = item[-1]
    return float(item)
