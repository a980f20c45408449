"""Self-evaluation: the model judges its own answer (or last step) and we read P("Yes").

Kadavath et al. 2022 ("Language Models (Mostly) Know What They Know") and Xie et al. 2023
("Self-Evaluation Guided Beam Search for Reasoning"): ask the same model "Is your answer
correct? Answer Yes or No." (process mode: about the last step written so far) and
normalise its first-token probabilities:

    score = P(Yes) / (P(Yes) + P(No))        range [0, 1], higher = judged correct

Two ways to read the probabilities (`method`):

* "score": the exact log-probabilities of the replies "Yes" and "No" with `backend.ascore`
  (two calls per attempt; the second reuses the prompt's KV on the embedded backend).
* "logprobs": one greedy token with its top-20 alternatives; P(Yes) sums the alternatives
  that read "yes" in any case or spacing, P(No) likewise. When neither is among them the
  attempt gets NaN (not judged), never an invented score.
* "auto" (default): "score" on backends that can score a chat reply (embedded), else
  "logprobs". HTTP backends say they cannot (`UnsupportedError`: the OpenAI API does not
  expose the chat template), which is how "auto" finds out, once per scorer.

The question is asked as the next turn of the conversation that produced the answer when
the attempt carries it (`Attempt.prompt`; strategies and eval always pass it), so the
backend's prefix cache already holds everything but the question: on the embedded backend
judging 16 answers costs ~30 new tokens each instead of re-reading each answer. Without
a prompt, a fresh conversation quotes the question and the answer.

Attempts are judged concurrently; the tokens spent are returned in `ScoreBatch.usage`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Literal

from ponder.backends.base import Backend
from ponder.core import Message, SamplingParams
from ponder.errors import ConfigError, UnsupportedError
from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer
from ponder.usage import Usage

Method = Literal["auto", "score", "logprobs"]
METHODS: tuple[Method, ...] = ("auto", "score", "logprobs")
_ALTERNATIVES = 20


@SCORERS.register("self-eval", aliases=("self-evaluation", "p-yes"))
class SelfEval(Scorer):
    summary = 'P("Yes") when the same model is asked whether the answer (or step) is correct'
    score_range = (0.0, 1.0)
    process = True
    needs_backend = True

    def __init__(self, backend: Backend, method: Method = "auto") -> None:
        if method not in METHODS:
            raise ConfigError(
                f"self-eval method must be one of {', '.join(METHODS)}, got {method!r}"
            )
        self.backend = backend
        self.method: Method = method
        """The method in use; "auto" until the first attempt settles it."""

    def check(self, backend: Backend) -> None:
        super().check(backend)
        caps = self.backend.capabilities
        can_score = caps.scoring and self.method != "logprobs"
        can_read = caps.logprobs and caps.top_logprobs > 0 and self.method != "score"
        if not (can_score or can_read):
            wanted = {
                "auto": "exact scoring or top logprobs",
                "score": "exact scoring",
                "logprobs": "top logprobs",
            }[self.method]
            raise UnsupportedError(
                f"scorer 'self-eval' (method {self.method}) needs {wanted}, which backend "
                f"{self.backend.model_id!r} does not offer; pick another scorer or method"
            )

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        results: list[tuple[float, Usage]] = []
        pending = list(attempts)
        if self.method == "auto" and pending:
            results.append(await self._settle(pending.pop(0)))
        results += await asyncio.gather(*(self._one(a) for a in pending))
        return ScoreBatch(tuple(s for s, _ in results), tuple(u for _, u in results))

    async def _settle(self, attempt: Attempt) -> tuple[float, Usage]:
        """Judge one attempt and fix the method "auto" stands for on this backend."""
        if self.backend.capabilities.scoring:
            try:
                result = await self._by_score(attempt)
            except UnsupportedError:
                pass
            else:
                self.method = "score"
                return result
        self.method = "logprobs"
        return await self._by_logprobs(attempt)

    async def _one(self, attempt: Attempt) -> tuple[float, Usage]:
        if self.method == "score":
            return await self._by_score(attempt)
        return await self._by_logprobs(attempt)

    async def _by_score(self, attempt: Attempt) -> tuple[float, Usage]:
        prompt = judge_prompt(attempt)
        # one after the other, so the second call finds the prompt in the KV cache
        yes = await self.backend.ascore(prompt, "Yes")
        no = await self.backend.ascore(prompt, "No")
        return 1.0 / (1.0 + math.exp(no.logprob - yes.logprob)), yes.usage + no.usage

    async def _by_logprobs(self, attempt: Attempt) -> tuple[float, Usage]:
        params = SamplingParams(
            max_tokens=1,
            temperature=0.0,
            logprobs=True,
            top_logprobs=min(_ALTERNATIVES, self.backend.capabilities.top_logprobs),
        )
        generation = await self.backend.agenerate(judge_prompt(attempt), params)
        completion = generation.completions[0]
        if not completion.logprobs:
            return math.nan, generation.usage
        first = completion.logprobs[0]
        alternatives = first.top or ((first.token, first.logprob),)
        yes = math.fsum(math.exp(lp) for t, lp in alternatives if _reads(t, "yes"))
        no = math.fsum(math.exp(lp) for t, lp in alternatives if _reads(t, "no"))
        if yes + no == 0.0:
            return math.nan, generation.usage
        return yes / (yes + no), generation.usage


def _reads(token: str, word: str) -> bool:
    return token.strip().lower() == word


def judge_prompt(attempt: Attempt) -> tuple[Message, ...]:
    """The question to the judge. When the attempt knows the conversation it was written
    in, the judge continues that conversation (the answer is then already in the KV cache
    of the backend that wrote it); otherwise a fresh prompt quotes question and answer."""
    if attempt.prompt:
        ask = (
            "Is your answer correct? Answer Yes or No."
            if len(attempt.steps) <= 1
            else "Is the last step you wrote correct? Answer Yes or No."
        )
        return (*attempt.prompt, Message("assistant", attempt.text), Message("user", ask))
    if len(attempt.steps) <= 1:
        body = (
            f"Question:\n{attempt.question.strip()}\n\nProposed answer:\n{attempt.text.strip()}"
            "\n\nIs this answer correct? Answer Yes or No."
        )
    else:
        before = "".join(attempt.steps[:-1]).strip()
        body = (
            f"Question:\n{attempt.question.strip()}\n\nSteps so far:\n{before}\n\n"
            f"Next step:\n{attempt.steps[-1].strip()}\n\n"
            "Is this next step correct? Answer Yes or No."
        )
    return (Message("user", body),)
