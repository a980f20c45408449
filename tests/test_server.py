"""`ponder serve`: the official openai client against a real uvicorn on loopback, fuzzing,
upstream faults, limits and a bounded load test."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import tracemalloc
from collections.abc import Iterator

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ponder.backends.openai import OpenAIBackend
from ponder.backends.scripted import ScriptedBackend, tokenize
from ponder.server.app import ServerSettings, create_app
from tests.support.fake_openai import FakeOpenAI
from tests.support.uvicorn_thread import serve

KEY = "test-key-7c1"
CHAT = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    backend = ScriptedBackend(
        lambda r: "The answer is 5." if r.index % 3 == 2 else "The answer is 4."
    )
    with serve(create_app(backend, ServerSettings(api_key=KEY, keepalive_seconds=0.2))) as url:
        yield url


def test_openai_client_sync_pass_through_and_strategy(server: str) -> None:
    client = openai.OpenAI(base_url=server + "/v1", api_key=KEY)
    plain = client.chat.completions.create(model="m", messages=CHAT, max_tokens=16)  # type: ignore[arg-type]
    assert plain.choices[0].message.content
    assert plain.usage is not None and plain.usage.completion_tokens > 0
    voted = client.chat.completions.create(
        model="self-consistency@5/m",
        messages=CHAT,
        extra_body={"ponder": {"trace": True}},  # type: ignore[arg-type]
    )
    assert "4" in (voted.choices[0].message.content or "")
    usage = voted.usage
    assert usage is not None
    assert usage.completion_tokens_details is not None
    # every token of the 5 samples is counted; the ones not returned are "reasoning"
    returned = len(tokenize("The answer is 4."))
    assert usage.completion_tokens_details.reasoning_tokens == usage.completion_tokens - returned
    trace = voted.model_extra["ponder"]  # type: ignore[index]
    assert trace["strategy"] == "self-consistency" and len(trace["candidates"]) == 5
    text = client.completions.create(model="m", prompt="2+2=", max_tokens=8)
    assert text.choices[0].text
    models = [m.id for m in client.models.list()]
    assert "self-consistency@8/ponder" in models


def test_openai_client_async_and_streaming(server: str) -> None:
    async def run() -> tuple[str, list[str], object]:
        client = openai.AsyncOpenAI(base_url=server + "/v1", api_key=KEY)
        reply = await client.chat.completions.create(model="greedy/m", messages=CHAT)  # type: ignore[arg-type]
        stream = await client.chat.completions.create(
            model="self-consistency@4/m", messages=CHAT, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )  # fmt: skip
        pieces, usage = [], None
        async for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
            if chunk.usage:
                usage = chunk.usage
        await client.close()
        return reply.choices[0].message.content or "", pieces, usage

    reply, pieces, usage = asyncio.run(run())
    assert reply
    assert "".join(pieces).endswith("The answer is 4.")
    assert usage is not None and usage.completion_tokens > 0  # type: ignore[attr-defined]


def test_keys_are_required_and_never_echoed(server: str) -> None:
    client = openai.OpenAI(base_url=server + "/v1", api_key="wrong-key-123", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="m", messages=CHAT)  # type: ignore[arg-type]
    assert "wrong-key-123" not in str(caught.value) and KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {}, 400),
        (b"[]", {}, 400),
        (json.dumps({"model": "m"}).encode(), {}, 400),
        (json.dumps({"model": "m", "messages": "hi"}).encode(), {}, 400),
        (json.dumps({"model": "nope@3/m", "messages": CHAT}).encode(), {}, 400),
        (json.dumps({"model": "m", "messages": CHAT, "n": 1000}).encode(), {}, 400),
        (json.dumps({"model": "m", "messages": CHAT, "temperature": "hot"}).encode(), {}, 400),
        (json.dumps({"model": "best-of-n@2/m", "messages": CHAT}).encode(), {}, 400),
        (json.dumps({"model": "m", "messages": CHAT, "ponder": {"x": 1}}).encode(), {}, 400),
        (b"x" * 2_000_000, {}, 413),
        (
            json.dumps({"model": "m", "messages": CHAT}).encode(),
            {"content-type": "text/plain"},
            415,
        ),
    ],
)
def test_malformed_requests_get_openai_style_4xx(
    server: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    sent = {"authorization": f"Bearer {KEY}", "content-type": "application/json", **headers}
    response = httpx.post(server + "/v1/chat/completions", content=body, headers=sent, timeout=30)
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) >= {"message", "type", "code"}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-10, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["m", "self-consistency@2/m", "greedy", "x@0/m", "best-of-n@2"])
        | st.text(max_size=12),
        "messages": st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(["user", "system", "bot"]),
                    "content": st.text(max_size=30) | json_values,
                }
            ),
            max_size=3,
        )
        | json_values,
        "n": st.integers(-2, 100) | json_values,
        "temperature": st.floats(-1, 3, allow_nan=False, allow_infinity=False) | json_values,
        "max_tokens": st.integers(-5, 10_000) | json_values,
        "stream": st.booleans() | json_values,
        "stop": st.text(max_size=4) | json_values,
        "ponder": json_values,
    },
)

FUZZED: list[int] = []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_fuzzed_bodies_get_json_2xx_or_4xx(body: dict) -> None:
    app = create_app(ScriptedBackend(["The answer is 1."]), ServerSettings(max_n=8, max_tokens=64))

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/v1/chat/completions", json=body, timeout=30)

    response = asyncio.run(send())
    FUZZED.append(response.status_code)
    assert 200 <= response.status_code < 500, response.text
    if body.get("stream") is True and response.status_code == 200:
        assert response.text.endswith("data: [DONE]\n\n")
    else:
        response.json()


def test_upstream_faults_become_502_504_and_serving_goes_on() -> None:
    with FakeOpenAI(slow_seconds=3.0) as fake:
        upstream = OpenAIBackend(fake.base_url, "m", timeout=0.5, max_retries=1, backoff=0.01)
        app = create_app(upstream, ServerSettings(request_timeout=30))
        with serve(app) as url:

            def post() -> httpx.Response:
                body = {"model": "m", "messages": CHAT}
                return httpx.post(url + "/v1/chat/completions", json=body, timeout=30)

            fake.fail("500", times=2)
            assert post().status_code == 502
            fake.fail("timeout", times=2)
            assert post().status_code == 504
            fake.fail("garbage", times=2)
            assert post().status_code == 502
            fake.fail("drop", times=2)
            reply = post()
            assert reply.status_code == 502 and reply.json()["error"]["type"] == "upstream_error"
            assert post().status_code == 200
    with serve(create_app(OpenAIBackend("http://127.0.0.1:9/v1", "m", max_retries=0))) as url:
        refused = httpx.post(url + "/v1/chat/completions", json={"model": "m", "messages": CHAT})
        assert refused.status_code == 502


class _Slow(ScriptedBackend):
    """Takes a while per call and records whether a call was cancelled."""

    def __init__(self, seconds: float) -> None:
        super().__init__(["The answer is 4."])
        self.seconds = seconds
        self.cancelled = threading.Event()

    async def acontinue(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return await super().acontinue(*args, **kwargs)


def test_client_disconnect_cancels_the_work() -> None:
    backend = _Slow(5.0)
    with serve(create_app(backend, ServerSettings(keepalive_seconds=0.1))) as url:
        with httpx.stream(
            "POST", url + "/v1/chat/completions",
            json={"model": "self-consistency@2/m", "messages": CHAT, "stream": True}, timeout=10,
        ) as response:  # fmt: skip
            lines = response.iter_lines()
            assert next(lines).startswith("data:")  # the role chunk comes at once
        assert backend.cancelled.wait(5)


def test_load_200_requests_16_at_once_only_429_and_stable_memory() -> None:
    backend = _Slow(0.02)
    app = create_app(backend, ServerSettings(max_concurrency=4, max_queue=8))
    with serve(app) as url:

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                gate = asyncio.Semaphore(16)

                async def one() -> int:
                    async with gate:
                        r = await client.post(
                            "/v1/chat/completions", json={"model": "m", "messages": CHAT}
                        )
                        return r.status_code

                return await asyncio.gather(*(one() for _ in range(200)))

        asyncio.run(burst())  # warm up
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        codes = asyncio.run(burst())
        elapsed = time.perf_counter() - started
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    assert set(codes) <= {200, 429}
    assert codes.count(200) >= 100
    assert after - before < 5_000_000
    print(f"load: 200 requests in {elapsed:.2f} s, {codes.count(200)} ok, "
          f"{codes.count(429)} 429, memory +{(after - before) / 1e3:.0f} kB")  # fmt: skip
