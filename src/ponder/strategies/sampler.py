"""The one sampler: how the samples of a question are drawn, for strategies and for eval.

Sample i of a question is drawn with seed `base + i` (`ponder.seeds.sample_seed` gives the
base), whichever backend call draws it: a call that starts at sample i passes seed base + i
and the backend gives its sample j seed + j. Samples are drawn in as few calls as the
backend allows (at most `max_n` a call), so the embedded backend decodes the shared prompt
once and batches the rest. What is drawn therefore depends only on the prompt, the sampling
parameters and the base seed, not on batch sizes or on which run drew it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence

from ponder.backends.base import Backend
from ponder.core import Completion, Prompt, SamplingParams, TokenCallback, TokenLogprob, TokenWatch
from ponder.usage import Usage


def calls(indices: Sequence[int], max_n: int) -> list[tuple[int, int]]:
    """(start, count) per backend call: runs of consecutive indices, at most max_n long."""
    out: list[tuple[int, int]] = []
    for i in sorted(indices):
        if out and out[-1][0] + out[-1][1] == i and out[-1][1] < max_n:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


class Sampler:
    """Draws the samples of one prompt; keeps what they cost."""

    def __init__(
        self,
        backend: Backend,
        prompt: Prompt,
        params: SamplingParams,
        base_seed: int,
        on_tokens: TokenCallback | None = None,
    ) -> None:
        self.backend, self.prompt, self.params = backend, prompt, params
        self.base_seed = base_seed
        self.on_tokens = on_tokens
        self.drawn = 0
        """Samples 0..drawn-1 have been drawn by `next`."""
        self.usage = Usage()
        self.last_prompt_cost = 0
        """Prompt tokens the last call had to decode (few when the backend reuses its KV)."""

    async def calls(
        self, indices: Sequence[int], watch: TokenWatch | None = None
    ) -> AsyncIterator[tuple[int, list[Completion], Usage]]:
        """Draw the samples with these indices, one backend call at a time: yields the first
        index of the call, its completions in order, and what the call cost. `watch` sees
        each token with the sample's own index (not its place in the call)."""
        for start, count in calls(indices, self.backend.capabilities.max_n):
            params = dataclasses.replace(self.params, seed=self.base_seed + start)
            shifted = None if watch is None else _shift(watch, start)
            generation = await self.backend.agenerate(
                self.prompt, params, n=count, on_tokens=self.on_tokens, watch=shifted
            )
            self.usage += generation.usage
            self.last_prompt_cost = generation.usage.decoded_prompt_tokens
            yield start, list(generation.completions), generation.usage

    async def next(
        self, count: int, watch: TokenWatch | None = None
    ) -> tuple[list[Completion], Usage]:
        """The next `count` samples (after the ones this sampler drew) and their cost."""
        completions: list[Completion] = []
        spent = Usage()
        async for _, drawn, usage in self.calls(range(self.drawn, self.drawn + count), watch):
            completions += drawn
            spent += usage
        self.drawn += count
        return completions, spent


def _shift(watch: TokenWatch, start: int) -> TokenWatch:
    def shifted(index: int, token: TokenLogprob) -> bool:
        return watch(start + index, token)

    return shifted
