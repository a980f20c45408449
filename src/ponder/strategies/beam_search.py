"""Beam search with a process scorer (Snell, Lee, Xu & Kumar 2024, "Scaling LLM Test-Time
Compute Optimally can be More Effective than Scaling Model Parameters", section 5.2).

    sample N first steps
    repeat until N paths finished, none is left, or the token budget is spent:
        score the new steps with the process scorer; set the finished paths aside
        keep the N / M unfinished paths with the best path scores, prune the rest
        extend each kept path with M next steps                 (one batched call)
    answer by weighted best-of-N over the finished paths: the answer whose paths' scores
    sum highest (Snell et al.'s final selection; `final="best"`: the best single path)
"""

from __future__ import annotations

from dataclasses import dataclass

from ponder.backends.base import Backend
from ponder.core import TokenCallback
from ponder.result import Result
from ponder.strategies.base import STRATEGIES
from ponder.strategies.steps import Branch, Final, WideSearch, best_first


@STRATEGIES.register("beam-search", aliases=("beam",))
@dataclass(frozen=True, kw_only=True)
class BeamSearch(WideSearch):
    summary = "N beams, keep the top N/M by process score, expand each M ways (Snell et al. 2024)"

    final: Final = "weighted"

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        search = self.search(question, backend, on_tokens)
        n, m = self.samples, self.beam_width
        finished: list[Branch] = []
        beams = await search.extend([search.root], n)
        while True:
            finished += [b for b in beams if b.done]
            active = best_first(b for b in beams if not b.done)
            if len(finished) >= n or not active or search.exhausted:
                break
            kept, rest = active[: max(n // m, 1)], active[max(n // m, 1) :]
            search.prune(rest, "not among the top N/M paths")
            search.keep(kept)
            beams = await search.extend(kept, m)
        return search.result(finished, active)
