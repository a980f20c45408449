"""What the HTTP scorers share: a JSON endpoint posted to in batches, with one deadline per
request and every failure turned into a `ScorerError` that names the endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import httpx

from ponder import redact
from ponder.backends.openai import check_url
from ponder.errors import ConfigError, ScorerError
from ponder.scorers.base import Scorer

Item = TypeVar("Item")


class Endpoint:
    def __init__(
        self, what: str, url: str, api_key: str | None, timeout: float, batch_size: int
    ) -> None:
        if not isinstance(url, str):
            raise ConfigError(f"{what} url must be a string, got {url!r}")
        check_url(url, f"the {what} url")
        if not (isinstance(timeout, int | float) and timeout > 0):
            raise ConfigError(f"{what} timeout must be > 0 seconds, got {timeout!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"{what} batch_size must be an integer >= 1, got {batch_size!r}")
        self.where = f"{what} at {redact.url(url)}"
        self.url, self.timeout, self.batch_size = url, float(timeout), batch_size
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def score(
        self,
        items: Sequence[Item],
        body: Callable[[Sequence[Item]], dict[str, Any]],
        read: Callable[[Any, Sequence[Item]], list[float]],
    ) -> list[float]:
        """POST `body(batch)` for each batch of items; `read(reply, batch)` gives its scores
        or raises ValueError (KeyError, TypeError, IndexError) on a reply of the wrong shape."""
        scores: list[float] = []
        async with httpx.AsyncClient(timeout=self.timeout, headers=self._headers) as client:
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                reply = await self._post(client, body(batch))
                try:
                    scores += read(reply, batch)
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    raise ScorerError(f"{self.where} sent an unexpected reply: {exc}") from None
        return scores

    async def _post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> Any:
        try:
            # httpx's timeout bounds each read, not the whole reply: a server that trickles
            # bytes would never time out without this deadline
            response = await asyncio.wait_for(client.post(self.url, json=body), self.timeout)
        except (TimeoutError, httpx.TimeoutException):
            raise ScorerError(f"{self.where} did not answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise ScorerError(f"{self.where} is unreachable: {reason}") from None
        if response.status_code >= 400:
            raise ScorerError(
                f"{self.where} answered {response.status_code}: {response.text[:200]}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise ScorerError(f"{self.where} sent an unexpected reply: {exc}") from None


class HTTPScorer(Scorer):
    """A scorer whose judge is a model behind an HTTP `Endpoint`."""

    judges_prefix = True
    endpoint_name: ClassVar[str] = "reward model"
    """What the endpoint is called in errors."""

    def __init__(
        self,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 30.0,
        batch_size: int = 32,
    ) -> None:
        self.endpoint = Endpoint(self.endpoint_name, url, api_key, timeout, batch_size)
        self.model = model
