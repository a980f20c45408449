"""Particle filtering (Puri, Sudalairaj, Xu, Xu & Srivastava 2025, "A Probabilistic Inference
Approach to Inference-Time Scaling of LLMs using Particle-Based Monte Carlo Methods").

Partial solutions are particles of a state-space model whose emission is the process reward;
instead of keeping the top paths (which trusts an imperfect reward too much), particles are
resampled in proportion to their weights, so a path the reward underrates can survive.

    sample N first steps (the particles)
    repeat until every particle finished or the token budget is spent:
        weights w = softmax(logit(path score) / resample_temperature) over all N particles
        record the effective sample size 1 / sum(w^2)
        draw N particles with replacement in proportion to w
        (a finished particle stays in the population as it is and can be drawn again)
        extend every drawn unfinished particle by one step      (one batched call;
                                                                  copies grow apart)
    answer with the finished particle of best path score

A particle whose step the scorer cannot judge is dropped; the others go on.

The path score is a probability that the partial solution is right (a PRM's output), so its
log-odds are the log-weight, as in the authors' implementation (its_hub): with T = 1 a particle
at 0.9 is drawn 81 times as often as one at 0.1. Softmax over the raw [0, 1] scores would make
every weight within e^1 of every other, which is close to uniform resampling at any T near 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ponder.backends.base import Backend
from ponder.core import TokenCallback
from ponder.errors import ConfigError
from ponder.result import Result
from ponder.strategies.base import STRATEGIES
from ponder.strategies.steps import StepSearch, ess, unique

LOGIT_CLIP = 1e-6
"""A path probability of exactly 0 or 1 (a PRM's or a judge's) gets log-odds of -+13.8
instead of infinity, whose inf - inf in the softmax would make the weights NaN. How much a
checked step should weigh is the scorer's `probability` (the arithmetic checker's is
calibrated on gsm8k-train: a confirmed path weighs 1.8 times an unchecked one), not this."""


@STRATEGIES.register("particle-filtering", aliases=("pf", "particles"))
@dataclass(frozen=True, kw_only=True)
class ParticleFiltering(StepSearch):
    summary = "particles resampled by softmax(logit(score) / T) each step (Puri et al. 2025)"

    resample_temperature: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        temperature = self.resample_temperature
        if not (isinstance(temperature, int | float) and temperature > 0):
            raise ConfigError(
                f"resample_temperature must be > 0, got {self.resample_temperature!r}"
            )

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        search = self.search(question, backend, on_tokens)
        n = self.samples
        particles = await search.extend([search.root], n)
        sizes: list[float] = []
        while any(not p.done for p in particles) and not search.exhausted:
            weights = resampling_weights([p.score for p in particles], self.resample_temperature)
            sizes.append(ess(weights))
            drawn = [particles[i] for i in search.rng.choice(len(particles), size=n, p=weights)]
            search.prune(
                [p for p in unique(particles) if p not in drawn], "not drawn when resampling"
            )
            search.keep(p for p in drawn if not p.done)
            grown = await search.extend([p for p in drawn if not p.done], 1)
            particles = [p for p in drawn if p.done] + grown
        if sizes:
            search.note(
                "effective sample size per resampling (of "
                f"{n}): {', '.join(f'{s:.2f}' for s in sizes)}"
            )
        return search.result([p for p in particles if p.done], [p for p in particles if not p.done])


def resampling_weights(scores: list[float], temperature: float) -> np.ndarray:
    """softmax(logit(score) / temperature); scores on [0, 1], clipped off 0 and 1."""
    probs = np.clip(np.array(scores, dtype=float), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    logits = np.log(probs / (1.0 - probs)) / temperature
    weights = np.exp(logits - logits.max())
    return weights / weights.sum()
