"""A*-decoding (Chatziveroglou 2025, "A*-Decoding: Token-Efficient Inference Scaling"):
best-first search over partial solutions, guided by a process scorer, that spends tokens
only on the most promising path.

    f(path) = g(path) + heuristic_weight * h(path)
        g: the accumulated step cost, sum over its judged steps of -log(step score)
        h: the scorer's estimate of the cost still to come, -log(path score); with
           aggregate=prod the path score is exp(-g) itself, the cost so far, so h = 0
           there (uniform-cost search) rather than counting g twice
    push the M first steps into a priority queue ordered by f
    until N paths finished, the queue is empty or the token budget is spent:
        pop the path with the lowest f; a finished path is a solution
        otherwise extend it with M next steps (one call), score them, push them
    answer with the solution of best path score (N = 1: the first solution popped)

When the search stops before N solutions (budget, `max_expansions`), the finished paths still
waiting in the queue count as solutions too.
`max_expansions` bounds a search in which nothing ever finishes.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import ClassVar

from ponder.backends.base import Backend
from ponder.core import TokenCallback
from ponder.errors import ConfigError
from ponder.result import Result
from ponder.strategies.base import STRATEGIES
from ponder.strategies.steps import Branch, WideSearch

_FLOOR = 1e-9
"""Smallest step probability: a score of 0 costs -log(1e-9), not infinity."""


@STRATEGIES.register("a-star", aliases=("astar", "a*"))
@dataclass(frozen=True, kw_only=True)
class AStar(WideSearch):
    summary = "best-first search by accumulated step cost + scorer estimate (Chatziveroglou 2025)"

    heuristic_weight: float = 1.0
    max_expansions: int = 64
    needs_width: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.heuristic_weight, int | float) and self.heuristic_weight >= 0):
            raise ConfigError(f"heuristic_weight must be >= 0, got {self.heuristic_weight!r}")
        if not isinstance(self.max_expansions, int) or self.max_expansions < 1:
            raise ConfigError(f"max_expansions must be >= 1, got {self.max_expansions!r}")

    def priority(self, path: Branch) -> float:
        g = math.fsum(-math.log(max(p, _FLOOR)) for p in path.probs)
        if self.aggregation == "prod":
            return g
        h = -math.log(max(path.score, _FLOOR))
        return g + self.heuristic_weight * h

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        search = self.search(question, backend, on_tokens)
        n, m = self.samples, self.beam_width
        queue: list[tuple[float, int, Branch]] = []
        for child in await search.extend([search.root], m):
            heapq.heappush(queue, (self.priority(child), child.id, child))
        solutions: list[Branch] = []
        expansions = 1
        while queue and len(solutions) < n and not search.exhausted:
            _, _, best = heapq.heappop(queue)
            if best.done:
                solutions.append(best)
                continue
            if expansions >= self.max_expansions:
                heapq.heappush(queue, (self.priority(best), best.id, best))
                search.note(f"stopped after max_expansions={self.max_expansions}")
                break
            expansions += 1
            search.keep([best])
            for child in await search.extend([best], m):
                heapq.heappush(queue, (self.priority(child), child.id, child))
        waiting = [path for _, _, path in sorted(queue)]
        if len(solutions) < n:  # stopped early: finished paths not yet popped count too
            solutions += [p for p in waiting if p.done]
        return search.result(solutions, [p for p in waiting if not p.done])
