"""OpenAI's request and response shapes, and how ponder's values map onto them.

Requests are validated strictly from the JSON text (no "5" for 5, no NaN), so a wrong type
is a 400 that names the field. Fields OpenAI defines and ponder ignores without harm
(`user`, `metadata`, ...) pass; fields whose meaning ponder cannot honour (`tools`,
`response_format`, penalties, ...) are rejected when set rather than silently dropped.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ponder.core import MAX_TOP_LOGPROBS, Message, TokenLogprob
from ponder.errors import ConfigError, UnsupportedError
from ponder.serialize import dumps, jsonable
from ponder.usage import Usage

INT64 = 2**63 - 1

_STRICT = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool | None = None


class BudgetField(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    samples: int | None = Field(default=None, ge=1)
    tokens: int | None = Field(default=None, ge=1)


class PonderField(BaseModel):
    """The `ponder` body field; any other key is an option of the chosen strategy."""

    model_config = _STRICT
    strategy: str | None = None
    n: int | None = Field(default=None, ge=1)
    scorer: str | None = None
    budget: BudgetField | None = None
    trace: bool = False
    task: str | None = None
    """The task that reads the question (default math; `code`: the last user message is a
    Python stub to complete)."""

    @property
    def strategy_options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ContentPart(BaseModel):
    model_config = _STRICT
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = _STRICT
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


# Fields whose meaning ponder cannot honour: rejected when set to anything but "off".
_UNSUPPORTED: dict[str, str] = {
    "tools": "tool calling",
    "functions": "function calling",
    "tool_choice": "tool calling",
    "function_call": "function calling",
    "logit_bias": "logit_bias",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "echo": "echo",
    "suffix": "suffix",
    "audio": "audio output",
    "prediction": "predicted outputs",
}
_OFF: tuple[Any, ...] = (None, 0, 0.0, False, "", [], {}, "none", "auto")


class _Request(BaseModel):
    model_config = _STRICT
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=0, le=INT64)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    ponder: PonderField | None = None

    def check_supported(self) -> None:
        for name, value in (self.model_extra or {}).items():
            if name in _UNSUPPORTED and value not in _OFF:
                raise UnsupportedError(
                    f"{name}: this server does not support {_UNSUPPORTED[name]}; "
                    "leave the field out"
                )

    @property
    def choices(self) -> int:
        return self.n or 1

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def token_limit(self) -> int | None:
        return self.max_tokens


class ChatRequest(_Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: dict[str, Any] | None = None

    def check_supported(self) -> None:
        super().check_supported()
        kind = (self.response_format or {}).get("type", "text")
        if kind != "text":
            raise UnsupportedError(
                f"response_format: this server returns plain text only, not {kind!r}"
            )

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def top_logprobs_wanted(self) -> int | None:
        """None: no logprobs; else how many alternatives per token (0 or more)."""
        if not self.logprobs:
            if self.top_logprobs:
                raise ConfigError("top_logprobs needs logprobs: true")
            return None
        return self.top_logprobs or 0

    def to_prompt(self) -> tuple[Message, ...]:
        """The messages in ponder's three roles; only text content is understood."""
        out = []
        for i, message in enumerate(self.messages):
            if message.role in ("tool", "function"):
                raise UnsupportedError(
                    f"messages.{i}: role {message.role!r} needs tool calling, which this "
                    "server does not support"
                )
            role = "system" if message.role == "developer" else message.role
            out.append(Message(role, _text(message.content, f"messages.{i}.content")))
        return tuple(out)

    def question(self) -> str:
        """What a strategy answers: the last user message (its task writes its own prompt)."""
        for message in reversed(self.to_prompt()):
            if message.role == "user":
                return message.content
        raise ConfigError("a strategy answers the last user message; send one")


class CompletionRequest(_Request):
    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    best_of: int | None = Field(default=None, ge=1)

    def check_supported(self) -> None:
        super().check_supported()
        if self.best_of not in (None, 1):
            raise UnsupportedError(
                f"best_of: ask for model 'best-of-n@{self.best_of}/{self.model}' with "
                "ponder: {scorer: ...} instead"
            )

    @property
    def top_logprobs_wanted(self) -> int | None:
        return self.logprobs

    def to_prompt(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise UnsupportedError("prompt: send one prompt per request")
        return self.prompt[0]

    def question(self) -> str:
        return self.to_prompt()


ApiRequest = ChatRequest | CompletionRequest


def _text(content: str | list[ContentPart] | None, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    pieces = []
    for j, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise UnsupportedError(f"{where}.{j}: this server reads text parts only")
        pieces.append(part.text)
    return "".join(pieces)


def parse_request(raw: bytes, schema: type[ApiRequest]) -> ApiRequest:
    """Validate a JSON body; a ConfigError names the first wrong field."""
    try:
        return schema.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = first.get("msg", "invalid")
        if first.get("type") == "json_invalid":
            raise ConfigError(f"the body is not valid JSON ({message})") from None
        if not where:
            raise ConfigError(f"the body must be a JSON object ({message})") from None
        raise ConfigError(f"{where}: {message}") from None


# ---- responses ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    text: str
    finish_reason: str
    tokens: int
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a request produced, before it is written in OpenAI's shape."""

    choices: tuple[Choice, ...]
    usage: Usage
    trace: dict[str, Any] | None = None

    @property
    def reasoning_tokens(self) -> int:
        """Completion tokens spent that are not in the returned text (other samples, search)."""
        return max(self.usage.completion_tokens - sum(c.tokens for c in self.choices), 0)


def error_body(message: str, kind: str, code: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def usage_body(outcome: Outcome) -> dict[str, Any]:
    u = outcome.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_prompt_tokens},
        "completion_tokens_details": {"reasoning_tokens": outcome.reasoning_tokens},
    }


def new_id(chat: bool) -> str:
    return f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"


def completion_body(model: str, outcome: Outcome, *, chat: bool) -> dict[str, Any]:
    choices = []
    for i, choice in enumerate(outcome.choices):
        entry: dict[str, Any] = {"index": i}
        if chat:
            entry["message"] = {"role": "assistant", "content": choice.text}
            entry["logprobs"] = chat_logprobs(choice.logprobs)
        else:
            entry["text"] = choice.text
            entry["logprobs"] = text_logprobs(choice.logprobs)
        entry["finish_reason"] = choice.finish_reason
        choices.append(entry)
    body: dict[str, Any] = {
        "id": new_id(chat),
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage_body(outcome),
        "system_fingerprint": None,
    }
    if outcome.trace is not None:
        body["ponder"] = outcome.trace
    return jsonable(body)


def chat_logprobs(tokens: tuple[TokenLogprob, ...] | None) -> dict[str, Any] | None:
    if tokens is None:
        return None

    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    return {
        "content": [
            {**entry(t.token, t.logprob), "top_logprobs": [entry(a, b) for a, b in t.top]}
            for t in tokens
        ],
        "refusal": None,
    }


def text_logprobs(tokens: tuple[TokenLogprob, ...] | None) -> dict[str, Any] | None:
    if tokens is None:
        return None
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [dict(t.top) for t in tokens],
        "text_offset": offsets,
    }


@dataclass(frozen=True, slots=True)
class Chunks:
    """Server-sent events of one streamed response."""

    model: str
    chat: bool
    include_usage: bool
    ident: str
    created: int

    @classmethod
    def start(cls, model: str, *, chat: bool, include_usage: bool) -> Chunks:
        return cls(model, chat, include_usage, new_id(chat), int(time.time()))

    def event(self, choices: list[dict[str, Any]], usage: Outcome | None = None) -> str:
        payload: dict[str, Any] = {
            "id": self.ident,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            payload["usage"] = usage_body(usage) if usage is not None else None
        return data_event(payload)

    def delta(
        self,
        index: int,
        delta: dict[str, Any],
        finish: str | None = None,
        logprobs: tuple[TokenLogprob, ...] | None = None,
    ) -> str:
        choice: dict[str, Any] = {"index": index}
        if self.chat:
            choice["delta"] = delta
            choice["logprobs"] = chat_logprobs(logprobs)
        else:
            choice["text"] = delta.get("content", "")
            choice["logprobs"] = text_logprobs(logprobs)
        choice["finish_reason"] = finish
        return self.event([choice])

    def answer(self, outcome: Outcome, piece: int = 24) -> list[str]:
        """The chosen text in pieces, the finish reasons, and the usage when asked for."""
        events = []
        for i, choice in enumerate(outcome.choices):
            if choice.logprobs is not None:
                # one event carries the text with its tokens' logprobs: a piece cut
                # mid-token would have no logprobs of its own
                events.append(self.delta(i, {"content": choice.text}, logprobs=choice.logprobs))
            else:
                for start in range(0, len(choice.text), piece):
                    events.append(self.delta(i, {"content": choice.text[start : start + piece]}))
            events.append(self.delta(i, {}, choice.finish_reason))
        if self.include_usage:
            events.append(self.event([], outcome))
        return events


def data_event(payload: dict[str, Any]) -> str:
    return f"data: {dumps(payload)}\n\n"


KEEP_ALIVE = ": keep-alive\n\n"


def progress_comment(tokens: int) -> str:
    """An SSE comment (clients that do not look for it skip it) with the work done so far."""
    return f": progress {tokens} tokens sampled\n\n"


DONE = "data: [DONE]\n\n"


def models_body(
    served: str, strategies: list[dict[str, Any]], scorers: list[str]
) -> dict[str, Any]:
    """`/v1/models`: the plain model, then `<strategy>@<n>/<model>` for each strategy."""
    data: list[dict[str, Any]] = [
        {"id": served, "object": "model", "created": 0, "owned_by": "ponder"}
    ]
    for entry in strategies:
        data.append(
            {
                "id": f"{entry['strategy']}@{entry['default_n']}/{served}",
                "object": "model",
                "created": 0,
                "owned_by": "ponder",
                "ponder": entry,
            }
        )
    return {
        "object": "list",
        "data": data,
        "ponder": {
            "syntax": "<strategy>@<n>/<model>, or the body field "
            "ponder: {strategy, n, scorer, task, budget: {samples, tokens}, trace, <option>: ...}",
            "scorers": scorers,
        },
    }
