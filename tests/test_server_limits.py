"""Limits of `ponder serve` on a real uvicorn: API key, body size, content type, n, queue
(429 + Retry-After), request timeout (504), client disconnects that stop the work, metrics,
and a bounded load test with stable memory."""

from __future__ import annotations

import asyncio
import gc
import re
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from ponder.backends.scripted import ScriptedBackend
from ponder.server.app import ServerSettings, create_app
from tests.support.uvicorn_thread import serve

CHAT = [{"role": "user", "content": "What is 2 + 2?"}]
KEY = "limits-key-0a1"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Slow(ScriptedBackend):
    """Works `seconds` per call in small steps, like a model decoding tokens; counts the steps
    so a test sees whether work goes on after a request was cancelled."""

    def __init__(self, seconds: float, steps: int = 20) -> None:
        super().__init__(["The answer is 4."])
        self.seconds, self.steps = seconds, steps
        self.done_steps = 0
        self.cancelled = threading.Event()

    async def acontinue(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            for _ in range(self.steps):
                await asyncio.sleep(self.seconds / self.steps)
                self.done_steps += 1
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return await super().acontinue(*args, **kwargs)


def _chat(url: str, headers: dict[str, str] | None = None, **body: object) -> httpx.Response:
    payload = {"model": "m", "messages": CHAT, **body}
    return httpx.post(url + "/v1/chat/completions", json=payload, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def guarded() -> Iterator[str]:
    settings = ServerSettings(api_key=KEY, max_body_bytes=10_000, max_n=4, max_tokens=100)
    with serve(create_app(ScriptedBackend(["The answer is 4."]), settings)) as url:
        yield url


@pytest.mark.parametrize(
    ("headers", "content", "status", "code"),
    [
        ({}, b'{"model": "m", "messages": []}', 401, "invalid_api_key"),
        ({"Authorization": "Bearer nope"}, b"{}", 401, "invalid_api_key"),
        ({"Authorization": f"Basic {KEY}"}, b"{}", 401, "invalid_api_key"),
        (AUTH, b"x" * 20_000, 413, "body_too_large"),
        ({**AUTH, "content-type": "text/plain"}, b"{}", 415, "unsupported_media_type"),
        (AUTH, b"{", 400, "config_error"),
        (AUTH, b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 5}', 400,
         "config_error"),
        (AUTH, b'{"model": "m", "messages": [{"role": "user", "content": "x"}], '
               b'"max_tokens": 101}', 400, "config_error"),
        (AUTH, b'{"model": "self-consistency@5/m", "messages": '
               b'[{"role": "user", "content": "x"}]}', 400, "config_error"),
        (AUTH, b'{"model": "m", "messages": [{"role": "user", "content": "x"}], '
               b'"ponder": {"strategy": "greedy", "budget": {"tokens": 500}}}', 400,
         "config_error"),
        (AUTH, b'{"model": "best-of-n@2/m", "messages": [{"role": "user", "content": "x"}], '
               b'"ponder": {"scorer": "reward-http"}}', 400, "config_error"),
    ],
)  # fmt: skip
def test_requests_over_a_limit_get_the_right_4xx(
    guarded: str, headers: dict[str, str], content: bytes, status: int, code: str
) -> None:
    sent = {"content-type": "application/json", **headers}
    reply = httpx.post(guarded + "/v1/chat/completions", content=content, headers=sent)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["code"] == code
    assert KEY not in reply.text


def test_a_chunked_body_over_the_limit_is_413_without_reading_it_all(guarded: str) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"model": "m", "messages": ['
        for _ in range(1000):
            yield b'{"role": "user", "content": "' + b"x" * 100 + b'"},'

    headers = {**AUTH, "content-type": "application/json"}
    reply = httpx.post(guarded + "/v1/chat/completions", content=body(), headers=headers)
    assert reply.status_code == 413
    assert httpx.get(guarded + "/health").json()["status"] == "ok"


def test_health_and_metrics_are_open_and_count(guarded: str) -> None:
    assert _chat(guarded, AUTH).status_code == 200
    text = httpx.get(guarded + "/metrics").text
    assert re.search(r'ponder_http_requests_total\{endpoint="/v1/chat/completions",'
                     r'status="200"\} [1-9]', text)  # fmt: skip
    assert re.search(r'ponder_tokens_total\{kind="completion"\} [1-9]', text)
    assert 'ponder_errors_total{kind="invalid_api_key"}' in text
    assert "ponder_queue_depth 0.0" in text
    assert 'ponder_http_request_seconds_bucket{endpoint="/v1/chat/completions"' in text
    assert httpx.get(guarded + "/nope").json()["error"]["type"] == "not_found_error"


def test_a_full_server_answers_429_with_retry_after() -> None:
    backend = Slow(1.0)
    app = create_app(backend, ServerSettings(max_concurrency=1, max_queue=1))
    with serve(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)

        async def three() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                payload = {"model": "m", "messages": CHAT}
                first = asyncio.create_task(http.post("/v1/chat/completions", json=payload))
                await asyncio.sleep(0.2)  # running
                second = asyncio.create_task(http.post("/v1/chat/completions", json=payload))
                await asyncio.sleep(0.2)  # queued
                third = await http.post("/v1/chat/completions", json=payload)
                with pytest.raises(openai.RateLimitError):
                    await asyncio.to_thread(
                        client.chat.completions.create, model="m", messages=CHAT
                    )
                return [await first, await second, third]

        first, second, third = asyncio.run(three())
        health = httpx.get(url + "/health").json()
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert third.headers["retry-after"] == "1"
    assert third.json()["error"]["type"] == "rate_limit_error"
    assert health["running"] == 0 and health["waiting"] == 0


def test_a_slow_request_gets_504_and_its_work_is_cancelled() -> None:
    backend = Slow(5.0)
    app = create_app(backend, ServerSettings(request_timeout=0.3, keepalive_seconds=0.1))
    with serve(app) as url:
        started = time.monotonic()
        reply = _chat(url, model="self-consistency@2/m")
        assert reply.status_code == 504 and time.monotonic() - started < 3
        assert reply.json()["error"]["code"] == "request_timeout"
        assert backend.cancelled.wait(2)
        streamed = httpx.post(
            url + "/v1/chat/completions", timeout=30,
            json={"model": "m", "messages": CHAT, "stream": True},
        )  # fmt: skip
        assert streamed.status_code == 200 and "request_timeout" in streamed.text
        assert "[DONE]" not in streamed.text


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_stops_the_work(stream: bool) -> None:
    backend = Slow(5.0, steps=100)
    with serve(create_app(backend, ServerSettings(keepalive_seconds=0.05))) as url:
        payload = {"model": "self-consistency@2/m", "messages": CHAT, "stream": stream}
        if stream:
            with httpx.stream("POST", url + "/v1/chat/completions", json=payload) as response:
                assert next(response.iter_lines()).startswith("data: ")  # role chunk at once
                time.sleep(0.3)
        else:
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(url + "/v1/chat/completions", json=payload, timeout=0.3)
        assert backend.cancelled.wait(3), "the work went on for nobody"
        steps = backend.done_steps
        time.sleep(0.3)
        assert backend.done_steps == steps < backend.steps
        health = httpx.get(url + "/health").json()
        assert health["running"] == 0 and health["waiting"] == 0


def _rss_kb() -> int:
    fields = Path("/proc/self/status").read_text().split("VmRSS:")[1].split()
    return int(fields[0])


def test_load_200_requests_16_at_once_only_429_and_stable_memory() -> None:
    backend = Slow(0.02, steps=2)
    app = create_app(backend, ServerSettings(max_concurrency=4, max_queue=8))
    with serve(app) as url:

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                gate = asyncio.Semaphore(16)

                async def one(i: int) -> int:
                    async with gate:
                        model = "m" if i % 2 else "self-consistency@3/m"
                        payload = {"model": model, "messages": CHAT, "stream": i % 5 == 0}
                        reply = await client.post("/v1/chat/completions", json=payload)
                        return reply.status_code

                return list(await asyncio.gather(*(one(i) for i in range(200))))

        asyncio.run(burst())  # warm up: first-use allocations are not a leak
        gc.collect()
        rss_before = _rss_kb()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        codes = asyncio.run(burst())
        elapsed = time.perf_counter() - started
        backend.requests.clear()  # the test double's own record of every request
        gc.collect()  # cycles that are garbage already are not retained memory
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        rss_after = _rss_kb()
        health = httpx.get(url + "/health").json()
    ok, full = codes.count(200), codes.count(429)
    print(
        f"\nload: 200 requests, 16 at once, in {elapsed:.2f} s: {ok} x 200, {full} x 429; "
        f"traced memory {(after - before) / 1e3:+.0f} kB, RSS {rss_after - rss_before:+d} kB"
    )
    assert set(codes) <= {200, 429}
    assert ok >= 100
    assert after - before < 300_000
    assert health["running"] == 0 and health["waiting"] == 0
