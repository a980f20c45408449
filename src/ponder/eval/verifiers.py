"""Verifier false positives (Stroebl et al. 2024, "Inference Scaling fLaws").

Per scorer, on the questions whose N samples hold both right and wrong answers, how often the
scorer ranks some wrong sample above every right one; with it, the best-of-k accuracy such a
verifier allows as k grows (`stats.flaws_ceiling`) and the pool ceiling (the share of
questions whose top-scored sample is right: what best-of-k reaches at k = N).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ponder.eval.collect import QuestionData
from ponder.eval.lines import budgets
from ponder.eval.stats import flaws_ceiling, wilson
from ponder.tasks.base import Task


@dataclass(frozen=True, slots=True)
class Verifier:
    scorer: str
    questions: int
    mixed: int
    """Questions whose N samples hold both right and wrong answers (with scores)."""
    fooled: int
    """Of those, questions where a wrong sample outranks every right one."""
    rate: float
    rate_ci: tuple[float, float]
    pool_ceiling: float
    """Share of questions whose top-scored sample is right (ties share the credit)."""
    ceiling: dict[int, float]
    """k -> the fLaws best-of-k ceiling implied by `rate`."""
    ceiling_limit: float
    """The same as k grows without bound."""
    unjudged: int = 0
    """Samples the scorer gave no score (NaN): left out of the ranking."""
    samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "questions": self.questions,
            "questions_with_right_and_wrong": self.mixed,
            "fooled": self.fooled,
            "false_positive_rate": self.rate,
            "false_positive_ci_low": self.rate_ci[0],
            "false_positive_ci_high": self.rate_ci[1],
            "pool_ceiling": self.pool_ceiling,
            "ceiling_by_k": {str(k): v for k, v in self.ceiling.items()},
            "ceiling_limit": self.ceiling_limit,
            "unjudged_samples": self.unjudged,
            "samples": self.samples,
        }


def verifier(data: Sequence[QuestionData], task: Task, scorer: str, n: int) -> Verifier:
    mixed = fooled = unjudged = total = 0
    tops: list[float] = []
    rates: list[float] = []
    for item in data:
        samples = item.samples[:n]
        right = [task.is_correct(s.answer, item.question.answer) for s in samples]
        rates.append(sum(right) / len(right))
        scored = [
            (s.scores.get(scorer, math.nan), ok)
            for s, ok in zip(samples, right, strict=True)
            if not math.isnan(s.scores.get(scorer, math.nan))
        ]
        total += len(samples)
        unjudged += len(samples) - len(scored)
        if not scored:
            tops.append(rates[-1])  # nothing to rank by: as good as a random sample
            continue
        best = max(score for score, _ in scored)
        top = [ok for score, ok in scored if score == best]
        tops.append(sum(top) / len(top))
        good = [score for score, ok in scored if ok]
        bad = [score for score, ok in scored if not ok]
        if good and bad:
            mixed += 1
            fooled += max(bad) > max(good)
    rate = fooled / mixed if mixed else math.nan
    ceiling: dict[int, float] = {}
    limit = math.nan
    if mixed:
        ceiling = {k: flaws_ceiling(rates, rate, k) for k in budgets(n)}
        limit = flaws_ceiling(rates, rate, math.inf)
    return Verifier(
        scorer=scorer,
        questions=len(data),
        mixed=mixed,
        fooled=fooled,
        rate=rate,
        rate_ci=wilson(fooled, mixed) if mixed else (math.nan, math.nan),
        pool_ceiling=float(np.mean(tops)) if tops else math.nan,
        ceiling=ceiling,
        ceiling_limit=limit,
        unjudged=unjudged,
        samples=total,
    )
