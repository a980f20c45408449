"""Side by side with its_hub and optillm: the same model, server, prompt and questions through
each, one question at a time through every system, graded alike.

    pip install -e '.[bench]'        # its_hub[lm] 1.2.0, optillm 0.4.0, llama-cpp-python[server]
    python benchmarks/bench_peers.py                        # 10 GSM8K test questions, N = 8
    python benchmarks/bench_peers.py --smoke                # 1 question, N = 2, 64 tokens
    python benchmarks/bench_peers.py --skip its_hub-bon,ponder-c1 --out runs/peers

It starts `python -m llama_cpp.server` (the small model, `--threads` threads, loopback, a free
port) and, in front of it, optillm's proxy and `ponder serve`. Every system answers with
self-consistency over N samples of the math task's prompt (its system and user messages),
temperature 0.8, at most 400 new tokens a sample:

    its_hub           its_hub SelfConsistency over the server (OpenAICompatibleLanguageModel)
    its_hub-beta      its_hub BetaSelfConsistency (stops once a Beta posterior is sure, 0.95)
    its_hub-adaptive  its_hub AdaptiveSelfConsistency (doubling rounds, 75% supermajority)
    its_hub-bon       its_hub BestOfN judged by its LLMJudge on the same server
    its_hub-pf        its_hub ParticleFiltering: needs a process reward model (skipped, why)
    optillm           optillm's self_consistency approach through its proxy
    ponder-http       ponder self-consistency over the server (`--backend openai`)
    ponder-serve      `ponder serve --upstream` over the server, called with the openai client
    ponder            ponder on the embedded backend, --concurrency questions at once (as
                      `ponder eval --concurrency 2` runs: one question's samples fill the
                      batch while the other's finish)
    ponder-c1         the same, one question at a time
    ponder-adaptive   ponder adaptive-consistency on the embedded backend (Beta, 0.95)
    limit             llama.cpp's own loop, no ponder: N sequences of the prompt decoded in one
                      batch to max-tokens each (the physical limit of batched sampling here)

How it is measured. Questions go in rounds of --concurrency; each round goes through every
system (in an order that rotates from round to round) before the next, so drift of the machine
hits them all. A request to the server is followed by a one-token request that waits behind
whatever the server still decodes (a cancelled request goes on there) and the clock stops
after it. Each system's chosen text is graded by ponder's math task (the same extraction and
equivalence for everyone); its_hub votes with that extraction as its projection function, so
its votes count answers, not whole texts. Completion tokens are each system's own usage
report: its_hub's GenerationUsage (its judge's calls counted by its own orchestrator),
optillm's provider calls from its conversation log (its reply leaves out samples cut at
max_tokens), ponder's Usage; a system that reports none has its text counted by the server's
tokenizer. Peers run unpatched at their pinned versions, through their documented APIs; a
peer that cannot run is reported with the reason and the others go on.

Where the peers do something else (reported, not corrected): its_hub sends
`max_completion_tokens`, which llama_cpp.server 0.3.x does not read, so its samples run to
end-of-sequence or the end of the context (--n-ctx); optillm's self-consistency draws 5
samples at temperature 1 whatever the request asks, and rewrites the user message as
"User: ..."; the HTTP lines sample with the server's defaults for top-k, top-p and min-p
(40, 0.95, 0.05), the embedded ones from the full distribution.

Last line: `sc8_vs_its_hub=X sc8_vs_limit=L http_vs_its_hub=Y sc8_vs_optillm=Z
serve_vs_optillm=W adaptive_vs_limit=A sc8_c1_vs_limit=C`, all per completion token (seconds
of wall time / completion tokens, summed over questions) except adaptive_vs_limit: ponder
adaptive-consistency's seconds per question over the seconds the limit loop needs for the
tokens ponder self-consistency decodes per question (below 1: stopping early beats even
perfect batching). Targets: sc8_vs_its_hub <= 0.6, sc8_vs_limit <= 1.10,
http_vs_its_hub <= 1.05. A line that did not run gives nan.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import llama_cpp as L

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ponder.backends.embedded import EmbeddedBackend
from ponder.backends.models import resolve
from ponder.backends.registry import load_backend
from ponder.core import SamplingParams
from ponder.eval.datasets import Question, load_dataset
from ponder.eval.stats import interval
from ponder.serialize import dumps
from ponder.strategies.spec import StrategySpec
from ponder.tasks.base import Task, get_task
from tests.support.llama_server import free_port, llama_server, service

ALIAS = "small"
"""The model's name on the server (what clients put in `model`)."""
SYSTEMS = (
    "its_hub", "its_hub-beta", "its_hub-adaptive", "its_hub-bon", "its_hub-pf", "optillm",
    "ponder-http", "ponder-serve", "ponder", "ponder-c1", "ponder-adaptive", "limit",
)  # fmt: skip
BETA_THRESHOLD = 0.95
"""its_hub's default, and ponder adaptive-consistency's."""


@dataclass(frozen=True)
class Settings:
    n: int
    max_tokens: int
    temperature: float
    concurrency: int
    threads: int

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams(max_tokens=self.max_tokens, temperature=self.temperature)


@dataclass(frozen=True)
class Answer:
    """What one system did with one question."""

    text: str | None
    completion_tokens: int
    seconds: float
    samples: int
    width: float | None = None
    """Sequences per decode step on average (embedded lines)."""


@dataclass
class Line:
    name: str
    label: str
    solve: Callable[[Sequence[Question]], Awaitable[list[Answer]]] | None
    skipped: str | None = None
    answers: list[tuple[Question, Answer]] = field(default_factory=list)
    failed: str | None = None

    @property
    def ran(self) -> bool:
        return bool(self.answers)

    def total(self, key: str) -> float:
        return math.fsum(getattr(a, key) for _, a in self.answers)

    def per_token(self) -> float:
        tokens = self.total("completion_tokens")
        return self.total("seconds") / tokens if tokens else math.nan

    def per_question(self, key: str) -> float:
        return self.total(key) / len(self.answers) if self.answers else math.nan


def messages(task: Task, question: Question) -> list[dict[str, str]]:
    return [m.to_dict() for m in task.prompt(question.question)]


def graded(task: Task, question: Question, text: str | None) -> bool:
    answer = None if text is None else task.extract(text)
    return task.is_correct(answer, question.answer)


class Server:
    """llama_cpp.server's URL and a way to wait until it is idle."""

    def __init__(self, base_url: str, client: httpx.AsyncClient) -> None:
        self.base_url, self.client = base_url, client
        self.root = base_url.removesuffix("/v1")

    async def drain(self) -> None:
        """Return once the server has decoded everything it was given: it works one request
        at a time, so a one-token request comes back after the rest."""
        body = {"model": ALIAS, "messages": [{"role": "user", "content": "."}], "max_tokens": 1}
        reply = await self.client.post(self.base_url + "/chat/completions", json=body)
        reply.raise_for_status()

    async def warm(self, chat: list[dict[str, str]]) -> None:
        body = {"model": ALIAS, "messages": chat, "max_tokens": 8}
        reply = await self.client.post(self.base_url + "/chat/completions", json=body)
        reply.raise_for_status()
        await self.drain()

    async def count(self, text: str) -> int:
        """Tokens of `text` by the server's own tokenizer."""
        reply = await self.client.post(self.root + "/extras/tokenize", json={"input": text})
        reply.raise_for_status()
        return len(reply.json()["tokens"])


async def timed_each(
    questions: Sequence[Question],
    server: Server,
    one: Callable[[Question], Awaitable[tuple[str | None, int, int]]],
) -> list[Answer]:
    """One question after another; each clock stops once the server is idle again."""
    out = []
    for question in questions:
        started = time.perf_counter()
        text, tokens, samples = await one(question)
        await server.drain()
        seconds = time.perf_counter() - started
        if not tokens and text:
            tokens = await server.count(text)
        out.append(Answer(text, tokens, seconds, samples))
    return out


# ---- the peers -------------------------------------------------------------------------------


def its_hub_lines(server: Server, task: Task, settings: Settings, wanted: set[str]) -> list[Line]:
    names = ("its_hub", "its_hub-beta", "its_hub-adaptive", "its_hub-bon")
    labels = {
        "its_hub": "its_hub SelfConsistency",
        "its_hub-beta": f"its_hub BetaSelfConsistency ({BETA_THRESHOLD:g})",
        "its_hub-adaptive": "its_hub AdaptiveSelfConsistency",
        "its_hub-bon": "its_hub BestOfN + LLMJudge",
    }
    lines = [Line(x, labels[x], None) for x in names if x in wanted]
    if "its_hub-pf" in wanted:
        lines.append(
            Line(
                "its_hub-pf", "its_hub ParticleFiltering", None,
                skipped="needs a process reward model; the one its_hub ships "
                "(LocalVllmProcessRewardModel, its_hub[experimental]) runs a PRM checkpoint "
                "on vLLM, which this machine (CPU, no model hub) cannot serve",
            )
        )  # fmt: skip
    if not lines:
        return lines
    try:
        import its_hub
        from its_hub import (
            AdaptiveSelfConsistency,
            BestOfN,
            BetaSelfConsistency,
            LLMJudge,
            OpenAICompatibleLanguageModel,
            SelfConsistency,
        )
        from its_hub.api import ChatMessage, GenerationUsage
        from its_hub.core.orchestrator import LMOrchestrator
    except ImportError as exc:
        for line in lines:
            line.skipped = line.skipped or f"its_hub[lm] cannot be imported: {exc}"
        return lines

    def key(text: str) -> str:
        # its_hub votes on what this returns (the whole text by default): with ponder's
        # extraction it votes on the answers ponder votes on
        answer = task.extract(text)
        return text.strip() if answer is None else repr(task.canonical(answer))

    def lm() -> Any:
        return OpenAICompatibleLanguageModel(
            endpoint=server.base_url, api_key="none", model_name=ALIAS,
            max_completion_tokens=settings.max_tokens, temperature=settings.temperature,
        )  # fmt: skip

    class Counting(LMOrchestrator):  # type: ignore[misc]
        """its_hub's own orchestrator, counting the calls whose caller counts nothing (the
        judge's: BestOfN reports only the generation's usage)."""

        def __init__(self) -> None:
            super().__init__()
            self.unreported = GenerationUsage()

        async def agenerate(self, lm: Any, messages_lst: Any, stop: Any = None, **kw: Any) -> Any:
            if kw.get("usage_accumulator") is None:
                kw["usage_accumulator"] = self.unreported
            return await super().agenerate(lm, messages_lst, stop, **kw)

    language_model = lm()
    counting = Counting()
    algorithms = {
        "its_hub": SelfConsistency(consistency_space_projection_func=key),
        "its_hub-beta": BetaSelfConsistency(
            confidence_threshold=BETA_THRESHOLD, consistency_space_projection_func=key
        ),
        "its_hub-adaptive": AdaptiveSelfConsistency(consistency_space_projection_func=key),
        "its_hub-bon": BestOfN(orm=LLMJudge(lm()), orchestrator=counting),
    }

    def solver(name: str) -> Callable[[Sequence[Question]], Awaitable[list[Answer]]]:
        algorithm = algorithms[name]

        async def one(question: Question) -> tuple[str | None, int, int]:
            chat = [
                ChatMessage(role=m["role"], content=m["content"]) for m in messages(task, question)
            ]
            before = counting.unreported.completion_tokens
            result = await algorithm.ainfer(
                language_model, chat, settings.n, return_response_only=False
            )
            judged = counting.unreported.completion_tokens - before
            tokens = (result.usage.completion_tokens if result.usage else 0) + judged
            return result.the_one.get("content"), tokens, len(result.responses)

        async def solve(questions: Sequence[Question]) -> list[Answer]:
            return await timed_each(questions, server, one)

        return solve

    for line in lines:
        if line.skipped is None:
            line.solve = solver(line.name)
            line.label += f" {its_hub.__version__}"
    return lines


@contextlib.contextmanager
def optillm_line(
    server: Server, task: Task, settings: Settings, wanted: set[str]
) -> Iterator[list[Line]]:
    line = Line("optillm", "optillm self_consistency (proxy)", None)
    if "optillm" not in wanted:
        yield []
        return
    try:
        import openai

        # the proxy imports optillm (and torch, transformers, ...): not this process
        line.label += " " + importlib.metadata.version("optillm")
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        line.skipped = f"optillm or the openai client is not installed: {exc}"
        yield [line]
        return
    port = free_port()
    logs = Path(tempfile.mkdtemp(prefix="bench-optillm-"))
    command = [
        sys.executable, "-c", "import optillm; optillm.main()", "--base-url", server.base_url,
        "--host", "127.0.0.1", "--port", str(port), "--log-conversations",
        "--conversation-log-dir", str(logs),
    ]  # fmt: skip
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(
                service(
                    command, f"http://127.0.0.1:{port}/health", name="optillm's proxy",
                    timeout=300, env={"OPENAI_API_KEY": "sk-none"},
                )
            )  # fmt: skip
        except RuntimeError as exc:
            line.skipped = f"optillm's proxy cannot start here: {exc}"
            yield [line]
            return
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-none", timeout=3600
        )

        async def one(question: Question) -> tuple[str | None, int, int]:
            seen = len(_optillm_entries(logs))
            reply = await client.chat.completions.create(
                model=f"self_consistency-{ALIAS}", messages=messages(task, question),  # type: ignore[arg-type]
                temperature=settings.temperature, max_tokens=settings.max_tokens,
            )  # fmt: skip
            text = reply.choices[0].message.content
            calls = _optillm_entries(logs)[seen:]
            provider = [c for entry in calls for c in entry.get("provider_calls") or ()]
            if provider:  # every sample, the ones cut at max_tokens too
                return text, sum(_completion_tokens(c) for c in provider), len(provider)
            usage = reply.usage.completion_tokens if reply.usage else 0
            return text, int(usage or 0), 0

        async def solve(questions: Sequence[Question]) -> list[Answer]:
            return await timed_each(questions, server, one)

        line.solve = solve
        yield [line]


def _completion_tokens(call: dict[str, Any]) -> int:
    """The completion tokens of one provider call in optillm's conversation log."""
    usage = (call.get("response") or {}).get("usage") or {}
    return int(usage.get("completion_tokens") or 0)


def _optillm_entries(folder: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted(folder.glob("*.jsonl")):
        entries += [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return entries


# ---- ponder ----------------------------------------------------------------------------------


def ponder_http_line(server: Server, task: Task, settings: Settings) -> Line:
    backend = load_backend("openai", base_url=server.base_url, model=ALIAS)
    strategy = StrategySpec(
        "self-consistency", samples=settings.n, sampling=settings.sampling
    ).build(backend)

    async def one(question: Question) -> tuple[str | None, int, int]:
        result = await strategy.arun(question.question, backend)
        return result.text, result.usage.completion_tokens, len(result.candidates)

    async def solve(questions: Sequence[Question]) -> list[Answer]:
        return await timed_each(questions, server, one)

    return Line("ponder-http", "ponder self-consistency, --backend openai", solve)


@contextlib.contextmanager
def ponder_serve_line(
    server: Server, task: Task, settings: Settings, wanted: set[str]
) -> Iterator[list[Line]]:
    if "ponder-serve" not in wanted:
        yield []
        return
    line = Line("ponder-serve", "ponder serve --upstream, openai client", None)
    try:
        import openai
    except ImportError as exc:
        line.skipped = f"the openai client cannot be imported: {exc}"
        yield [line]
        return
    port = free_port()
    command = [
        sys.executable, "-m", "ponder.cli", "serve", "--upstream", server.base_url,
        "--model", ALIAS, "--port", str(port),
    ]  # fmt: skip
    with service(command, f"http://127.0.0.1:{port}/health", name="ponder serve"):
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="none", timeout=3600
        )

        async def one(question: Question) -> tuple[str | None, int, int]:
            reply = await client.chat.completions.create(
                model=f"self-consistency@{settings.n}/{ALIAS}",
                messages=messages(task, question),  # type: ignore[arg-type]
                temperature=settings.temperature, max_tokens=settings.max_tokens,
            )  # fmt: skip
            tokens = reply.usage.completion_tokens if reply.usage else 0
            return reply.choices[0].message.content, tokens, settings.n

        async def solve(questions: Sequence[Question]) -> list[Answer]:
            return await timed_each(questions, server, one)

        line.solve = solve
        yield [line]


def embedded_line(
    name: str,
    label: str,
    backend: EmbeddedBackend,
    spec: StrategySpec,
    concurrency: int,
) -> Line:
    strategy = spec.build(backend)

    async def solve(questions: Sequence[Question]) -> list[Answer]:
        out: list[Answer] = []
        for start in range(0, len(questions), concurrency):
            group = questions[start : start + concurrency]
            before = backend.stats()
            started = time.perf_counter()
            results = await asyncio.gather(*(strategy.arun(q.question, backend) for q in group))
            seconds = (time.perf_counter() - started) / len(group)
            after = backend.stats()
            width = (after.sampled_tokens - before.sampled_tokens) / max(
                after.decode_calls - before.decode_calls, 1
            )
            out += [
                Answer(r.text, r.usage.completion_tokens, seconds, len(r.candidates), width)
                for r in results
            ]
        return out

    return Line(name, label, solve)


class RawLoop:
    """The physical limit of batched sampling here: llama.cpp's own loop, no ponder. The
    prompt is decoded once into sequence 0, its KV shared with `width - 1` more sequences (a
    unified cache only tags the same cells), then each step puts one token of every sequence
    in one batch, sampled by llama.cpp's own sampler chain (temperature, a seeded draw),
    end-of-sequence ignored, to a fixed length."""

    def __init__(self, path: Path, *, width: int, threads: int, n_ctx: int) -> None:
        L.llama_backend_init()
        self.model = L.llama_model_load_from_file(
            str(path).encode(), L.llama_model_default_params()
        )
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        params = L.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = 512
        params.n_seq_max = width
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = True
        params.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not make a context of {n_ctx} tokens")
        self.memory = L.llama_get_memory(self.ctx)
        self.batch = L.llama_batch_init(512, 0, width)
        self.width = width

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        self.batch.token[i] = token
        self.batch.pos[i] = pos
        self.batch.n_seq_id[i] = 1
        self.batch.seq_id[i][0] = seq
        self.batch.logits[i] = logits

    def _decode(self, n: int) -> None:
        self.batch.n_tokens = n
        if L.llama_decode(self.ctx, self.batch) != 0:
            raise RuntimeError("llama_decode failed in the limit loop")

    def run(self, prompt: Sequence[int], length: int, temperature: float, seed: int) -> float:
        """Seconds to decode the prompt and `length` tokens in each sequence."""
        L.llama_memory_clear(self.memory, True)
        chains = []
        for s in range(self.width):
            chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_temp(temperature))
            L.llama_sampler_chain_add(chain, L.llama_sampler_init_dist(seed + s))
            chains.append(chain)
        try:
            started = time.perf_counter()
            for start in range(0, len(prompt), 512):
                part = prompt[start : start + 512]
                for i, token in enumerate(part):
                    self._put(i, token, start + i, 0, start + i == len(prompt) - 1)
                self._decode(len(part))
            for s in range(1, self.width):
                L.llama_memory_seq_cp(self.memory, 0, s, -1, -1)
            tokens = [L.llama_sampler_sample(c, self.ctx, -1) for c in chains]
            for step in range(1, length):
                for s, token in enumerate(tokens):
                    self._put(s, token, len(prompt) + step - 1, s, True)
                self._decode(self.width)
                tokens = [L.llama_sampler_sample(c, self.ctx, s) for s, c in enumerate(chains)]
            L.llama_synchronize(self.ctx)
            return time.perf_counter() - started
        finally:
            for chain in chains:
                L.llama_sampler_free(chain)

    def close(self) -> None:
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)


def limit_line(loop: RawLoop, backend: EmbeddedBackend, task: Task, settings: Settings) -> Line:
    async def solve(questions: Sequence[Question]) -> list[Answer]:
        out = []
        for i, question in enumerate(questions):
            tokens = backend.prompt_tokens(task.prompt(question.question))
            seconds = await asyncio.to_thread(
                loop.run, tokens, settings.max_tokens, settings.temperature, 1000 * i
            )
            out.append(
                Answer(None, loop.width * settings.max_tokens, seconds, loop.width, loop.width)
            )
        return out

    return Line("limit", f"llama.cpp loop, {settings.n} sequences in one batch", solve)


# ---- the run ---------------------------------------------------------------------------------


async def run_rounds(lines: Sequence[Line], questions: Sequence[Question], size: int) -> None:
    live = [x for x in lines if x.solve is not None]
    for r, start in enumerate(range(0, len(questions), size)):
        group = questions[start : start + size]
        turn = r % len(live) if live else 0
        for line in live[turn:] + live[:turn]:
            if line.failed or line.solve is None:
                continue
            try:
                answers = await line.solve(group)
            except Exception as exc:  # a peer that breaks mid-run is reported, not fatal
                line.failed = f"{type(exc).__name__}: {str(exc)[:300]}"
                print(f"  {line.name}: failed: {line.failed}", flush=True)
                continue
            line.answers += zip(group, answers, strict=True)
            spent = sum(a.seconds for a in answers)
            tokens = sum(a.completion_tokens for a in answers)
            print(f"  round {r + 1}: {line.name:<17} {spent:7.1f} s {tokens:6d} tokens", flush=True)


def report(lines: Sequence[Line], task: Task, reference: Line | None) -> list[dict[str, Any]]:
    ref_q = reference.per_question("seconds") if reference and reference.ran else math.nan
    ref_t = reference.per_token() if reference and reference.ran else math.nan
    header = (
        f"{'system':<50} {'q':>3} {'s/q':>7} {'tok/q':>7} {'smp/q':>5} {'ms/tok':>7} "
        f"{'accuracy [95%]':>19} {'s/q÷pe':>7} {'ms/t÷pe':>8}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for line in lines:
        if not line.ran:
            why = line.skipped or line.failed or "not run"
            print(f"{line.label:<50} skipped: {why}")
            rows.append({"system": line.name, "label": line.label, "skipped": why})
            continue
        per_q, per_t = line.per_question("seconds"), line.per_token()
        accuracy = f"{'-':>19}"
        correct = None
        if line.name != "limit":
            values = [float(graded(task, q, a.text)) for q, a in line.answers]
            low, high = interval(values)
            correct = sum(values)
            accuracy = f"{correct / len(values):.2f} [{low:.2f}, {high:.2f}]"
        width = [a.width for _, a in line.answers if a.width is not None]
        print(
            f"{line.label:<50} {len(line.answers):>3} {per_q:7.1f} "
            f"{line.per_question('completion_tokens'):7.0f} {line.per_question('samples'):5.1f} "
            f"{per_t * 1000:7.1f} {accuracy:>19} {per_q / ref_q:7.2f} {per_t / ref_t:8.2f}"
            + (f"  (batch {sum(width) / len(width):.1f} wide)" if width else "")
            + (f"  [failed later: {line.failed}]" if line.failed else "")
        )
        rows.append({
            "system": line.name, "label": line.label, "questions": len(line.answers),
            "seconds_per_question": per_q, "tokens_per_question":
            line.per_question("completion_tokens"), "samples_per_question":
            line.per_question("samples"), "seconds_per_token": per_t, "correct": correct,
            "per_question": [
                {"id": q.id, "seconds": a.seconds, "completion_tokens": a.completion_tokens,
                 "samples": a.samples, "correct": None if line.name == "limit"
                 else graded(task, q, a.text)}
                for q, a in line.answers
            ],
        })  # fmt: skip
    return rows


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else math.nan


async def main_async(args: argparse.Namespace, settings: Settings) -> None:
    task = get_task("math")
    questions = load_dataset("gsm8k", limit=args.questions).questions
    wanted = set(SYSTEMS) - set(args.skip)
    path, _ = resolve(args.model)
    print(
        f"model {path.name}, {len(questions)} GSM8K test questions, N = {settings.n}, "
        f"temperature {settings.temperature:g}, max {settings.max_tokens} tokens, "
        f"{settings.threads} threads, rounds of {settings.concurrency}",
        flush=True,
    )
    lines: list[Line] = []
    async with contextlib.AsyncExitStack() as stack:
        url = stack.enter_context(
            llama_server(timeout=300, n_ctx=args.n_ctx, threads=settings.threads)
        )
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=None))
        server = Server(url, http)
        # the first requests set up what the server sets up lazily (buffers for a long prompt)
        await server.warm(messages(task, questions[0]))
        lines += its_hub_lines(server, task, settings, wanted)
        lines += stack.enter_context(optillm_line(server, task, settings, wanted))
        if "ponder-http" in wanted:
            lines.append(ponder_http_line(server, task, settings))
        lines += stack.enter_context(ponder_serve_line(server, task, settings, wanted))
        backend = stack.enter_context(EmbeddedBackend(args.model))
        await backend.agenerate("Hi", SamplingParams(max_tokens=2))  # load and warm the model
        for name, strategy, concurrency, label in (
            ("ponder", "self-consistency", settings.concurrency,
             f"ponder self-consistency, embedded, {settings.concurrency} at once"),
            ("ponder-c1", "self-consistency", 1, "ponder self-consistency, embedded, 1 at once"),
            ("ponder-adaptive", "adaptive-consistency", settings.concurrency,
             f"ponder adaptive-consistency, embedded, {settings.concurrency} at once"),
        ):  # fmt: skip
            if name in wanted:
                spec = StrategySpec(
                    strategy, samples=settings.n, sampling=settings.sampling,
                    options={"threshold": BETA_THRESHOLD} if strategy != "self-consistency"
                    else {},
                )  # fmt: skip
                lines.append(embedded_line(name, label, backend, spec, concurrency))
        if "limit" in wanted:
            loop = RawLoop(
                path, width=settings.n, threads=settings.threads,
                n_ctx=512 + settings.n * settings.max_tokens + 512,
            )  # fmt: skip
            stack.callback(loop.close)
            loop.run(backend.prompt_tokens("Hi"), 2, settings.temperature, 0)  # warm up
            lines.append(limit_line(loop, backend, task, settings))
        for line in lines:
            if line.skipped:
                print(f"  {line.name}: skipped: {line.skipped}", flush=True)
        await run_rounds(lines, questions, settings.concurrency)
    by_name = {x.name: x for x in lines}
    print()
    rows = report(lines, task, by_name.get("ponder"))

    def rate(name: str) -> float:
        line = by_name.get(name)
        return line.per_token() if line is not None and line.ran else math.nan

    limit, sc = rate("limit"), by_name.get("ponder")
    adaptive = by_name.get("ponder-adaptive")
    adaptive_vs_limit = math.nan
    if adaptive is not None and adaptive.ran and sc is not None and sc.ran:
        adaptive_vs_limit = ratio(
            adaptive.per_question("seconds"), limit * sc.per_question("completion_tokens")
        )
    figures = {
        "sc8_vs_its_hub": ratio(rate("ponder"), rate("its_hub")),
        "sc8_vs_limit": ratio(rate("ponder"), limit),
        "http_vs_its_hub": ratio(rate("ponder-http"), rate("its_hub")),
        "sc8_vs_optillm": ratio(rate("ponder"), rate("optillm")),
        "serve_vs_optillm": ratio(rate("ponder-serve"), rate("optillm")),
        "adaptive_vs_limit": adaptive_vs_limit,
        "sc8_c1_vs_limit": ratio(rate("ponder-c1"), limit),
    }
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"command": " ".join(sys.argv), "settings": vars(settings), "model": path.name}
        (args.out / "peers.json").write_text(
            dumps({"meta": meta, "lines": rows, "figures": figures}, indent=2) + "\n"
        )
        print(f"wrote {args.out / 'peers.json'}")
    print(" ".join(f"{k}={v:.2f}" for k, v in figures.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("-n", type=int, default=8, help="samples per question")
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument(
        "--concurrency", type=int, default=2,
        help="questions the embedded ponder lines run at once (and questions per round)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 2,
        help="llama.cpp threads for the server and the limit loop (the embedded backend "
        "uses every core, so the default is the number of cores)",
    )  # fmt: skip
    parser.add_argument("--n-ctx", type=int, default=2048, help="llama_cpp.server's context")
    parser.add_argument("--model", default="small")
    parser.add_argument("--skip", type=lambda s: [x for x in s.split(",") if x], default=[])
    parser.add_argument("--out", type=Path, help="write peers.json (every figure) here")
    parser.add_argument("--smoke", action="store_true", help="1 question, N = 2, 64 tokens")
    args = parser.parse_args()
    if args.smoke:
        args.questions, args.n, args.max_tokens = 1, 2, 64
    unknown = set(args.skip) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; known: {', '.join(SYSTEMS)}")
    settings = Settings(args.n, args.max_tokens, args.temperature, args.concurrency, args.threads)
    asyncio.run(main_async(args, settings))


if __name__ == "__main__":
    main()
