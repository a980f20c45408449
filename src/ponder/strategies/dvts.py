"""Diverse verifier tree search (Beeching, Tunstall & Rush 2024, "Scaling test-time compute
with open models", HuggingFace): split the budget into N / M independent subtrees so that
one greedy search cannot collapse onto a single line of thought.

    subtrees = N / M first steps
    repeat until every subtree finished or max_steps:
        extend the current path of every unfinished subtree with M next steps  (one call)
        in each subtree keep only the child with the best process score
    return the finished path with the best path score
"""

from __future__ import annotations

from dataclasses import dataclass

from ponder.backends.base import Backend, TokenCallback
from ponder.result import Result
from ponder.strategies._steps import Path, StepSearch
from ponder.strategies.base import STRATEGIES


@STRATEGIES.register("dvts")
@dataclass(frozen=True, kw_only=True)
class DVTS(StepSearch):
    name = "dvts"
    summary = (
        "N/M independent subtrees, each searched greedily by the scorer (Beeching et al. 2024)"
    )

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        search = self.begin(question, backend, on_tokens)
        m = self.beam_width
        self.require(m, f"DVTS with width {m}")
        trees = max(self.samples // m, 1)
        current = await self.expand(search, [self.root()], trees)
        finished = [p for p in current if p.done]
        active = [p for p in current if not p.done]
        while active and not self.out_of_budget(search):
            children = await self.expand(search, active, m)
            by_parent: dict[int, list[Path]] = {}
            for child in children:
                parent = search.nodes[child.node].parent
                by_parent.setdefault(parent if parent is not None else 0, []).append(child)
            active = []
            for group in by_parent.values():
                best = max(group, key=self.path_score)
                for other in group:
                    if other is not best:
                        self.mark(search, other.node, "pruned")
                self.mark(search, best.node, "kept")
                (finished if best.done else active).append(best)
        return self.finish(search, finished, active)
