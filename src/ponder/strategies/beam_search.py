"""Beam search with a process scorer (Snell et al. 2024, "Scaling LLM Test-Time Compute
Optimally can be More Effective than Scaling Model Parameters"; search-and-learn).

    beams = N samples of the first step
    repeat until N paths finished or max_steps:
        score each new step with the process scorer; set finished paths aside
        keep the top N / M unfinished paths by path score
        extend each kept path with M next steps           (one batched call)
    return the finished path with the best path score
"""

from __future__ import annotations

from dataclasses import dataclass

from ponder.backends.base import Backend, TokenCallback
from ponder.result import Result
from ponder.strategies._steps import Path, StepSearch
from ponder.strategies.base import STRATEGIES


@STRATEGIES.register("beam-search", aliases=("beam",))
@dataclass(frozen=True, kw_only=True)
class BeamSearch(StepSearch):
    name = "beam-search"
    summary = "N beams, keep the top N/M by process score, expand each M ways (Snell et al. 2024)"

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        search = self.begin(question, backend, on_tokens)
        n, m = self.samples, self.beam_width
        self.require(m, f"beam search with width {m}")
        keep = max(n // m, 1)
        finished: list[Path] = []
        frontier = await self.expand(search, [self.root()], n)
        while frontier and len(finished) < n and not self.out_of_budget(search):
            finished += [p for p in frontier if p.done]
            active = sorted((p for p in frontier if not p.done), key=self.path_score, reverse=True)
            for pruned in active[keep:]:
                self.mark(search, pruned.node, "pruned")
            active = active[:keep]
            for kept in active:
                self.mark(search, kept.node, "kept")
            if len(finished) >= n or not active:
                frontier = []
                break
            frontier = await self.expand(search, active, m)
        finished += [p for p in frontier if p.done]
        return self.finish(search, finished, [p for p in frontier if not p.done])
