"""The llama.cpp engine behind the embedded backend: one model, one context, one worker thread.

How it spends the CPU well:

* **Batched samples.** A group of `n` samples decodes its prompt once into one sequence,
  copies that sequence's KV to the `n - 1` others (`llama_memory_seq_cp`: with a unified KV
  cache this only tags the same cells with more sequence ids), then every decode step puts
  one token of every live sequence into a single `llama_batch`.
* **Continuous batching.** Requests from any thread go into a queue; the worker admits new
  groups between steps, so concurrent callers share decode steps instead of waiting.
* **Prefix reuse.** Every sequence slot remembers the tokens in its KV. A new group starts
  from the slot sharing the longest token prefix with it (copying or taking over that KV)
  and decodes only the rest. An assistant prefix is matched against the text of the cached
  tokens first, so a continuation of an earlier completion reuses the exact tokens the
  model sampled, not a re-tokenization that could differ at the seam.
* Idle slots stay as a cache until their cells are needed (least recently used first).

Only the worker thread touches the llama context.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp as L
import numpy as np

from ponder.backends._sampling import draw, token_logprobs
from ponder.core import SamplingParams, TokenLogprob, TokenWatch
from ponder.errors import (
    BackendError,
    ConfigError,
    ContextOverflowError,
    ModelError,
)

_SILENCE = L.llama_log_callback(lambda level, text, data: None)
"""Kept referenced for the life of the process: llama.cpp calls it from C."""


def _quiet_llama() -> None:
    if not os.environ.get("PONDER_LLAMA_LOG"):
        L.llama_log_set(_SILENCE, ctypes.c_void_p(0))


Rendered = tuple[tuple[bytes, bool], ...]
"""A prompt as segments of text, each with whether its control-token markers count (the
chat template's own text) or not (content)."""


@dataclass
class EngineStats:
    """Counters for benchmarks: what the model really did."""

    decode_calls: int = 0
    decode_seconds: float = 0.0
    decoded_tokens: int = 0
    sampled_tokens: int = 0

    def snapshot(self) -> EngineStats:
        return EngineStats(**vars(self))


@dataclass
class _Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)
    """The tokens whose KV this sequence holds, in order from position 0."""
    busy: bool = False
    used: int = 0


@dataclass
class SeqOutput:
    """One finished sample, in engine terms (the backend turns it into a Completion)."""

    token_ids: list[int]
    text: str
    finish_reason: str
    stop: str | None
    logprobs: list[tuple[int, float, list[tuple[int, float]]]] | None
    prompt_tokens: int
    cached_tokens: int


@dataclass
class _Group:
    """A prompt (with its assistant prefix) and how many samples to draw from it."""

    job: _Job
    index: int
    prompt: Rendered
    prefix: str
    n: int
    seed0: int
    tokens: list[int] = field(default_factory=list)
    score_from: int = 0
    """Scoring: where the text to score starts in `tokens`."""
    cached: int = 0
    root: _Slot | None = None
    slots: list[_Slot] = field(default_factory=list)
    filled: int = 0
    """Tokens of `tokens` already in the root slot's KV."""
    seqs: list[_Seq] = field(default_factory=list)
    outputs: list[SeqOutput | None] = field(default_factory=list)
    score_rows: list[np.ndarray] = field(default_factory=list)


@dataclass
class _Seq:
    group: _Group
    index: int
    slot: _Slot
    rng: np.random.Generator
    pos: int
    pending: int = -1
    tokens: list[int] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    ends: list[int] = field(default_factory=list)
    """Byte offset of the end of each sampled token in `raw`."""
    logprobs: list[tuple[int, float, list[tuple[int, float]]]] = field(default_factory=list)
    done: bool = False


@dataclass
class _Job:
    kind: str  # "generate" or "score"
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    on_tokens: Callable[[int], None] | None
    groups: list[_Group] = field(default_factory=list)
    continuation: str = ""
    watch: TokenWatch | None = None
    """Called per sampled token; True halts that sequence (it leaves the batch at once)."""
    cancelled: bool = False
    remaining: int = 0
    fresh_tokens: int = 0
    """Tokens sampled since `on_tokens` was last called."""

    def resolve(self, value: Any = None, error: BaseException | None = None) -> None:
        def settle() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(value)

        with contextlib.suppress(RuntimeError):  # the caller's loop is already closed
            self.loop.call_soon_threadsafe(settle)


class LlamaEngine:
    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int = 16384,
        n_batch: int = 512,
        n_seq_max: int = 64,
        n_threads: int | None = None,
    ) -> None:
        _quiet_llama()
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        model = L.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise ModelError(
                f"llama.cpp could not load {path}: the file is corrupt or not a model it "
                "supports; rebuild it or give another .gguf"
            )
        self._model = model
        self.n_ctx_train = int(L.llama_model_n_ctx_train(model))
        n_ctx = min(n_ctx, max(self.n_ctx_train, 512)) if self.n_ctx_train > 0 else n_ctx
        cparams = L.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_seq_max = n_seq_max
        threads = n_threads or os.cpu_count() or 2
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.kv_unified = True
        cparams.no_perf = True
        ctx = L.llama_init_from_model(model, cparams)
        if not ctx:
            L.llama_model_free(model)
            raise ModelError(f"llama.cpp could not create a context for {path} (n_ctx={n_ctx})")
        self._ctx = ctx
        self._memory = L.llama_get_memory(ctx)
        self._vocab = L.llama_model_get_vocab(model)
        self.n_vocab = int(L.llama_vocab_n_tokens(self._vocab))
        self.n_ctx = int(L.llama_n_ctx(ctx))
        self.n_batch = n_batch
        self.n_seq_max = n_seq_max
        self._add_bos = bool(L.llama_vocab_get_add_bos(self._vocab))
        n_params = int(L.llama_model_n_params(model))
        # The token-embedding lookup does no multiply-adds: leave it out of the FLOPs estimate.
        self.parameters = max(n_params - self.n_vocab * int(L.llama_model_n_embd(model)), 0)
        template = L.llama_model_chat_template(model, None)
        self.chat_template: bytes = template or b"chatml"
        self._batch = L.llama_batch_init(n_batch + n_seq_max, 0, 1)
        self._slots = [_Slot(i) for i in range(n_seq_max)]
        self._clock = 0
        self._pieces: dict[int, bytes] = {}
        self.stats = EngineStats()
        self._inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pending: list[_Group] = []
        self._active: list[_Group] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ponder-llama", daemon=True)
        self._thread.start()

    # ---- public, any thread ---------------------------------------------------------------

    def render_chat(self, messages: Sequence[tuple[str, str]]) -> Rendered:
        """The prompt of chat messages, ending with the assistant turn opened, as segments:
        the template's own text (whose markers become control tokens) and each message's
        content (always plain text: a message that spells `<|im_start|>` or holds a NUL
        byte is tokenized as the text it is, never as the template's markers).

        The template is applied to placeholders, never to the contents, so contents do not
        pass through C strings either."""
        nonce = secrets.token_hex(8)
        marks = [f"\u2045ponder-{nonce}-{i}\u2046".encode() for i in range(len(messages))]
        roles = [role for role, _ in messages]
        template = self._apply_template(list(zip(roles, marks, strict=True)))
        segments: list[tuple[bytes, bool]] = []
        rest = template
        for mark, (_, content) in zip(marks, messages, strict=True):
            before, found, rest = rest.partition(mark)
            if not found or mark in rest:
                raise ModelError("the model's chat template did not keep each message once")
            segments += [(before, True), (content.encode(), False)]
        segments.append((rest, True))
        return tuple((text, special) for text, special in segments if text)

    def encode(self, prompt: Rendered, *, bos: bool = True) -> list[int]:
        """The tokens of a rendered prompt (the beginning-of-sequence token when the model
        wants one)."""
        tokens: list[int] = []
        for i, (text, special) in enumerate(prompt):
            tokens += self.tokenize(text, special=special, bos=bos and i == 0 and self._add_bos)
        return tokens

    def _apply_template(self, messages: Sequence[tuple[str, bytes]]) -> bytes:
        keep = [(role.encode(), content) for role, content in messages]
        array = (L.llama_chat_message * len(keep))()
        for i, (role, content) in enumerate(keep):
            array[i].role = role
            array[i].content = content
        size = 256 + sum(len(r) + len(c) for r, c in keep) * 2
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = L.llama_chat_apply_template(self.chat_template, array, len(keep), True, buf, size)
            if n < 0:
                raise ModelError("the model's chat template could not be applied")
            if n <= size:
                return buf.raw[:n]
            size = n + 1
        raise ModelError("the chat template output kept growing")

    def submit(
        self,
        kind: str,
        prompts: Sequence[tuple[Rendered, str]],
        params: SamplingParams,
        n: int,
        loop: asyncio.AbstractEventLoop,
        on_tokens: Callable[[int], None] | None = None,
        continuation: str = "",
        watch: TokenWatch | None = None,
    ) -> _Job:
        """Queue work; its future resolves with a list (per group) of outputs."""
        if self._closed:
            raise BackendError("the embedded model was closed")
        job = _Job(
            kind, params, loop, loop.create_future(), on_tokens, continuation=continuation,
            watch=watch,
        )  # fmt: skip
        seed = params.seed if params.seed is not None else secrets.randbits(32)
        for index, (prompt, prefix) in enumerate(prompts):
            group = _Group(job, index, prompt, prefix, n, seed + index * n)
            group.outputs = [None] * n
            job.groups.append(group)
        job.remaining = len(job.groups)
        self._inbox.put(job)
        return job

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._inbox.put(None)
        self._thread.join(timeout=30)
        L.llama_batch_free(self._batch)
        L.llama_free(self._ctx)
        L.llama_model_free(self._model)

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is None:
            buf = ctypes.create_string_buffer(64)
            n = L.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = L.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
            cached = self._pieces[token] = buf.raw[: max(n, 0)]
        return cached

    def tokenize(self, text: bytes, *, special: bool, bos: bool = False) -> list[int]:
        if not text:
            return []
        size = len(text) + 8
        out = (L.llama_token * size)()
        n = L.llama_tokenize(self._vocab, text, len(text), out, size, bos, special)
        if n < 0:
            size = -n
            out = (L.llama_token * size)()
            n = L.llama_tokenize(self._vocab, text, len(text), out, size, bos, special)
        return list(out[:n])

    # ---- worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if not self._active and not self._pending:
                job = self._inbox.get()
                if job is None:
                    return
                self._accept(job)
            while True:
                try:
                    job = self._inbox.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._fail_all(BackendError("the embedded model was closed"))
                    return
                self._accept(job)
            try:
                self._drop_cancelled()
                self._admit()
                if self._active:
                    self._step()
            except Exception as exc:  # keep serving: fail what was running, reset the cache
                self._fail_all(
                    exc if isinstance(exc, BackendError) else BackendError(f"llama.cpp: {exc}")
                )
                L.llama_memory_clear(self._memory, True)
                for slot in self._slots:
                    slot.tokens, slot.busy = [], False

    def _accept(self, job: _Job) -> None:
        try:
            for group in job.groups:
                self._prepare(group)
        except Exception as exc:
            job.resolve(error=exc)
            return
        self._pending.extend(job.groups)

    def _prepare(self, group: _Group) -> None:
        job = group.job
        head = self.encode(group.prompt)
        tail = self._prefix_tokens(head, group.prefix)
        group.tokens = head + tail
        if job.kind == "score":
            cont = self.tokenize(job.continuation.encode(), special=False)
            if not cont:
                raise ConfigError("the text to score is empty")
            group.score_from = len(group.tokens)
            group.tokens += cont
            need = len(group.tokens)
        else:
            need = len(group.tokens) + job.params.max_tokens
        if len(group.tokens) >= self.n_ctx or need > self.n_ctx:
            raise ContextOverflowError(
                f"the prompt has {len(group.tokens)} tokens and up to {job.params.max_tokens} "
                f"more may be generated, but the context holds {self.n_ctx}; shorten the prompt "
                "or lower max_tokens"
            )

    def _prefix_tokens(self, head: list[int], prefix: str) -> list[int]:
        """Tokens of an assistant prefix: the cached tokens whose text it starts with, then the
        rest tokenized."""
        if not prefix:
            return []
        data = prefix.encode()
        best_len, best_tokens = 0, []
        for slot in self._slots:
            if len(slot.tokens) <= len(head) or slot.tokens[: len(head)] != head:
                continue
            at, taken = 0, 0
            for token in slot.tokens[len(head) :]:
                piece = self.piece(token)
                if not piece or data[at : at + len(piece)] != piece:
                    break
                at += len(piece)
                taken += 1
            if at > best_len:
                best_len, best_tokens = at, slot.tokens[len(head) : len(head) + taken]
        return best_tokens + self.tokenize(data[best_len:], special=False)

    def _drop_cancelled(self) -> None:
        self._pending = [g for g in self._pending if not g.job.cancelled]
        for group in [g for g in self._active if g.job.cancelled]:
            self._release(group)

    def _release(self, group: _Group) -> None:
        for seq in group.seqs:
            seq.done = True
        for slot in group.slots:
            slot.busy = False
        if group in self._active:
            self._active.remove(group)

    def _reserved(self) -> int:
        return sum(
            len(g.tokens) - g.cached + g.n * g.job.params.max_tokens
            for g in self._active
            if g.job.kind == "generate"
        ) + sum(len(g.tokens) - g.cached for g in self._active if g.job.kind == "score")

    def _admit(self) -> None:
        while self._pending:
            group = self._pending[0]
            unforked = sum(g.n - 1 for g in self._active if not g.seqs)
            free = sum(not s.busy for s in self._slots) - unforked
            if free < group.n:
                return
            source, common = self._best_source(group.tokens)
            if self._shares_more_with_prefill(group.tokens, common):
                return  # let that prompt land in the cache first, then copy it
            first_logit = (
                group.score_from - 1 if group.job.kind == "score" else len(group.tokens) - 1
            )
            cached = min(common, first_logit)
            extra = (
                len(group.tokens)
                - cached
                + (group.n * group.job.params.max_tokens if group.job.kind == "generate" else 0)
            )
            if self._active and self._reserved() + extra > self.n_ctx:
                return
            self._pending.pop(0)
            self._start(group, source, cached)

    def _shares_more_with_prefill(self, tokens: list[int], common: int) -> bool:
        """Whether a group still filling its prompt will hold more of `tokens` than the cache."""
        return any(
            not g.seqs and g.filled < len(g.tokens) and _common_prefix(g.tokens, tokens) > common
            for g in self._active
        )

    def _best_source(self, tokens: list[int]) -> tuple[_Slot | None, int]:
        best, best_len = None, 0
        for slot in self._slots:
            if not slot.tokens:
                continue
            common = _common_prefix(slot.tokens, tokens)
            if common > best_len or (common == best_len and best is not None and not slot.busy):
                best, best_len = slot, common
        return best, best_len

    def _take_slot(self, exclude: _Slot | None = None) -> _Slot:
        idle = [s for s in self._slots if not s.busy and s is not exclude]
        slot = min(idle, key=lambda s: (bool(s.tokens), s.used))
        if slot.tokens:
            L.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
            slot.tokens = []
        slot.busy = True
        return slot

    def _start(self, group: _Group, source: _Slot | None, cached: int) -> None:
        self._clock += 1
        if source is not None and not source.busy and cached > 0:
            root = source
            root.busy = True
            L.llama_memory_seq_rm(self._memory, root.seq, cached, -1)
            del root.tokens[cached:]
        else:
            root = self._take_slot(exclude=source)
            if source is not None and cached > 0:
                L.llama_memory_seq_cp(self._memory, source.seq, root.seq, 0, cached)
                root.tokens = group.tokens[:cached]
            else:
                cached = 0
        root.used = self._clock
        group.root, group.cached, group.filled = root, cached, cached
        group.slots = [root]
        self._active.append(group)

    def _fork(self, group: _Group) -> None:
        """The prompt is in the root's KV: give each sample its own sequence sharing it."""
        assert group.root is not None
        length = len(group.tokens)
        for i in range(group.n):
            if i == 0:
                slot = group.root
            else:
                slot = self._take_slot()
                L.llama_memory_seq_cp(self._memory, group.root.seq, slot.seq, 0, length)
                slot.tokens = list(group.tokens)
                slot.used = self._clock
                group.slots.append(slot)
            rng = np.random.default_rng(group.seed0 + i)
            group.seqs.append(_Seq(group, i, slot, rng, length))

    def _step(self) -> None:
        batch = self._batch
        n = 0
        decoding: list[_Seq] = []
        for group in self._active:
            for seq in group.seqs:
                if not seq.done and seq.pending >= 0:
                    self._put(n, seq.pending, seq.pos, seq.slot.seq, True)
                    seq.slot.tokens.append(seq.pending)
                    seq.pos += 1
                    decoding.append(seq)
                    n += 1
        prefilling: list[tuple[_Group, int, int]] = []  # group, first output row, rows
        capacity = self.n_batch
        rows = len(decoding)
        for group in self._active:
            if group.seqs or n >= capacity:
                continue
            assert group.root is not None
            scoring = group.job.kind == "score"
            end = len(group.tokens)
            if not scoring and group.filled < end - 1:
                # The last prompt token always goes alone into a later step, so its logits do
                # not depend on how much of the prompt was cached: same seed, same samples.
                end -= 1
            todo = group.tokens[group.filled : end]
            take = todo[: capacity - n]
            start_rows = rows
            for offset, token in enumerate(take):
                pos = group.filled + offset
                want = (
                    pos >= group.score_from - 1 and pos < len(group.tokens) - 1
                    if scoring
                    else pos == len(group.tokens) - 1
                )
                self._put(n, token, pos, group.root.seq, want)
                n += 1
                rows += want
            group.root.tokens.extend(take)
            group.filled += len(take)
            prefilling.append((group, start_rows, rows - start_rows))
        if n == 0:
            return
        batch.n_tokens = n
        self._decode(batch, n)
        logits_ptr = L.llama_get_logits(self._ctx)
        logits = np.ctypeslib.as_array(logits_ptr, shape=(rows, self.n_vocab)) if rows else None
        self._sample(decoding, logits)
        for group, first, count in prefilling:
            if group.job.kind == "score":
                if count:
                    group.score_rows.append(np.array(logits[first : first + count]))  # type: ignore[index]
                if group.filled == len(group.tokens):
                    self._finish_score(group)
            elif group.filled == len(group.tokens):
                self._fork(group)
                assert logits is not None
                row = logits[first : first + 1]
                for seq in group.seqs:
                    self._take(seq, draw(row, group.job.params, [seq.rng])[0])
                self._after_step(group)
        for group in {id(s.group): s.group for s in decoding}.values():
            self._after_step(group)

    def _put(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits

    def _decode(self, batch: Any, n: int) -> None:
        while True:
            started = time.perf_counter()
            status = L.llama_decode(self._ctx, batch)
            L.llama_synchronize(self._ctx)
            self.stats.decode_seconds += time.perf_counter() - started
            if status == 0:
                self.stats.decode_calls += 1
                self.stats.decoded_tokens += n
                return
            if status == 1 and self._evict_one():
                continue
            raise BackendError(
                "the KV cache is full: lower n or max_tokens, or run fewer requests at once"
                if status == 1
                else f"llama_decode failed with status {status}"
            )

    def _evict_one(self) -> bool:
        idle = [s for s in self._slots if not s.busy and s.tokens]
        if not idle:
            return False
        slot = min(idle, key=lambda s: s.used)
        L.llama_memory_seq_rm(self._memory, slot.seq, -1, -1)
        slot.tokens = []
        return True

    def _sample(self, decoding: list[_Seq], logits: np.ndarray | None) -> None:
        if not decoding:
            return
        assert logits is not None
        by_params: dict[int, list[int]] = {}
        for row, seq in enumerate(decoding):
            by_params.setdefault(id(seq.group.job), []).append(row)
        for rows in by_params.values():
            params = decoding[rows[0]].group.job.params
            draws = draw(logits[rows], params, [decoding[r].rng for r in rows])
            for r, d in zip(rows, draws, strict=True):
                self._take(decoding[r], d)

    def _take(self, seq: _Seq, d: Any) -> None:
        """Append a sampled token to a sequence and decide whether it goes on."""
        params = seq.group.job.params
        self.stats.sampled_tokens += 1
        seq.group.job.fresh_tokens += 1
        if not params.ignore_eos and L.llama_vocab_is_eog(self._vocab, d.token):
            self._finish(seq, "stop", None)
            return
        seq.tokens.append(d.token)
        before = len(seq.raw)
        seq.raw += self.piece(d.token)
        seq.ends.append(len(seq.raw))
        if params.logprobs:
            seq.logprobs.append((d.token, d.logprob, d.top))
        if params.stop:
            text = bytes(seq.raw)
            window = max(0, before - max(len(s.encode()) for s in params.stop))
            hits = [(text.find(s.encode(), window), s) for s in params.stop]
            hits = [(at, s) for at, s in hits if at >= 0]
            if hits:
                at, stop = min(hits)
                self._finish(
                    seq, "stop", stop, cut=at + (len(stop.encode()) if params.include_stop else 0)
                )
                return
        watch = seq.group.job.watch
        if watch is not None and watch(seq.group.index * seq.group.n + seq.index, self._logprob(d)):
            self._finish(seq, "halted", None)  # freed now: the batch goes on without it
            return
        if len(seq.tokens) >= params.max_tokens or seq.pos + 1 >= self.n_ctx:
            self._finish(seq, "length", None)
            return
        seq.pending = d.token

    def _logprob(self, d: Any) -> TokenLogprob:
        def text(token: int) -> str:
            return self.piece(token).decode("utf-8", errors="replace")

        return TokenLogprob(text(d.token), d.logprob, tuple((text(t), lp) for t, lp in d.top))

    def _finish(self, seq: _Seq, reason: str, stop: str | None, cut: int | None = None) -> None:
        seq.done = True
        seq.pending = -1
        group = seq.group
        raw = bytes(seq.raw if cut is None else seq.raw[:cut])
        logprobs = seq.logprobs if group.job.params.logprobs else None
        group.outputs[seq.index] = SeqOutput(
            token_ids=list(seq.tokens),
            text=raw.decode("utf-8", errors="replace"),
            finish_reason=reason,
            stop=stop,
            logprobs=logprobs,
            prompt_tokens=len(group.tokens) if seq.index == 0 else 0,
            cached_tokens=group.cached if seq.index == 0 else 0,
        )
        seq.slot.busy = False
        self._clock += 1
        seq.slot.used = self._clock

    def _after_step(self, group: _Group) -> None:
        job = group.job
        if job.on_tokens is not None and job.fresh_tokens:
            with contextlib.suppress(RuntimeError):
                job.loop.call_soon_threadsafe(job.on_tokens, job.fresh_tokens)
            job.fresh_tokens = 0
        if group.seqs and all(s.done for s in group.seqs):
            if group in self._active:
                self._active.remove(group)
            job.remaining -= 1
            if job.remaining == 0:
                job.resolve([g.outputs for g in job.groups])

    def _finish_score(self, group: _Group) -> None:
        rows = np.concatenate(group.score_rows) if group.score_rows else np.empty((0, self.n_vocab))
        targets = np.array(group.tokens[group.score_from :])
        values = token_logprobs(rows, targets)
        assert group.root is not None
        group.root.busy = False
        self._clock += 1
        group.root.used = self._clock
        self._active.remove(group)
        group.job.resolve(
            (
                [int(t) for t in targets],
                [float(v) for v in values],
                len(group.tokens),
                group.cached,
            )
        )

    def _fail_all(self, error: BaseException) -> None:
        jobs = {id(g.job): g.job for g in [*self._active, *self._pending]}
        for job in jobs.values():
            job.resolve(error=error)
        for group in list(self._active):
            self._release(group)
        self._pending.clear()


def _common_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    n = min(len(a), len(b))
    i = 0
    # compare in chunks first: prompts share long runs
    step = 64
    while i + step <= n and a[i : i + step] == b[i : i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i
