"""The OpenAI-compatible backend: against the real llama_cpp.server, and against a fake that
injects faults."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ponder.backends import load_backend
from ponder.backends.openai import DEFAULT_TIMEOUT, OpenAIBackend
from ponder.core import SamplingParams
from ponder.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigError,
    UnsupportedError,
    UpstreamError,
)
from ponder.strategies.spec import StrategySpec
from tests.support.fake_openai import FakeOpenAI
from tests.support.llama_server import free_port, llama_server

CHAT = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def real_server() -> Iterator[str]:
    with llama_server() as base_url:
        yield base_url


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(slow_seconds=2.0) as server:
        yield server


@pytest.mark.model
def test_real_server_samples_logprobs_stops_and_usage(real_server: str) -> None:
    backend = load_backend("openai", base_url=real_server, model="small")
    params = SamplingParams(max_tokens=8, temperature=0.8, seed=3, logprobs=True, top_logprobs=2)
    gen = backend.generate(CHAT, params, n=2)
    assert len(gen.completions) == 2
    assert all(c.text for c in gen.completions)
    assert all(c.logprobs and len(c.logprobs[0].top) == 2 for c in gen.completions)
    assert gen.usage.completion_tokens == sum(c.num_tokens for c in gen.completions) > 0
    assert gen.usage.prompt_tokens > 0
    assert gen.usage.calls >= 1
    raw = backend.generate(
        "1, 2, 3, 4,", SamplingParams(max_tokens=12, temperature=0.0, stop=(" 7",))
    ).completions[0]
    assert raw.text.startswith(" 5, 6,") and "7" not in raw.text
    assert raw.finish_reason == "stop"


@pytest.mark.model
def test_real_server_continuation_and_scoring(real_server: str) -> None:
    backend = load_backend("openai", base_url=real_server, model="small")
    cont = backend.continue_(
        "1, 2, 3,", [" 4,", " 4, 5,"], SamplingParams(max_tokens=3, temperature=0.0)
    )
    assert [len(g) for g in cont.groups] == [1, 1]
    assert cont.groups[0][0].text.startswith(" 5")
    assert cont.groups[1][0].text.startswith(" 6")
    scored = backend.score("1, 2, 3,", " 4, 5")
    assert "".join(t.token for t in scored.tokens) == " 4, 5"
    assert scored.logprob < 0 and scored.usage.calls == 1
    with pytest.raises(UnsupportedError, match="chat template"):
        backend.score(CHAT, "Hello")


@pytest.mark.model
def test_a_server_that_ignores_n_costs_no_extra_sample(
    real_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama-cpp-python's server reads no `n` and answers one choice, drawn with the call's
    seed: sample 0. The backend keeps it and asks for the other samples only, so finding out
    costs nothing (it used to throw that sample away: one more completion decoded per group),
    the first call draws what later calls draw, and self-consistency asks for no logprobs,
    which that server would pay for with a full-vocabulary sort per token."""
    sent: list[dict[str, Any]] = []
    send = httpx.AsyncClient.send

    async def recording(self: httpx.AsyncClient, request: httpx.Request, **kw: Any) -> Any:
        sent.append(json.loads(request.content))
        return await send(self, request, **kw)

    monkeypatch.setattr(httpx.AsyncClient, "send", recording)
    backend = load_backend("openai", base_url=real_server, model="small")
    assert isinstance(backend, OpenAIBackend) and backend.timeout == DEFAULT_TIMEOUT >= 600
    params = SamplingParams(max_tokens=6, temperature=0.8, seed=11)
    first = backend.generate(CHAT, params, n=3)
    assert len(sent) == 3 and sent[0]["n"] == 3
    assert sorted(body["seed"] for body in sent) == [11, 12, 13]
    assert len(first.completions) == 3 and first.usage.calls == 3
    assert first.usage.completion_tokens == sum(c.num_tokens for c in first.completions) > 0
    sent.clear()
    again = backend.generate(CHAT, params, n=3)
    assert len(sent) == 3 and all("n" not in body for body in sent)
    assert [c.text for c in again.completions] == [c.text for c in first.completions]
    sent.clear()
    strategy = StrategySpec(
        "self-consistency", samples=2, sampling=SamplingParams(max_tokens=6, temperature=0.8)
    ).build(backend)
    result = strategy.run("What is 2 + 3?", backend)
    assert len(result.candidates) == 2 and len(sent) == 2
    assert not any("logprobs" in body or "top_logprobs" in body for body in sent)


def test_n_in_one_request_and_parallel_fallback(fake: FakeOpenAI) -> None:
    backend = OpenAIBackend(fake.base_url, "m")
    gen = backend.generate(CHAT, SamplingParams(seed=10), n=3)
    assert [c.text for c in gen.completions] == [f"The answer is {i}." for i in range(3)]
    assert len(fake.requests) == 1 and fake.requests[0]["n"] == 3
    assert gen.usage.prompt_tokens == 7 and gen.usage.completion_tokens == 12
    fake.reject_n = True
    fake.requests.clear()
    gen = backend.generate(CHAT, SamplingParams(seed=10), n=3)
    assert len(gen.completions) == 3
    # one rejected request, then one request per sample with seed + i
    assert sorted(r.get("seed") for r in fake.requests[1:]) == [10, 11, 12]
    assert gen.usage.calls == 3
    fake.requests.clear()
    backend.generate(CHAT, n=2)
    assert len(fake.requests) == 2  # remembered: no second attempt with n


def test_logprobs_and_raw_completions(fake: FakeOpenAI) -> None:
    backend = OpenAIBackend(fake.base_url, "m")
    chat = backend.generate(CHAT, SamplingParams(logprobs=True)).completions[0]
    assert chat.logprobs is not None and chat.mean_logprob == -0.5
    raw = backend.generate("2+2=", SamplingParams(logprobs=True)).completions[0]
    assert raw.num_tokens == 4 and fake.requests[-1]["prompt"] == "2+2="


def test_5xx_and_429_are_retried(fake: FakeOpenAI) -> None:
    backend = OpenAIBackend(fake.base_url, "m", backoff=0.01)
    fake.fail("500")
    fake.fail("503")
    fake.fail("429")
    gen = backend.generate(CHAT)
    assert gen.completions[0].text == "The answer is 0."
    assert gen.usage.calls == 4


@pytest.mark.parametrize("fault", ["truncated", "garbage", "drop"])
def test_broken_replies_are_retried_then_reported(fake: FakeOpenAI, fault: str) -> None:
    backend = OpenAIBackend(fake.base_url, "m", backoff=0.01, max_retries=2)
    fake.fail(fault)
    assert backend.generate(CHAT).completions[0].text == "The answer is 0."
    fake.fail(fault, times=3)
    with pytest.raises(BackendError):
        backend.generate(CHAT)


def test_4xx_is_raised_at_once_with_the_servers_message(fake: FakeOpenAI) -> None:
    backend = OpenAIBackend(fake.base_url, "m", api_key="sk-secret-123", backoff=0.01)
    fake.fail("400")
    with pytest.raises(UpstreamError, match="bad temperature, friend") as caught:
        backend.generate(CHAT)
    assert caught.value.status == 400
    assert len(fake.requests) == 1
    assert "sk-secret-123" not in str(caught.value)


def test_timeouts_are_bounded(fake: FakeOpenAI) -> None:
    backend = OpenAIBackend(fake.base_url, "m", timeout=0.3, max_retries=1, backoff=0.01)
    fake.fail("timeout", times=2)
    started = time.perf_counter()
    with pytest.raises(BackendTimeoutError, match=r"did not answer within 0\.3 s"):
        backend.generate(CHAT)
    assert time.perf_counter() - started < 0.3 * 2 + 1.5


def test_unreachable_server() -> None:
    port = free_port()
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff=0.01)
    with pytest.raises(BackendUnavailableError, match=f"127.0.0.1:{port}"):
        backend.generate(CHAT)


def test_cancelling_stops_waiting(fake: FakeOpenAI) -> None:
    backend = OpenAIBackend(fake.base_url, "m", timeout=10)
    fake.fail("timeout")

    async def cancel() -> float:
        task = asyncio.create_task(backend.agenerate(CHAT))
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.perf_counter() - started

    assert asyncio.run(cancel()) < 0.5


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="base-url"):
        load_backend("openai", model="m")
    with pytest.raises(ConfigError, match="http"):
        OpenAIBackend("localhost:8000", "m")


def test_every_prefix_and_sample_gets_its_own_seed(fake: FakeOpenAI) -> None:
    """A server that honours seeds (vLLM) would give resampled copies of one particle the same
    continuation if every prefix of a call were sent the same seed."""
    backend = OpenAIBackend(fake.base_url, "m")
    params = SamplingParams(max_tokens=8, seed=100)
    backend.continue_("q", ["a", "a", "b"], params, n=2)
    seeds = sorted(body["seed"] for body in fake.requests)
    assert seeds == [100, 102, 104]  # one request of n = 2 per prefix, seed + j * n
    fake.requests.clear()
    fake.reject_n = True
    backend = OpenAIBackend(fake.base_url, "m")
    backend.continue_("q", ["a", "a"], params, n=2)
    sent = sorted(body["seed"] for body in fake.requests if body.get("n", 1) == 1)
    assert sent == [100, 101, 102, 103]  # parallel single requests: seed + j * n + i
