"""Evaluation as a library: fill the bank, run the live strategies, replay, test, report.

    from ponder.eval import EvalConfig, Evaluation

    config = EvalConfig(dataset="gsm8k", limit=50, n=16, scorers=("mean-logprob",),
                        out=Path("runs/gsm8k"))
    evaluation = Evaluation(config)          # everything checked, no model loaded yet
    summary = evaluation.run(backend)        # or: await evaluation.arun(backend)
    print(summary.rows[0]["accuracy"], summary.paths["html"])

`ponder eval` is flags and printing over this. `Evaluation(config)` validates everything that
needs no model (the dataset, every strategy and scorer name, the options); `run` draws what
the bank is missing (resumable), runs the live strategies, replays the sample strategies at
every budget, computes intervals, paired tests and verifier statistics, and writes the
report (to `config.out`, or to runs/DATASET-LABEL when neither it nor a bank is given).
`on_question` and `on_tokens` report progress.

`run` takes a `Pool` in place of a backend to have workers elsewhere do the backend work
(`ponder.eval.distributed.RayPool`: Ray actors, each with its own backend); this process
still plans, writes the bank and reports, so the results are those of a run here.

    with RayPool(functools.partial(load_backend, "embedded", model="small"), workers=4) as pool:
        summary = Evaluation(config).run(pool)

`shards` > 1 takes every `shards`-th question from the `shard`-th on and stores them in a
bank of their own (the bank's name with `.shard-I-of-K` before its suffix) without a
report; `ponder bank merge` joins the shards' banks, and a run on the merged bank with the
same settings draws nothing and reports on every question.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.backends.base import Backend
from ponder.core import SamplingParams, TokenCallback
from ponder.errors import ConfigError, DataError
from ponder.eval import outdir
from ponder.eval.bank import RunSpec, SampleBank
from ponder.eval.collect import Collector, Plan, Progress, QuestionData, Workers
from ponder.eval.datasets import Dataset, OnBadLine, load_dataset
from ponder.eval.lines import LineRequest, Lines, build_lines
from ponder.eval.replay import SUBSETS, Cell, drop_duplicates, live_cells, replay
from ponder.eval.verifiers import Verifier, verifier
from ponder.scorers.base import SCORERS, Scorer, build_scorer, check_role
from ponder.tasks.base import TASKS, get_task

MAX_N = 10_000
"""Samples per question an evaluation may store (its replays enumerate them)."""
DEFAULT_SCORER = "mean-logprob"
REPORT_FILES = ("results.json", "results.csv", "scaling.png", "compute.png", "report.html")
"""The files of a report (besides the search trees under trees/)."""
"""Scored on every sample when no scorer is named and the backend returns logprobs."""


@dataclass(frozen=True)
class EvalConfig:
    dataset: str = "gsm8k"
    """A shipped dataset, `synthetic`, or a JSONL path."""
    limit: int | None = None
    """The first `limit` questions (after `offset`)..."""
    sample: int | None = None
    """...or `sample` of them at random, seeded by `data_seed`."""
    offset: int = 0
    question_field: str | None = None
    answer_field: str | None = None
    on_bad_line: OnBadLine = OnBadLine.stop
    steps: int = 3
    max_number: int = 100
    data_seed: int = 0
    n: int = 16
    """Samples per question: the largest budget k."""
    strategies: Sequence[str] | None = None
    """None: every strategy of kind sample."""
    scorers: Sequence[str] | None = None
    """Outcome scorers scored on every sample (None: mean-logprob where logprobs exist)."""
    process_scorers: Sequence[str] | None = None
    """Process scorers of step-level strategies (None: the outcome ones that judge steps)."""
    scorer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    live_budgets: Sequence[int] | None = None
    baseline: str | None = None
    sampling: SamplingParams = SamplingParams(max_tokens=512, temperature=0.8)
    top_logprobs: int = 0
    """Alternatives kept per token in the bank (confidence rules read them)."""
    seed: int = 0
    subsets: int = SUBSETS
    bank: Path | None = None
    """The sample bank (default: `out`/bank.sqlite)."""
    out: Path | None = None
    """Where the report goes (None with a bank: no report; None without one: the folder
    runs/DATASET-LABEL)."""
    label: str = "model"
    """What the default report folder calls the model."""
    new_run: bool = False
    max_tokens_total: int | None = None
    max_seconds: float | None = None
    concurrency: int = 1
    task: str | None = None
    """The task (None: the dataset's own, `code` for code datasets, else `math`)."""
    command: str = ""
    """The command line that asked for this, for the report."""
    shards: int = 1
    """> 1: this run does one shard of the questions (see the module's docstring)."""
    shard: int = 0
    """Which shard, from 0."""

    def __post_init__(self) -> None:
        for name, most in (
            ("n", MAX_N), ("subsets", 100_000), ("concurrency", 1_000), ("shards", 100_000),
        ):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= most:
                raise ConfigError(f"{name} must be an integer from 1 to {most:,}, got {value!r}")
        if not isinstance(self.shard, int) or not 0 <= self.shard < self.shards:
            raise ConfigError(
                f"the shard index must be from 0 to {self.shards - 1} (of {self.shards} "
                f"shards), got {self.shard!r}"
            )
        if self.seed < 0 or self.data_seed < 0:
            raise ConfigError("seeds must be non-negative integers")
        if self.live_budgets and any(k < 1 for k in self.live_budgets):
            raise ConfigError("live budgets must be positive integers")
        if not 0 <= self.top_logprobs <= 20:
            raise ConfigError(f"top_logprobs must be between 0 and 20, got {self.top_logprobs}")


@dataclass(frozen=True)
class EvalSummary:
    """What an evaluation found (`ponder eval --json` prints `to_dict()`)."""

    meta: dict[str, Any]
    rows: list[dict[str, Any]]
    """One per line and budget: accuracy, its interval, costs."""
    comparisons: list[dict[str, Any]]
    verifiers: list[dict[str, Any]]
    paths: dict[str, Path]
    """The report's files (empty without `out`)."""
    cells: Mapping[tuple[str, int], Cell] = field(default_factory=dict, repr=False)
    """Per-question values and costs of every (line, budget): for paired tests of your own
    (`stats.paired_test`); not part of `to_dict()`."""

    @property
    def notes(self) -> list[str]:
        return list(self.meta.get("notes", []))

    def to_dict(self) -> dict[str, Any]:
        return {
            "results": self.rows,
            "comparisons": self.comparisons,
            "verifiers": self.verifiers,
            "paths": {k: str(v) for k, v in self.paths.items()},
            "meta": self.meta,
        }


QuestionCallback = Callable[[QuestionData], None]


class Pool(ABC):
    """Workers that hold their own backends outside this process (a Ray cluster:
    `ponder.eval.distributed.RayPool`); `Evaluation.run` takes one in place of a backend."""

    @property
    @abstractmethod
    def backend(self) -> Backend:
        """Stands for the workers' backend here: what it is (model id, capabilities) for the
        plan to be made with. It makes no calls."""

    @abstractmethod
    def workers(
        self, request: LineRequest, concurrency: int, on_tokens: TokenCallback | None
    ) -> Workers:
        """Workers that run `request` (each builds its scorers and live strategies from it
        with `plan_parts`), `concurrency` questions each at once."""


def plan_parts(request: LineRequest, backend: Backend) -> tuple[list[Scorer], Lines]:
    """The scorers and lines of `request` built for `backend`: what an evaluation plans with,
    and what each of its workers runs, built the same way."""
    scorers = [
        build_scorer(name, backend=backend, **dict(request.scorer_options.get(name, {})))
        for name in request.scorers
    ]
    return scorers, build_lines(request, backend)


class Evaluation:
    """One evaluation; built from a config that is checked before any model is loaded."""

    def __init__(self, config: EvalConfig) -> None:
        self.config = config
        self.dataset: Dataset = load_dataset(
            config.dataset, limit=config.limit, offset=config.offset,
            question_field=config.question_field, answer_field=config.answer_field,
            on_bad_line=config.on_bad_line, seed=config.data_seed, steps=config.steps,
            max_number=config.max_number, sample=config.sample,
        )  # fmt: skip
        self.task_name = _task_name(config.task, self.dataset)
        self.task = get_task(self.task_name)
        if config.shards > 1:
            self.dataset = dataclasses.replace(
                self.dataset,
                questions=self.dataset.questions[config.shard :: config.shards],
                selection=f"{self.dataset.selection}, shard {config.shard} of {config.shards}",
            )
        self.scorer_names = [_outcome(x) for x in config.scorers or ()]
        self.process_names = [_process(x) for x in config.process_scorers or ()]
        self.request(config.sampling, self.scorer_names).specs()  # names and options
        self.out = config.out
        if config.out is None and config.bank is None:
            self.out = Path("runs") / f"{self.dataset.name}-{config.label}"
        self.bank = config.bank or self.out / "bank.sqlite"  # type: ignore[operator]
        if config.shards > 1:
            # a shard's figures are not the evaluation's: its bank is merged, then reported
            self.bank = shard_path(self.bank, config.shard, config.shards)
            self.out = None
        if self.out is not None:
            outdir.prepare(self.out, REPORT_FILES)
        _check_bank(self.bank)
        self.progress: Progress | None = None
        """What the running (or last) collection stored, for a caller that stops it."""
        self.bank_path: Path | None = None

    @property
    def skipped(self) -> tuple[str, ...]:
        """Malformed dataset lines that were skipped."""
        return self.dataset.skipped

    def request(self, sampling: SamplingParams, scorers: Sequence[str]) -> LineRequest:
        config = self.config
        process = self.process_names or [x for x in scorers if SCORERS.get(x).process]
        return LineRequest(
            strategies=config.strategies, scorers=scorers, process_scorers=process,
            n=config.n, seed=config.seed, sampling=sampling, options=config.options,
            scorer_options=config.scorer_options, live_ks=config.live_budgets,
            task=self.task_name,
        )  # fmt: skip

    def run(
        self,
        backend: Backend | Pool,
        *,
        on_question: QuestionCallback | None = None,
        on_tokens: TokenCallback | None = None,
    ) -> EvalSummary:
        return asyncio.run(self.arun(backend, on_question=on_question, on_tokens=on_tokens))

    async def arun(
        self,
        backend: Backend | Pool,
        *,
        on_question: QuestionCallback | None = None,
        on_tokens: TokenCallback | None = None,
    ) -> EvalSummary:
        """Run on `backend` here, or on a `Pool`'s workers."""
        pool: Pool | None = None
        if isinstance(backend, Pool):
            pool, backend = backend, backend.backend
        config, task = self.config, self.task
        started = time.monotonic()
        names = self.scorer_names or self.default_scorers(backend)
        sampling = dataclasses.replace(config.sampling, logprobs=backend.capabilities.logprobs)
        request = self.request(sampling, names)
        names = request.scorers_needed()
        reading = [spec.strategy_class for _, _, spec in request.specs()]
        confidences = max(
            [getattr(cls, "top_k", 0) for cls in reading if cls.reads_confidences] + [0]
        )
        top = max([SCORERS.get(x).top_logprobs for x in names] + [config.top_logprobs, confidences])
        sampling = dataclasses.replace(sampling, top_logprobs=top)
        request = dataclasses.replace(request, scorers=names, sampling=sampling)
        scorers, lines = plan_parts(request, backend)
        baseline = self._baseline(lines)
        bank_path = self.bank
        if self.out is not None:
            outdir.prepare(self.out, REPORT_FILES)
        identity = {
            "max_tokens": sampling.max_tokens, "temperature": sampling.temperature,
            "top_p": sampling.top_p, "top_k": sampling.top_k, "min_p": sampling.min_p,
            "stop": list(sampling.stop), "seed": config.seed,
        }  # fmt: skip
        spec = RunSpec(self.dataset.name, backend.model_id, task.fingerprint(), identity)
        with SampleBank(bank_path) as store:
            run = store.open_run(spec, keep_others=config.new_run)
            plan = Plan(
                run=run, questions=self.dataset.questions, n=config.n, sampling=sampling,
                seed=config.seed, scorers=scorers, live=lines.jobs,
                max_tokens_total=config.max_tokens_total, max_seconds=config.max_seconds,
                concurrency=config.concurrency, confidences=confidences,
            )  # fmt: skip
            workers = pool.workers(request, config.concurrency, on_tokens) if pool else None
            collector = Collector(
                store, backend, task, plan, on_question=on_question, on_tokens=on_tokens,
                workers=workers,
            )  # fmt: skip
            self.progress = collector.progress
            self.bank_path = bank_path
            data = await collector.run()
        progress = collector.progress
        complete = [d for d in data if d.complete]
        notes = [*lines.notes, *progress.notes]
        if progress.stopped:
            notes.append(f"stopped: {progress.stopped}; rerun the same command to continue")
        if len(complete) < len(data):
            notes.append(
                f"{len(data) - len(complete)} of {len(data)} questions are incomplete and left out"
            )
        if config.shards > 1:
            notes.append(
                f"shard {config.shard} of {config.shards}: these figures cover its "
                f"{len(data)} questions only; merge the shards' banks (ponder bank merge) and "
                "run the same command on the merged bank for the report"
            )
        meta: dict[str, Any] = {
            "command": config.command,
            "versions": versions(),
            "dataset": self.dataset.name,
            "task": self.task_name,
            "questions_chosen": self.dataset.selection,
            "question_ids": [q.id for q in self.dataset.questions],
            "questions": len(data),
            "complete_questions": len(complete),
            "n": config.n,
            "model": backend.model_id,
            "backend": backend.name,
            "parameters": backend.parameters,
            "sampling": identity,
            "scorers": [s.name for s in scorers],
            "process_scorers": list(request.process_scorers),
            "baseline": baseline,
            "subsets": config.subsets,
            "shard": [config.shard, config.shards] if config.shards > 1 else None,
            "bank": str(bank_path),
            "run": run,
            "out": str(self.out) if self.out else None,
            "generated_samples": progress.generated,
            "reused_samples": progress.reused,
            "scores_computed": progress.scored,
            "live_runs": progress.live_runs,
            "live_reused": progress.live_reused,
            "tokens_decoded_this_run": progress.spent.decoded_tokens,
            "generation_seconds": round(time.monotonic() - started, 2),
            "stopped": progress.stopped,
            "notes": notes,
        }
        summary = analyse(
            complete, task, lines, meta, config, baseline, [s.name for s in scorers], self.out
        )
        meta["seconds"] = round(time.monotonic() - started, 2)
        return summary

    def default_scorers(self, backend: Backend) -> list[str]:
        """Scored on every sample when no scorer is named: the task's own free scorer
        (code: the public tests) and mean-logprob, those the backend can feed."""
        wanted = dict.fromkeys(x for x in (self.task.default_scorer, DEFAULT_SCORER) if x)
        logprobs = backend.capabilities.logprobs
        return [x for x in wanted if logprobs or not SCORERS.get(x).needs_logprobs]

    def _baseline(self, lines: Lines) -> str:
        labels = [x.label for x in (*lines.replayed, *lines.live)]
        wanted = self.config.baseline
        if wanted is not None and wanted not in labels:
            raise ConfigError(f"baseline {wanted!r} is not measured; lines: {', '.join(labels)}")
        return wanted or next(
            (x for x in labels if x == "self-consistency"), labels[min(1, len(labels) - 1)]
        )


def analyse(
    complete: Sequence[QuestionData],
    task: Any,
    lines: Lines,
    meta: dict[str, Any],
    config: EvalConfig,
    baseline: str,
    scorer_names: Sequence[str],
    out: Path | None,
) -> EvalSummary:
    """Replay, statistics and (with a folder `out`) the report, over the complete questions."""
    from ponder.eval.report import comparisons, table, tree_name, write_report
    from ponder.result import Result
    from ponder.tracehtml import write_trace_html

    if not complete:
        return EvalSummary(meta, [], [], [], {})
    n, seed = config.n, config.seed
    cells = replay(complete, task, lines.replayed, n=n, subset_count=config.subsets, seed=seed)
    cells, _ = drop_duplicates(cells, lines.replayed)
    cells.update(live_cells(complete, lines.live))
    rows = table(cells, seed=seed)
    paired = comparisons(cells, baseline, seed=seed)
    verifiers: list[Verifier] = [verifier(complete, task, name, n) for name in scorer_names]
    paths: dict[str, Path] = {}
    if out is not None:
        trees: dict[tuple[str, int, str], str] = {}
        for item in complete:
            for (label, k), stored in item.live.items():
                if not stored.data["trace"]["nodes"]:
                    continue
                name = tree_name(label, k, item.question.id)
                target = outdir.guard(out, name)
                write_trace_html(Result.from_dict(stored.data), target)
                trees[(label, k, item.question.id)] = name
        paths = write_report(
            out, meta=meta, rows=rows, paired=paired, verifiers=verifiers,
            data=complete, task=task, n=n, trees=trees,
        )  # fmt: skip
        outdir.claim(out, [*REPORT_FILES, *trees.values()])
    return EvalSummary(meta, rows, paired, [v.to_dict() for v in verifiers], paths, cells)


def versions() -> dict[str, str]:
    """What produced a report: Python, ponder and the libraries that change samples or
    statistics."""
    import importlib.metadata
    import platform

    out = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    for name in ("ponder", "llama-cpp-python", "numpy", "scipy", "math-verify"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def shard_path(bank: Path, shard: int, shards: int) -> Path:
    """The bank of one shard: `bank.sqlite` -> `bank.shard-3-of-8.sqlite`."""
    return bank.with_name(f"{bank.stem}.shard-{shard}-of-{shards}{bank.suffix}")


def _check_bank(path: Path) -> None:
    """The bank can be opened for writing (its folder made if missing): checked before any
    model is loaded."""
    if path.is_dir():
        raise DataError(f"the sample bank {path} is a folder; give a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("r+b"):
                pass
        else:
            probe, name = tempfile.mkstemp(prefix=".ponder-probe-", dir=path.parent)
            os.close(probe)
            os.unlink(name)
    except OSError as exc:
        raise DataError(
            f"cannot write the sample bank {path} ({exc.strerror}); pass another --bank"
        ) from None


def _task_name(wanted: str | None, dataset: Dataset) -> str:
    """The task asked for, else the dataset's; a code dataset takes no other."""
    name = TASKS.canonical(wanted) if wanted is not None else dataset.task or "math"
    if dataset.task is not None and name != dataset.task:
        raise ConfigError(
            f"dataset {dataset.name} needs the {dataset.task!r} task, not {name!r}; "
            f"drop --task or pass --task {dataset.task}"
        )
    return name


def _outcome(name: str) -> str:
    canonical = SCORERS.canonical(name)
    check_role(SCORERS.get(canonical), process=False)
    return canonical


def _process(name: str) -> str:
    canonical = SCORERS.canonical(name)
    check_role(SCORERS.get(canonical), process=True)
    return canonical


def evaluate(config: EvalConfig, backend: Backend) -> EvalSummary:
    """Run `config` on `backend` (sync); see `Evaluation` for progress callbacks."""
    return Evaluation(config).run(backend)
