"""Thresholdout (Dwork, Feldman, Hardt, Pitassi, Reingold & Roth 2015, "The reusable holdout:
Preserving validity in adaptive data analysis"): a holdout set that can be asked many
adaptive questions without being overfitted.

    for each query (a function phi of one data point, e.g. "is this policy right here"):
        a_T = mean of phi on the training set,  a_H = mean of phi on the holdout
        if |a_T - a_H| > T + eta  (eta ~ Laplace(4 sigma), drawn afresh):
            answer a_H + xi  (xi ~ Laplace(sigma));  budget -= 1
        else:
            answer a_T
    stop answering (the guarantee is spent) once the budget is exhausted

Only the answers are released: a selection made by them is valid for the holdout as long as
the budget lasts. An answer is within `tolerance(n)` of the truth unless the noise or the
holdout's own sampling error is unusually large (the test checks it by simulation; the
paper's bound needs a holdout of the order log(queries) * sqrt(budget) / tau^2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ponder.errors import ConfigError


@dataclass
class Thresholdout:
    threshold: float = 0.04
    """T: how far the training estimate may drift from the holdout before the holdout speaks."""
    sigma: float = 0.01
    """The scale of the Laplace noise (eta ~ Lap(4 sigma), xi ~ Lap(sigma))."""
    budget: int = 20
    """How many times the holdout may be consulted (answers that overfit the training set)."""
    seed: int = 0
    queries: int = 0
    spent: int = 0
    log: list[dict[str, float | bool]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1 or not 0 < self.sigma < 1 or self.budget < 1:
            raise ConfigError("thresholdout needs 0 < threshold, sigma < 1 and a budget >= 1")
        self._rng = np.random.default_rng(self.seed)

    @property
    def left(self) -> int:
        return self.budget - self.spent

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.budget

    def tolerance(self, holdout: int) -> float:
        """How far an answer may be from the truth, for a holdout of `holdout` items of
        values in [0, 1]: T (an answer from the training set differs from the holdout's by
        at most T + eta) plus 8 sigma (twice the typical |eta| plus |xi|) plus 2 / sqrt(n)
        (four standard errors of the holdout's own mean at the worst variance, 1/4)."""
        return self.threshold + 8.0 * self.sigma + 2.0 / np.sqrt(max(holdout, 1))

    def query(self, train: Sequence[float], holdout: Sequence[float]) -> float:
        """The mechanism's answer for the mean of one statistic (per-item values in [0, 1])."""
        if self.exhausted:
            raise ConfigError(
                f"the reusable holdout's budget of {self.budget} is spent: its answers would no "
                "longer be valid; enlarge the holdout or ask fewer questions"
            )
        self.queries += 1
        a_train, a_holdout = float(np.mean(train)), float(np.mean(holdout))
        eta = self._rng.laplace(0.0, 4.0 * self.sigma)
        overfit = abs(a_train - a_holdout) > self.threshold + eta
        if overfit:
            self.spent += 1
            answer = a_holdout + float(self._rng.laplace(0.0, self.sigma))
        else:
            answer = a_train
        answer = min(max(answer, 0.0), 1.0)
        self.log.append({"train": a_train, "answer": answer, "holdout_consulted": overfit})
        return answer

    def to_dict(self) -> dict[str, object]:
        return {
            "threshold": self.threshold,
            "sigma": self.sigma,
            "budget": self.budget,
            "queries": self.queries,
            "holdout_consulted": self.spent,
            "budget_left": self.left,
            "guarantee": "spent" if self.exhausted else "holds",
        }
