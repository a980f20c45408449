"""Upstream faults through the fault-injecting fake OpenAI server: each becomes an OpenAI-style
502/504 (or the upstream's own 400), streamed or not, and the server goes on serving. Keys
never reach a log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import openai
import pytest

from ponder.backends.openai import OpenAIBackend
from ponder.server.app import ServerSettings, create_app
from tests.support.fake_openai import FakeOpenAI
from tests.support.uvicorn_thread import serve

CHAT = [{"role": "user", "content": "What is 2 + 2?"}]
SERVER_KEY = "server-key-5be2"
UPSTREAM_KEY = "upstream-key-91d0"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(slow_seconds=2.0) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def url(fake: FakeOpenAI) -> Iterator[str]:
    backend = OpenAIBackend(
        fake.base_url, "m", api_key=UPSTREAM_KEY, timeout=0.5, max_retries=1, backoff=0.01
    )
    with serve(create_app(backend, ServerSettings(keepalive_seconds=0.1))) as address:
        yield address


def _post(url: str, model: str = "m", **extra: object) -> httpx.Response:
    body = {"model": model, "messages": CHAT, **extra}
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=30)


@pytest.mark.parametrize(
    ("fault", "status", "kind", "attempts"),
    [
        ("500", 502, "upstream_error", 2),  # retried once (max_retries=1), then given up
        ("503", 502, "upstream_error", 2),
        ("429", 502, "upstream_error", 2),
        ("timeout", 504, "timeout_error", 2),
        ("garbage", 502, "upstream_error", 2),
        ("truncated", 502, "upstream_error", 2),
        ("drop", 502, "upstream_error", 2),
        ("400", 400, "invalid_request_error", 1),  # the client's mistake: not retried
    ],
)
def test_each_fault_is_an_openai_error_and_the_server_goes_on(
    fake: FakeOpenAI, url: str, fault: str, status: int, kind: str, attempts: int
) -> None:
    fake.faults.clear()
    fake.fail(fault, times=attempts)
    reply = _post(url)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["type"] == kind and error["message"] and error["code"]
    assert UPSTREAM_KEY not in reply.text
    assert _post(url).status_code == 200  # and serving goes on
    if status >= 500:  # (a 400 to an n > 1 request makes the backend fall back to singles)
        fake.fail(fault, times=attempts)
        assert _post(url, "self-consistency@3/m").status_code == status
        assert _post(url, "self-consistency@3/m").status_code == 200


def test_a_fault_during_a_stream_is_an_error_event(fake: FakeOpenAI, url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
    fake.faults.clear()
    fake.fail("500", times=2)
    with pytest.raises(openai.APIError) as caught:
        for _ in client.chat.completions.create(model="m", messages=CHAT, stream=True):  # type: ignore[arg-type]
            pass
    assert "500" in str(caught.value)
    fine = client.chat.completions.create(model="m", messages=CHAT, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in fine if c.choices)


def test_a_refused_upstream_is_502() -> None:
    backend = OpenAIBackend("http://127.0.0.1:9/v1", "m", max_retries=0)
    with serve(create_app(backend)) as url:
        refused = _post(url)
        assert refused.status_code == 502
        assert refused.json()["error"]["code"] == "backend_unavailable_error"
        assert httpx.get(url + "/health").json()["status"] == "ok"


@contextmanager
def every_log_record() -> Iterator[list[str]]:
    """Every log line of the server, the access log and the HTTP client, at DEBUG."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep(logging.DEBUG)
    names = ["", "uvicorn", "uvicorn.access", "uvicorn.error", "ponder", "httpx", "httpcore"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def test_keys_never_reach_the_logs(fake: FakeOpenAI) -> None:
    backend = OpenAIBackend(fake.base_url, "m", api_key=UPSTREAM_KEY, max_retries=0)
    app = create_app(backend, ServerSettings(api_key=SERVER_KEY))
    # log_config=None: uvicorn leaves the process's logging alone and logs through it
    with every_log_record() as lines, serve(app, log_level=None, log_config=None) as url:
        good = {"Authorization": f"Bearer {SERVER_KEY}"}
        bad = {"Authorization": f"Bearer {SERVER_KEY}x"}
        body = {"model": "m", "messages": CHAT}
        assert httpx.post(url + "/v1/chat/completions", json=body, headers=good).status_code == 200
        denied = httpx.post(url + "/v1/chat/completions", json=body, headers=bad)
        assert denied.status_code == 401 and SERVER_KEY not in denied.text
        assert httpx.get(url + "/v1/models").status_code == 401
        fake.fail("500")
        assert httpx.post(url + "/v1/chat/completions", json=body, headers=good).status_code == 502
    logged = "\n".join(lines)
    assert "POST /v1/chat/completions" in logged  # the access log was on
    assert "answered 502" in logged  # and the server's own warnings
    assert SERVER_KEY not in logged and UPSTREAM_KEY not in logged
