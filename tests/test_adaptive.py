"""Adaptive compute: each stopping rule stops exactly where its paper's rule says on a known
stream of answers, its posterior matches a direct computation, a replay from stored samples
decides and costs what the live run did, and halted traces are never decoded further."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections import Counter
from collections.abc import Sequence

import httpx
import numpy as np
import pytest
from scipy import integrate

from ponder.backends.base import Backend
from ponder.backends.scripted import ScriptedBackend, ScriptedRequest
from ponder.core import SamplingParams
from ponder.errors import ConfigError, UnsupportedError
from ponder.eval.bank import Sample
from ponder.eval.replay import candidates_of
from ponder.result import Result
from ponder.server.app import ServerSettings, create_app
from ponder.strategies.adaptive_consistency import posterior
from ponder.strategies.base import SampleStrategy
from ponder.strategies.deepconf import GroupConfidenceFloor, trace_confidence
from ponder.strategies.spec import StrategySpec
from ponder.tasks import get_task
from tests.support.recording import Recording
from tests.support.uvicorn_thread import serve

TASK = get_task("math")


def _stream(answers: Sequence[str], logprobs: Sequence[float] | None = None):  # type: ignore[no-untyped-def]
    """Sample i (by its seed: whichever call draws it) answers answers[i]."""

    def rule(request: ScriptedRequest) -> str | tuple[str, float]:
        assert request.params.seed is not None
        i = request.params.seed + request.index
        text = f"Thinking it through step by step now. The answer is {answers[i]}."
        return text if logprobs is None else (text, logprobs[i])

    return rule


def _run(name: str, answers: Sequence[str], **options: object) -> tuple[Result, Recording]:
    backend = Recording(_stream(answers))
    spec = StrategySpec(name, samples=len(answers), options=options,
                        sampling=SamplingParams(seed=0, max_tokens=64))  # fmt: skip
    return spec.build(backend).run("q", backend), backend


def test_beta_posterior_matches_numerical_integration() -> None:
    for a, b in [(1, 0), (3, 0), (4, 1), (6, 2), (5, 5), (9, 3)]:

        def density(x: float, a: int = a, b: int = b) -> float:
            return x**a * (1 - x) ** b

        ratio = integrate.quad(density, 0.5, 1)[0] / integrate.quad(density, 0, 1)[0]
        # the authors' own formula (their BetaStoppingCriteria)
        assert posterior((a, b), "beta") == pytest.approx(ratio, abs=1e-9)


def test_dirichlet_posterior_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    for counts in [(3,), (4, 1), (5, 2, 1), (2, 2)]:
        alphas = [c + 1 for c in counts] + [1]  # one more category: the answers not seen yet
        draws = rng.dirichlet(alphas, size=400_000)
        estimate = float(np.mean(draws.argmax(axis=1) == 0))
        assert posterior(counts, "dirichlet") == pytest.approx(estimate, abs=0.004)


def _beta_stop(answers: Sequence[str], batch: int, threshold: float = 0.95) -> int:
    """Where the authors' rule stops, computed directly: after each batch, P(p > 1/2) for
    p ~ Beta(v1 + 1, v2 + 1) by numerical integration of the density."""
    for end in range(batch, len(answers) + 1, batch):
        counts = [*sorted(Counter(answers[:end]).values(), reverse=True), 0]
        a, b = counts[0], counts[1]

        def density(x: float, a: int = a, b: int = b) -> float:
            return x**a * (1 - x) ** b

        if integrate.quad(density, 0.5, 1)[0] / integrate.quad(density, 0, 1)[0] >= threshold:
            return end
    return len(answers)


def test_adaptive_consistency_stops_where_the_beta_rule_says() -> None:
    # 4 agreeing votes: P = 0.969 >= 0.95 (3 give 0.9375)
    result, backend = _run("adaptive-consistency", ["7"] * 16, batch_size=1)
    assert result.trace.used == 4 and len(backend.requests) == 4
    assert "0.969" in (result.trace.stop or "") and result.answer == "7"
    assert _run("adaptive-consistency", ["7"] * 16)[0].trace.used == 4  # batches of 2
    streams = [
        ["7", "8", "7", "7", "7", "7", "7", "9"] + ["7"] * 8,
        ["3", "3", "4", "3", "4", "3", "3", "3"] * 2,
        ["1", "2"] * 8,
    ]
    for answers in streams:
        for batch in (1, 2, 4):
            used = _run("adaptive-consistency", answers, batch_size=batch)[0].trace.used
            assert used == _beta_stop(answers, batch), (answers, batch)
    result, _ = _run("adaptive-consistency", ["1", "2"] * 8, threshold=0.99)
    assert result.trace.used == 16 and result.trace.stop is None


def test_esc_stops_at_the_first_window_that_agrees() -> None:
    answers = ["1", "2", "1", "1", "3", "3", "3", "3"] + ["4"] * 8
    result, backend = _run("esc", answers, window=4)
    assert result.trace.used == 8 and "window 2" in result.trace.stop
    assert len(backend.requests) == 8 and backend.sizes == [4, 4]  # one call per window
    assert result.answer == "3"
    none = ["1", "2", "3", "4"] * 4
    assert _run("esc", none, window=4)[0].trace.used == 16


def _confident(text_logprob: float) -> float:
    """The scripted backend's token confidence: minus its one logprob."""
    return -text_logprob


def test_group_confidence_rule_is_the_same_live_and_replayed() -> None:
    rule = GroupConfidenceFloor(threshold=1.2, window=3)
    values = [2.0, 2.0, 2.0, 0.5, 0.5, 2.0, 0.1]
    at = rule.halts(values)
    assert at == 4  # the window (2.0, 0.5, 0.5) is the first below 1.2
    watch = rule.watch()
    from ponder.core import TokenLogprob

    halted = [watch(0, TokenLogprob("x", -v)) for v in values]
    assert halted.index(True) == at
    assert trace_confidence(values, 3) == pytest.approx(min(
        np.mean(values[i:i + 3]) for i in range(len(values) - 2)
    ))  # fmt: skip


def _deepconf_stream() -> tuple[list[str], list[float]]:
    """Four confident warm-up traces, then weak ones (to be halted) and confident ones. The
    scripted backend's only alternative to a token is the token itself, so its confidence
    is minus its logprob: a confident trace here has a low logprob."""
    answers = ["5", "5", "6", "5"] + ["6", "5", "6", "5"] * 3
    logprobs = [-3.0, -2.5, -3.0, -2.8] + [-0.1, -2.9, -0.1, -2.7] * 3
    return answers, logprobs


def test_deepconf_online_halts_weak_traces_and_never_decodes_their_rest() -> None:
    answers, logprobs = _deepconf_stream()
    backend = Recording(_stream(answers, logprobs))
    spec = StrategySpec("deepconf", samples=16, options={"window": 4, "consensus": 0.99},
                        sampling=SamplingParams(seed=0, max_tokens=64))  # fmt: skip
    result = spec.build(backend).run("q", backend)
    halted = [c for c in result.candidates if c.finish_reason == "halted"]
    assert halted and all(c.answer is None for c in halted)
    # a halted trace is cut right where its window fell below the threshold: 4 tokens
    assert {c.completion_tokens for c in halted} == {4}
    assert result.usage.completion_tokens == sum(c.completion_tokens for c in result.candidates)
    assert result.answer == "5"
    # offline keeps the confident traces and weighs them: the same answer
    offline = StrategySpec(
        "deepconf",
        samples=16,
        options={"mode": "offline", "window": 4, "keep": 0.5},
        sampling=SamplingParams(seed=0, max_tokens=64),
    )
    backend = Recording(_stream(answers, logprobs))
    assert offline.build(backend).run("q", backend).answer == "5"


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("adaptive-consistency", {}),
        ("adaptive-consistency", {"criterion": "dirichlet", "batch_size": 1}),
        ("esc", {"window": 4}),
        ("deepconf", {"window": 4}),
        ("deepconf", {"window": 4, "mode": "offline", "keep": 0.5}),
    ],
)
def test_replay_decides_and_costs_what_the_live_run_did(
    name: str, options: dict[str, object]
) -> None:
    answers, logprobs = _deepconf_stream()
    backend = ScriptedBackend(_stream(answers, logprobs))
    spec = StrategySpec(name, samples=16, options=options,
                        sampling=SamplingParams(seed=0, max_tokens=64))  # fmt: skip
    strategy = spec.build(backend)
    assert isinstance(strategy, SampleStrategy)
    live = strategy.run("q", backend)
    # the bank would hold all 16 samples in full, drawn with the same seeds
    everything = ScriptedBackend(_stream(answers, logprobs)).generate(
        TASK.prompt("q"), SamplingParams(seed=0, max_tokens=64, logprobs=True, top_logprobs=20),
        n=16,
    )  # fmt: skip
    samples = tuple(
        Sample(idx=i, seed=i, text=c.text, answer=TASK.extract(c.text),
               finish_reason=c.finish_reason, usage=c.usage,
               confidences=tuple(-lp.logprob for lp in c.logprobs or ()))
        for i, c in enumerate(everything.completions)
    )  # fmt: skip
    replayed = strategy.decide(candidates_of(samples, TASK), np.random.default_rng(0))
    assert replayed.answer == live.answer
    assert replayed.used == live.trace.used == len(live.candidates)
    spent = replayed.tokens or tuple(s.usage.completion_tokens for s in samples[: replayed.used])
    assert sum(spent) == live.usage.completion_tokens


def test_bad_thresholds_windows_and_backends_fail_before_any_sampling() -> None:
    for options in ({"threshold": 0}, {"threshold": 1.5}, {"criterion": "gamma"}):
        with pytest.raises(ConfigError):
            StrategySpec("adaptive-consistency", options=options)
    with pytest.raises(ConfigError, match="window of 32 samples is larger"):
        StrategySpec("esc", samples=16, options={"window": 32})
    with pytest.raises(ConfigError, match="batch_size 32 is larger"):
        StrategySpec("adaptive-consistency", samples=16, options={"batch_size": 32})
    with pytest.raises(ConfigError, match="warm-up of 20"):
        StrategySpec("deepconf", samples=16, options={"warmup": 20})
    with pytest.raises(ConfigError, match="keep"):
        StrategySpec("deepconf", options={"keep": 0})
    blind = ScriptedBackend(logprobs=False)
    with pytest.raises(UnsupportedError, match="top logprobs"):
        StrategySpec("deepconf").build(blind).run("q", blind)
    assert blind.requests == []


def test_every_k_subset_order_is_the_order_drawn() -> None:
    """Replay reads a subset in the order its samples were drawn (by index)."""
    from ponder.eval.replay import subsets

    for pick in subsets(8, 3, 10, np.random.default_rng(1)):
        assert list(pick) == sorted(pick)
    assert len(list(itertools.combinations(range(4), 2))) == len(
        subsets(4, 2, 64, np.random.default_rng(0))
    )


@pytest.mark.model
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("adaptive-consistency", {"batch_size": 4}),
        ("esc", {"window": 4}),
        ("deepconf", {"window": 8, "keep": 0.75, "warmup": 4, "consensus": 0.95}),
    ],
)
def test_replay_of_a_live_runs_draws_decides_as_it_did(
    embedded_backend: Backend, name: str, options: dict[str, object]
) -> None:
    """On the real model, with the engine halting traces for real: the rule replayed on what
    the live run drew (a halted trace as far as it got) decides the same answer, stops at the
    same sample and costs the same tokens.

    Replaying a bank drawn in other batches is not compared sample by sample: the embedded
    engine's batched decoding rounds differently when other sequences share the batch (a
    sequence's KV cells land elsewhere), so the same seeds drawn 4 at a time and 16 at a time
    give the same distribution, not the same texts."""
    question = "Ann has 3 red and 4 blue pens. She buys 5 more pens. How many pens has she?"
    sampling = SamplingParams(max_tokens=40, temperature=0.8)
    spec = StrategySpec(name, samples=8, options=options, sampling=sampling, seed=11)
    strategy = spec.build(embedded_backend)
    assert isinstance(strategy, SampleStrategy)
    live = strategy.run(question, embedded_backend)
    assert all(c.confidences is not None for c in live.candidates) or name != "deepconf"

    stored = [dataclasses.replace(c, cluster=None) for c in live.candidates]
    labels = TASK.cluster([c.answer for c in stored])
    stored = [dataclasses.replace(c, cluster=k) for c, k in zip(stored, labels, strict=True)]
    replayed = strategy.decide(stored, np.random.default_rng(0))
    assert (replayed.answer, replayed.used, replayed.stop) == (
        live.answer, live.trace.used, live.trace.stop,
    )  # fmt: skip
    spent = replayed.tokens or tuple(c.completion_tokens for c in stored[: replayed.used])
    assert sum(spent) == live.usage.completion_tokens
    if name == "deepconf":
        halted = [c for c in live.candidates if c.finish_reason == "halted"]
        # a halted trace stopped decoding at the token its window fell below the threshold:
        # not before a whole window was seen, at the latest on its last allowed token
        assert all(8 <= c.completion_tokens <= 40 and c.answer is None for c in halted)


class _Paced(ScriptedBackend):
    """A scripted model that takes a moment per call, like one decoding tokens."""

    async def acontinue(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.15)
        return await super().acontinue(*args, **kwargs)


def test_adaptive_strategies_through_the_server_show_progress_while_streaming() -> None:
    backend = _Paced(_stream(["7", "8", "7", "7", "7", "7", "7", "7"] * 2))
    settings = ServerSettings(keepalive_seconds=0.05)
    with serve(create_app(backend, settings)) as url:
        body = {
            "model": "adaptive-consistency@16/m",
            "messages": [{"role": "user", "content": "q"}],
            "stream": True,
            "seed": 0,
            "ponder": {"batch_size": 1, "trace": True},
        }
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=30) as reply:
            lines = [line for line in reply.iter_lines() if line]
        assert reply.status_code == 200
        progress = [line for line in lines if line.startswith(": progress")]
        assert progress and progress[-1].endswith("tokens sampled")
        assert lines[-1] == "data: [DONE]"
        answer = "".join(
            json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            for line in lines
            if line.startswith("data: {") and json.loads(line[6:])["choices"]
        )
        assert "The answer is" in answer
        # the model name and the body field pick every adaptive rule, options checked
        plain = httpx.post(url + "/v1/chat/completions", timeout=30, json={
            "model": "esc@8/m", "messages": [{"role": "user", "content": "q"}], "seed": 0,
            "ponder": {"window": 4, "trace": True},
        })  # fmt: skip
        assert plain.status_code == 200 and plain.json()["ponder"]["used"] in (4, 8)
        bad = httpx.post(url + "/v1/chat/completions", timeout=30, json={
            "model": "adaptive-consistency@8/m", "messages": [{"role": "user", "content": "q"}],
            "ponder": {"threshold": 2},
        })  # fmt: skip
        assert bad.status_code == 400 and "threshold" in bad.text
