"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, OpenAI) over HTTP.

* Chat prompts go to `/chat/completions`, raw text to `/completions`.
* `n` samples: one request with `n` when the server honours it; a server that rejects `n`
  or returns fewer choices is remembered and gets `n` parallel requests (seed + i each).
  The choices such a server did return are kept (they are the first samples, drawn with
  the first seeds), so finding out costs no sample.
* Seeds: prefix j of a multi-prefix call is sent with seed + j * n (and its parallel
  requests with seed + j * n + i), so on a server that honours seeds (vLLM) copies of one
  partial solution still grow apart.
* Continuations: raw-text prompts are exact (`/completions` on prompt + prefix). Chat
  prompts send the prefix as a final assistant message with vLLM's
  `continue_final_message`; servers without it may start a new turn instead.
* Scoring (`ascore`) uses `/completions` with `echo` + `logprobs` on raw-text prompts; chat
  prompts, and servers that do not echo logprobs, raise `UnsupportedError`.
* Timeout: how long a request may wait for its reply, its time in the server's queue
  included (`DEFAULT_TIMEOUT`, 600 s).
* Retries: 429, 5xx, malformed replies, dropped connections and timeouts are retried up to
  `max_retries` times with exponential backoff and full jitter (honouring `Retry-After`, at
  most `MAX_BACKOFF` seconds); other 4xx errors are raised at once with the server's message.
* A stop string that ended a completion is known only when the server says so (vLLM's
  `stop_reason`); otherwise `Completion.stop` is None, as for end-of-sequence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from ponder import redact
from ponder.backends.base import Backend, BackendSpec, Capabilities, check_n
from ponder.backends.registry import BACKENDS
from ponder.core import (
    Completion,
    Generation,
    NormalizedPrompt,
    Prompt,
    SamplingParams,
    TextScore,
    TokenCallback,
    TokenLogprob,
    TokenWatch,
    normalize_prompt,
)
from ponder.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
    UnsupportedError,
    UpstreamError,
)
from ponder.usage import Usage

MAX_BACKOFF = 10.0
DEFAULT_TIMEOUT = 600.0
"""Seconds a request may wait for its reply (the OpenAI SDK's default). The reply comes when
the whole completion is done, and a server that works one request at a time
(llama-cpp-python's, Ollama) keeps the other requests of a group waiting behind it: at 60 s,
eight 400-token samples on two CPU cores timed out in its queue and were sent again, so the
server decoded some twice, and after the retries the call failed."""
_N_REJECTED = re.compile(r"\bn\b|\bbest_of\b|multiple (choices|completions)", re.IGNORECASE)
"""How servers that cannot sample n > 1 in one request say so."""
_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


@BACKENDS.register("openai", aliases=("http", "vllm", "sglang"))
class OpenAIBackend(Backend):
    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_concurrency: int = 8,
        max_retries: int = 4,
        backoff: float = 0.5,
        parameters: int | None = None,
        max_n: int = 128,
    ) -> None:
        check_url(base_url, "the server's base URL")
        if timeout <= 0 or max_concurrency < 1 or max_retries < 0:
            raise ConfigError("timeout must be > 0, max_concurrency >= 1, max_retries >= 0")
        self.base_url = base_url.rstrip("/")
        self.where = redact.url(self.base_url)
        """The server's address as messages and artifacts may show it (no credentials)."""
        self.model = model
        self.model_id = f"openai:{model or 'default'}@{self.where}"
        self.parameters = parameters
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.capabilities = Capabilities(
            logprobs=True,
            top_logprobs=20,
            scoring=True,
            prefix_reuse=False,
            max_n=max_n,
            halting=True,
        )
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._max_concurrency = max_concurrency
        # The sync wrappers run each call in a fresh event loop, and httpx clients and
        # semaphores belong to one loop: keep one pair per loop.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._gate = asyncio.Semaphore(max_concurrency)
        self._supports_n: bool | None = None

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> OpenAIBackend:
        if not spec.base_url:
            raise ConfigError("the openai backend needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        return cls(
            spec.base_url,
            spec.model,
            api_key=spec.api_key or os.environ.get("OPENAI_API_KEY"),
            timeout=spec.timeout or DEFAULT_TIMEOUT,
            max_concurrency=spec.max_concurrency or 8,
            parameters=spec.parameters,
        )

    def _session(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._loop = loop
            self._client = httpx.AsyncClient(
                timeout=self.timeout,
                headers=self._headers,
                limits=httpx.Limits(max_connections=self._max_concurrency),
            )
            self._gate = asyncio.Semaphore(self._max_concurrency)
        return self._client, self._gate

    # ---- the Backend interface -------------------------------------------------------------

    async def acontinue(
        self,
        prompt: Prompt,
        prefixes: Sequence[str],
        params: SamplingParams = SamplingParams(),
        *,
        n: int = 1,
        on_tokens: TokenCallback | None = None,
        watch: TokenWatch | None = None,
    ) -> Generation:
        normalized = normalize_prompt(prompt)
        check_n(n, self.capabilities.max_n)
        if isinstance(prefixes, str) or not prefixes:
            raise ConfigError("acontinue needs a non-empty list of prefixes")
        started = time.perf_counter()
        # prefix j draws its samples from seed + j * n, sample i of it from + i (as the
        # embedded engine does): resampled copies of one prefix must not repeat each other
        if watch is None:
            runs = [
                self._group(normalized, prefix, _with_seed(params, j * n), n, on_tokens)
                for j, prefix in enumerate(prefixes)
            ]
        else:
            runs = [
                self._watched(normalized, prefix, _with_seed(params, j * n), n, j * n, watch)
                for j, prefix in enumerate(prefixes)
            ]
        groups = await asyncio.gather(*runs)
        usage = Usage.total(c.usage for group in groups for c in group)
        calls = sum(getattr(group, "calls", 1) for group in groups)
        return Generation(
            tuple(tuple(g) for g in groups),
            usage + Usage(calls=calls, seconds=time.perf_counter() - started),
        )

    async def ascore(self, prompt: Prompt, continuation: str) -> TextScore:
        normalized = normalize_prompt(prompt)
        if not continuation:
            raise ConfigError("the text to score is empty")
        if not isinstance(normalized, str):
            raise UnsupportedError(
                "scoring a chat prompt over HTTP needs the server's chat template, which the "
                "OpenAI API does not expose; score a raw-text prompt or use the embedded backend"
            )
        started = time.perf_counter()
        body = {
            "prompt": normalized + continuation,
            "max_tokens": 1,
            "echo": True,
            "logprobs": 1,
            "temperature": 0.0,
        }
        reply, calls = await self._post("/completions", body)
        try:
            logprobs = reply["choices"][0]["logprobs"]
            offsets, tokens, values = (
                logprobs["text_offset"],
                logprobs["tokens"],
                logprobs["token_logprobs"],
            )
        except (KeyError, IndexError, TypeError):
            raise UnsupportedError(
                f"{self.where} does not return echoed prompt logprobs, so it cannot score text"
            ) from None
        start = len(normalized)
        picked = [
            TokenLogprob(tok, float(lp))
            for off, tok, lp in zip(offsets, tokens, values, strict=False)
            if off is not None and start <= off < start + len(continuation) and lp is not None
        ]
        if not picked:
            raise UnsupportedError(f"{self.where} returned no logprobs for the scored text")
        usage_data = reply.get("usage") or {}
        usage = Usage.for_tokens(
            prompt=int(usage_data.get("prompt_tokens", 0)), parameters=self.parameters
        ) + Usage(calls=calls, seconds=time.perf_counter() - started)
        return TextScore(sum(t.logprob for t in picked), tuple(picked), usage)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()

    # ---- requests --------------------------------------------------------------------------

    async def _group(
        self,
        prompt: NormalizedPrompt,
        prefix: str,
        params: SamplingParams,
        n: int,
        on_tokens: TokenCallback | None,
    ) -> _Group:
        kept = _Group()
        kept.calls = 0
        if n > 1 and self._supports_n is not False:
            try:
                group = await self._request(prompt, prefix, params, n)
            except UpstreamError as exc:
                if exc.status != 400 or not _N_REJECTED.search(str(exc)):
                    raise
                self._supports_n = False
            else:
                if len(group) == n:
                    self._supports_n = True
                    _report(on_tokens, group)
                    return group
                self._supports_n = False
                # A server that ignores `n` (llama-cpp-python's) still drew a sample, with
                # the call's seed: it is sample 0 of the group, the one a single request
                # would draw, so keep it and ask only for the rest.
                kept = _Group(group[:n])
                kept.calls = group.calls
        singles = await asyncio.gather(
            *(self._request(prompt, prefix, _with_seed(params, i), 1) for i in range(len(kept), n))
        )
        group = _Group([*kept, *(c for s in singles for c in s)])
        group.calls = kept.calls + sum(s.calls for s in singles)
        _report(on_tokens, group)
        return group

    async def _watched(
        self,
        prompt: NormalizedPrompt,
        prefix: str,
        params: SamplingParams,
        n: int,
        first: int,
        watch: TokenWatch,
    ) -> _Group:
        """`n` samples streamed one request each, so a sample the watch halts is cancelled
        alone: the stream is closed at that token and the server stops generating it."""
        streams = await asyncio.gather(
            *(
                self._stream(prompt, prefix, _with_seed(params, i), first + i, watch)
                for i in range(n)
            )
        )
        # a halted stream never gets the usage chunk: its prompt cost as its siblings'
        prompt_tokens = max((s.usage.prompt_tokens for s in streams), default=0)
        group = _Group(
            s
            if s.usage.prompt_tokens or not prompt_tokens
            else dataclasses.replace(
                s,
                usage=Usage.for_tokens(
                    prompt=prompt_tokens, completion=s.num_tokens, parameters=self.parameters
                ),
            )
            for s in streams
        )
        group.calls = n
        return group

    async def _stream(
        self,
        prompt: NormalizedPrompt,
        prefix: str,
        params: SamplingParams,
        index: int,
        watch: TokenWatch,
    ) -> Completion:
        path, body = self._body(prompt, prefix, dataclasses.replace(params, logprobs=True), 1)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        client, gate = self._session()
        text: list[str] = []
        tokens: list[TokenLogprob] = []
        finish, stop, usage_data = "stop", None, {}
        try:
            async with gate, client.stream("POST", self.base_url + path, json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise UpstreamError(
                        f"{self.where + path} answered {response.status_code}: "
                        f"{_message(response)}",
                        status=response.status_code,
                    )
                async for line in response.aiter_lines():
                    data = line.removeprefix("data:").strip()
                    if not line.startswith("data:") or not data or data == "[DONE]":
                        continue
                    chunk = json.loads(data)
                    usage_data = chunk.get("usage") or usage_data
                    for choice in chunk.get("choices") or ():
                        text.append(_delta_text(choice))
                        for token in _choice_logprobs(choice) or ():
                            tokens.append(token)
                            if watch(index, token):
                                finish = "halted"
                                break
                        if finish == "halted":
                            break
                        if choice.get("finish_reason") == "length":
                            finish = "length"
                        stop_reason = choice.get("stop_reason")
                        if isinstance(stop_reason, str) and stop_reason in params.stop:
                            stop = stop_reason
                    if finish == "halted":
                        # the text up to the halting token; leaving the block closes the
                        # stream, and the server stops generating the sample
                        text = [t.token for t in tokens]
                        break
        except httpx.TimeoutException:
            raise BackendTimeoutError(
                f"{self.where + path} did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise BackendUnavailableError(
                f"cannot reach {self.where + path} ({type(exc).__name__}); is the server running?"
            ) from None
        except ValueError:
            raise BackendError(
                f"{self.where + path} sent a stream chunk that is not JSON"
            ) from None
        usage = Usage.for_tokens(
            prompt=int(usage_data.get("prompt_tokens") or 0),
            completion=len(tokens) or int(usage_data.get("completion_tokens") or 0),
            parameters=self.parameters,
        )
        return Completion(
            "".join(text),
            finish,  # type: ignore[arg-type]
            usage,
            logprobs=tuple(tokens) if params.logprobs else None,
            stop=stop,
        )

    async def _request(
        self, prompt: NormalizedPrompt, prefix: str, params: SamplingParams, n: int
    ) -> _Group:
        path, body = self._body(prompt, prefix, params, n)
        reply, calls = await self._post(path, body)
        group = _Group(self._parse(reply, params))
        group.calls = calls
        return group

    def _body(
        self, prompt: NormalizedPrompt, prefix: str, params: SamplingParams, n: int
    ) -> tuple[str, dict[str, Any]]:
        """The endpoint and JSON body of a request for `n` samples."""
        body: dict[str, Any] = {"max_tokens": params.max_tokens, "temperature": params.temperature}
        if self.model:
            body["model"] = self.model
        if n > 1:
            body["n"] = n
        if params.top_p < 1.0:
            body["top_p"] = params.top_p
        if params.top_k:
            body["top_k"] = params.top_k
        if params.min_p:
            body["min_p"] = params.min_p
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
            if params.include_stop:
                body["include_stop_str_in_output"] = True
        if isinstance(prompt, str):
            path = "/completions"
            body["prompt"] = prompt + prefix
            if params.logprobs:
                body["logprobs"] = max(params.top_logprobs, 1)
        else:
            path = "/chat/completions"
            messages = [m.to_dict() for m in prompt]
            if prefix:
                messages.append({"role": "assistant", "content": prefix})
                body["continue_final_message"] = True
                body["add_generation_prompt"] = False
            body["messages"] = messages
            if params.logprobs:
                body["logprobs"] = True
                if params.top_logprobs:
                    body["top_logprobs"] = params.top_logprobs
        return path, body

    def _parse(self, reply: Any, params: SamplingParams) -> list[Completion]:
        try:
            choices = sorted(reply["choices"], key=lambda c: c.get("index", 0))
            usage_data = reply.get("usage") or {}
            texts = [_choice_text(c) for c in choices]
        except (KeyError, TypeError, AttributeError) as exc:
            raise BackendError(f"{self.where} sent a reply without choices: {exc}") from None
        logprobs = [_choice_logprobs(c) for c in choices]
        completion_total = int(usage_data.get("completion_tokens") or 0)
        counts = _split(completion_total, texts, logprobs)
        prompt_tokens = int(usage_data.get("prompt_tokens") or 0)
        details = usage_data.get("prompt_tokens_details") or {}
        cached = min(int(details.get("cached_tokens") or 0), prompt_tokens)
        completions = []
        for i, (choice, text, lps) in enumerate(zip(choices, texts, logprobs, strict=True)):
            stop = choice.get("stop_reason")
            stop = stop if isinstance(stop, str) and stop in params.stop else None
            if stop and params.include_stop and not text.endswith(stop):
                text += stop
            finish = "length" if choice.get("finish_reason") == "length" else "stop"
            usage = Usage.for_tokens(
                prompt=prompt_tokens if i == 0 else 0,
                cached=cached if i == 0 else 0,
                completion=counts[i],
                parameters=self.parameters,
            )
            completions.append(
                Completion(
                    text, finish, usage, logprobs=lps if params.logprobs else None, stop=stop
                )
            )
        return completions

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[Any, int]:
        """POST with bounded retries; returns the JSON reply and the attempts made."""
        url = self.base_url + path
        shown = self.where + path
        client, gate = self._session()
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt, last))
            try:
                async with gate:
                    response = await client.post(url, json=body)
            except httpx.TimeoutException:
                last = BackendTimeoutError(
                    f"{shown} did not answer within {self.timeout:g} s "
                    f"({attempt + 1} attempts); raise --timeout or check the server"
                )
                continue
            except httpx.HTTPError as exc:
                last = BackendUnavailableError(
                    f"cannot reach {shown} ({type(exc).__name__}); is the server running?"
                )
                continue
            if response.status_code in _RETRY_STATUS:
                last = UpstreamError(
                    f"{shown} answered {response.status_code}: {_message(response)}",
                    status=response.status_code,
                )
                last.retry_after = _retry_after(response)  # type: ignore[attr-defined]
                continue
            if response.status_code >= 400:
                raise UpstreamError(
                    f"{shown} answered {response.status_code}: {_message(response)}",
                    status=response.status_code,
                )
            try:
                return response.json(), attempt + 1
            except ValueError:
                last = BackendError(f"{shown} sent a reply that is not valid JSON")
        assert last is not None
        raise last

    def _delay(self, attempt: int, last: Exception | None) -> float:
        hinted = getattr(last, "retry_after", None)
        if hinted is not None:
            return min(hinted, MAX_BACKOFF)
        return random.uniform(0, min(MAX_BACKOFF, self.backoff * 2 ** (attempt - 1)))


def check_url(url: str, what: str) -> None:
    """Refuse, at once, a URL no request could be sent to (instead of failing every request
    later): an http(s) scheme, a host, a port in range."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{what} {redact.url(url)!r} is malformed ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} must look like http://HOST[:PORT]/PATH, got {redact.url(url)!r}")
    del port


class _Group(list[Completion]):
    calls: int = 1


def _with_seed(params: SamplingParams, offset: int) -> SamplingParams:
    """The parameters of the sample `offset` places after the call's first (no seed, none)."""
    if params.seed is None or not offset:
        return params
    return dataclasses.replace(params, seed=params.seed + offset)


def _report(on_tokens: TokenCallback | None, group: Sequence[Completion]) -> None:
    if on_tokens is not None:
        on_tokens(sum(c.num_tokens for c in group))


def _delta_text(choice: dict[str, Any]) -> str:
    """The text of one streamed chunk's choice (chat delta or completion text)."""
    if "delta" in choice:
        return (choice["delta"] or {}).get("content") or ""
    return choice.get("text") or ""


def _choice_text(choice: dict[str, Any]) -> str:
    if "message" in choice:
        return choice["message"].get("content") or ""
    return choice["text"] or ""


def _choice_logprobs(choice: dict[str, Any]) -> tuple[TokenLogprob, ...] | None:
    data = choice.get("logprobs")
    if not data:
        return None
    if "content" in data:  # chat format
        return tuple(
            TokenLogprob(
                t["token"],
                float(t["logprob"]),
                tuple((a["token"], float(a["logprob"])) for a in t.get("top_logprobs") or ()),
            )
            for t in data["content"] or ()
        )
    tops = data.get("top_logprobs") or [None] * len(data.get("tokens", ()))
    return tuple(
        TokenLogprob(
            tok,
            float(lp),
            tuple(sorted(((k, float(v)) for k, v in (top or {}).items()), key=lambda kv: -kv[1])),
        )
        for tok, lp, top in zip(
            data.get("tokens", ()), data.get("token_logprobs", ()), tops, strict=False
        )
        if lp is not None
    )


def _split(total: int, texts: Sequence[str], logprobs: Sequence[Any]) -> list[int]:
    """Completion tokens per choice: counted from logprobs when present, else the server's
    total shared out by text length (so the parts always add up to the total)."""
    if all(lp is not None for lp in logprobs) and (
        not total or sum(len(lp) for lp in logprobs) == total
    ):
        return [len(lp) for lp in logprobs]
    chars = [len(t) for t in texts]
    if not total or not sum(chars):
        share = [total // len(texts)] * len(texts)
    else:
        share = [total * c // sum(chars) for c in chars]
    share[0] += total - sum(share)
    return share


def _message(response: httpx.Response) -> str:
    """The server's own words about an error (URLs in them masked: they end up in logs)."""
    try:
        data = response.json()
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message") if isinstance(error, dict) else str(error)
        said = str(message or data)[:300]
    except ValueError:
        said = response.text[:300] or response.reason_phrase
    return redact.text(said)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
