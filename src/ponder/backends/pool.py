"""Replicas of one model behind one backend: several OpenAI-compatible servers (vLLM, SGLang,
llama.cpp) serving the same weights, used as one.

    pool = ReplicaPool([OpenAIBackend(url, "m") for url in urls], max_concurrency=8)

`load_backend("openai", base_url=[url1, url2, ...])` builds one (`--base-url` given more than
once), so `ponder solve`, `serve` and `eval` all spread over replicas the same way.

* Spreading: each call goes to the healthy replica with the fewest calls in flight (in turn
  among equals), at most `max_concurrency` calls per replica; a call waits when every
  healthy replica is at its limit.
* Failing over: a call that fails because of its replica (unreachable, timed out, a 5xx, 408
  or 429 answer, a malformed reply, each after the replica's own retries) takes the replica
  out and goes to another. Errors that are the caller's (another 4xx, a bad option, an
  unsupported request) are raised at once: every replica would answer the same. A streamed
  call whose tokens a `TokenWatch` has begun to see is not sent again (the watch would see
  them twice): its error is raised.
* Probing: a replica taken out is sent a one-token request after `probe_interval` seconds,
  then at doubling intervals up to `max_probe_interval`; the first answer puts it back (a
  4xx answer too: the server is up and refused only the probe). Probes run in the event loop
  the pool is used in and are counted in no `Usage` (they serve no caller).
* When no replica is healthy, a call waits up to `wait` seconds for one to come back, then
  raises `BackendUnavailableError` naming each replica and why it was taken out.

Calls carry their seeds, so replicas that honour seeds (vLLM) draw the same sample whichever
replica serves it. The model id is the replicas' own when they agree, else all of them: a
bank drawn through one set of servers is not mixed with one drawn through another unless
they name the model the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ponder.backends.base import Backend, BackendSpec
from ponder.core import (
    Generation,
    Message,
    Prompt,
    SamplingParams,
    TextScore,
    TokenCallback,
    TokenLogprob,
    TokenWatch,
)
from ponder.errors import BackendError, BackendUnavailableError, ConfigError, UpstreamError

T = TypeVar("T")

PROBE = (Message("user", "Say OK."),)
PROBE_PARAMS = SamplingParams(max_tokens=1, temperature=0.0)


@dataclass(eq=False)
class _Replica:
    backend: Backend
    inflight: int = 0
    healthy: bool = True
    why: str = ""
    """Why it was taken out (its last error)."""
    probe: asyncio.Task[None] | None = None


class ReplicaPool(Backend):
    name = "pool"

    def __init__(
        self,
        replicas: Sequence[Backend],
        *,
        max_concurrency: int = 8,
        probe_interval: float = 1.0,
        max_probe_interval: float = 30.0,
        wait: float = 30.0,
    ) -> None:
        if not replicas:
            raise ConfigError("a replica pool needs at least one backend")
        if max_concurrency < 1 or probe_interval <= 0 or max_probe_interval < probe_interval:
            raise ConfigError(
                "max_concurrency must be >= 1, probe_interval > 0 and max_probe_interval >= "
                "probe_interval"
            )
        if wait < 0:
            raise ConfigError("wait must be >= 0 seconds")
        self.replicas = [_Replica(backend) for backend in replicas]
        ids = sorted({backend.model_id for backend in replicas})
        self.model_id = ids[0] if len(ids) == 1 else "|".join(ids)
        self.parameters = replicas[0].parameters
        self.capabilities = replicas[0].capabilities
        self.max_concurrency = max_concurrency
        self.probe_interval = probe_interval
        self.max_probe_interval = max_probe_interval
        self.wait = wait
        self._turn = 0
        # asyncio events belong to one loop (the sync wrappers run each call in a new one)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed = asyncio.Event()

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> ReplicaPool:
        raise ConfigError(
            "a replica pool is made of its replicas: give --base-url once per server "
            "(load_backend(kind, base_url=[...]))"
        )

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
        guard = _Guard(watch)
        return await self._call(
            lambda b: b.acontinue(
                prompt, prefixes, params, n=n, on_tokens=on_tokens, watch=guard.watch
            ),
            guard.unseen,
        )

    async def ascore(self, prompt: Prompt, continuation: str) -> TextScore:
        return await self._call(lambda b: b.ascore(prompt, continuation), lambda: True)

    async def aclose(self) -> None:
        for replica in self.replicas:
            if replica.probe is not None:
                replica.probe.cancel()
                replica.probe = None
        for replica in self.replicas:
            await replica.backend.aclose()

    # ---- spreading and failing over --------------------------------------------------------

    async def _call(
        self, call: Callable[[Backend], Awaitable[T]], may_retry: Callable[[], bool]
    ) -> T:
        last: Exception | None = None
        for _ in range(2 * len(self.replicas)):
            replica = await self._acquire()
            try:
                return await call(replica.backend)
            except Exception as exc:
                if not _replica_fault(exc):
                    raise
                last = exc
                self._take_out(replica, exc)
                if not may_retry():
                    raise
            finally:
                replica.inflight -= 1
                self._notify()
        assert last is not None
        raise BackendUnavailableError(
            f"a call failed on {2 * len(self.replicas)} tries over {len(self.replicas)} "
            f"replicas; the last said: {last}"
        )

    async def _acquire(self) -> _Replica:
        """The replica the next call goes to (its slot taken), waiting for one if needed."""
        loop = self._bind()
        deadline: float | None = None
        while True:
            healthy = [r for r in self.replicas if r.healthy]
            free = [r for r in healthy if r.inflight < self.max_concurrency]
            if free:
                least = min(r.inflight for r in free)
                ties = [r for r in free if r.inflight == least]
                replica = ties[self._turn % len(ties)]
                self._turn += 1
                replica.inflight += 1
                return replica
            changed = self._changed
            if healthy:
                await changed.wait()
                continue
            deadline = deadline if deadline is not None else loop.time() + self.wait
            left = deadline - loop.time()
            if left <= 0:
                why = "; ".join(f"{r.backend.model_id}: {r.why}" for r in self.replicas)
                raise BackendUnavailableError(
                    f"none of the {len(self.replicas)} replicas came back within "
                    f"{self.wait:g} s ({why}); are the servers running?"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)

    def _bind(self) -> asyncio.AbstractEventLoop:
        """Events and probes of the running loop; a new loop starts them afresh."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._changed = asyncio.Event()
            for replica in self.replicas:
                replica.probe = None  # the old loop's probes ended with it
        for replica in self.replicas:
            if not replica.healthy and replica.probe is None:
                replica.probe = loop.create_task(self._probe(replica))
        return loop

    def _notify(self) -> None:
        """Wake every waiting call: a slot was freed or a replica came back."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _take_out(self, replica: _Replica, exc: Exception) -> None:
        replica.why = str(exc)
        if replica.healthy:
            replica.healthy = False
            replica.probe = asyncio.get_running_loop().create_task(self._probe(replica))

    async def _probe(self, replica: _Replica) -> None:
        interval = self.probe_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await replica.backend.agenerate(PROBE, PROBE_PARAMS)
            except Exception as exc:
                if _replica_fault(exc):
                    replica.why = str(exc)
                    interval = min(2 * interval, self.max_probe_interval)
                    continue
            break
        replica.healthy = True
        replica.probe = None
        self._notify()


class _Guard:
    """Passes a watch on, noting whether it has seen a token (a call it has seen tokens of
    cannot be sent again)."""

    def __init__(self, watch: TokenWatch | None) -> None:
        self._watch = watch
        self.seen = False
        self.watch: TokenWatch | None = None if watch is None else self._see

    def _see(self, index: int, token: TokenLogprob) -> bool:
        assert self._watch is not None
        self.seen = True
        return self._watch(index, token)

    def unseen(self) -> bool:
        return not self.seen


def _replica_fault(exc: Exception) -> bool:
    """Whether `exc` says the replica failed, rather than that the request was wrong."""
    if isinstance(exc, UpstreamError) and exc.status is not None:
        return exc.status >= 500 or exc.status in (408, 429)
    return isinstance(exc, BackendError)
