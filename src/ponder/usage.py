"""Usage: what a call (or a whole run) spent.

Tokens are counted once, in the backend that spent them, and flow up by addition.

* `prompt_tokens`: prompt (and assistant-prefix) tokens the model had to attend to.
* `cached_prompt_tokens`: the part of `prompt_tokens` whose KV was reused instead of
  decoded again (a subset of `prompt_tokens`, as in OpenAI's `cached_tokens`).
* `completion_tokens`: tokens sampled.
* `decoded_tokens` = prompt - cached + completion: the tokens the model actually ran.
* `flops`: 2 x parameters x decoded tokens (the usual forward-pass estimate; 0 when the
  parameter count is unknown).
* `calls`: backend calls (one batched call of n samples is one call).
* `seconds`: wall time of those calls, summed (concurrent calls overlap, so a run's own
  wall clock can be lower).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    seconds: float = 0.0
    flops: float = 0.0

    def __post_init__(self) -> None:
        if self.cached_prompt_tokens > self.prompt_tokens:
            raise ValueError(
                f"cached_prompt_tokens ({self.cached_prompt_tokens}) exceeds "
                f"prompt_tokens ({self.prompt_tokens})"
            )

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            calls=self.calls + other.calls,
            seconds=self.seconds + other.seconds,
            flops=self.flops + other.flops,
        )

    def __radd__(self, other: object) -> Usage:
        # lets sum(usages) start from 0
        if other == 0:
            return self
        return NotImplemented

    @property
    def decoded_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cached_prompt_tokens

    @property
    def decoded_tokens(self) -> int:
        return self.decoded_prompt_tokens + self.completion_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def total(cls, usages: Iterable[Usage]) -> Usage:
        return sum(usages, cls())

    @classmethod
    def for_tokens(
        cls,
        *,
        prompt: int = 0,
        cached: int = 0,
        completion: int = 0,
        parameters: int | None = None,
    ) -> Usage:
        """Token counts with their FLOPs estimate filled in."""
        decoded = prompt - cached + completion
        return cls(
            prompt_tokens=prompt,
            cached_prompt_tokens=cached,
            completion_tokens=completion,
            flops=2.0 * parameters * decoded if parameters else 0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["decoded_tokens"] = self.decoded_tokens
        data["total_tokens"] = self.total_tokens
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
