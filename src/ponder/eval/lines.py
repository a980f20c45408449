"""The lines an evaluation measures: pass@k, then each strategy once per scorer it can use,
each built from a `StrategySpec` like everywhere else.

A strategy of kind `sample` whose sampling is the bank's is replayed from the stored samples;
every other one (step-level search, sequential strategies, sample strategies that sample
differently, such as greedy at temperature 0) runs live per question and budget.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ponder.backends.base import Backend
from ponder.core import SamplingParams
from ponder.errors import BudgetError, ConfigError
from ponder.eval.collect import LiveJob
from ponder.strategies.base import STRATEGIES, Kind, SampleStrategy, Strategy
from ponder.strategies.spec import StrategySpec, strategy_options

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
    """None for pass@k (and for live lines: their jobs hold the strategies)."""
    scorer: str | None = None
    """The scorer the strategy reads (its cost is paid)."""
    ks: tuple[int, ...] = ()
    live: bool = False


@dataclass(frozen=True, slots=True)
class Lines:
    replayed: list[Line]
    live: list[Line]
    jobs: list[LiveJob]
    notes: list[str] = dataclasses.field(default_factory=list)
    """Budgets a live strategy refused (fewer beams than its width...)."""


@dataclass(frozen=True, slots=True)
class LineRequest:
    """What an evaluation asks for, before any backend exists; `specs` validates it."""

    strategies: Sequence[str] | None
    """None: every strategy of kind sample (those with `required_options` when given)."""
    scorers: Sequence[str]
    """Outcome scorers scored on every sample."""
    process_scorers: Sequence[str]
    n: int
    seed: int
    sampling: SamplingParams
    """The bank's sampling (what replayed strategies must sample with)."""
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Strategy options, given to each chosen strategy that has them."""
    scorer_options: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    live_ks: Sequence[int] | None = None
    task: str = "math"

    def names(self) -> list[str]:
        chosen = (
            [STRATEGIES.canonical(x) for x in self.strategies]
            if self.strategies
            else [
                x
                for x, cls in STRATEGIES.items()
                if cls.kind is Kind.SAMPLE and set(cls.required_options) <= set(self.options)
            ]
        )
        chosen = list(dict.fromkeys(chosen))
        unused = set(self.options)
        for name in chosen:
            unused -= set(strategy_options(STRATEGIES.get(name)))
        if unused:
            raise ConfigError(
                f"no chosen strategy takes {', '.join(sorted(unused))}; drop it or add a "
                "strategy that does (see `ponder strategies`)"
            )
        return chosen

    def spec(self, name: str, scorer: str | None, k: int) -> StrategySpec:
        cls = STRATEGIES.get(name)
        own = {key: v for key, v in self.options.items() if key in strategy_options(cls)}
        return StrategySpec(
            name,
            samples=k,
            scorer=scorer,
            scorer_options=self.scorer_options.get(scorer, {}) if scorer else {},
            options=own,
            sampling=_plain(self.sampling),
            seed=self.seed,
            task=self.task,
        )

    def variants(self, name: str) -> list[str | None]:
        """The scorers a strategy is measured with: every one it can read, or (for one that
        needs a scorer and is given none that fits) the task's default."""
        cls = STRATEGIES.get(name)
        pool = list(self.process_scorers if cls.kind is Kind.STEP else self.scorers)
        if cls.needs_scorer:
            if not pool:
                default = StrategySpec(name, task=self.task).scorer
                pool = [default]
            return list(pool)
        return [None, *pool]

    def specs(self) -> list[tuple[str, str | None, StrategySpec]]:
        """(strategy, scorer, spec at budget N) of every line: validates the request."""
        return [
            (name, scorer, self.spec(name, scorer, self.n))
            for name in self.names()
            for scorer in self.variants(name)
        ]

    def scorers_needed(self) -> list[str]:
        """The outcome scorers the bank must hold: the asked ones and the defaults that
        replayed strategies read."""
        needed = list(self.scorers)
        for name, scorer, _ in self.specs():
            cls = STRATEGIES.get(name)
            if cls.kind is Kind.SAMPLE and scorer is not None and scorer not in needed:
                needed.append(scorer)
        return needed


def build_lines(request: LineRequest, backend: Backend) -> Lines:
    """The lines of `request`, their strategies built for `backend`."""
    replayed = [Line(COVERAGE, None, ks=tuple(budgets(request.n)))]
    live: list[Line] = []
    jobs: list[LiveJob] = []
    notes: list[str] = []
    ks_live = sorted(set(request.live_ks or budgets(request.n)))
    by_name: dict[str, list[tuple[str | None, StrategySpec]]] = {}
    for name, scorer, spec in request.specs():
        by_name.setdefault(name, []).append((scorer, spec))
    for name, variants in by_name.items():
        cls = STRATEGIES.get(name)
        probe = variants[0][1].build(backend)
        if _replayable(probe, request.sampling):
            for scorer, spec in variants:
                strategy = spec.build(backend)
                ks = tuple(budgets(request.n))
                own = strategy.budget.samples
                if own is not None and own != request.n:
                    # it sets its own budget (a policy's deepest choice): one row, at the
                    # smallest budget that holds it
                    ks = tuple(k for k in ks if k >= own)[:1]
                    if not ks:
                        notes.append(
                            f"{_label(name, scorer)} skipped: it needs {own} samples a "
                            f"question and the bank holds {request.n}"
                        )
                        continue
                replayed.append(Line(_label(name, scorer), strategy, scorer, ks))
            continue
        chosen = variants if cls.needs_scorer else variants[:1]
        for scorer, _ in chosen:
            label = _label(name, scorer)
            done: set[int] = set()
            for k in ks_live:
                try:
                    strategy = request.spec(name, scorer, k).build(backend)
                except BudgetError as exc:
                    notes.append(f"{label} at k={k} skipped: {exc}")
                    continue
                budget = strategy.budget.samples or k
                if budget in done:
                    continue  # the strategy fixes its own budget (greedy: 1 sample)
                done.add(budget)
                jobs.append(LiveJob(label, config_key(strategy), budget, strategy))
            if done:
                live.append(Line(label, None, scorer, tuple(sorted(done)), live=True))
    return Lines(replayed, live, jobs, notes)


def _plain(sampling: SamplingParams) -> SamplingParams:
    """What strategies sample with: the bank's settings, without its logprob requests."""
    return dataclasses.replace(sampling, logprobs=False, top_logprobs=0, seed=None)


def _replayable(strategy: Strategy, sampling: SamplingParams) -> bool:
    if not isinstance(strategy, SampleStrategy):
        return False
    theirs = strategy.sampling_params()
    same = ("temperature", "top_p", "top_k", "min_p", "max_tokens", "stop")
    return all(getattr(theirs, x) == getattr(sampling, x) for x in same)


def _label(name: str, scorer: str | None) -> str:
    return name if scorer is None else f"{name}[{scorer}]"


def config_key(strategy: Strategy) -> str:
    """The key of a live strategy's stored results: its name, parameters and sampling."""
    params = {"strategy": strategy.name, "params": strategy.params()}
    params["sampling"] = dataclasses.asdict(strategy.sampling)
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
