"""Backends that Ray workers build in tests: module-level functions (a worker imports them by
name), deterministic (a reply depends only on the sample's own seed, as with a seeded
sampler), optionally slow, and one that kills its own process once mid-run."""

from __future__ import annotations

import hashlib
import os
import signal
import time

from ponder.backends.scripted import ScriptedBackend, ScriptedRequest


def reply(request: ScriptedRequest) -> str:
    """Two steps (step search has something to search), then an answer set by the seed."""
    seed = (request.params.seed or 0) + request.index
    return f"First, 2 + 3 = 5.\n\nSo the answer is {seed % 4}."


def judge(text: str, continuation: str) -> float:
    """The log-probability self-eval reads for "Yes" / "No": fixed by the texts."""
    digest = hashlib.sha256(f"{text}\0{continuation}".encode()).digest()
    return -0.1 - digest[0] / 64


def scripted(delay: float = 0.0, max_n: int = 64, kill_once: str | None = None) -> ScriptedBackend:
    """The scripted backend on `reply` and `judge`; each call takes `delay` seconds more.

    `kill_once`: a path; the first process to reach its 6th call while that file does not
    exist creates it and kills itself with SIGKILL (a worker lost mid-question: with
    `max_n=1` and n=4 it dies during its second question)."""
    calls = 0

    def rule(request: ScriptedRequest) -> str:
        nonlocal calls
        calls += 1
        if delay:
            time.sleep(delay)
        if kill_once is not None and calls == 6:
            try:
                os.close(os.open(kill_once, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return reply(request)

    return ScriptedBackend(rule, score_rule=judge, max_n=max_n)
