"""Every replayed line at every budget k = 1, 2, 4, ..., N, from the stored samples.

The method of search-and-learn and Large Language Monkeys (Brown et al. 2024): draw N
samples per question once, then estimate each strategy's accuracy with k samples without
generating again.

* `pass@k` (coverage, the oracle ceiling): the unbiased estimator of Chen et al. 2021.
* Every strategy of kind sample: the mean, over `subsets` random k-subsets of the
  question's N samples (all of them when there are no more than `subsets`), of whether the
  strategy picks a right answer. Each subset is an ordered sequence (the samples in the order
  they were drawn), clustered on its own, and given to the strategy's `decide`, which sees it
  a batch at a time as a live run would and may stop early. The subsets are seeded per (seed,
  question, k) and shared by all strategies, so their comparisons are paired. With k = N
  there is one subset, all the samples.
* Live strategies: the stored `Result` of their run at budget k.

Costs per question at budget k: the prompt once (a run makes one call per batch, the prompt
cached after the first), plus the sum over the samples the strategy *used* of their
completion tokens and seconds (each sample's share of its batched call) and, for strategies
that read a scorer, what scoring those samples cost; FLOPs = the question's FLOPs per decoded
token x the tokens decoded. An early-stopping strategy is charged only what it read. Live
strategies cost what their `Result.usage` says, seconds being the run's wall time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ponder import seeds
from ponder.errors import ConfigError
from ponder.eval.bank import Sample
from ponder.eval.collect import QuestionData
from ponder.eval.lines import Line, budgets
from ponder.eval.stats import pass_at_k
from ponder.result import Candidate
from ponder.strategies.base import SampleStrategy
from ponder.tasks.base import Task

SUBSETS = 64
"""Random k-subsets per question and budget (seeded); all subsets when C(N, k) <= this."""


@dataclass
class Cell:
    """One line at one budget: a value and the costs per question."""

    label: str
    k: int
    live: bool = False
    question_ids: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    samples_used: list[float] = field(default_factory=list)
    """Mean samples the strategy read per question (fewer than k when it stops early)."""
    prompt_tokens: list[float] = field(default_factory=list)
    cached_tokens: list[float] = field(default_factory=list)
    completion_tokens: list[float] = field(default_factory=list)
    scoring_tokens: list[float] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, question_id: str, value: float, cost: Cost) -> None:
        self.question_ids.append(question_id)
        self.values.append(value)
        self.samples_used.append(cost.samples)
        self.prompt_tokens.append(cost.prompt)
        self.cached_tokens.append(cost.cached)
        self.completion_tokens.append(cost.completion)
        self.scoring_tokens.append(cost.scoring)
        self.flops.append(cost.flops)
        self.seconds.append(cost.seconds)

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    def mean(self, name: str) -> float:
        values = getattr(self, name)
        return float(np.mean(values)) if values else math.nan


@dataclass(frozen=True, slots=True)
class Cost:
    samples: float = 0.0
    prompt: float = 0.0
    cached: float = 0.0
    completion: float = 0.0
    scoring: float = 0.0
    """Tokens the scorer spent (already inside prompt and completion)."""
    flops: float = 0.0
    seconds: float = 0.0


def candidates_of(samples: Sequence[Sample], task: Task) -> list[Candidate]:
    """Candidates of these samples, in order, their answers clustered among themselves."""
    labels = task.cluster([s.answer for s in samples])
    return [s.candidate(label) for s, label in zip(samples, labels, strict=True)]


def subsets(
    n: int, k: int, count: int, rng: np.random.Generator, fixed: int = 0
) -> list[tuple[int, ...]]:
    """k of n sample indices, in index order: every subset when there are at most `count`,
    else `count` seeded at random. The first `fixed` samples are in every subset (a probe
    that a strategy's later draws continue)."""
    fixed = min(fixed, k)
    head = tuple(range(fixed))
    if math.comb(n - fixed, k - fixed) <= count:
        return [head + rest for rest in itertools.combinations(range(fixed, n), k - fixed)]
    return [
        head
        + tuple(sorted(rng.choice(np.arange(fixed, n), size=k - fixed, replace=False).tolist()))
        for _ in range(count)
    ]


@dataclass(frozen=True, slots=True)
class _Pool:
    """Per-sample facts of one question that the replay reads."""

    right: np.ndarray
    completion: np.ndarray
    seconds: np.ndarray
    prompt: float
    cached: float
    flops_per_token: float
    scoring: dict[str, list[Cost]]


def _pool(data: QuestionData, task: Task, scorers: Sequence[str]) -> _Pool:
    samples = data.samples
    right = np.array([task.is_correct(s.answer, data.question.answer) for s in samples])
    first = max(samples, key=lambda s: s.usage.prompt_tokens)
    decoded = sum(s.usage.decoded_tokens for s in samples)
    flops = sum(s.usage.flops for s in samples)
    scoring = {}
    for name in scorers:
        costs = []
        for s in samples:
            u = s.score_usage.get(name)
            costs.append(
                Cost()
                if u is None
                else Cost(
                    prompt=u.prompt_tokens,
                    cached=u.cached_prompt_tokens,
                    completion=u.completion_tokens,
                    scoring=u.total_tokens,
                    flops=u.flops,
                    seconds=u.seconds,
                )
            )
        scoring[name] = costs
    return _Pool(
        right=right,
        completion=np.array([s.usage.completion_tokens for s in samples], dtype=float),
        seconds=np.array([s.usage.seconds for s in samples], dtype=float),
        prompt=float(first.usage.prompt_tokens),
        cached=float(first.usage.cached_prompt_tokens),
        flops_per_token=flops / decoded if decoded else 0.0,
        scoring=scoring,
    )


Used = tuple[tuple[int, ...], tuple[int, ...]]
"""The samples one decision read, and the completion tokens each cost when the strategy
halted some mid-generation (empty: each its full length)."""


def _cost(pool: _Pool, used: Sequence[Used], scorer: str | None) -> Cost:
    """Mean over the subsets of what the samples each one used cost, the prompt once (a
    halted sample: its tokens up to the halt, and that share of its seconds)."""
    count = len(used)
    completion = seconds = 0.0
    for indices, tokens in used:
        full = pool.completion[list(indices)]
        spent = np.asarray(tokens, dtype=float) if tokens else full
        completion += float(spent.sum())
        share = np.divide(spent, full, out=np.ones_like(spent), where=full > 0)
        seconds += float((pool.seconds[list(indices)] * share).sum())
    completion, seconds = completion / count, seconds / count
    extra = Cost()
    if scorer is not None:
        costs = pool.scoring[scorer]
        picked = [costs[i] for u, _ in used for i in u]
        extra = Cost(
            prompt=sum(c.prompt for c in picked) / count,
            cached=sum(c.cached for c in picked) / count,
            completion=sum(c.completion for c in picked) / count,
            scoring=sum(c.scoring for c in picked) / count,
            flops=sum(c.flops for c in picked) / count,
            seconds=sum(c.seconds for c in picked) / count,
        )
    decoded = pool.prompt - pool.cached + completion
    return Cost(
        samples=sum(len(u) for u, _ in used) / count,
        prompt=pool.prompt + extra.prompt,
        cached=pool.cached + extra.cached,
        completion=completion + extra.completion,
        scoring=extra.scoring,
        flops=pool.flops_per_token * decoded + extra.flops,
        seconds=seconds + extra.seconds,
    )


def _expected_cost(pool: _Pool, k: int) -> Cost:
    """What k samples cost on average over all k-subsets (pass@k reads no scorer)."""
    completion = k * float(pool.completion.mean())
    decoded = pool.prompt - pool.cached + completion
    return Cost(
        samples=float(k),
        prompt=pool.prompt,
        cached=pool.cached,
        completion=completion,
        flops=pool.flops_per_token * decoded,
        seconds=k * float(pool.seconds.mean()),
    )


def replay(
    data: Sequence[QuestionData],
    task: Task,
    lines: Sequence[Line],
    *,
    n: int,
    subset_count: int = SUBSETS,
    seed: int = 0,
    fixed: int = 0,
) -> dict[tuple[str, int], Cell]:
    """Cells of every replayed line at every budget, over the questions in `data` (every
    subset holding the first `fixed` samples, when given)."""
    cells: dict[tuple[str, int], Cell] = {}
    scorers = sorted({line.scorer for line in lines if line.scorer is not None})
    for item in data:
        samples = item.samples[:n]
        if len(samples) < n:
            raise ConfigError(f"question {item.question.id!r} has {len(samples)} of {n} samples")
        bound = task.for_question(item.question.question)
        pool = _pool(item, bound, scorers)
        qid = item.question.id
        for k in budgets(n):
            picks = subsets(n, k, subset_count, seeds.rng(seed, "subsets", qid, k), fixed)
            streams = [candidates_of([samples[i] for i in pick], bound) for pick in picks]
            for line in lines:
                if k not in line.ks:
                    continue
                cell = cells.setdefault((line.label, k), Cell(line.label, k))
                if line.strategy is None:
                    value = pass_at_k(n, int(pool.right.sum()), k)
                    cell.add(qid, value, _expected_cost(pool, k))
                    continue
                assert isinstance(line.strategy, SampleStrategy)
                rng = seeds.rng(seed, "select", qid, k, line.label)
                hits = 0.0
                used: list[Used] = []
                for pick, stream in zip(picks, streams, strict=True):
                    chosen = line.strategy.decide(stream, rng)
                    hits += chosen.chosen is not None and bool(pool.right[pick[chosen.chosen]])
                    used.append((pick[: chosen.used], chosen.tokens))
                cell.add(qid, hits / len(picks), _cost(pool, used, line.scorer))
    return cells


def drop_duplicates(
    cells: dict[tuple[str, int], Cell], lines: Sequence[Line]
) -> tuple[dict[tuple[str, int], Cell], list[Line]]:
    """Drop scored variants of a strategy that equal its unscored line everywhere (the
    strategy ignored the scorer, or read the same thing: weighted majority by mean-logprob
    is the unscored perplexity weighting)."""
    keep: list[Line] = []
    for line in lines:
        if line.strategy is not None and line.scorer is not None:
            base = line.strategy.name
            if any(x.label == base for x in lines) and all(
                cells[(line.label, k)].values == cells[(base, k)].values for k in line.ks
            ):
                continue
        keep.append(line)
    labels = {line.label for line in keep}
    return {key: cell for key, cell in cells.items() if key[0] in labels}, keep


def live_cells(data: Sequence[QuestionData], lines: Sequence[Line]) -> dict[tuple[str, int], Cell]:
    cells: dict[tuple[str, int], Cell] = {}
    for item in data:
        for line in lines:
            for k in line.ks:
                stored = item.live.get((line.label, k))
                if stored is None:
                    continue
                usage = stored.data["usage"]
                used = stored.data["trace"].get("used")
                cost = Cost(
                    samples=float(used if used is not None else len(stored.data["candidates"])),
                    prompt=usage["prompt_tokens"],
                    cached=usage["cached_prompt_tokens"],
                    completion=usage["completion_tokens"],
                    flops=usage["flops"],
                    seconds=float(stored.data.get("seconds", usage["seconds"])),
                )
                cell = cells.setdefault((line.label, k), Cell(line.label, k, live=True))
                cell.add(item.question.id, float(stored.correct), cost)
    return cells
