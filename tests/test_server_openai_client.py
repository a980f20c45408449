"""`ponder serve` read by the official openai client (sync, async, streaming) on a real
uvicorn on loopback: pass-through, strategies, usage, trace, logprobs, errors, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest

from ponder.backends import Backend
from ponder.backends.scripted import ScriptedBackend, tokenize
from ponder.server.app import ServerSettings, create_app
from tests.support.llama_server import free_port
from tests.support.uvicorn_thread import serve

KEY = "test-key-7c1"
CHAT = [{"role": "user", "content": "What is 2 + 2?"}]
FOUR = "Two plus two.\n\nThe answer is 4."


def _reply(request: object) -> str:
    # every third sample is wrong, so a vote has something to overrule
    return "The answer is 5." if request.index % 3 == 2 else FOUR  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    settings = ServerSettings(api_key=KEY, keepalive_seconds=0.05, served_model="m")
    with serve(create_app(ScriptedBackend(_reply), settings)) as url:
        yield url


@pytest.fixture()
def client(server: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0)


def test_sync_pass_through_honours_the_client_parameters(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="m", messages=CHAT, max_tokens=3, n=2, temperature=0.3, seed=7, stop=["zzz"],  # type: ignore[arg-type]
    )  # fmt: skip
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.finish_reason == "length" for c in reply.choices)
    assert reply.choices[0].message.content == "Two plus"  # 3 tokens: "Two", " ", "plus"
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    usage = reply.usage
    assert usage is not None and usage.completion_tokens == 6
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0  # every token was returned
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0


def test_sync_strategy_counts_every_token_and_returns_the_trace(client: openai.OpenAI) -> None:
    voted = client.chat.completions.create(
        model="self-consistency@5/m", messages=CHAT, extra_body={"ponder": {"trace": True}},  # type: ignore[arg-type]
    )  # fmt: skip
    assert voted.choices[0].message.content == FOUR
    assert voted.model == "self-consistency@5/m"
    usage = voted.usage
    assert usage is not None and usage.completion_tokens_details is not None
    per_sample = {FOUR: len(tokenize(FOUR)), "5": len(tokenize("The answer is 5."))}
    assert usage.completion_tokens == 4 * per_sample[FOUR] + per_sample["5"]
    assert usage.completion_tokens_details.reasoning_tokens == (
        usage.completion_tokens - per_sample[FOUR]
    )
    trace = voted.model_extra["ponder"]  # type: ignore[index]
    assert trace["strategy"] == "self-consistency" and len(trace["candidates"]) == 5
    assert trace["votes"][0]["answer"] == "4" and trace["votes"][0]["count"] == 4
    assert trace["decision"]
    # the same through the body field, with a scorer and a strategy option
    best = client.chat.completions.create(
        model="m", messages=CHAT,  # type: ignore[arg-type]
        extra_body={"ponder": {"strategy": "best-of-n", "n": 3, "scorer": "mean-logprob",
                               "batch_size": 2}},
    )  # fmt: skip
    assert best.choices[0].message.content in (FOUR, "The answer is 5.")


def test_text_completions_models_and_logprobs(client: openai.OpenAI) -> None:
    text = client.completions.create(model="m", prompt="2+2=", max_tokens=8, logprobs=2)
    assert text.object == "text_completion" and text.choices[0].text
    logprobs = text.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs
    assert "".join(logprobs.tokens) == text.choices[0].text
    chat = client.chat.completions.create(
        model="m",
        messages=CHAT,
        logprobs=True,
        top_logprobs=2,  # type: ignore[arg-type]
    )
    content = chat.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and "".join(t.token for t in content) == chat.choices[0].message.content
    models = client.models.list()
    ids = [m.id for m in models]
    assert ids[0] == "m" and "self-consistency@8/m" in ids and "greedy@1/m" in ids
    assert "beam-search@8/m" in ids


def test_async_client_and_streaming() -> None:
    async def run(url: str) -> None:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        reply = await client.chat.completions.create(model="greedy/m", messages=CHAT)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == FOUR
        stream = await client.chat.completions.create(
            model="self-consistency@4/m", messages=CHAT, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )  # fmt: skip
        first, pieces, finish, usage = None, [], None, None
        async for chunk in stream:
            if chunk.choices:
                delta = chunk.choices[0].delta
                first = first or delta.role
                pieces.append(delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        assert first == "assistant" and "".join(pieces) == FOUR and finish == "stop"
        assert usage is not None and usage.completion_tokens > len(tokenize(FOUR))
        texts = await client.completions.create(model="m", prompt="2+2=", stream=True, n=2)
        by_index: dict[int, str] = {}
        async for chunk in texts:
            for choice in chunk.choices:
                by_index[choice.index] = by_index.get(choice.index, "") + choice.text
        assert set(by_index) == {0, 1} and all(by_index.values())
        await client.close()

    # a slow backend, so the stream carries keep-alive comments the client must skip
    backend = _Slow(0.3)
    with serve(create_app(backend, ServerSettings(api_key=KEY, keepalive_seconds=0.05))) as url:
        asyncio.run(run(url))
        with httpx.stream(
            "POST", url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
            json={"model": "self-consistency@2/m", "messages": CHAT, "stream": True},
        ) as raw:  # fmt: skip
            lines = [line for line in raw.iter_lines() if line]
    assert lines[0].startswith("data: ") and '"role": "assistant"' in lines[0]
    assert ": keep-alive" in lines and lines[-1] == "data: [DONE]"


def test_sync_streaming_client(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="m", messages=CHAT, stream=True, n=2)  # type: ignore[arg-type]
    texts: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
        assert chunk.usage is None
    assert texts == {0: FOUR, 1: FOUR}


def test_errors_reach_the_client_as_openai_exceptions(client: openai.OpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as denied:
        openai.OpenAI(base_url=client.base_url, api_key="wrong-key", max_retries=0).models.list()
    assert "wrong-key" not in str(denied.value) and KEY not in str(denied.value)
    cases = [
        ({"model": "nope@3/m"}, "unknown strategy"),
        ({"model": "m", "n": 1000}, "limit"),
        (
            {"model": "best-of-n@2/m", "extra_body": {"ponder": {"scorer": "oracle"}}},
            "evaluation only",
        ),
        ({"model": "self-consistency@2/m", "n": 2}, "one answer"),
        ({"model": "m", "extra_body": {"ponder": {"trace": True}}}, "needs a strategy"),
        ({"model": "m", "extra_body": {"tools": [{"type": "function"}]}}, "tool calling"),
    ]
    for options, words in cases:
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(messages=CHAT, **options)  # type: ignore[arg-type, call-overload]
        assert words in bad.value.message
    with pytest.raises(openai.APIError) as streamed:
        # a failure after the stream started arrives as an error event the client raises
        stream = client.chat.completions.create(
            model="beam-search@4/m", messages=CHAT, stream=True,  # type: ignore[arg-type]
            extra_body={"ponder": {"scorer": "arithmetic", "budget": {"tokens": 10}}},
        )  # fmt: skip
        list(stream)
    assert "below one step" in str(streamed.value)


def test_an_operator_configured_reward_model_picks_the_answer() -> None:
    """Scorer options come from the server's settings (a request cannot aim the server at
    another host); here a reward endpoint that prefers the answer 5 decides best-of-n."""

    class Reward(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["input"]
            data = json.dumps({"scores": [float("is 5" in t) for t in texts]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    reward = ThreadingHTTPServer(("127.0.0.1", 0), Reward)
    threading.Thread(target=reward.serve_forever, daemon=True).start()
    address = f"http://127.0.0.1:{reward.server_address[1]}/pooling"
    settings = ServerSettings(scorer_options={"reward-http": {"url": address}})
    try:
        with serve(create_app(ScriptedBackend(_reply), settings)) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
            reply = client.chat.completions.create(
                model="best-of-n@3/m", messages=CHAT,  # type: ignore[arg-type]
                extra_body={"ponder": {"scorer": "rm", "trace": True}},
            )  # fmt: skip
    finally:
        reward.shutdown()
        reward.server_close()
    assert reply.choices[0].message.content == "The answer is 5."
    scores = [c["scores"]["reward-http"] for c in reply.model_extra["ponder"]["candidates"]]  # type: ignore[index]
    assert scores == [0.0, 0.0, 1.0]


class _Slow(ScriptedBackend):
    def __init__(self, seconds: float) -> None:
        super().__init__(_reply)
        self.seconds = seconds

    async def acontinue(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        await asyncio.sleep(self.seconds)
        return await super().acontinue(*args, **kwargs)


@pytest.mark.model
def test_the_real_embedded_model_through_the_openai_client(embedded_backend: Backend) -> None:
    settings = ServerSettings(served_model="small", keepalive_seconds=0.2)
    with serve(create_app(embedded_backend, settings)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        plain = client.chat.completions.create(
            model="small", messages=CHAT, max_tokens=8, temperature=0, logprobs=True,  # type: ignore[arg-type]
        )  # fmt: skip
        usage = plain.usage
        assert usage is not None and 1 <= usage.completion_tokens <= 8
        assert len(plain.choices[0].logprobs.content) == usage.completion_tokens  # type: ignore[union-attr]
        voted = client.chat.completions.create(
            model="self-consistency@2/small", messages=CHAT, max_tokens=8, seed=1,  # type: ignore[arg-type]
            extra_body={"ponder": {"trace": True}},
        )  # fmt: skip
        vusage = voted.usage
        assert vusage is not None and vusage.completion_tokens_details is not None
        chosen = voted.model_extra["ponder"]["candidates"]  # type: ignore[index]
        assert vusage.completion_tokens == sum(c["completion_tokens"] for c in chosen)
        assert vusage.completion_tokens_details.reasoning_tokens > 0


@pytest.mark.model
def test_disconnect_stops_the_real_model(embedded_backend: Backend) -> None:
    """A streamed request whose client leaves: the engine stops sampling for it."""
    stats = embedded_backend.stats  # type: ignore[attr-defined]
    with serve(create_app(embedded_backend, ServerSettings(keepalive_seconds=0.1))) as url:
        before = stats().sampled_tokens
        body = {"model": "self-consistency@4/small", "messages": CHAT, "max_tokens": 400,
                "stream": True}  # fmt: skip
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as raw:
            lines = raw.iter_lines()
            assert next(lines).startswith("data: ")  # the role chunk, at once
            deadline = time.monotonic() + 30
            while stats().sampled_tokens - before < 8 and time.monotonic() < deadline:
                time.sleep(0.05)
        left_at = stats().sampled_tokens - before
        time.sleep(1.0)  # the engine drops cancelled sequences at its next step
        settled = stats().sampled_tokens - before
        time.sleep(1.0)
        after = stats().sampled_tokens - before
        health = httpx.get(url + "/health").json()
    assert left_at >= 8
    assert after == settled, "the engine went on sampling after the client left"
    assert after < 4 * 400 / 4, f"{after} tokens sampled: the work was not cancelled"
    assert health["running"] == 0 and health["waiting"] == 0


def test_ponder_serve_command_end_to_end(tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([FOUR]))
    port = free_port()
    env = {**os.environ, "PONDER_SERVER_API_KEY": KEY}
    process = subprocess.Popen(
        [sys.executable, "-m", "ponder.cli", "serve", "--backend", "scripted", "--model",
         str(replies), "--port", str(port), "--max-n", "4"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "ponder serve did not start"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY)
        reply = client.chat.completions.create(model="self-consistency@3/x", messages=CHAT)  # type: ignore[arg-type]
        assert reply.choices[0].message.content == FOUR
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="self-consistency@5/x", messages=CHAT)  # type: ignore[arg-type]
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        output, _ = process.communicate(timeout=20)
    assert "API key required" in output and KEY not in output
    assert "Application shutdown complete" in output
