"""Evaluate sample-based strategies at every budget k from the stored samples.

The method of search-and-learn and Large Language Monkeys: draw N samples per question
once, then for each k = 1, 2, 4, ..., N estimate each strategy's accuracy with k samples
without generating again.

* pass@k (coverage): the unbiased estimator of Chen et al. 2021.
* every other strategy: the mean, over `subsets` random k-subsets of the N samples
  (seeded per question and k; all subsets when there are fewer), of whether its `select`
  picks a right answer. With k = N there is one subset: all samples.

Costs at budget k: the question's prompt once plus k times the mean completion tokens
(and the scorer's tokens per sample for strategies that use a scorer); FLOPs and seconds
the same way (seconds: each sample's share of its batched call).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ponder.eval.bank import SampleRow
from ponder.eval.datasets import Question
from ponder.eval.stats import pass_at_k
from ponder.result import Candidate
from ponder.strategies.base import SampleStrategy
from ponder.tasks.base import Task
from ponder.usage import Usage

SUBSETS = 64
"""Random k-subsets per question and budget (documented, seeded)."""


@dataclass(frozen=True, slots=True)
class Replayable:
    label: str
    strategy: SampleStrategy | None
    """None: pass@k (coverage), the ceiling every strategy is measured against."""
    uses_scorer: bool = False


@dataclass
class Cell:
    """One strategy at one budget: per-question values and mean costs."""

    label: str
    k: int
    values: list[float] = field(default_factory=list)
    prompt_tokens: float = 0.0
    cached_tokens: float = 0.0
    completion_tokens: float = 0.0
    score_tokens: float = 0.0
    flops: float = 0.0
    seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def tokens(self) -> float:
        return self.prompt_tokens + self.completion_tokens + self.score_tokens


def budgets(n: int) -> list[int]:
    ks = [1 << i for i in range(n.bit_length()) if 1 << i <= n]
    return ks if ks[-1] == n else [*ks, n]


def candidates_of(rows: Sequence[SampleRow], task: Task) -> list[Candidate]:
    labels = task.cluster([r.answer for r in rows])
    return [
        Candidate(
            text=r.text,
            answer=r.answer,
            usage=Usage(
                prompt_tokens=r.prompt_tokens,
                cached_prompt_tokens=r.cached_tokens,
                completion_tokens=r.completion_tokens,
            ),
            finish_reason=r.finish_reason,
            mean_logprob=r.mean_logprob,
            sum_logprob=r.sum_logprob,
            scores=dict(r.scores),
            cluster=label,
        )
        for r, label in zip(rows, labels, strict=True)
    ]


def _subsets(n: int, k: int, count: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    if math.comb(n, k) <= count:
        return list(itertools.combinations(range(n), k))
    return [tuple(sorted(rng.choice(n, size=k, replace=False))) for _ in range(count)]


def replay(
    questions: Sequence[Question],
    samples: dict[str, list[SampleRow]],
    task: Task,
    strategies: Sequence[Replayable],
    *,
    n: int,
    subsets: int = SUBSETS,
    seed: int = 0,
) -> dict[tuple[str, int], Cell]:
    cells: dict[tuple[str, int], Cell] = {}
    for question in questions:
        rows = samples.get(question.id, [])[:n]
        if len(rows) < n:
            continue  # an interrupted run: only questions with all N samples are compared
        candidates = candidates_of(rows, task)
        right = [task.is_correct(c.answer, question.answer) for c in candidates]
        prompt = max(r.prompt_tokens for r in rows)
        cached = next((r.cached_tokens for r in rows if r.prompt_tokens == prompt), 0)
        completion = float(np.mean([r.completion_tokens for r in rows]))
        scoring = float(np.mean([r.score_tokens for r in rows]))
        flops_per = float(np.mean([r.flops for r in rows]))
        seconds_per = float(np.mean([r.seconds for r in rows]))
        for k in budgets(n):
            digest = hashlib.sha256(f"{seed}\0{question.id}\0{k}".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            picks = _subsets(n, k, subsets, rng)
            for entry in strategies:
                cell = cells.setdefault((entry.label, k), Cell(entry.label, k))
                if entry.strategy is None:
                    value = pass_at_k(n, sum(right), k)
                else:
                    hits = 0.0
                    for pick in picks:
                        chosen = entry.strategy.select([candidates[i] for i in pick], rng)
                        hits += chosen.chosen is not None and right[pick[chosen.chosen]]
                    value = hits / len(picks)
                cell.values.append(value)
                q = len(cell.values)
                scored = scoring * k if entry.uses_scorer else 0.0
                _running_mean(
                    cell, q, prompt, cached, completion * k, scored, flops_per * k, seconds_per * k
                )
    return cells


def _running_mean(cell: Cell, count: int, *values: float) -> None:
    names = (
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "score_tokens",
        "flops",
        "seconds",
    )
    for name, value in zip(names, values, strict=True):
        old = getattr(cell, name)
        setattr(cell, name, old + (value - old) / count)


def false_positives(
    questions: Sequence[Question],
    samples: dict[str, list[SampleRow]],
    task: Task,
    scorer: str,
    n: int,
) -> tuple[float, float, int]:
    """(rate, ceiling, eligible) for one scorer (Stroebl et al. 2024, "Inference Scaling fLaws").

    rate: among questions with both right and wrong samples, how often the scorer ranks some
    wrong sample above every right one. ceiling: the accuracy best-of-k tends to as k grows
    within this pool: a question counts when it has a right sample that the scorer ranks
    above every wrong one.
    """
    eligible = fooled = solvable = total = 0
    for question in questions:
        rows = samples.get(question.id, [])[:n]
        if len(rows) < n:
            continue
        total += 1
        right = [task.is_correct(r.answer, question.answer) for r in rows]
        scores = [r.scores.get(scorer, math.nan) for r in rows]
        good = [s for s, ok in zip(scores, right, strict=True) if ok and not math.isnan(s)]
        bad = [s for s, ok in zip(scores, right, strict=True) if not ok and not math.isnan(s)]
        if good and bad:
            eligible += 1
            fooled += max(bad) > max(good)
        solvable += bool(good) and (not bad or max(good) >= max(bad))
    rate = fooled / eligible if eligible else math.nan
    return rate, (solvable / total if total else math.nan), eligible


def default_replayables(scorer_names: Sequence[str], build) -> list[Replayable]:  # type: ignore[no-untyped-def]
    """pass@k, first sample, self-consistency, weighted majority, and per scorer best-of-k,
    weighted majority and Best-of-Majority. `build(name, scorer)` makes a strategy."""
    out = [
        Replayable("pass@k", None),
        Replayable("first-sample", build("first-sample", None)),
        Replayable("self-consistency", build("self-consistency", None)),
        Replayable("weighted-majority[logprob]", build("weighted-majority", None)),
    ]
    for name in scorer_names:
        out += [
            Replayable(f"best-of-n[{name}]", build("best-of-n", name), True),
            Replayable(f"weighted-majority[{name}]", build("weighted-majority", name), True),
            Replayable(f"best-of-majority[{name}]", build("best-of-majority", name), True),
        ]
    return out
