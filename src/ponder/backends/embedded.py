"""The embedded backend: a GGUF model run in-process by llama.cpp, offline.

`EmbeddedBackend(model="small")` loads one of the catalog models (joined from its PyPI
chunks on first use) or any `.gguf` path. Backends of the same file in one process share a
single loaded model (`LlamaEngine`), which batches their requests together.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ponder.backends._llama import EngineStats, LlamaEngine, Rendered, SeqOutput
from ponder.backends.base import Backend, BackendSpec, Capabilities, check_n
from ponder.backends.models import DEFAULT_MODEL, resolve
from ponder.backends.registry import BACKENDS
from ponder.core import (
    Completion,
    Generation,
    NormalizedPrompt,
    Prompt,
    SamplingParams,
    TextScore,
    TokenCallback,
    TokenLogprob,
    TokenWatch,
    normalize_prompt,
)
from ponder.errors import ConfigError
from ponder.usage import Usage

DEFAULT_CONTEXT = 16384

_engines: dict[tuple[str, int], tuple[LlamaEngine, int]] = {}
"""Loaded models and how many backends use each: one model per file per process."""
_engines_lock = threading.Lock()


def _acquire(path: Path, context: int) -> LlamaEngine:
    key = (str(path.resolve()), context)
    with _engines_lock:
        engine, users = _engines.get(key, (None, 0))
        if engine is None:
            engine = LlamaEngine(path, n_ctx=context)
        _engines[key] = (engine, users + 1)
        return engine


def _release(engine: LlamaEngine) -> None:
    with _engines_lock:
        for key, (known, users) in list(_engines.items()):
            if known is engine:
                if users > 1:
                    _engines[key] = (known, users - 1)
                else:
                    del _engines[key]
                    engine.close()
                return


@BACKENDS.register("embedded", aliases=("llama.cpp", "local"))
class EmbeddedBackend(Backend):
    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        context: int = DEFAULT_CONTEXT,
        parameters: int | None = None,
    ) -> None:
        path, self.model_id = resolve(model)
        self._engine: LlamaEngine | None = _acquire(path, context)
        self.parameters = parameters or self._engine.parameters
        self.capabilities = Capabilities(
            logprobs=True,
            top_logprobs=20,
            scoring=True,
            prefix_reuse=True,
            halting=True,
            max_n=self._engine.n_seq_max,
            extra={"context": self._engine.n_ctx},
        )

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> EmbeddedBackend:
        return cls(
            spec.model or DEFAULT_MODEL,
            context=spec.context or DEFAULT_CONTEXT,
            parameters=spec.parameters,
        )

    @property
    def engine(self) -> LlamaEngine:
        if self._engine is None:
            raise ConfigError("this embedded backend was closed")
        return self._engine

    def stats(self) -> EngineStats:
        """What the model actually decoded so far (shared by backends of the same model)."""
        return self.engine.stats.snapshot()

    def render(self, prompt: Prompt) -> bytes:
        """The prompt text the model sees (chat template applied)."""
        return b"".join(text for text, _ in self._render(normalize_prompt(prompt)))

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        """The tokens the model sees for `prompt` (message contents are always text)."""
        return self.engine.encode(self._render(normalize_prompt(prompt)))

    def _render(self, prompt: NormalizedPrompt) -> Rendered:
        if isinstance(prompt, str):  # raw text: the caller's own template, markers count
            return ((prompt.encode(), True),)
        return self.engine.render_chat([(m.role, m.content) for m in prompt])

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
        rendered = self._render(normalize_prompt(prompt))
        check_n(n, self.capabilities.max_n)
        if isinstance(prefixes, str) or not prefixes:
            raise ConfigError("acontinue needs a non-empty list of prefixes")
        started = time.perf_counter()
        outputs = await self._run(
            "generate", [(rendered, p) for p in prefixes], params, n, on_tokens, watch=watch
        )
        groups = tuple(tuple(self._completion(o, params) for o in group) for group in outputs)
        usage = Usage.total(c.usage for group in groups for c in group)
        return Generation(groups, usage + Usage(calls=1, seconds=time.perf_counter() - started))

    async def ascore(self, prompt: Prompt, continuation: str) -> TextScore:
        rendered = self._render(normalize_prompt(prompt))
        if not continuation:
            raise ConfigError("the text to score is empty")
        started = time.perf_counter()
        tokens, values, prompt_tokens, cached = await self._run(
            "score", [(rendered, "")], SamplingParams(max_tokens=1), 1, None, continuation
        )
        engine = self.engine
        scored = tuple(
            TokenLogprob(engine.piece(t).decode("utf-8", errors="replace"), v)
            for t, v in zip(tokens, values, strict=True)
        )
        usage = Usage.for_tokens(prompt=prompt_tokens, cached=cached, parameters=self.parameters)
        usage += Usage(calls=1, seconds=time.perf_counter() - started)
        return TextScore(sum(values), scored, usage)

    async def _run(
        self,
        kind: str,
        prompts: list[tuple[bytes, str]],
        params: SamplingParams,
        n: int,
        on_tokens: TokenCallback | None,
        continuation: str = "",
        watch: TokenWatch | None = None,
    ) -> list[list[SeqOutput]]:
        loop = asyncio.get_running_loop()
        job = self.engine.submit(kind, prompts, params, n, loop, on_tokens, continuation, watch)
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            job.cancelled = True  # the worker frees its sequences at the next step
            raise

    def _completion(self, output: SeqOutput, params: SamplingParams) -> Completion:
        engine = self.engine
        logprobs = None
        if output.logprobs is not None:
            logprobs = tuple(
                TokenLogprob(
                    _text(engine.piece(token)),
                    logprob,
                    tuple((_text(engine.piece(t)), lp) for t, lp in top),
                )
                for token, logprob, top in output.logprobs
            )
        usage = Usage.for_tokens(
            prompt=output.prompt_tokens,
            cached=output.cached_tokens,
            completion=len(output.token_ids),
            parameters=self.parameters,
        )
        return Completion(
            text=output.text,
            finish_reason=output.finish_reason,  # type: ignore[arg-type]
            usage=usage,
            token_ids=tuple(output.token_ids),
            logprobs=logprobs,
            stop=output.stop,
        )

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            _release(engine)


def _text(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace")
