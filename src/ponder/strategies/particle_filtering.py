"""Particle filtering (Puri et al. 2025, "A Probabilistic Inference Approach to
Inference-Time Scaling of LLMs using Particle-Based Monte Carlo Methods").

    particles = N samples of the first step
    repeat until every particle finished or max_steps:
        weight each particle by softmax(path score / resample_temperature)
        resample N particles with replacement in proportion to the weights
        (finished particles stay in the pool and can be drawn again)
        extend every drawn unfinished particle by one step         (one batched call)
    return the finished particle with the best path score

The effective sample size 1 / sum(w^2) of each round goes into the trace. A particle whose
step the scorer cannot judge is dropped; the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ponder.backends.base import Backend, TokenCallback
from ponder.errors import ConfigError
from ponder.result import Result
from ponder.strategies._steps import Path, StepSearch
from ponder.strategies.base import STRATEGIES


@STRATEGIES.register("particle-filtering", aliases=("pf", "particles"))
@dataclass(frozen=True, kw_only=True)
class ParticleFiltering(StepSearch):
    name = "particle-filtering"
    summary = "particles resampled by softmax(score / T) each step (Puri et al. 2025)"

    resample_temperature: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.resample_temperature > 0:
            raise ConfigError("resample_temperature must be > 0")

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        search = self.begin(question, backend, on_tokens)
        rng = self.rng(question)
        n = self.samples
        particles = await self.expand(search, [self.root()], n)
        sizes = []
        while particles and not all(p.done for p in particles) and not self.out_of_budget(search):
            scores = np.array([self.path_score(p) for p in particles]) / self.resample_temperature
            weights = np.exp(scores - scores.max())
            weights /= weights.sum()
            sizes.append(1.0 / float(np.sum(weights**2)))
            drawn = [particles[i] for i in rng.choice(len(particles), size=n, p=weights)]
            chosen = {id(p) for p in drawn}
            for particle in particles:
                if id(particle) not in chosen and not particle.done:
                    self.mark(search, particle.node, "pruned")
            for particle in drawn:
                if not particle.done:
                    self.mark(search, particle.node, "kept")
            done = [p for p in drawn if p.done]
            # each drawn unfinished particle grows its own next step; copies share the prefix
            grown = await self.expand(search, [p for p in drawn if not p.done], 1)
            particles = done + grown
        if sizes:
            summary = ", ".join(f"{s:.1f}" for s in sizes)
            search.notes.append(f"effective sample size per round: {summary}")
        finished = _unique([p for p in particles if p.done])
        return self.finish(search, finished, [p for p in particles if not p.done])


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[int] = set()
    out = []
    for path in paths:
        if path.node not in seen:
            seen.add(path.node)
            out.append(path)
    return out
