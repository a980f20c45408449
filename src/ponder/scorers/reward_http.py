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

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import httpx

from ponder.errors import ConfigError, ScorerError
from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer


@SCORERS.register("reward-http", aliases=("reward", "rm"))
class RewardHTTP(Scorer):
    name = "reward-http"
    summary = "a reward model behind an HTTP endpoint (vLLM /pooling or /classify shape)"
    score_range = (-math.inf, math.inf)
    process = True

    def __init__(
        self,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        batch_size: int = 32,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"reward url must start with http:// or https://, got {url!r}")
        if timeout <= 0 or batch_size < 1:
            raise ConfigError("reward timeout must be > 0 and batch_size >= 1")
        self.url, self.model, self.timeout, self.batch_size = url, model, timeout, batch_size
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        texts = [f"{a.question.strip()}\n\n{a.text.strip()}" for a in attempts]
        scores: list[float] = []
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers) as client:
            for start in range(0, len(texts), self.batch_size):
                scores.extend(await self._post(client, texts[start : start + self.batch_size]))
        return ScoreBatch(tuple(scores))

    async def _post(self, client: httpx.AsyncClient, texts: list[str]) -> list[float]:
        body: dict[str, Any] = {"input": texts}
        if self.model:
            body["model"] = self.model
        try:
            # httpx's timeout bounds each read, not the whole reply: a server that trickles
            # bytes would never time out without this deadline
            response = await asyncio.wait_for(client.post(self.url, json=body), self.timeout)
        except (TimeoutError, httpx.TimeoutException):
            raise ScorerError(
                f"reward model at {self.url} did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise ScorerError(f"reward model at {self.url} is unreachable: {exc}") from None
        if response.status_code >= 400:
            raise ScorerError(
                f"reward model at {self.url} answered {response.status_code}: {response.text[:200]}"
            )
        try:
            return _scores(response.json(), len(texts))
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ScorerError(
                f"reward model at {self.url} sent an unexpected reply: {exc}"
            ) from None


def _scores(payload: Any, expected: int) -> list[float]:
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
