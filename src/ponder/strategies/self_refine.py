"""Self-Refine (Madaan et al. 2023, "Self-Refine: Iterative Refinement with Self-Feedback"):
the model drafts an answer, critiques it, and rewrites it with its own feedback.

    y_0 = generate(prompt)
    for t = 0 .. N - 2:
        fb_t = generate(prompt, y_0, ..., y_t, "review your solution")
        if fb_t says the solution is right: stop
        y_{t+1} = generate(prompt, y_t, fb_t, "rewrite it using the feedback")
    answer with the last version

Every turn continues the same conversation, so on the embedded backend the earlier turns are
still in the KV cache and only the new text is decoded. The budget's samples count the
versions (N = 1 is a single draft). Each version is a candidate; the trace notes every
feedback and why the loop stopped.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ponder.backends.base import Backend
from ponder.core import Message, SamplingParams, TokenCallback
from ponder.errors import ConfigError
from ponder.result import Result
from ponder.strategies.base import (
    STRATEGIES,
    Budget,
    Kind,
    Run,
    Selection,
    Strategy,
    vote_table,
)

_SOUND = re.compile(r"\bNO ISSUES\b", re.IGNORECASE)


@STRATEGIES.register("self-refine", aliases=("refine",))
@dataclass(frozen=True, kw_only=True)
class SelfRefine(Strategy):
    summary = "draft, critique, rewrite with the model's own feedback (Madaan et al. 2023)"
    kind = Kind.SEQUENTIAL

    budget: Budget = Budget(samples=3)
    feedback_prompt: str = (
        "Review your solution step by step for mistakes in reasoning or arithmetic. "
        "If it is entirely correct, reply with exactly NO ISSUES. Otherwise say what is wrong."
    )
    refine_prompt: str = (
        "Rewrite your solution from the start, fixing what the feedback found. "
        "End with a final line of the form 'The answer is N.'"
    )
    feedback_tokens: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.budget.samples is None:
            raise ConfigError("self-refine counts versions: give a sample budget (n)")
        if not isinstance(self.feedback_tokens, int) or self.feedback_tokens < 1:
            raise ConfigError(f"feedback_tokens must be >= 1, got {self.feedback_tokens!r}")

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        run = self.begin(question, backend, on_tokens)
        versions = self.budget.samples or 1
        seed = self.sample_seed(question)
        conversation = list(run.prompt)
        drafts = [(await run.generate(self._params(run, seed), prompt=conversation)).completions[0]]
        stop = None
        for turn in range(1, versions):
            if self._left(run) < 1:
                stop = f"token budget of {self.budget.tokens} reached"
                break
            conversation += [
                Message("assistant", drafts[-1].text),
                Message("user", self.feedback_prompt),
            ]
            critique = self._params(run, seed, self.feedback_tokens)
            feedback = (await run.generate(critique, prompt=conversation)).completions[0].text
            run.note(f"feedback {turn}: {feedback.strip()[:300]}")
            if _SOUND.search(feedback):
                stop = f"the feedback on version {turn - 1} found no issues"
                break
            if self._left(run) < 1:
                stop = f"token budget of {self.budget.tokens} reached"
                break
            conversation += [
                Message("assistant", feedback),
                Message("user", self.refine_prompt),
            ]
            revised = self._params(run, seed + turn)
            drafts.append((await run.generate(revised, prompt=conversation)).completions[0])
        candidates = run.candidates(drafts)
        last = len(candidates) - 1
        why = stop or f"{versions} versions, the budget"
        return run.result(
            candidates,
            Selection(
                last,
                candidates[last].answer,
                f"self-refine: version {last} of {len(candidates)} ({why})",
                vote_table(candidates),
                stop=stop,
            ),
        )

    def _left(self, run: Run) -> int:
        """Tokens the budget has left (a large number without a token budget)."""
        tokens = self.budget.tokens
        return self.sampling.max_tokens if tokens is None else tokens - run.usage.decoded_tokens

    def _params(self, run: Run, seed: int, most: int | None = None) -> SamplingParams:
        """One call's sampling: capped by what the token budget has left."""
        limit = min(most or self.sampling.max_tokens, max(self._left(run), 1))
        return dataclasses.replace(self.sampling, seed=seed, max_tokens=limit)
