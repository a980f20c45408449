"""Tuning a compute-optimal policy on a training split (Snell et al. 2024), with the sampling
sweep of Bag of Tricks and a reusable holdout (Thresholdout, Dwork et al. 2015) keeping the
choices honest.

    1. per sampling setting of the sweep: N samples per training question in the bank, scored
       (an `Evaluation`, one run each; a rerun reuses what is stored); the setting the
       reusable holdout rates best (by self-consistency at N) is the one tuned on
    2. the questions split, seeded, into `fit` and `holdout`
    3. per question: the probe (its first m samples) gives the difficulty d, without the gold
       answer; per configuration (a sample strategy and its k >= m samples): the chance it
       answers right and its mean tokens decoded, over subsets that start with the probe
    4. per number of bins (1 .. max): bin edges at the quantiles of d on `fit`; per target
       mean budget: the choice per bin that maximises the `fit` accuracy within the budget
       (a multiple-choice knapsack, solved exactly)
    5. per target: of its candidate policies (one per number of bins), the one Thresholdout
       rates best on the holdout; that answer is the honest estimate of its accuracy

The test split is not touched: `ponder eval --strategy compute-optimal --policy FILE` on it,
once, gives the figure to report.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ponder import seeds
from ponder.backends.base import Backend
from ponder.core import SamplingParams
from ponder.errors import ConfigError, DataError
from ponder.eval.api import EvalConfig, EvalSummary, Evaluation
from ponder.eval.bank import SampleBank
from ponder.eval.collect import QuestionData
from ponder.eval.lines import Line
from ponder.eval.replay import candidates_of, replay
from ponder.eval.thresholdout import Thresholdout
from ponder.serialize import dumps
from ponder.strategies.compute_optimal import Allocation, Choice, Policy, difficulty
from ponder.strategies.spec import StrategySpec
from ponder.tasks.base import Task

DEFAULT_STRATEGIES = ("self-consistency", "weighted-majority", "best-of-n", "adaptive-consistency")


@dataclass(frozen=True)
class TuneConfig:
    dataset: str = "gsm8k-train"
    limit: int | None = None
    sample: int | None = None
    data_seed: int = 0
    n: int = 16
    probe: int = 4
    ks: Sequence[int] | None = None
    """The sample budgets a bin may get (default: the probe, doubling up to n)."""
    strategies: Sequence[str] = DEFAULT_STRATEGIES
    scorer: str = "mean-logprob"
    """The one scorer the choices may read (scored on every sample; free by default)."""
    sweep: Sequence[SamplingParams] = (SamplingParams(max_tokens=512, temperature=0.8),)
    budgets: Sequence[float] | None = None
    """Target mean tokens per question (default: from the probe's cost to N samples')."""
    max_bins: int = 3
    holdout: float = 0.3
    """The share of the training questions kept for the reusable holdout."""
    subsets: int = 16
    seed: int = 0
    out: Path = Path("runs/tune")
    bank: Path | None = None
    max_seconds: float | None = None
    concurrency: int = 1
    command: str = ""
    task: str = "math"

    def __post_init__(self) -> None:
        if not 1 <= self.probe < self.n:
            raise ConfigError(f"the probe must take 1 to n - 1 samples, got {self.probe}")
        if not 0.05 <= self.holdout <= 0.8:
            raise ConfigError(f"holdout must be a share from 0.05 to 0.8, got {self.holdout}")
        if not 1 <= self.max_bins <= 6:
            raise ConfigError(f"bins must be from 1 to 6, got {self.max_bins}")
        if not self.sweep:
            raise ConfigError("the sweep needs at least one sampling setting")
        if any(k < self.probe or k > self.n for k in self.ks or ()):
            raise ConfigError(f"every k must be between the probe ({self.probe}) and n ({self.n})")
        if any(b <= 0 for b in self.budgets or ()):
            raise ConfigError("target budgets must be positive numbers of tokens")

    def sample_budgets(self) -> list[int]:
        if self.ks:
            return sorted(set(self.ks))
        ks, k = [], self.probe
        while k < self.n:
            ks.append(k)
            k *= 2
        return [*ks, self.n]


@dataclass(frozen=True)
class Table:
    """Per configuration and question: right (0..1) and tokens decoded."""

    labels: list[tuple[str, int]]
    right: np.ndarray
    """(configurations, questions)"""
    tokens: np.ndarray
    difficulty: np.ndarray
    """(questions,)"""


@dataclass
class TuneResult:
    policy: Policy
    table: Table
    fit: np.ndarray
    holdout: np.ndarray
    thresholdout: Thresholdout
    sweep: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    summaries: list[EvalSummary] = field(default_factory=list)


def table_of(
    data: Sequence[QuestionData],
    task: Task,
    specs: Sequence[tuple[str, StrategySpec]],
    backend: Backend,
    n: int,
    probe: int,
    subset_count: int,
    seed: int,
) -> Table:
    """What every configuration does on every question, the probe in every subset."""
    lines = []
    for label, spec in specs:
        lines.append(Line(label, spec.build(backend), spec.scorer, (spec.samples or n,)))
    cells = replay(data, task, lines, n=n, subset_count=subset_count, seed=seed, fixed=probe)
    labels = [(line.label, line.ks[0]) for line in lines]
    right = np.array([cells[key].values for key in labels])
    tokens = np.array(
        [
            np.asarray(cells[key].prompt_tokens)
            - np.asarray(cells[key].cached_tokens)
            + np.asarray(cells[key].completion_tokens)
            for key in labels
        ]
    )
    hardness = np.array(
        [
            difficulty(
                candidates_of(item.samples[:probe], task.for_question(item.question.question))
            )
            for item in data
        ]
    )
    return Table(labels, right, tokens, hardness)


def edges_for(hardness: np.ndarray, bins: int) -> tuple[float, ...]:
    """Quantile edges of the difficulty on the fit questions (ties merge bins)."""
    if bins <= 1:
        return ()
    cuts = np.quantile(hardness, [i / bins for i in range(1, bins)], method="lower")
    return tuple(sorted({float(c) for c in cuts}))


def allocate(
    table: Table, rows: np.ndarray, edges: Sequence[float], budget: float
) -> tuple[list[int], float, float] | None:
    """The configuration per bin maximising the mean accuracy over `rows` (question indices)
    within a mean of `budget` tokens: exact, by enumeration (few bins, few configurations).
    None when no allocation fits."""
    places = np.searchsorted(np.asarray(edges), table.difficulty[rows], side="left")
    bins = len(edges) + 1
    weights, accuracy, cost = [], [], []
    for b in range(bins):
        members = rows[places == b]
        weights.append(len(members) / len(rows))
        accuracy.append(
            table.right[:, members].mean(axis=1) if len(members) else np.zeros(len(table.labels))
        )
        cost.append(
            table.tokens[:, members].mean(axis=1) if len(members) else np.zeros(len(table.labels))
        )
    best: tuple[list[int], float, float] | None = None
    for combo in itertools.product(range(len(table.labels)), repeat=bins):
        spend = sum(w * cost[b][c] for b, (w, c) in enumerate(zip(weights, combo, strict=True)))
        if spend > budget:
            continue
        gain = sum(w * accuracy[b][c] for b, (w, c) in enumerate(zip(weights, combo, strict=True)))
        if (
            best is None
            or gain > best[1] + 1e-12
            or (abs(gain - best[1]) <= 1e-12 and spend < best[2])
        ):
            best = (list(combo), gain, spend)
    return best


def per_question(
    table: Table, edges: Sequence[float], combo: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Right and tokens per question of a policy (its bins' choices)."""
    places = np.searchsorted(np.asarray(edges), table.difficulty, side="left")
    picks = np.asarray(combo)[places]
    columns = np.arange(table.right.shape[1])
    return table.right[picks, columns], table.tokens[picks, columns]


def default_budgets(table: Table) -> list[float]:
    """From the probe alone to every question at its deepest configuration: 5 targets."""
    low = float(table.tokens.mean(axis=1).min())
    high = float(table.tokens.mean(axis=1).max())
    return [float(x) for x in np.geomspace(max(low, 1.0), max(high, low + 1.0), 5)]


def fit_policy(
    table: Table,
    fit: np.ndarray,
    holdout: np.ndarray,
    config: TuneConfig,
    guard: Thresholdout,
) -> tuple[list[Allocation], list[dict[str, Any]], tuple[float, ...]]:
    """Per target budget, the policy the reusable holdout rates best among 1..max bins."""
    targets = sorted(config.budgets or default_budgets(table))
    candidates: list[dict[str, Any]] = []
    chosen: list[Allocation] = []
    keep_edges: tuple[float, ...] | None = None
    for bins in range(1, config.max_bins + 1):
        edges = edges_for(table.difficulty[fit], bins)
        for target in targets:
            found = allocate(table, fit, edges, target)
            if found is None:
                continue
            combo, train_acc, train_tokens = found
            right, _ = per_question(table, edges, combo)
            answer = guard.query(right[fit], right[holdout]) if not guard.exhausted else math.nan
            candidates.append({
                "bins": len(edges) + 1, "edges": edges, "budget": target, "combo": combo,
                "fit_accuracy": train_acc, "fit_tokens": train_tokens, "thresholdout": answer,
            })  # fmt: skip
    if not candidates:
        raise ConfigError(
            "no policy fits the target budgets: the probe alone costs more; raise --budgets"
        )
    # one set of bins for the whole policy: the bin count whose policies the holdout rates best
    by_bins: dict[int, list[dict[str, Any]]] = {}
    for c in candidates:
        by_bins.setdefault(c["bins"], []).append(c)
    score = {
        b: float(np.nanmean([c["thresholdout"] for c in cs])) if cs else -1.0
        for b, cs in by_bins.items()
    }
    best_bins = max(score, key=lambda b: (score[b], -b))
    for c in by_bins[best_bins]:
        keep_edges = c["edges"]
        choices = tuple(
            Choice(
                table.labels[i][0].split("[")[0],
                table.labels[i][1],
                accuracy=float(_bin_mean(table.right[i], table, fit, c["edges"], b)),
                tokens=float(_bin_mean(table.tokens[i], table, fit, c["edges"], b)),
            )
            for b, i in enumerate(c["combo"])
        )
        chosen.append(
            Allocation(
                c["budget"],
                choices,
                {
                    "fit_accuracy": c["fit_accuracy"],
                    "fit_tokens": c["fit_tokens"],
                    "holdout_accuracy_thresholdout": c["thresholdout"],
                },
            )
        )
    return chosen, candidates, keep_edges or ()


def _bin_mean(
    values: np.ndarray, table: Table, rows: np.ndarray, edges: Sequence[float], b: int
) -> float:
    places = np.searchsorted(np.asarray(edges), table.difficulty[rows], side="left")
    members = rows[places == b]
    return float(values[members].mean()) if len(members) else math.nan


def split(count: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = seeds.rng(seed, "holdout").permutation(count)
    cut = max(1, round(count * holdout))
    if count - cut < 2:
        raise DataError(f"{count} training questions are too few to keep a holdout; use more")
    return np.sort(order[cut:]), np.sort(order[:cut])


def tune(config: TuneConfig, backend: Backend) -> TuneResult:
    """Draw what is missing, fit, and write policy.json (see the module docstring)."""
    names = list(config.strategies)
    summaries, datas = [], []
    for i, sampling in enumerate(config.sweep):
        evaluation = Evaluation(
            EvalConfig(
                dataset=config.dataset,
                limit=config.limit,
                sample=config.sample,
                data_seed=config.data_seed,
                n=config.n,
                strategies=["self-consistency"],
                scorers=[config.scorer],
                sampling=sampling,
                seed=config.seed,
                out=config.out / f"setting-{i}",
                bank=config.bank or config.out / "bank.sqlite",
                new_run=True,
                max_seconds=config.max_seconds,
                concurrency=config.concurrency,
                command=config.command,
                task=config.task,
            )
        )
        if not evaluation.dataset.questions:
            raise DataError(f"the training split {config.dataset} has no questions")
        summary = evaluation.run(backend)
        if summary.meta.get("stopped"):
            raise DataError(
                f"the draw stopped ({summary.meta['stopped']}): rerun the same command to go on"
            )
        summaries.append(summary)
        datas.append(_stored(evaluation, summary, config.n))
    task = evaluation.task
    fit, holdout = split(len(datas[0]), config.holdout, config.seed)
    guard = Thresholdout(seed=config.seed)
    # the sampling setting: the reusable holdout's view of self-consistency at N
    sweep = []
    for i, data in enumerate(datas):
        right = np.array([_majority_right(item, task) for item in data])
        sweep.append({
            "setting": i, "sampling": dataclasses.asdict(config.sweep[i]),
            "fit_self_consistency": float(right[fit].mean()),
            "thresholdout": guard.query(right[fit], right[holdout]),
        })  # fmt: skip
    setting = max(range(len(sweep)), key=lambda i: (sweep[i]["thresholdout"], -i))
    data = datas[setting]
    specs = []
    for name in names:
        for k in config.sample_budgets():
            spec = StrategySpec(
                name, samples=k, scorer=config.scorer if _reads(name) else None,
                sampling=config.sweep[setting], seed=config.seed, task=config.task,
            )  # fmt: skip
            specs.append((f"{name}[{spec.scorer}]" if spec.scorer else name, spec))
    table = table_of(data, task, specs, backend, config.n, config.probe, config.subsets,
                     config.seed)  # fmt: skip
    allocations, candidates, edges = fit_policy(table, fit, holdout, config, guard)
    policy = Policy(
        model=backend.model_id, task=task.name, fingerprint=task.fingerprint(),
        dataset=summaries[setting].meta["dataset"],
        sampling=dataclasses.asdict(config.sweep[setting]), probe=config.probe, edges=edges,
        allocations=tuple(allocations), scorer=config.scorer,
        figures={"fit_questions": len(fit), "holdout_questions": len(holdout),
                 "thresholdout": guard.to_dict(), "command": config.command},
    )  # fmt: skip
    return TuneResult(policy, table, fit, holdout, guard, sweep, candidates, summaries)


def _reads(name: str) -> bool:
    from ponder.strategies.base import STRATEGIES

    return STRATEGIES.get(name).needs_scorer


def _majority_right(item: QuestionData, task: Task) -> float:
    from ponder.strategies.base import vote_table

    bound = task.for_question(item.question.question)
    votes = vote_table(candidates_of(item.samples, bound))
    return float(bool(votes) and bound.is_correct(votes[0].answer, item.question.answer))


def _stored(evaluation: Evaluation, summary: EvalSummary, n: int) -> list[QuestionData]:
    """The complete questions of the run just drawn, read back from the bank."""
    run = summary.meta["run"]
    with SampleBank(evaluation.bank) as bank:
        out = []
        for question in evaluation.dataset.questions:
            samples = bank.samples(run, question)
            task = evaluation.task.for_question(question.question)
            samples = [
                dataclasses.replace(
                    s, answer=task.extract(s.text, complete=s.finish_reason != "length")
                )
                for s in samples
                if s.idx < n
            ]
            if len(samples) == n:
                out.append(QuestionData(question, tuple(samples), {}, True))
    if not out:
        raise DataError("no training question is complete yet: rerun to finish the draw")
    return out


def write(result: TuneResult, out: Path) -> dict[str, Path]:
    """policy.json, tune.json (the figures behind it) and tune.html."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"policy": out / "policy.json", "json": out / "tune.json", "html": out / "tune.html"}
    paths["policy"].write_text(dumps(result.policy.to_dict(), indent=2), encoding="utf-8")
    details = {
        "policy": result.policy.to_dict(),
        "sweep": result.sweep,
        "candidates": result.candidates,
        "configurations": [
            {
                "strategy": label,
                "k": k,
                "fit_accuracy": float(result.table.right[i, result.fit].mean()),
                "fit_tokens": float(result.table.tokens[i, result.fit].mean()),
            }
            for i, (label, k) in enumerate(result.table.labels)
        ],
        "thresholdout": result.thresholdout.to_dict(),
    }  # fmt: skip
    paths["json"].write_text(dumps(details, indent=2), encoding="utf-8")
    paths["html"].write_text(_html(details), encoding="utf-8")
    return paths


def _html(details: Mapping[str, Any]) -> str:
    import html

    def table(rows: Sequence[Mapping[str, Any]]) -> str:
        if not rows:
            return "<p>none</p>"
        head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r.values()) + "</tr>"
            for r in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    policy = details["policy"]
    bins = [
        {"target tokens": a["budget_tokens"], "bin": b + 1, **c}
        for a in policy["allocations"]
        for b, c in enumerate(a["choices"])
    ]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>ponder tune</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 7px}</style></head><body><h1>ponder tune</h1>"
        f"<p>model {html.escape(policy['model'])} · task {html.escape(policy['task'])} · "
        f"dataset {html.escape(policy['dataset'])} · probe {policy['probe']['samples']} "
        f"samples · bin edges on 1 − agreement: {html.escape(str(policy['bins']))}</p>"
        "<h2>Per-bin choices (fit split)</h2>"
        + table(bins)
        + "<h2>Allocations</h2>"
        + table(
            [{"target tokens": a["budget_tokens"], **a["figures"]} for a in policy["allocations"]]
        )
        + "<h2>Reusable holdout (Thresholdout)</h2>"
        + table([details["thresholdout"]])
        + "<h2>Sampling sweep</h2>"
        + table(details["sweep"])
        + "<h2>Every configuration (fit split)</h2>"
        + table(details["configurations"])
        + "</body></html>"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return str(value)
