"""The FastAPI app: OpenAI's chat and text completion endpoints in front of a strategy.

Everything a request needs is built from the request; the app holds only its settings, its
backend, its admission gate and its metrics (no module state). Every error is an OpenAI-style
error object: 4xx for the client's mistakes, 429 when full, 502/504 for the model backend.

The work of a request runs in its own task, watched together with the client's connection:
a client that goes away, or a request that outlives `request_timeout`, cancels the task, and
the backends stop generating for it (the embedded engine drops its sequences at the next
step; an HTTP upstream sees its connection closed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ponder.backends.base import Backend
from ponder.core import SamplingParams, TokenCallback, normalize_prompt
from ponder.errors import (
    BackendError,
    BackendTimeoutError,
    ConfigError,
    PonderError,
    ScorerError,
    UnsupportedError,
    UpstreamError,
)
from ponder.result import Result
from ponder.scorers.base import SCORERS
from ponder.serialize import jsonable
from ponder.server.metrics import Metrics
from ponder.server.routing import Route, parse_model, route
from ponder.server.schemas import (
    DONE,
    KEEP_ALIVE,
    ApiRequest,
    ChatRequest,
    Choice,
    Chunks,
    CompletionRequest,
    Outcome,
    completion_body,
    data_event,
    error_body,
    models_body,
    parse_request,
    progress_comment,
)
from ponder.strategies.spec import describe_strategies

log = logging.getLogger("ponder.server")

STOP_GRACE_SECONDS = 5.0
"""How long a cancelled request's work may take to unwind before its slot is freed anyway."""

Job = Callable[[TokenCallback | None], Awaitable[Outcome]]
"""The work of a request; it reports the tokens it samples to the callback, if any."""
Emit = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ServerSettings:
    api_key: str | None = field(default=None, repr=False)
    """Clients must send `Authorization: Bearer <api_key>` to /v1/*; None: no key."""
    max_concurrency: int = 4
    """Requests worked on at once."""
    max_queue: int = 32
    """Requests admitted to wait for a slot; more get 429."""
    max_n: int = 64
    """Most samples (or choices) per request."""
    max_tokens: int = 4096
    """Most tokens per sample (`max_tokens` of a request)."""
    max_budget_tokens: int | None = None
    """Most tokens one strategy request may spend; None: max_n * max_tokens."""
    request_timeout: float = 600.0
    max_body_bytes: int = 1_000_000
    keepalive_seconds: float = 5.0
    """Seconds between SSE comments while a streamed request is being worked on."""
    served_model: str = "ponder"
    """The plain model name `/v1/models` lists."""
    scorer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    """Options of scorers that requests cannot set, by canonical scorer name."""
    strategy_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    """Options of strategies that requests cannot set (a policy file), by strategy name."""

    def __post_init__(self) -> None:
        positive = ("max_concurrency", "max_n", "max_tokens", "max_body_bytes")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_queue < 0:
            raise ConfigError(f"max_queue must be >= 0, got {self.max_queue}")
        if self.max_budget_tokens is not None and self.max_budget_tokens < self.max_tokens:
            raise ConfigError("max_budget_tokens must be at least max_tokens")
        if self.request_timeout <= 0 or self.keepalive_seconds <= 0:
            raise ConfigError("request_timeout and keepalive_seconds must be > 0")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("the API key is empty; give a key or none")
        for name in self.scorer_options:
            if SCORERS.canonical(name) != name:
                raise ConfigError(
                    f"scorer_options: write {SCORERS.canonical(name)!r}, not {name!r}"
                )

    @property
    def budget_tokens(self) -> int:
        return self.max_budget_tokens or self.max_n * self.max_tokens


class ApiError(Exception):
    """An error answered as OpenAI's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str = "invalid_request",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.headers = dict(headers or {})

    @classmethod
    def from_ponder(cls, exc: PonderError) -> ApiError:
        code = _snake(type(exc).__name__)
        if isinstance(exc, UpstreamError) and exc.status in (400, 413, 422):
            # the upstream refused what the client asked for (too long a prompt, a bad value)
            return cls(400, f"the model server refused the request: {exc}", code=code)
        status = exc.http_status
        if status < 500:
            return cls(status, str(exc), code=code)
        if isinstance(exc, BackendTimeoutError):
            return cls(504, str(exc), "timeout_error", code)
        if isinstance(exc, (BackendError, ScorerError)):
            return cls(status, str(exc), "upstream_error", code)
        return cls(status, str(exc), "server_error", code)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.kind, self.code)


class _ClientGone(Exception):
    pass


class Gate:
    """At most `limit` requests run and `queue` wait; the rest are refused at once (429).

    `admit` reserves a place synchronously, so the check and the reservation cannot be
    split by another request; the returned ticket is released by its owner in every case.
    """

    def __init__(self, limit: int, queue: int) -> None:
        self.limit, self.queue = limit, queue
        self.waiting = 0
        self.running = 0
        self.slots = asyncio.Semaphore(limit)

    def admit(self) -> Ticket:
        if self.waiting + self.running >= self.limit + self.queue:
            raise ApiError(
                429, "the server is full; retry shortly", "rate_limit_error",
                "rate_limit_exceeded", {"Retry-After": "1"},
            )  # fmt: skip
        self.waiting += 1
        return Ticket(self)


class Ticket:
    def __init__(self, gate: Gate) -> None:
        self._gate = gate
        self._state = "waiting"

    async def run(self, job: Job, on_tokens: TokenCallback | None = None) -> Outcome:
        await self._gate.slots.acquire()
        self._gate.waiting -= 1
        self._gate.running += 1
        self._state = "running"
        return await job(on_tokens)

    def release(self) -> None:
        if self._state == "waiting":
            self._gate.waiting -= 1
        elif self._state == "running":
            self._gate.running -= 1
            self._gate.slots.release()
        self._state = "done"


def create_app(backend: Backend, settings: ServerSettings | None = None) -> FastAPI:
    """The server for `backend`; the caller owns the backend (and closes it)."""
    settings = settings or ServerSettings()
    gate = Gate(settings.max_concurrency, settings.max_queue)
    metrics = Metrics(lambda: gate.waiting, lambda: gate.running)
    service = _Service(backend, settings, gate, metrics)
    app = FastAPI(title="ponder", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings, app.state.metrics, app.state.gate = settings, metrics, gate
    app.add_middleware(_Guard, settings=settings, metrics=metrics, fail=service.fail)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return service.fail(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return service.fail(ApiError(exc.status_code, message, kind, _snake(str(exc.detail))))

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await service.complete(request, ChatRequest)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await service.complete(request, CompletionRequest)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return models_body(settings.served_model, describe_strategies(), SCORERS.names())

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": settings.served_model, "running": gate.running,
                "waiting": gate.waiting}  # fmt: skip

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


class _Service:
    def __init__(
        self, backend: Backend, settings: ServerSettings, gate: Gate, metrics: Metrics
    ) -> None:
        self.backend, self.settings, self.gate, self.metrics = backend, settings, gate, metrics

    def fail(self, exc: ApiError) -> JSONResponse:
        self.metrics.errors.labels(exc.code).inc()
        if exc.status >= 500:
            log.warning("answered %d: %s", exc.status, exc.message)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    async def complete(self, request: Request, schema: type[ApiRequest]) -> Response:
        chat = schema is ChatRequest
        try:
            body = parse_request(await request.body(), schema)
            body.check_supported()
            named = parse_model(body.model)[0] or (body.ponder and body.ponder.strategy)
            params = self.sampling(body, named or None)
            plan = route(
                body.model, body.ponder, params, body.seed or 0, max_n=self.settings.max_n,
                max_tokens=self.settings.budget_tokens,
                scorer_options=self.settings.scorer_options,
                strategy_options=self.settings.strategy_options,
            )  # fmt: skip
            job = self.job(body, plan, params)
        except PonderError as exc:
            raise ApiError.from_ponder(exc) from None
        ticket = self.gate.admit()
        if body.stream:
            chunks = Chunks.start(body.model, chat=chat, include_usage=body.include_usage)

            async def produce(emit: Emit, receive: Receive) -> None:
                await self.stream(emit, receive, chunks, body.choices, plan, job, ticket)

            return _EventStream(produce, ticket.release)
        try:
            outcome = await self.run(request.receive, job, ticket)
        finally:
            ticket.release()
        self.metrics.answered(plan.label, outcome.usage, outcome.reasoning_tokens)
        return JSONResponse(completion_body(body.model, outcome, chat=chat))

    def job(self, body: ApiRequest, plan: Route, params: SamplingParams) -> Job:
        """The work of a request, checked and built before it is admitted."""
        if plan.spec is None:
            prompt = normalize_prompt(body.to_prompt())
            n, keep_logprobs = body.choices, body.top_logprobs_wanted is not None

            async def pass_through(on_tokens: TokenCallback | None) -> Outcome:
                generation = await self.backend.agenerate(prompt, params, n=n, on_tokens=on_tokens)
                choices = tuple(
                    Choice(c.text, c.finish_reason, c.num_tokens,
                           c.logprobs if keep_logprobs else None)
                    for c in generation.completions
                )  # fmt: skip
                return Outcome(choices, generation.usage)

            return pass_through
        question = body.question()
        if not question.strip():
            raise ConfigError("the question (the last user message) is empty")
        strategy = plan.spec.build(self.backend)

        async def search(on_tokens: TokenCallback | None) -> Outcome:
            result = await strategy.arun(question, self.backend, on_tokens=on_tokens)
            return _outcome(result, plan.trace)

        return search

    def sampling(self, body: ApiRequest, strategy: str | None) -> SamplingParams:
        """The request's sampling parameters within this server's limits (`strategy`: the
        strategy it names, if any)."""
        limits = self.settings
        top = body.top_logprobs_wanted
        if strategy is not None and body.choices > 1:
            raise ConfigError(
                f"n={body.choices}: a strategy returns one answer; set its samples with "
                f"{strategy}@<n>/<model> or ponder.n"
            )
        if strategy is not None and top is not None:
            raise ConfigError("logprobs are returned for plain (pass-through) requests only")
        if body.choices > limits.max_n:
            raise ConfigError(f"n={body.choices} is above this server's limit of {limits.max_n}")
        if top is not None and not self.backend.capabilities.logprobs:
            raise UnsupportedError("this server's backend does not return logprobs")
        wanted = body.token_limit
        if wanted is not None and wanted > limits.max_tokens:
            raise ConfigError(
                f"max_tokens={wanted} is above this server's limit of {limits.max_tokens}"
            )
        given: dict[str, Any] = {
            "temperature": body.temperature,
            "top_p": body.top_p,
            "seed": body.seed,
            "stop": (body.stop,) if isinstance(body.stop, str) else body.stop,
            "logprobs": top is not None or None,
            "top_logprobs": top,
        }
        params = SamplingParams(**{k: v for k, v in given.items() if v is not None})
        return dataclasses.replace(
            params, max_tokens=wanted or min(params.max_tokens, limits.max_tokens)
        )

    async def run(self, receive: Receive, job: Job, ticket: Ticket) -> Outcome:
        """The job's outcome, unless the client leaves first or time runs out."""
        work = asyncio.create_task(ticket.run(job))
        gone = asyncio.create_task(_disconnected(receive))
        try:
            done, _ = await asyncio.wait(
                {work, gone},
                timeout=self.settings.request_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if work in done:
                return _result(work)
            if gone in done:
                raise ApiError(499, "the client closed the connection", code="client_gone")
            raise _timeout(self.settings.request_timeout)
        finally:
            gone.cancel()
            await _stop(work)

    async def stream(
        self,
        emit: Emit,
        receive: Receive,
        chunks: Chunks,
        choices: int,
        plan: Route,
        job: Job,
        ticket: Ticket,
    ) -> None:
        """Role chunk at once, comments while working (how many tokens the strategy has
        sampled so far, or a keep-alive), then the answer."""
        if chunks.chat:
            for i in range(choices):
                await emit(chunks.delta(i, {"role": "assistant", "content": ""}))
        else:
            await emit(KEEP_ALIVE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.request_timeout
        sampled = [0]

        def count(tokens: int) -> None:
            sampled[0] += tokens

        work = asyncio.create_task(ticket.run(job, count))
        gone = asyncio.create_task(_disconnected(receive))
        told = 0
        try:
            while not work.done():
                left = deadline - loop.time()
                if left <= 0:
                    return await self._stream_error(emit, _timeout(self.settings.request_timeout))
                await asyncio.wait(
                    {work, gone},
                    timeout=min(self.settings.keepalive_seconds, left),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if gone.done() and not work.done():
                    self.metrics.errors.labels("client_gone").inc()
                    return
                if not work.done():
                    news = sampled[0] != told
                    told = sampled[0]
                    await emit(progress_comment(told) if news else KEEP_ALIVE)
            try:
                outcome = _result(work)
            except ApiError as exc:
                return await self._stream_error(emit, exc)
            self.metrics.answered(plan.label, outcome.usage, outcome.reasoning_tokens)
            for event in chunks.answer(outcome):
                await emit(event)
            await emit(DONE)
        except Exception:
            log.exception("a streamed request failed")
            await self._stream_error(
                emit, ApiError(500, "internal error; see the server log", "server_error", "bug")
            )
        finally:
            gone.cancel()
            await _stop(work)

    async def _stream_error(self, emit: Emit, exc: ApiError) -> None:
        # the status line is sent already: the error goes as an event the client raises
        self.metrics.errors.labels(exc.code).inc()
        if exc.status >= 500:
            log.warning("streamed error %d: %s", exc.status, exc.message)
        await emit(data_event(exc.body()))


class _EventStream(Response):
    """Server-sent events written by `produce`; `release` runs however the stream ends."""

    media_type = "text/event-stream"

    def __init__(
        self, produce: Callable[[Emit, Receive], Awaitable[None]], release: Callable[[], None]
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._produce, self._release = produce, release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def emit(text: str) -> None:
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await self._produce(emit, receive)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self._release()


class _Guard:
    """Before the app: API key, content type and body size; around it: metrics and a JSON
    answer for anything that escapes (a bug must not take the server down or answer HTML)."""

    def __init__(
        self,
        app: ASGIApp,
        settings: ServerSettings,
        metrics: Metrics,
        fail: Callable[[ApiError], Response],
    ) -> None:
        self.app, self.settings, self.metrics, self.fail = app, settings, metrics, fail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 499
        responded = False

        async def tracked(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = message["status"], True
            await send(message)

        try:
            receive = await self._admit(scope, receive)
            await self.app(scope, receive, tracked)
        except _ClientGone:
            pass
        except ApiError as exc:
            if not responded:
                await self.fail(exc)(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not responded:
                error = ApiError(500, "internal error; see the server log", "server_error", "bug")
                await self.fail(error)(scope, receive, tracked)
        finally:
            self.metrics.observe(scope["path"], status, time.perf_counter() - started)

    async def _admit(self, scope: Scope, receive: Receive) -> Receive:
        headers = Headers(scope=scope)
        key = self.settings.api_key
        if key is not None and scope["path"].startswith("/v1/"):
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(
                given.strip().encode(), key.encode()
            ):
                raise ApiError(
                    401, "missing or wrong API key: send Authorization: Bearer <key>",
                    "authentication_error", "invalid_api_key",
                )  # fmt: skip
        if scope["method"] != "POST":
            return receive
        limit = self.settings.max_body_bytes
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _too_large(limit)
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(
                415, "send the body as JSON with Content-Type: application/json",
                code="unsupported_media_type",
            )  # fmt: skip
        pieces, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            piece = message.get("body", b"")
            size += len(piece)
            if size > limit:
                raise _too_large(limit)
            pieces.append(piece)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(pieces), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is over {limit} bytes", code="body_too_large")


def _timeout(seconds: float) -> ApiError:
    return ApiError(
        504, f"the request took longer than this server's limit of {seconds:g} s",
        "timeout_error", "request_timeout",
    )  # fmt: skip


def _result(work: asyncio.Task[Outcome]) -> Outcome:
    try:
        return work.result()
    except PonderError as exc:
        raise ApiError.from_ponder(exc) from None


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _stop(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and give it a moment to unwind (its backend calls stop with it)."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: a failure after the answer was given is not news


def _outcome(result: Result, trace: bool) -> Outcome:
    """The chosen candidate as the answer; the first one when every candidate abstained."""
    if not result.candidates:
        why = "; ".join(result.trace.notes) or result.trace.decision
        raise ApiError(
            502, f"{result.strategy} finished without a single candidate answer ({why})",
            "upstream_error", "no_candidate",
        )  # fmt: skip
    chosen = result.candidates[result.chosen if result.chosen is not None else 0]
    finish = "length" if chosen.finish_reason == "length" else "stop"
    choice = Choice(chosen.text, finish, chosen.completion_tokens)
    return Outcome((choice,), result.usage, _trace(result) if trace else None)


def _trace(result: Result) -> dict[str, Any]:
    """The trace summary a client asked for: candidates, votes, decision (no search tree)."""
    trace = result.trace.to_dict()
    nodes = trace.pop("nodes", [])
    summary = {
        "strategy": result.strategy,
        "answer": result.answer,
        "chosen": result.chosen,
        **trace,
        "nodes": len(nodes),
        "candidates": [c.to_dict() for c in result.candidates],
        "usage": result.usage.to_dict(),
        "seconds": result.seconds,
    }
    return jsonable(summary)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", re.sub(r"\W+", "", name)).lower() or "error"
