"""A deterministic scripted backend: a test double for fast unit tests.

It never runs by default; the CLI uses it only when asked for by name
(`--backend scripted --model replies.json`). Replies come from a list (taken in turn) or
from a rule that sees the request. Text is split into "tokens" by a simple regex (runs of
word characters, single punctuation marks, runs of whitespace), so token counts and
per-token logprobs are exact for what it returns.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ponder.backends.base import Backend, BackendSpec, Capabilities, check_n
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
from ponder.errors import ConfigError, ContextOverflowError
from ponder.usage import Usage

_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


def render(prompt: NormalizedPrompt, prefix: str = "") -> str:
    if isinstance(prompt, str):
        return prompt + prefix
    turns = "".join(f"{m.role}: {m.content}\n" for m in prompt)
    return f"{turns}assistant: {prefix}"


@dataclass(frozen=True, slots=True)
class ScriptedRequest:
    """What a reply rule sees."""

    text: str
    """The rendered prompt, ending with the assistant prefix."""
    prompt: NormalizedPrompt
    prefix: str
    index: int
    """Sample index within the group (0..n-1)."""
    params: SamplingParams


Reply = str | tuple[str, float]
"""A reply text, optionally with the logprob given to each of its tokens."""
ReplyRule = Callable[[ScriptedRequest], Reply]


@BACKENDS.register("scripted")
class ScriptedBackend(Backend):
    def __init__(
        self,
        replies: Sequence[Reply] | ReplyRule = ("The answer is 42.",),
        *,
        token_logprob: float = -0.5,
        score_rule: Callable[[str, str], float] | None = None,
        parameters: int | None = 1_000_000,
        context_tokens: int = 100_000,
        max_n: int = 64,
        logprobs: bool = True,
        scoring: bool = True,
        model_id: str = "scripted",
    ) -> None:
        if not callable(replies):
            if not replies:
                raise ConfigError("a scripted backend needs at least one reply")
            cycle = itertools.cycle(list(replies))
            self._rule: ReplyRule = lambda _request: next(cycle)
        else:
            self._rule = replies
        self._token_logprob = token_logprob
        self._score_rule = score_rule
        self._context_tokens = context_tokens
        self.parameters = parameters
        self.model_id = model_id
        self.capabilities = Capabilities(
            logprobs=logprobs,
            top_logprobs=20 if logprobs else 0,
            scoring=scoring,
            max_n=max_n,
            halting=True,
        )
        self.requests: list[ScriptedRequest] = []
        """Every request seen, in order (for assertions in tests)."""

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> ScriptedBackend:
        if spec.model is None:
            raise ConfigError(
                "the scripted backend needs --model REPLIES.json (a JSON list of strings)"
            )
        return cls.from_file(spec.model)

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedBackend:
        """Replies from a JSON list of strings (what `--backend scripted --model F` loads)."""
        try:
            raw = Path(path).read_bytes()
            replies = json.loads(raw)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read scripted replies from {path}: {exc}") from None
        if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
            raise ConfigError(f"{path} must hold a JSON list of reply strings")
        # the content, not the name, says which "model" wrote a bank's samples
        digest = hashlib.sha256(raw).hexdigest()[:12]
        return cls(replies, model_id=f"scripted:{Path(path).name}:{digest}")

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
        normalized = normalize_prompt(prompt)
        check_n(n, self.capabilities.max_n)
        if not prefixes:
            raise ConfigError("acontinue needs at least one prefix")
        groups = []
        for g, prefix in enumerate(prefixes):
            text = render(normalized, prefix)
            prompt_tokens = len(tokenize(text))
            if prompt_tokens >= self._context_tokens:
                raise ContextOverflowError(
                    f"prompt has {prompt_tokens} tokens, the context holds {self._context_tokens}"
                )
            group = []
            for index in range(n):
                request = ScriptedRequest(text, normalized, prefix, index, params)
                self.requests.append(request)
                completion = self._complete(
                    request, prompt_tokens if index == 0 else 0, watch, g * n + index
                )
                if on_tokens:
                    on_tokens(completion.num_tokens)
                group.append(completion)
            groups.append(tuple(group))
        usage = Usage.total(c.usage for c in itertools.chain(*groups))
        return Generation(tuple(groups), usage + Usage(calls=1))

    def _complete(
        self,
        request: ScriptedRequest,
        prompt_tokens: int,
        watch: TokenWatch | None = None,
        slot: int = 0,
    ) -> Completion:
        reply = self._rule(request)
        text, logprob = reply if isinstance(reply, tuple) else (reply, self._token_logprob)
        params = request.params
        finish, stop = "stop", None
        cut = [(text.find(s), s) for s in params.stop if s in text]
        if cut:
            at, stop = min(cut)
            text = text[: at + len(stop)] if params.include_stop else text[:at]
        tokens = tokenize(text)
        if len(tokens) > params.max_tokens:
            tokens, finish, stop = tokens[: params.max_tokens], "length", None
            text = "".join(tokens)
        if watch is not None:
            for i, token in enumerate(tokens):
                if watch(slot, TokenLogprob(token, logprob, ((token, logprob),))):
                    tokens, finish, stop = tokens[: i + 1], "halted", None
                    text = "".join(tokens)
                    break
        logprobs = tuple(TokenLogprob(t, logprob) for t in tokens) if params.logprobs else None
        usage = Usage.for_tokens(
            prompt=prompt_tokens, completion=len(tokens), parameters=self.parameters
        )
        return Completion(text, finish, usage, logprobs=logprobs, stop=stop)  # type: ignore[arg-type]

    async def ascore(self, prompt: Prompt, continuation: str) -> TextScore:
        normalized = normalize_prompt(prompt)
        text = render(normalized)
        tokens = tokenize(continuation)
        if self._score_rule is not None:
            total = self._score_rule(text, continuation)
            each = total / max(len(tokens), 1)
        else:
            each = self._token_logprob
            total = each * len(tokens)
        if not math.isfinite(total):
            raise ConfigError("the score rule returned a non-finite logprob")
        usage = Usage.for_tokens(
            prompt=len(tokenize(text)) + len(tokens), parameters=self.parameters
        ) + Usage(calls=1)
        return TextScore(total, tuple(TokenLogprob(t, each) for t in tokens), usage)
