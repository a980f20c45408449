"""The Backend interface every strategy and scorer talks to.

A backend does three things, all async (with sync wrappers written once here):

* `agenerate(prompt, params, n=...)`: `n` samples of one prompt.
* `acontinue(prompt, prefixes, params, n=...)`: continue each partial assistant answer
  ("assistant prefix") `n` times; step-level search calls it with many prefixes that share
  ancestors, so backends that can should reuse the KV of shared prefixes.
* `ascore(prompt, continuation)`: the log-probability of a given assistant text.

A prompt is either raw text (sent as is, no chat template) or a sequence of chat messages
(rendered with the model's chat template, ending with the assistant turn opened).

Every call returns its `Usage`; each `Completion` carries the tokens it caused to be
processed, the shared prompt of a group being charged to the group's first completion, so
the usage of a call is the sum over its completions plus the call itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ponder.core import (
    MAX_TOP_LOGPROBS,
    Generation,
    Prompt,
    SamplingParams,
    TextScore,
    TokenCallback,
    TokenWatch,
    run_sync,
)
from ponder.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Capabilities:
    logprobs: bool = True
    top_logprobs: int = MAX_TOP_LOGPROBS
    scoring: bool = True
    """Exact `ascore` of a continuation."""
    prefix_reuse: bool = False
    """Shared prefixes are decoded once (KV reuse)."""
    halting: bool = False
    """A `TokenWatch` can stop a sample mid-generation (its later tokens are never decoded)."""
    max_n: int = 64
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """Options common to the backends; each reads what it needs and ignores None."""

    model: str | None = None
    """Embedded: a model name or a .gguf path. HTTP: the server's model name.
    Scripted: a JSON file of replies."""
    base_url: str | None = None
    api_key: str | None = None
    timeout: float | None = None
    """Seconds per request (HTTP backends)."""
    max_concurrency: int | None = None
    parameters: int | None = None
    """Parameter count for the FLOPs estimate, when the backend cannot read it."""
    context: int | None = None
    """Context window in tokens (embedded)."""


def check_n(n: int, max_n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    if n > max_n:
        raise ConfigError(f"n={n} is above this backend's maximum of {max_n}; lower n")


class Backend(ABC):
    """Generates, continues and scores text; counts every token it spends."""

    name: ClassVar[str] = "backend"
    """Set by the registry."""

    #: Identifies model and weights, e.g. "qwen2.5-coder-0.5b:Q4_K_M"; samples from
    #: different model ids never mix in a sample bank.
    model_id: str = "unknown"
    #: Parameter count for the FLOPs estimate (None: unknown, FLOPs reported as 0).
    parameters: int | None = None
    capabilities: Capabilities = Capabilities()

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: BackendSpec) -> Backend:
        """The backend `spec` describes (what `load_backend` calls)."""

    async def agenerate(
        self,
        prompt: Prompt,
        params: SamplingParams = SamplingParams(),
        *,
        n: int = 1,
        on_tokens: TokenCallback | None = None,
        watch: TokenWatch | None = None,
    ) -> Generation:
        """`n` samples of one prompt; the result has a single group. `watch` may stop a
        sample mid-generation (backends with `capabilities.halting`; others refuse it).
        A continuation of the empty prefix."""
        return await self.acontinue(prompt, [""], params, n=n, on_tokens=on_tokens, watch=watch)

    @abstractmethod
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
        """Continue each assistant prefix `n` times: one group per prefix, in order.

        The completions hold only the new text, not the prefix.
        """

    @abstractmethod
    async def ascore(self, prompt: Prompt, continuation: str) -> TextScore:
        """Log-probability of `continuation` as the assistant's reply to `prompt`.

        Raises `UnsupportedError` where the backend cannot compute it.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (connections, model)."""

    def generate(
        self, prompt: Prompt, params: SamplingParams = SamplingParams(), *, n: int = 1
    ) -> Generation:
        return run_sync(self.agenerate(prompt, params, n=n))

    def continue_(
        self,
        prompt: Prompt,
        prefixes: Sequence[str],
        params: SamplingParams = SamplingParams(),
        *,
        n: int = 1,
    ) -> Generation:
        return run_sync(self.acontinue(prompt, prefixes, params, n=n))

    def score(self, prompt: Prompt, continuation: str) -> TextScore:
        return run_sync(self.ascore(prompt, continuation))

    def close(self) -> None:
        run_sync(self.aclose())

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
