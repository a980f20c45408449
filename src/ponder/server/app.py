"""The FastAPI app: OpenAI's chat and text completion endpoints in front of a strategy.

Everything a request needs is built from the request (no module state): the app holds its
settings, its backend and its metrics in `app.state`. Every error is an OpenAI-style error
object with a 4xx status for the client's mistakes, 429 when full, 502/504 for the upstream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ponder.backends.base import Backend, Message, SamplingParams
from ponder.errors import BackendTimeoutError, ConfigError, PonderError
from ponder.server.metrics import Metrics
from ponder.server.routing import Plan, plan_for
from ponder.strategies import STRATEGIES
from ponder.usage import Usage

log = logging.getLogger("ponder.server")


@dataclass(frozen=True)
class ServerSettings:
    api_key: str | None = None
    max_concurrency: int = 4
    max_queue: int = 32
    max_n: int = 64
    max_tokens: int = 4096
    request_timeout: float = 600.0
    max_body_bytes: int = 1_000_000
    keepalive_seconds: float = 5.0
    served_model: str = "ponder"


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str


class _StreamOptions(BaseModel):
    include_usage: bool = False


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    logprobs: Any = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    ponder: dict[str, Any] | None = None


class ChatRequest(_Common):
    messages: list[_Message] = Field(min_length=1)
    logprobs: bool | None = None


class CompletionRequest(_Common):
    prompt: str = Field(min_length=1)
    logprobs: int | None = Field(default=None, ge=0, le=20)


def error_body(message: str, kind: str, status: int, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def error(
    status: int, message: str, kind: str = "invalid_request_error", **headers: str
) -> JSONResponse:
    return JSONResponse(
        error_body(message, kind, status), status_code=status, headers=headers or None
    )


class _Busy(Exception):
    pass


class _Gate:
    """At most `limit` requests run; at most `queue` wait; the rest get 429 at once."""

    def __init__(self, limit: int, queue: int) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._queue = queue
        self.waiting = 0
        self.running = 0

    async def __aenter__(self) -> None:
        if self._slots.locked() and self.waiting >= self._queue:
            raise _Busy
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1

    async def __aexit__(self, *exc: object) -> None:
        self.running -= 1
        self._slots.release()


def create_app(backend: Backend, settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()
    app = FastAPI(title="ponder", docs_url=None, redoc_url=None, openapi_url=None)
    metrics = Metrics()
    app.state.backend, app.state.settings, app.state.metrics = backend, settings, metrics
    gate_holder: dict[str, _Gate] = {}

    def gate() -> _Gate:
        # created on first use so it belongs to the server's event loop
        if "gate" not in gate_holder:
            gate_holder["gate"] = _Gate(settings.max_concurrency, settings.max_queue)
        return gate_holder["gate"]

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        path = request.url.path
        try:
            response = await _guarded(request, call_next)
        except Exception:  # a bug must still answer JSON, and the server must go on
            log.exception("unhandled error on %s", path)
            response = error(500, "internal error; see the server log", "server_error")
        metrics.observe(path, response.status_code, time.perf_counter() - started)
        return response

    async def _guarded(request: Request, call_next: Any) -> Response:
        if request.method == "POST":
            if settings.api_key is not None:
                given = request.headers.get("authorization", "")
                expected = f"Bearer {settings.api_key}"
                if not secrets.compare_digest(given.encode(), expected.encode()):
                    return error(401, "missing or wrong API key (Authorization: Bearer ...)",
                                 "authentication_error")  # fmt: skip
            length = request.headers.get("content-length")
            if length is not None and (
                not length.isdigit() or int(length) > settings.max_body_bytes
            ):
                return error(413, f"request body over {settings.max_body_bytes} bytes")
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return error(415, "send the body as JSON (Content-Type: application/json)")
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > settings.max_body_bytes:
                    return error(413, f"request body over {settings.max_body_bytes} bytes")
            request.state.body = body
        return await call_next(request)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": backend.model_id, "running": gate().running,
                "waiting": gate().waiting}  # fmt: skip

    @app.get("/metrics")
    async def metrics_endpoint() -> PlainTextResponse:
        metrics.queue_depth.set(gate().waiting)
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        names = [settings.served_model]
        names += [f"{name}@8/{settings.served_model}" for name in STRATEGIES.names()]
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "ponder"} for n in names
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await _serve(request, ChatRequest, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _serve(request, CompletionRequest, chat=False)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return error(404, f"no route {request.method} {request.url.path}")

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc: Exception) -> JSONResponse:
        return error(405, f"{request.method} is not allowed on {request.url.path}")

    async def _serve(request: Request, schema: type[_Common], *, chat: bool) -> Response:
        try:
            data = json.loads(request.state.body or b"null")
        except ValueError:
            return error(400, "the body is not valid JSON")
        if not isinstance(data, dict):
            return error(400, "the body must be a JSON object")
        try:
            body = schema.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return error(400, f"{where}: {first.get('msg')}")
        try:
            plan = plan_for(body.model, body.ponder, settings.max_n)
            if body.n > settings.max_n:
                return error(400, f"n={body.n} is above this server's limit of {settings.max_n}")
            params = _sampling(body, settings)
            prompt = _prompt(body)
        except PonderError as exc:
            return error(exc.http_status, str(exc))
        metrics.requests_in.inc()
        try:
            if body.stream:
                await gate().__aenter__()  # released when the stream ends
                return StreamingResponse(
                    _stream(request, body, plan, prompt, params, chat),
                    media_type="text/event-stream",
                )
            async with gate():
                outcome = await asyncio.wait_for(
                    _run(plan, prompt, params, body.n), settings.request_timeout
                )
        except _Busy:
            metrics.errors.labels("busy").inc()
            return error(
                429, "the server is full; retry shortly", "rate_limit_error", **{"Retry-After": "1"}
            )
        except (TimeoutError, BackendTimeoutError):
            metrics.errors.labels("timeout").inc()
            return error(
                504, f"the request took longer than {settings.request_timeout:g} s", "timeout"
            )
        except PonderError as exc:
            metrics.errors.labels(type(exc).__name__).inc()
            kind = "upstream_error" if exc.http_status >= 500 else "invalid_request_error"
            return error(exc.http_status, str(exc), kind)
        metrics.count_tokens(outcome.usage)
        return JSONResponse(_response(body, outcome, chat))

    async def _run(plan: Plan, prompt: Any, params: SamplingParams, n: int) -> _Outcome:
        if plan.strategy is None:
            generation = await backend.agenerate(prompt, params, n=n)
            texts = [(c.text, c.finish_reason, c.num_tokens) for c in generation.completions]
            return _Outcome(texts, generation.usage, None, None)
        from ponder import make_strategy

        strategy = make_strategy(
            plan.strategy, backend=backend, n=plan.n, token_budget=plan.token_budget,
            scorer=plan.scorer, sampling=params, **plan.options,
        )  # fmt: skip
        question = prompt if isinstance(prompt, str) else prompt[-1].content
        result = await strategy.arun(question, backend)
        chosen = result.candidates[result.chosen] if result.chosen is not None else None
        text = chosen.text if chosen else (result.candidates[0].text if result.candidates else "")
        tokens = chosen.completion_tokens if chosen else 0
        trace = _trace_summary(result) if plan.trace else None
        return _Outcome([(text, "stop", tokens)], result.usage, trace, result.answer)

    async def _stream(
        request: Request, body: _Common, plan: Plan, prompt: Any, params: SamplingParams, chat: bool
    ) -> AsyncIterator[str]:
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> str:
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                choice["delta"] = delta
                choice["logprobs"] = None
            else:
                choice["text"] = delta.get("content", "")
            payload = {"id": ident, "object": kind, "created": created, "model": body.model,
                       "choices": [choice] if usage is None else [], "usage": usage}  # fmt: skip
            return f"data: {json.dumps(payload)}\n\n"

        if chat:
            yield chunk({"role": "assistant", "content": ""})
        work = asyncio.ensure_future(_run(plan, prompt, params, 1))
        deadline = time.monotonic() + settings.request_timeout
        try:
            while not work.done():
                if await request.is_disconnected():
                    work.cancel()
                    metrics.errors.labels("client_gone").inc()
                    return
                if time.monotonic() > deadline:
                    work.cancel()
                    yield f"data: {json.dumps(error_body('request timed out', 'timeout', 504))}\n\n"
                    return
                await asyncio.wait({work}, timeout=settings.keepalive_seconds)
                if not work.done():
                    yield ": keep-alive\n\n"
            try:
                outcome = work.result()
            except PonderError as exc:
                failure = error_body(str(exc), "upstream_error", exc.http_status)
                yield f"data: {json.dumps(failure)}\n\n"
                return
            metrics.count_tokens(outcome.usage)
            text, finish, _ = outcome.texts[0]
            for start in range(0, len(text), 24):
                yield chunk({"content": text[start : start + 24]})
            yield chunk({}, finish)
            if body.stream_options and body.stream_options.include_usage:
                yield chunk({}, None, _usage(outcome))
            yield "data: [DONE]\n\n"
        finally:
            if not work.done():
                work.cancel()
            await gate().__aexit__()

    return app


@dataclass
class _Outcome:
    texts: list[tuple[str, str, int]]
    usage: Usage
    trace: dict[str, Any] | None
    answer: str | None


def _sampling(body: _Common, settings: ServerSettings) -> SamplingParams:
    max_tokens = body.max_completion_tokens or body.max_tokens or 512
    if max_tokens > settings.max_tokens:
        raise ConfigError(
            f"max_tokens={max_tokens} is above this server's limit of {settings.max_tokens}"
        )
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    top = body.top_logprobs or (
        body.logprobs
        if isinstance(body.logprobs, int) and not isinstance(body.logprobs, bool)
        else 0
    )
    return SamplingParams(
        max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p, seed=body.seed,
        stop=stop, logprobs=bool(body.logprobs), top_logprobs=int(top or 0),
    )  # fmt: skip


def _prompt(body: _Common) -> Any:
    if isinstance(body, ChatRequest):
        roles = {"developer": "system", "tool": "user"}
        return tuple(Message(roles.get(m.role, m.role), m.content) for m in body.messages)  # type: ignore[arg-type]
    return body.prompt  # type: ignore[attr-defined]


def _usage(outcome: _Outcome) -> dict[str, Any]:
    u = outcome.usage
    returned = sum(tokens for _, _, tokens in outcome.texts)
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_prompt_tokens},
        "completion_tokens_details": {"reasoning_tokens": max(u.completion_tokens - returned, 0)},
    }


def _response(body: _Common, outcome: _Outcome, chat: bool) -> dict[str, Any]:
    choices = []
    for i, (text, finish, _) in enumerate(outcome.texts):
        if chat:
            choices.append({"index": i, "message": {"role": "assistant", "content": text},
                            "finish_reason": finish, "logprobs": None})  # fmt: skip
        else:
            choices.append({"index": i, "text": text, "finish_reason": finish, "logprobs": None})
    data: dict[str, Any] = {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": body.model,
        "choices": choices,
        "usage": _usage(outcome),
    }
    if outcome.trace is not None:
        data["ponder"] = outcome.trace
    return data


def _trace_summary(result: Any) -> dict[str, Any]:
    trace = result.trace.to_dict()
    return {
        "strategy": trace["strategy"],
        "answer": result.answer,
        "decision": trace["decision"],
        "votes": trace["votes"],
        "candidates": [
            {"answer": c.answer, "completion_tokens": c.completion_tokens, "scores": dict(c.scores)}
            for c in result.candidates
        ],
        "notes": trace["notes"],
    }
