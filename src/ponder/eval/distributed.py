"""`ponder eval` on a Ray cluster: questions spread over Ray actors, each holding its own
backend (an embedded model, or a client of an upstream server), the bank written here.

    from ponder.backends import load_backend
    with RayPool(functools.partial(load_backend, "embedded", model="small"), workers=4) as pool:
        summary = Evaluation(config).run(pool)

* The work is the one `Worker` of `eval/collect.py` (draw, score, run live strategies): each
  actor builds it from the evaluation's `LineRequest` and its own backend (`api.plan_parts`)
  and streams its events back; the driver's `Collector` stores each as it arrives. The
  driver is the only process that opens the bank, so a rerun sends only what is missing,
  the driver dying loses nothing it had received, and the samples are those a run in one
  process draws (sample i of a question has seed `sample_seed(seed, question) + i`
  whichever actor draws it).
* A question goes to the actor with the most free slots (`concurrency` questions at once
  each). An actor that dies (killed, out of memory, node lost) fails the questions it had
  (`WorkerLost`): the collector reads each one's `Todo` from the bank again and sends it to
  another actor. The lost actor is taken out until it answers again (Ray restarts it up to
  `restarts` times, on another node if its own is gone), then put back; one that cannot
  come back is dropped, and when none is left the run fails.
* `max_tokens_total` and `max_seconds` are checked here as results arrive; once either is
  reached every actor is told to start no new call, and questions sent later get only the
  work that calls no model (a free scorer on stored samples), as in one process.
* `backend` (a `Remote`) stands for the actors' backend here: what it is, for the plan.

Ray is an optional extra (`pip install 'ponder[ray]'`): this module imports it only when a
pool starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ponder.backends.base import Backend, BackendSpec, Capabilities
from ponder.core import Generation, Prompt, SamplingParams, TextScore, TokenCallback, TokenWatch
from ponder.errors import BackendError, ConfigError, PonderError, UnsupportedError
from ponder.eval.api import Pool, plan_parts
from ponder.eval.collect import Event, StopCheck, Todo, Worker, WorkerLost
from ponder.eval.lines import LineRequest
from ponder.scorers.base import SCORERS
from ponder.strategies.base import STRATEGIES
from ponder.tasks.base import TASKS, get_task

BackendFactory = Callable[[], Backend]
"""Builds an actor's backend in the actor's process (it must pickle: a module-level
function or a `functools.partial` of one, such as `load_backend`)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("running on a Ray cluster needs Ray: pip install 'ponder[ray]'") from None
    return ray


@dataclass(frozen=True, slots=True)
class Described:
    """What an actor's backend is."""

    name: str
    model_id: str
    parameters: int | None
    capabilities: Capabilities
    where: str
    """The actor's process and host, for messages."""

    def same(self, other: Described) -> bool:
        return (self.name, self.model_id, self.parameters, self.capabilities) == (
            other.name, other.model_id, other.parameters, other.capabilities,
        )  # fmt: skip


class Remote(Backend):
    """The actors' backend as the driver sees it: its name, model id, parameter count and
    capabilities, for the plan to be made with; its calls are made by the actors."""

    def __init__(self, described: Described) -> None:
        self.name = described.name  # type: ignore[misc]
        self.model_id = described.model_id
        self.parameters = described.parameters
        self.capabilities = described.capabilities

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> Remote:
        raise ConfigError("a Remote backend stands for a RayPool's actors; start a RayPool")

    def _refuse(self) -> UnsupportedError:
        return UnsupportedError(
            f"the {self.model_id} backend runs on the Ray workers; this process makes no calls"
        )

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
        raise self._refuse()

    async def ascore(self, prompt: Prompt, continuation: str) -> TextScore:
        raise self._refuse()


class _Actor:
    """One Ray actor: a backend, and the `Worker` of the evaluation it was last asked for
    (built again after a restart, from the request each call carries)."""

    def __init__(self, factory: BackendFactory) -> None:
        # a failing constructor reaches the driver only as text: keep the error for
        # `describe` to raise, so the user reads ponder's own message
        self.failed: PonderError | None = None
        try:
            self.backend = factory()
            # import the plug-ins now, while the pool starts, not in the first question
            for registry in (STRATEGIES, SCORERS, TASKS):
                registry.names()
        except PonderError as exc:
            self.failed = exc
        self.request: LineRequest | None = None
        self.worker: Worker | None = None
        self.running: set[asyncio.Event] = set()

    def describe(self) -> Described:
        if self.failed is not None:
            raise self.failed
        b = self.backend
        where = f"pid {os.getpid()} on {socket.gethostname()}"
        return Described(b.name, b.model_id, b.parameters, b.capabilities, where)

    async def work(self, request: LineRequest, todo: Todo, stopped: bool) -> AsyncIterator[Event]:
        if self.worker is None or request != self.request:
            scorers, lines = plan_parts(request, self.backend)
            task = get_task(request.task)
            self.worker = Worker(
                self.backend, task, request.sampling, request.seed, scorers, lines.jobs
            )
            self.request = request
        stop = asyncio.Event()
        if stopped:  # only what costs no model call is done, as in the driver's process
            stop.set()
        self.running.add(stop)
        try:
            async for event in self.worker.work(todo, stop.is_set):
                yield event
        finally:
            self.running.discard(stop)

    def stop(self) -> None:
        """Start no new backend call in the work under way."""
        for stop in self.running:
            stop.set()


class RayPool(Pool):
    """Ray actors, each with the backend `factory` builds; use as a context manager.

    `workers`: how many (default: as many as the cluster's CPUs and GPUs fit); `cpus` and
    `gpus`: what each reserves; `address`: the cluster, as `ray.init` takes it ("auto": the
    running one, "local": a new one here, "HOST:PORT", "ray://HOST:PORT"; None: Ray's
    default) and `init` more `ray.init` arguments, both used only when Ray is not running in
    this process yet; `restarts`: how often Ray may restart each actor after it dies. A pool
    that started Ray stops it when closed.
    """

    def __init__(
        self,
        factory: BackendFactory,
        *,
        workers: int | None = None,
        cpus: float = 1.0,
        gpus: float = 0.0,
        address: str | None = None,
        restarts: int = 3,
        init: dict[str, Any] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"the number of workers must be at least 1, got {workers}")
        if cpus < 0 or gpus < 0 or (cpus == 0 and gpus == 0 and workers is None):
            raise ConfigError(
                "each worker's CPUs and GPUs must be >= 0; with neither, give the number of workers"
            )
        if restarts < 0:
            raise ConfigError(f"restarts must be >= 0, got {restarts}")
        self.factory = factory
        self.count = workers
        self.cpus, self.gpus = cpus, gpus
        self.address = address
        self.restarts = restarts
        self.init = dict(init or {})
        """More `ray.init` arguments, when the pool starts Ray."""
        self.actors: list[Any] = []
        self.described: list[Described] = []
        self._backend: Remote | None = None
        self._started_ray = False

    @property
    def backend(self) -> Remote:
        if self._backend is None:
            raise ConfigError("the Ray pool is not started: use it in a with block")
        return self._backend

    def __enter__(self) -> RayPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Connect to (or start) Ray, start the actors and wait until each has its backend."""
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.address, **self.init)
            self._started_ray = True
        try:
            count = self._fit(ray.cluster_resources())
            actor = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=self.restarts)(
                _Actor
            )
            self.actors = [actor.remote(self.factory) for _ in range(count)]
            try:
                self.described = ray.get([a.describe.remote() for a in self.actors])
            except ray.exceptions.RayTaskError as exc:
                raise _cause(exc) from None
            first = self.described[0]
            for other in self.described[1:]:
                if not first.same(other):
                    raise ConfigError(
                        f"the Ray workers hold different backends ({first.model_id} at "
                        f"{first.where}, {other.model_id} at {other.where}): every worker "
                        "must draw from the same model"
                    )
            self._backend = Remote(first)
        except BaseException:
            self.close()
            raise

    def _fit(self, resources: dict[str, float]) -> int:
        cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
        fits = min(
            math.floor(cpus / self.cpus + 1e-9) if self.cpus else math.inf,
            math.floor(gpus / self.gpus + 1e-9) if self.gpus else math.inf,
        )
        count = self.count if self.count is not None else int(fits)
        if count < 1 or count > fits:
            raise ConfigError(
                f"the Ray cluster has {cpus:g} CPUs and {gpus:g} GPUs: {count or 1} worker(s) "
                f"of {self.cpus:g} CPU and {self.gpus:g} GPU each do not fit; ask for fewer "
                "workers or less per worker"
            )
        return count

    def close(self) -> None:
        ray = _ray()
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors = []
        self._backend = None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def workers(
        self, request: LineRequest, concurrency: int, on_tokens: TokenCallback | None
    ) -> RayWorkers:
        if not self.actors:
            raise ConfigError("the Ray pool is not started: use it in a with block")
        return RayWorkers(self, request, concurrency, on_tokens)


@dataclass(eq=False)
class _Slots:
    """One actor as the driver sees it."""

    actor: Any
    where: str
    free: int
    healthy: bool = True
    dead: bool = False


class RayWorkers:
    """The `Workers` of one collection on a `RayPool`'s actors."""

    def __init__(
        self,
        pool: RayPool,
        request: LineRequest,
        concurrency: int,
        on_tokens: TokenCallback | None,
    ) -> None:
        self._ray = _ray()
        self.request = self._ray.put(request)
        self.on_tokens = on_tokens
        self.actors = [
            _Slots(actor, described.where, concurrency)
            for actor, described in zip(pool.actors, pool.described, strict=True)
        ]
        self._slots = len(self.actors) * concurrency
        self._changed: asyncio.Event | None = None
        self._stopping = False
        self._recovering: set[asyncio.Task[None]] = set()

    @property
    def slots(self) -> int:
        return self._slots

    async def work(self, todo: Todo, should_stop: StopCheck) -> AsyncIterator[Event]:
        slot = await self._take()
        stream = slot.actor.work.remote(self.request, todo, should_stop())
        finished = lost = False
        try:
            async for ref in stream:
                event: Event = await ref
                if self.on_tokens is not None:
                    self.on_tokens(event.usage.completion_tokens)
                yield event
                if should_stop():
                    self._stop_all()
            finished = True
        except self._ray.exceptions.RayActorError as exc:
            lost = True
            said = _first_line(exc)
            raise WorkerLost(f"the Ray worker at {slot.where} was lost ({said})") from None
        except self._ray.exceptions.RayTaskError as exc:
            raise _cause(exc) from None
        finally:
            if not finished and not lost:
                with contextlib.suppress(Exception):
                    self._ray.cancel(stream)  # the caller stopped listening
            slot.free += 1
            if lost:
                self._recover(slot)
            self._notify()

    async def _take(self) -> _Slots:
        """The actor with the most free slots (one taken), waiting for one if needed."""
        while True:
            ready = [s for s in self.actors if s.healthy and s.free > 0]
            if ready:
                slot = max(ready, key=lambda s: s.free)
                slot.free -= 1
                return slot
            if all(s.dead for s in self.actors):
                raise BackendError(
                    f"all {len(self.actors)} Ray workers died and cannot be restarted; what "
                    "they sent is stored: rerun to continue"
                )
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def _recover(self, slot: _Slots) -> None:
        """Take the actor out until it answers again (Ray restarts it), or for good."""
        if not slot.healthy or slot.dead:
            return
        slot.healthy = False

        async def probe() -> None:
            try:
                await slot.actor.describe.remote()
            except self._ray.exceptions.RayError:
                slot.dead = True
            else:
                slot.healthy = True
            self._notify()

        task = asyncio.get_running_loop().create_task(probe())
        self._recovering.add(task)
        task.add_done_callback(self._recovering.discard)

    def _stop_all(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for slot in self.actors:
            if not slot.dead:
                slot.actor.stop.remote()


def _cause(exc: Any) -> BaseException:
    """What a Ray task raised: a ponder error as itself (one line for the user), anything
    else with Ray's traceback from the worker."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, PonderError) else exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
