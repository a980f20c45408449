"""Every strategy at every budget k = 1, 2, 4, ..., N, from the stored samples.

The method of search-and-learn and Large Language Monkeys (Brown et al. 2024): draw N
samples per question once, then estimate each strategy's accuracy with k samples without
generating again.

* `pass@k` (coverage, the oracle ceiling): the unbiased estimator of Chen et al. 2021.
* Every sample-based strategy (its pure `select`): the mean, over `subsets` random
  k-subsets of the question's N samples (all of them when there are no more than
  `subsets`), of whether `select` picks a right answer. The subsets are seeded per (seed,
  question, k) and shared by all strategies, so their comparisons are paired. With k = N
  there is one subset, all the samples.
* Live strategies (step-level search, or sample strategies that sample differently, such
  as greedy at temperature 0): the stored `Result` of their run at budget k.

Costs per question at budget k: the prompt once (a run with k samples makes one call), plus
the sum over the k samples used of their completion tokens and seconds (each sample's share
of its batched call) and, for strategies that read a scorer, what scoring those k samples
cost; FLOPs = the question's FLOPs per decoded token x the tokens decoded. Live strategies
cost what their `Result.usage` says, seconds being the run's wall time.

Verifier false positives (Stroebl et al. 2024, "Inference Scaling fLaws"): per scorer, on
the questions whose N samples hold both right and wrong answers, how often the scorer ranks
some wrong sample above every right one; with it, the best-of-k accuracy such a verifier
allows as k grows (`stats.flaws_ceiling`) and the pool ceiling (the share of questions
whose top-scored sample is right: what best-of-k reaches at k = N).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ponder.backends.base import SamplingParams
from ponder.errors import ConfigError
from ponder.eval.bank import Sample
from ponder.eval.runner import LiveJob, QuestionData
from ponder.eval.stats import flaws_ceiling, pass_at_k, seed_for, wilson
from ponder.result import Candidate
from ponder.scorers.base import Scorer
from ponder.strategies.base import STRATEGIES, Budget, SampleStrategy, Strategy
from ponder.tasks.base import Task

SUBSETS = 64
"""Random k-subsets per question and budget (seeded); all subsets when C(N, k) <= this."""
COVERAGE = "pass@k"


def budgets(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    ks = [1 << i for i in range(n.bit_length()) if 1 << i <= n]
    return ks if ks[-1] == n else [*ks, n]


@dataclass(frozen=True, slots=True)
class Line:
    """One curve of the table and the plot."""

    label: str
    strategy: Strategy | None
    """None for pass@k."""
    scorer: str | None = None
    """The scorer the strategy reads (its cost is paid)."""
    ks: tuple[int, ...] = ()
    live: bool = False


@dataclass
class Cell:
    """One line at one budget: a value and the costs per question."""

    label: str
    k: int
    live: bool = False
    question_ids: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    prompt_tokens: list[float] = field(default_factory=list)
    cached_tokens: list[float] = field(default_factory=list)
    completion_tokens: list[float] = field(default_factory=list)
    scoring_tokens: list[float] = field(default_factory=list)
    flops: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, question_id: str, value: float, cost: Cost) -> None:
        self.question_ids.append(question_id)
        self.values.append(value)
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
    prompt: float = 0.0
    cached: float = 0.0
    completion: float = 0.0
    scoring: float = 0.0
    """Tokens the scorer spent (already inside prompt and completion)."""
    flops: float = 0.0
    seconds: float = 0.0


# building the lines


@dataclass(frozen=True, slots=True)
class Lines:
    replayed: list[Line]
    live: list[Line]
    jobs: list[LiveJob]


def build_lines(
    names: Sequence[str] | None,
    *,
    task: Task,
    sampling: SamplingParams,
    scorers: Sequence[Scorer],
    process_scorers: Sequence[Scorer],
    n: int,
    seed: int,
    options: Mapping[str, Any],
    live_ks: Sequence[int] | None = None,
) -> Lines:
    """The lines to measure: pass@k, then each strategy once per scorer it can use.

    `names`: the strategies asked for; None means every sample-based one. A strategy that
    needs a scorer gets one line per scorer (process scorers for step-level search); one
    that does not gets an unscored line, plus, when replayed, one per scorer (lines that
    come out identical to the unscored one are dropped after the replay). A sample strategy
    whose sampling differs from the bank's (greedy) and every step-level one runs live.
    """
    chosen = (
        [STRATEGIES.canonical(x) for x in names]
        if names
        else [x for x, cls in STRATEGIES.items() if issubclass(cls, SampleStrategy)]
    )
    chosen = list(dict.fromkeys(chosen))
    unused = set(options)
    for name in chosen:
        unused -= {f.name for f in dataclasses.fields(STRATEGIES.get(name))}
    if unused:
        raise ConfigError(
            f"no chosen strategy takes {', '.join(sorted(unused))}; drop it or add a strategy "
            "that does (see `ponder strategies`)"
        )
    replayed = [Line(COVERAGE, None, ks=tuple(budgets(n)))]
    live: list[Line] = []
    jobs: list[LiveJob] = []
    ks_live = sorted(set(live_ks or budgets(n)))
    for name in chosen:
        cls = STRATEGIES.get(name)
        pool = process_scorers if cls.step_level else scorers
        variants: list[Scorer | None] = list(pool) if cls.needs_scorer else [None, *pool]
        if cls.needs_scorer and not pool:
            kind = "process scorer (--process-scorer)" if cls.step_level else "scorer (--scorer)"
            raise ConfigError(f"strategy {name!r} needs a {kind}")
        fields = {f.name for f in dataclasses.fields(cls)}
        own = {key: value for key, value in options.items() if key in fields}

        def build(
            scorer: Scorer | None,
            k: int,
            cls: type[Strategy] = cls,
            own: Mapping[str, Any] = own,
        ) -> Strategy:
            try:
                return cls(  # type: ignore[call-arg]
                    task=task,
                    scorer=scorer,
                    sampling=_plain(sampling),
                    budget=Budget(samples=k),
                    seed=seed,
                    **own,
                )
            except TypeError as exc:
                raise ConfigError(f"strategy {cls.name!r}: {exc}") from None

        probe = build(variants[0], n)
        if _replayable(probe, sampling):
            for scorer in variants:
                label = _label(name, scorer)
                replayed.append(Line(label, build(scorer, n), _name(scorer), tuple(budgets(n))))
            continue
        for scorer in variants[:1] if not cls.needs_scorer else variants:
            label = _label(name, scorer)
            done: set[int] = set()
            for k in ks_live:
                strategy = build(scorer, k)
                budget = strategy.budget.samples or k
                if budget in done:
                    continue  # the strategy fixes its own budget (greedy: 1 sample)
                done.add(budget)
                jobs.append(LiveJob(label, _config(strategy), budget, strategy))
            live.append(Line(label, None, _name(scorer), tuple(sorted(done)), live=True))
    return Lines(replayed, live, jobs)


def _plain(sampling: SamplingParams) -> SamplingParams:
    """What live strategies sample with: the bank's settings, without its logprob requests."""
    return dataclasses.replace(sampling, logprobs=False, top_logprobs=0, seed=None)


def _replayable(strategy: Strategy, sampling: SamplingParams) -> bool:
    if not isinstance(strategy, SampleStrategy):
        return False
    theirs = strategy.sampling_params()
    same = ("temperature", "top_p", "top_k", "min_p", "max_tokens", "stop")
    return all(getattr(theirs, x) == getattr(sampling, x) for x in same)


def _label(name: str, scorer: Scorer | None) -> str:
    return name if scorer is None else f"{name}[{scorer.name}]"


def _name(scorer: Scorer | None) -> str | None:
    return None if scorer is None else scorer.name


def _config(strategy: Strategy) -> str:
    params = {"strategy": strategy.name, "params": strategy.params()}
    params["sampling"] = dataclasses.asdict(strategy.sampling)
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# replay


def candidates_of(samples: Sequence[Sample], task: Task) -> list[Candidate]:
    """Candidates with their answer clusters over all N samples (subsets keep the labels)."""
    labels = task.cluster([s.answer for s in samples])
    return [s.candidate(label) for s, label in zip(samples, labels, strict=True)]


def subsets(n: int, k: int, count: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    if math.comb(n, k) <= count:
        return list(itertools.combinations(range(n), k))
    return [tuple(sorted(rng.choice(n, size=k, replace=False).tolist())) for _ in range(count)]


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


def _cost(pool: _Pool, picks: Sequence[tuple[int, ...]], scorer: str | None) -> Cost:
    """Mean over the subsets of what the k samples used cost, the prompt counted once."""
    completion = float(np.mean([pool.completion[list(p)].sum() for p in picks]))
    seconds = float(np.mean([pool.seconds[list(p)].sum() for p in picks]))
    extra = Cost()
    if scorer is not None:
        costs = pool.scoring[scorer]
        count = len(picks)
        extra = Cost(
            prompt=sum(costs[i].prompt for p in picks for i in p) / count,
            cached=sum(costs[i].cached for p in picks for i in p) / count,
            completion=sum(costs[i].completion for p in picks for i in p) / count,
            scoring=sum(costs[i].scoring for p in picks for i in p) / count,
            flops=sum(costs[i].flops for p in picks for i in p) / count,
            seconds=sum(costs[i].seconds for p in picks for i in p) / count,
        )
    decoded = pool.prompt - pool.cached + completion
    return Cost(
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
) -> dict[tuple[str, int], Cell]:
    """Cells of every replayed line at every budget, over the questions in `data`."""
    cells: dict[tuple[str, int], Cell] = {}
    scorers = sorted({line.scorer for line in lines if line.scorer is not None})
    for item in data:
        samples = item.samples[:n]
        if len(samples) < n:
            raise ConfigError(f"question {item.question.id!r} has {len(samples)} of {n} samples")
        candidates = candidates_of(samples, task)
        pool = _pool(item, task, scorers)
        for k in budgets(n):
            rng = np.random.default_rng(seed_for(seed, item.question.id, k))
            picks = subsets(n, k, subset_count, rng)
            for line in lines:
                if k not in line.ks:
                    continue
                cell = cells.setdefault((line.label, k), Cell(line.label, k))
                if line.strategy is None:
                    value = pass_at_k(n, int(pool.right.sum()), k)
                    cell.add(item.question.id, value, _expected_cost(pool, k))
                    continue
                assert isinstance(line.strategy, SampleStrategy)
                hits = 0.0
                for pick in picks:
                    chosen = line.strategy.select([candidates[i] for i in pick], rng)
                    hits += chosen.chosen is not None and bool(pool.right[pick[chosen.chosen]])
                cell.add(item.question.id, hits / len(picks), _cost(pool, picks, line.scorer))
    return cells


def drop_duplicates(
    cells: dict[tuple[str, int], Cell], lines: Sequence[Line]
) -> tuple[dict[tuple[str, int], Cell], list[Line]]:
    """Drop scored variants of a strategy that equal its unscored line everywhere (the
    strategy ignored the scorer, or read the same thing: weighted majority by mean-logprob
    is the unscored RPC weighting)."""
    keep: list[Line] = []
    for line in lines:
        if line.strategy is not None and line.scorer is not None:
            base = _label(line.strategy.name, None)
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
                cost = Cost(
                    prompt=usage["prompt_tokens"],
                    cached=usage["cached_prompt_tokens"],
                    completion=usage["completion_tokens"],
                    flops=usage["flops"],
                    seconds=float(stored.data.get("seconds", usage["seconds"])),
                )
                cell = cells.setdefault((line.label, k), Cell(line.label, k, live=True))
                cell.add(item.question.id, float(stored.correct), cost)
    return cells


# verifier false positives


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
