"""ponder's core value types: what a prompt, a sampling request and a completion are.

Every layer speaks these: backends produce `Completion`s, tasks build `Message` prompts,
strategies and scorers read both, and `Result` keeps them. They depend on nothing but the
errors and `Usage`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ponder.errors import ConfigError
from ponder.usage import Usage

FinishReason = Literal["stop", "length", "halted"]
"""stop: the model ended (or a stop string did); length: max_tokens; halted: the caller's
`TokenWatch` stopped the sample mid-generation."""
Role = Literal["system", "user", "assistant"]
TokenCallback = Callable[[int], None]
"""Called with the number of tokens just sampled (for progress bars)."""
TokenWatch = Callable[[int, "TokenLogprob"], bool]
"""Called with every token a sample draws (the sample's index within the call, the token with
its logprob and top alternatives); True stops that sample there, the token included
(finish reason `halted`). It runs on the backend's thread and must be quick."""

MAX_STOP_STRINGS = 16
MAX_TOP_LOGPROBS = 20


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


Prompt = str | Sequence[Message | Mapping[str, str]]
"""Raw text, or chat messages (as `Message` or `{"role": ..., "content": ...}`)."""

NormalizedPrompt = str | tuple[Message, ...]


def check_text(text: str, what: str = "the text") -> str:
    """`text`, if it is text a model can read: a string that encodes as UTF-8 (a command-line
    argument with undecodable bytes, or JSON with a lone surrogate, does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(
            f"{what} is not valid UTF-8 text (at character {exc.start}); fix its encoding"
        ) from None
    return text


def normalize_prompt(prompt: Prompt) -> NormalizedPrompt:
    """Check a prompt and turn chat messages into `Message`s."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ConfigError("the prompt is empty: give some text or at least one message")
        return check_text(prompt, "the prompt")
    messages: list[Message] = []
    for i, message in enumerate(prompt):
        if isinstance(message, Message):
            messages.append(message)
            check_text(message.content, f"message {i}")
            continue
        if not isinstance(message, Mapping) or "content" not in message:
            raise ConfigError(f"message {i} must be a mapping with 'role' and 'content'")
        role, content = message.get("role", "user"), message["content"]
        if role not in ("system", "user", "assistant"):
            raise ConfigError(f"message {i} has role {role!r}; use system, user or assistant")
        if not isinstance(content, str):
            raise ConfigError(f"message {i} content must be a string")
        messages.append(Message(role, check_text(content, f"message {i}")))  # type: ignore[arg-type]
    if not messages or not any(m.content.strip() for m in messages):
        raise ConfigError("the prompt is empty: give some text or at least one message")
    return tuple(messages)


def user_prompt(text: str, system: str | None = None) -> tuple[Message, ...]:
    """A one-question chat prompt."""
    head = (Message("system", system),) if system else ()
    return (*head, Message("user", text))


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to sample. Validated at construction (a bad value raises `ConfigError`).

    `seed` makes runs reproducible: sample i of a call uses `seed + i`.
    `logprobs` asks for the logprob of every sampled token under the model (before
    temperature and truncation), `top_logprobs` for that many alternatives per position.
    `include_stop` keeps the matched stop string at the end of the text (step search uses
    it so the next prefix is exactly what the model produced).
    """

    max_tokens: int = 512
    temperature: float = 0.8
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = 0
    include_stop: bool = False
    ignore_eos: bool = False
    """Sample past end-of-sequence up to max_tokens (benchmarks that need fixed lengths)."""

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if not isinstance(self.max_tokens, int) or self.max_tokens <= 0:
            raise ConfigError(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature!r}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.top_k < 0:
            raise ConfigError(f"top_k must be >= 0 (0 turns it off), got {self.top_k!r}")
        if not 0.0 <= self.min_p < 1.0:
            raise ConfigError(f"min_p must be in [0, 1), got {self.min_p!r}")
        if not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise ConfigError(
                f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}, got {self.top_logprobs!r}"
            )
        if self.top_logprobs and not self.logprobs:
            object.__setattr__(self, "logprobs", True)
        if len(self.stop) > MAX_STOP_STRINGS or any(not s for s in self.stop):
            raise ConfigError(f"stop must be at most {MAX_STOP_STRINGS} non-empty strings")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


def token_confidence(token: TokenLogprob) -> float:
    """DeepConf's token confidence (Fu et al. 2025): minus the mean logprob of the token's
    top alternatives, C = -(1/k) sum_j log P(j); high when the model was sure. A token
    without alternatives counts its own logprob."""
    top = token.top
    return -math.fsum(lp for _, lp in top) / len(top) if top else -token.logprob


def token_confidences(tokens: Sequence[TokenLogprob] | None) -> tuple[float, ...] | None:
    """`token_confidence` of each token (None without logprobs)."""
    return tuple(token_confidence(t) for t in tokens) if tokens else None


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    finish_reason: FinishReason
    usage: Usage
    token_ids: tuple[int, ...] | None = None
    logprobs: tuple[TokenLogprob, ...] | None = None
    stop: str | None = None
    """The stop string that ended the text, if one did (None for end-of-sequence/length)."""

    @property
    def num_tokens(self) -> int:
        return self.usage.completion_tokens

    @property
    def sum_logprob(self) -> float | None:
        if not self.logprobs:
            return None
        return math.fsum(t.logprob for t in self.logprobs)

    @property
    def mean_logprob(self) -> float | None:
        if not self.logprobs:
            return None
        return math.fsum(t.logprob for t in self.logprobs) / len(self.logprobs)


@dataclass(frozen=True, slots=True)
class Generation:
    """The result of one backend call: one group of completions per prefix."""

    groups: tuple[tuple[Completion, ...], ...]
    usage: Usage

    @property
    def completions(self) -> tuple[Completion, ...]:
        return tuple(c for group in self.groups for c in group)


@dataclass(frozen=True, slots=True)
class TextScore:
    """Log-probability of a given continuation under the model."""

    logprob: float
    tokens: tuple[TokenLogprob, ...]
    usage: Usage


T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from synchronous code (the sync convenience methods)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise ConfigError(
        "a sync backend method was called inside a running event loop; await its "
        "async twin (agenerate / acontinue / ascore) instead"
    )
