"""Several model servers as one backend: calls spread over the replicas within each one's
concurrency limit; a replica that goes down is taken out, probed, and put back when it comes
back; the caller's own errors are not a replica's fault. Real servers on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from ponder.backends import load_backend
from ponder.backends.base import Backend, BackendSpec
from ponder.backends.openai import OpenAIBackend
from ponder.backends.pool import ReplicaPool
from ponder.backends.scripted import ScriptedBackend
from ponder.cli import main
from ponder.core import Generation, Prompt, SamplingParams, TextScore, TokenCallback, TokenWatch
from ponder.errors import BackendUnavailableError, UpstreamError
from tests.support.fake_openai import FakeOpenAI

CHAT = [{"role": "user", "content": "2 + 3?"}]


def _replica(fake: FakeOpenAI) -> OpenAIBackend:
    # no retries of its own: the pool fails over at the first error
    return OpenAIBackend(fake.base_url, "m", max_retries=0, timeout=5.0)


class _Counting(Backend):
    """A replica that counts the calls it has in flight (and the most it ever had)."""

    def __init__(self) -> None:
        self.inner = ScriptedBackend(["The answer is 5."])
        self.model_id = "counting"
        self.now = self.most = self.calls = 0

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> _Counting:
        return cls()

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
        self.now += 1
        self.calls += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.02)
            return await self.inner.acontinue(prompt, prefixes, params, n=n)
        finally:
            self.now -= 1

    async def ascore(self, prompt: Prompt, continuation: str) -> TextScore:
        raise NotImplementedError


async def test_calls_spread_over_the_replicas_within_each_ones_limit() -> None:
    replicas = [_Counting() for _ in range(3)]
    pool = ReplicaPool(replicas, max_concurrency=2)
    results = await asyncio.gather(*(pool.agenerate(CHAT) for _ in range(30)))
    assert all(r.completions[0].text == "The answer is 5." for r in results)
    assert [r.calls for r in replicas] == [10, 10, 10]
    assert [r.most for r in replicas] == [2, 2, 2]  # 6 at once at most, 2 per replica
    sequential = [await pool.agenerate(CHAT) for _ in range(3)]
    assert len(sequential) == 3 and [r.calls for r in replicas] == [11, 11, 11]


async def test_a_replica_that_goes_down_is_taken_out_and_put_back_when_it_comes_back() -> None:
    with FakeOpenAI() as first, FakeOpenAI() as second:
        port = int(first.base_url.rsplit(":", 1)[1].split("/")[0])
        pool = ReplicaPool([_replica(first), _replica(second)], probe_interval=0.1)
        await asyncio.gather(*(pool.agenerate(CHAT, n=2) for _ in range(4)))
        assert len(first.requests) == len(second.requests) == 2
        # the server goes down: new connections are refused, open ones are dropped
        first.__exit__()
        first.fail("drop", times=1000)
        before = len(second.requests)
        results = await asyncio.gather(*(pool.agenerate(CHAT) for _ in range(6)))
        # every call succeeded: the ones sent to the dead replica went to the other
        assert all(r.completions[0].text == "The answer is 0." for r in results)
        assert len(second.requests) - before == 6
        down = pool.replicas[0]
        assert not down.healthy and "cannot reach" in down.why
        await asyncio.sleep(0.5)  # probes keep failing while it is down
        assert not down.healthy
        with FakeOpenAI(port=port) as back:
            for _ in range(100):
                if down.healthy:
                    break
                await asyncio.sleep(0.05)
            assert down.healthy  # a probe got an answer: it is back in the pool
            probes = len(back.requests)
            assert probes >= 1 and back.requests[0]["max_tokens"] == 1
            await asyncio.gather(*(pool.agenerate(CHAT) for _ in range(4)))
            assert len(back.requests) - probes == 2  # it takes its share again
        await pool.aclose()


async def test_when_every_replica_is_down_a_call_waits_then_names_them() -> None:
    with FakeOpenAI() as one, FakeOpenAI() as two:
        pool = ReplicaPool([_replica(one), _replica(two)], probe_interval=0.05, wait=0.3)
        one.fail("503", times=1000)
        two.fail("drop", times=1000)
        with pytest.raises(BackendUnavailableError) as failure:
            await pool.agenerate(CHAT)
        said = str(failure.value)
        assert "none of the 2 replicas came back within 0.3 s" in said
        assert "answered 503" in said and "cannot reach" in said
        await pool.aclose()


async def test_the_callers_own_errors_are_raised_at_once_and_take_no_replica_out() -> None:
    with FakeOpenAI() as one, FakeOpenAI() as two:
        pool = ReplicaPool([_replica(one), _replica(two)])
        one.fail("400")
        two.fail("400")
        with pytest.raises(UpstreamError, match="bad temperature"):
            await pool.agenerate(CHAT)
        assert len(one.requests) + len(two.requests) == 1  # not tried on the other
        assert all(r.healthy for r in pool.replicas)
        await pool.aclose()


def test_several_base_urls_make_a_pool_for_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAI() as one, FakeOpenAI() as two, FakeOpenAI() as three:
        backend = load_backend("openai", model="m", base_url=[one.base_url, two.base_url])
        assert isinstance(backend, ReplicaPool) and len(backend.replicas) == 2
        single = load_backend("openai", model="m", base_url=[one.base_url])
        assert isinstance(single, OpenAIBackend)
        listed = tmp_path / "urls.txt"
        listed.write_text(f"# the replicas\n{two.base_url}\n\n{three.base_url}  # second\n")
        main(["eval", "--dataset", "synthetic", "--limit", "4", "-n", "2",
              "--strategy", "self-consistency", "--backend", "openai", "--model", "m",
              "--base-url", one.base_url, "--base-url", f"@{listed}",
              "--bank", str(tmp_path / "bank.sqlite"), "--json"])  # fmt: skip
        printed = json.loads(capsys.readouterr().out)
        assert printed["meta"]["complete_questions"] == 4
        assert printed["meta"]["backend"] == "pool"
        # 4 questions, one call each, over three servers
        assert sorted(len(f.requests) for f in (one, two, three)) == [1, 1, 2]
