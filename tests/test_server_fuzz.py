"""Property-based fuzzing of `ponder serve`: whatever the body, headers or bytes, the answer
is JSON (or a well-formed event stream) with a 2xx or 4xx status, never a 500."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ponder.backends.scripted import ScriptedBackend, ScriptedRequest
from ponder.server.app import ServerSettings, create_app
from ponder.strategies import STRATEGIES
from ponder.strategies.spec import strategy_options

SENT: list[int] = []
"""Statuses of every fuzzed request (printed with -s at the end of the module)."""

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
strategy_names = st.sampled_from(STRATEGIES.names())
option_names = sorted({k for _, cls in STRATEGIES.items() for k in strategy_options(cls)})
option_values = st.integers(1, 3) | st.sampled_from(["last", "min", "\n\n", 0.5]) | json_values
# self-certainty reads top-k alternatives, which the scripted backend does not invent: with it
# every answer is unjudged and the server rightly answers 502
scorers = st.sampled_from(["self-eval", "mean-logprob", "arithmetic", "oracle", "reward-http"])
ponder = st.fixed_dictionaries(
    {"scorer": scorers},
    optional={
        "strategy": strategy_names,
        "n": st.integers(1, 4),
        "budget": st.fixed_dictionaries({}, optional={"tokens": st.integers(1, 400)}),
        "trace": st.booleans(),
    },
).flatmap(
    lambda p: st.dictionaries(st.sampled_from(option_names), option_values, max_size=2).map(
        lambda o: {**o, **p}
    )
)
message = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "system", "assistant", "developer"]),
        "content": st.text(min_size=1, max_size=30)
        | st.lists(
            st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=10)}),
            min_size=1,
            max_size=2,
        ),
    }
)
question = st.fixed_dictionaries({"role": st.just("user"), "content": st.text(min_size=1)})
messages = st.tuples(st.lists(message, max_size=2), question).map(lambda t: [*t[0], t[1]])
sampling = {
    "temperature": st.floats(0, 2),
    "top_p": st.floats(0.01, 1),
    "max_tokens": st.integers(1, 64),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}),
    "stop": st.text(min_size=1, max_size=4) | st.lists(st.text(min_size=1, max_size=3), max_size=3),
    "seed": st.integers(0, 2**63 - 1),
}
FIELDS = [*sampling, "model", "messages", "prompt", "n", "logprobs", "top_logprobs", "tools",
          "response_format", "max_completion_tokens", "best_of", "ponder"]  # fmt: skip


def _bodies(prompt: dict[str, Any], logprobs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Valid bodies (pass-through or strategy), the same with one to three fields broken or
    left out, and any JSON value at all."""
    plain = st.fixed_dictionaries(
        {"model": st.just("m"), **prompt},
        optional={**sampling, "n": st.integers(1, 3), **logprobs},
    )
    by_name = st.fixed_dictionaries(
        {"model": st.builds(lambda s, n: f"{s}@{n}/m", strategy_names, st.integers(1, 4)),
         "ponder": ponder, **prompt},
        optional=sampling,
    )  # fmt: skip
    valid = plain | by_name
    broken = st.tuples(
        valid,
        st.dictionaries(st.sampled_from(FIELDS), json_values, min_size=1, max_size=3),
        st.lists(st.sampled_from(FIELDS), max_size=2),
    ).map(lambda t: {k: v for k, v in {**t[0], **t[1]}.items() if k not in t[2]})
    return st.one_of(valid, valid, broken, json_values)


chat_bodies = _bodies(
    {"messages": messages}, {"logprobs": st.booleans(), "top_logprobs": st.integers(0, 5)}
)
text_bodies = _bodies({"prompt": st.text(min_size=1, max_size=20)}, {"logprobs": st.integers(0, 5)})


def _reply(request: ScriptedRequest) -> str:
    # self-evaluation asks Yes or No: a judge that answers keeps every scorer working
    return "Yes" if "Yes or No" in request.text else "Step one.\n\nThe answer is 4."


@pytest.fixture(scope="module")
def app() -> Iterator[Any]:
    backend = ScriptedBackend(_reply)
    yield create_app(
        backend, ServerSettings(max_n=8, max_tokens=64, max_body_bytes=4096, keepalive_seconds=1)
    )
    print(f"\nfuzzed requests: {len(SENT)}; by status: {dict(sorted(Counter(SENT).items()))}")


def _send(app: Any, path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post(path, content=content, headers=headers, timeout=30)

    response = asyncio.run(send())
    SENT.append(response.status_code)
    return response


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert response.status_code >= 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events, response.text
        parsed = [json.loads(e) for e in events[:-1]]
        assert events[-1] == "[DONE]" or "error" in json.loads(events[-1]), response.text
        assert all("error" not in p for p in parsed)
        return
    data = response.json()
    if response.status_code >= 400:
        assert set(data["error"]) == {"message", "type", "param", "code"}
        assert data["error"]["message"]


SETTINGS = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@SETTINGS
@given(body=chat_bodies)
def test_fuzzed_chat_bodies(app: Any, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    _check(_send(app, "/v1/chat/completions", raw, {"content-type": "application/json"}))


@SETTINGS
@given(body=text_bodies)
def test_fuzzed_completion_bodies(app: Any, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    _check(_send(app, "/v1/completions", raw, {"content-type": "application/json"}))


@settings(SETTINGS, max_examples=300)
@given(
    raw=st.binary(max_size=200)
    | st.text(max_size=200).map(str.encode)
    | st.just(b"[" * 3000)
    | st.just(b'{"model": "m", "messages": [' + b'{"role": "user", "content": "x"},' * 300 + b"]}")
    | st.just(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": NaN}'),
    kind=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain", "", "multipart/x"]
    ),
    path=st.sampled_from(["/v1/chat/completions", "/v1/completions", "/v1/nope", "/health"]),
)
def test_fuzzed_bytes_and_headers(app: Any, raw: bytes, kind: str, path: str) -> None:
    headers = {"content-type": kind} if kind else {}
    _check(_send(app, path, raw, headers))
