"""A*-decoding (Chatziveroglou 2025, "A*-Decoding: Token-Efficient Inference Scaling"):
best-first search over partial solutions.

    frontier = priority queue ordered by f = g + h
        g = accumulated step cost: sum over steps of -log(step score)
        h = heuristic_weight * (1 - path score): the scorer's estimate of what is left
    push the N first steps
    until N paths finished, the frontier is empty or the budget is spent:
        pop the path with the lowest f; if finished, keep it
        otherwise extend it with M next steps (one call), score them, push them
    return the finished path with the best path score
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from ponder.backends.base import Backend, TokenCallback
from ponder.result import Result
from ponder.strategies._steps import Path, StepSearch
from ponder.strategies.base import STRATEGIES


@STRATEGIES.register("a-star", aliases=("astar", "a*"))
@dataclass(frozen=True, kw_only=True)
class AStar(StepSearch):
    name = "a-star"
    summary = "best-first search by accumulated step cost + scorer estimate (Chatziveroglou 2025)"

    heuristic_weight: float = 1.0
    max_expansions: int = 64

    def cost(self, path: Path) -> float:
        g = sum(-math.log(max(self.as_probability(s), 1e-6)) for s in path.scores)
        return g + self.heuristic_weight * (1.0 - self.path_score(path))

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        search = self.begin(question, backend, on_tokens)
        n, m = self.samples, self.beam_width
        frontier: list[tuple[float, int, Path]] = []
        for path in await self.expand(search, [self.root()], n):
            heapq.heappush(frontier, (self.cost(path), path.node, path))
        finished: list[Path] = []
        expansions = 0
        while frontier and len(finished) < n and not self.out_of_budget(search):
            _, _, best = heapq.heappop(frontier)
            if best.done:
                finished.append(best)
                continue
            if expansions >= self.max_expansions:
                search.notes.append(f"stopped after max_expansions={self.max_expansions}")
                break
            expansions += 1
            self.mark(search, best.node, "kept")
            for child in await self.expand(search, [best], m):
                heapq.heappush(frontier, (self.cost(child), child.node, child))
        return self.finish(search, finished, [p for _, _, p in sorted(frontier)])
