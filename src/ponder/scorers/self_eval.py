"""Self-evaluation: the model judges its own answer (or last step) and we read P("Yes").

Kadavath et al. 2022 ("Language Models (Mostly) Know What They Know") and Xie et al. 2023
("Self-Evaluation Guided Beam Search for Reasoning"): ask "Is this answer correct? Answer
Yes or No." and take the probability the model gives to "Yes" on its first token, normalised
against "No": score = P(Yes) / (P(Yes) + P(No)), in [0, 1]. One greedy token with the top-20
alternatives per attempt; on the embedded backend those logprobs are exact. When neither
word is among the alternatives the attempt gets NaN (dropped, never an invented score).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

from ponder.backends.base import Backend, Message, SamplingParams
from ponder.errors import UnsupportedError
from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer
from ponder.usage import Usage

_ALTERNATIVES = 20


@SCORERS.register("self-eval", aliases=("self-evaluation", "p-yes"))
class SelfEval(Scorer):
    name = "self-eval"
    summary = 'P("Yes") when the same model is asked whether the answer (or step) is correct'
    score_range = (0.0, 1.0)
    process = True
    needs_backend = True

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def check(self, backend: Backend) -> None:
        super().check(backend)
        if not self.backend.capabilities.logprobs:
            raise UnsupportedError(
                f"scorer 'self-eval' reads token logprobs, which backend "
                f"{self.backend.model_id!r} does not return; pick another scorer"
            )

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        results = await asyncio.gather(*(self._one(a) for a in attempts))
        return ScoreBatch(tuple(s for s, _ in results), Usage.total(u for _, u in results))

    async def _one(self, attempt: Attempt) -> tuple[float, Usage]:
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
        yes = sum(math.exp(lp) for t, lp in alternatives if t.strip().lower() == "yes")
        no = sum(math.exp(lp) for t, lp in alternatives if t.strip().lower() == "no")
        if yes + no == 0.0:
            return math.nan, generation.usage
        return yes / (yes + no), generation.usage


def judge_prompt(attempt: Attempt) -> tuple[Message, ...]:
    if len(attempt.steps) <= 1:
        body = (
            f"Question:\n{attempt.question}\n\nProposed answer:\n{attempt.text.strip()}\n\n"
            "Is this answer correct? Answer Yes or No."
        )
    else:
        before = "".join(attempt.steps[:-1]).strip()
        body = (
            f"Question:\n{attempt.question}\n\nSteps so far:\n{before}\n\n"
            f"Next step:\n{attempt.steps[-1].strip()}\n\n"
            "Is this next step correct? Answer Yes or No."
        )
    return (Message("user", body),)
