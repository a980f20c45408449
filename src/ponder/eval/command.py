"""`ponder eval`: fill the sample bank, replay every strategy at every budget, report."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ponder.backends.base import Backend, SamplingParams
from ponder.errors import ConfigError
from ponder.eval.datasets import DATASETS, Question, load_questions

if TYPE_CHECKING:
    from ponder.eval.bank import SampleBank, SampleRow
    from ponder.eval.runner import Progress
    from ponder.strategies import SampleStrategy

SUBSETS = 64


def eval_command(
    dataset: Annotated[
        str, typer.Option(help=f"{', '.join(DATASETS)}, or a JSONL file.")
    ] = "gsm8k",
    limit: Annotated[int | None, typer.Option(help="First N questions.", min=1)] = None,
    offset: Annotated[int, typer.Option(help="Skip this many questions.", min=0)] = 0,
    n: Annotated[
        int, typer.Option("-n", help="Samples per question (largest budget).", min=1)
    ] = 16,
    strategy: Annotated[
        list[str] | None, typer.Option(help="Only these sample strategies (repeatable).")
    ] = None,
    scorer: Annotated[
        list[str] | None,
        typer.Option(
            help="Outcome scorers to store per sample (repeatable; default mean-logprob)."
        ),
    ] = None,
    question_field: Annotated[str | None, typer.Option(help="JSONL question field.")] = None,
    answer_field: Annotated[str | None, typer.Option(help="JSONL gold answer field.")] = None,
    on_bad_line: Annotated[str, typer.Option(help="stop or skip a malformed JSONL line.")] = "stop",
    steps: Annotated[int, typer.Option(help="Synthetic: operations per question.")] = 3,
    max_number: Annotated[int, typer.Option(help="Synthetic: largest starting number.")] = 100,
    max_tokens: Annotated[int, typer.Option(help="Tokens per sample.")] = 512,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.8,
    seed: Annotated[int, typer.Option(help="Base seed of the samples and the replay.")] = 0,
    subsets: Annotated[int, typer.Option(help="Random k-subsets per budget.", min=1)] = SUBSETS,
    out: Annotated[Path | None, typer.Option(help="Report folder.")] = None,
    bank: Annotated[
        Path | None, typer.Option(help="Sample bank (default OUT/bank.sqlite).")
    ] = None,
    max_tokens_total: Annotated[
        int | None, typer.Option(help="Stop generating after this many decoded tokens.")
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Stop generating after this long.")
    ] = None,
    backend: Annotated[str, typer.Option("--backend", "-b")] = "embedded",
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="PONDER_API_KEY")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout")] = None,
) -> None:
    """Measure strategies x budgets on a dataset: accuracy vs tokens, with 95% CIs."""
    from ponder.cli import console, err_console, make_backend, show_progress
    from ponder.eval.bank import SampleBank
    from ponder.eval.replay import default_replayables, false_positives, replay
    from ponder.eval.report import comparisons, table, write
    from ponder.eval.runner import template_hash
    from ponder.scorers import SCORERS, build_scorer
    from ponder.strategies import STRATEGIES, SampleStrategy
    from ponder.tasks import get_task

    if on_bad_line not in ("stop", "skip"):
        raise ConfigError("--on-bad-line takes stop or skip")
    warnings: list[str] = []
    questions = load_questions(
        dataset, limit=limit, offset=offset, question_field=question_field,
        answer_field=answer_field, on_bad_line=on_bad_line, seed=seed, steps=steps,
        max_number=max_number, warnings=warnings,
    )  # fmt: skip
    for warning in warnings:
        err_console.print(f"warning: {warning}", markup=False)
    if not questions:
        raise ConfigError(f"dataset {dataset!r} has no questions in that range")
    wanted = [STRATEGIES.canonical(s) for s in strategy or ()]
    for name in wanted:
        if not issubclass(STRATEGIES.get(name), SampleStrategy):
            raise ConfigError(
                f"strategy {name!r} is not sample-based; eval replays sample strategies"
            )
    task = get_task("math")
    started = time.monotonic()
    with make_backend(backend, model, base_url, api_key, timeout) as engine:
        names = [SCORERS.canonical(s) for s in scorer] if scorer else _default_scorers(engine)
        scorers = [build_scorer(s, backend=engine) for s in names]
        params = SamplingParams(
            max_tokens=max_tokens,
            temperature=temperature,
            logprobs=engine.capabilities.logprobs,
            top_logprobs=max([s.top_logprobs for s in scorers] + [0]),
        )
        folder = out or Path("runs") / f"{Path(dataset).stem}-{engine.model_id.split(':')[0]}"
        bank_path = bank or folder / "bank.sqlite"
        with SampleBank(bank_path) as store:
            identity = {
                "max_tokens": max_tokens, "temperature": temperature, "seed": seed,
                "top_logprobs": params.top_logprobs, "logprobs": params.logprobs,
            }  # fmt: skip
            key, others = store.open_run(
                Path(dataset).name, engine.model_id, template_hash(task), identity
            )
            if others:
                err_console.print(
                    f"note: {store.path} also holds {len(others)} run(s) of this dataset with "
                    "other models or parameters; they are kept apart and not used here",
                    markup=False,
                )
            progress = _collect(store, key, questions, engine, task, params, n, scorers, seed,
                                max_tokens_total, max_seconds, show_progress())  # fmt: skip
            samples = {q.id: store.samples(key, q.id) for q in questions}
    complete = [q for q in questions if len(samples[q.id]) >= n]
    generation_seconds = time.monotonic() - started

    def build(name: str, scorer_name: str | None) -> SampleStrategy:
        cls = STRATEGIES.get("greedy" if name == "first-sample" else name)
        chosen = _NamedScore(scorer_name) if scorer_name else None
        return cls(task=task, scorer=chosen)  # type: ignore[return-value]

    entries = default_replayables(names, build)
    if wanted:
        entries = [e for e in entries if e.strategy is None or e.strategy.name in wanted]
    cells = replay(complete, samples, task, entries, n=n, subsets=subsets, seed=seed)
    rows = table(cells, seed=seed)
    paired = comparisons(cells, "first-sample", n, seed=seed)
    verifiers = []
    for name in names:
        rate, ceiling, eligible = false_positives(complete, samples, task, name, n)
        verifiers.append({"scorer": name, "false_positive_rate": rate, "ceiling": ceiling,
                          "questions_with_right_and_wrong": eligible})  # fmt: skip
    meta = {
        "dataset": dataset, "questions": len(questions), "complete_questions": len(complete),
        "n": n, "model": engine.model_id, "params": identity, "scorers": names,
        "subsets": subsets, "bank": str(bank_path), "run_key": key, "out": str(folder),
        "generated_samples": progress.generated, "reused_samples": progress.reused,
        "stopped": progress.stopped, "seconds": round(generation_seconds, 1),
    }  # fmt: skip
    paths = write(folder, meta=meta, rows=rows, paired=paired, verifiers=verifiers,
                  questions=complete, samples=samples, task=task)  # fmt: skip
    _print(console, rows, verifiers, meta, paths)


def _default_scorers(engine: Backend) -> list[str]:
    return ["mean-logprob"] if engine.capabilities.logprobs else []


class _NamedScore:
    """Stands in for a scorer during replay: selection only reads `scores[name]`."""

    needs_logprobs = False
    top_logprobs = 0
    uses_gold = False

    def __init__(self, name: str) -> None:
        from ponder.scorers import SCORERS

        self.name = name
        self.score_range = SCORERS.get(name).score_range


def _collect(
    store: SampleBank,
    key: str,
    questions: list[Question],
    engine: Backend,
    task: Any,
    params: SamplingParams,
    n: int,
    scorers: list[Any],
    seed: int,
    max_tokens_total: int | None,
    max_seconds: float | None,
    live: bool,
) -> Progress:
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
    from rich.progress import Progress as Bar

    from ponder.cli import err_console
    from ponder.eval.runner import collect

    right = done = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
    )
    with Bar(*columns, console=err_console, transient=True, disable=not live) as bar:
        job = bar.add_task("sampling", total=len(questions))

        def show(question: Question, rows: list[SampleRow]) -> None:
            nonlocal right, done
            done += 1
            right += bool(rows) and task.is_correct(rows[0].answer, question.answer)
            bar.update(job, advance=1, description=f"sampling · first sample right {right}/{done}")

        return asyncio.run(
            collect(
                store, key, questions, engine, task, params, n, scorers, seed=seed,
                max_tokens_total=max_tokens_total, max_seconds=max_seconds, on_question=show,
            )
        )  # fmt: skip


def _print(console: Any, rows: list[dict[str, Any]], verifiers: list[dict[str, Any]],
           meta: dict[str, Any], paths: dict[str, Path]) -> None:  # fmt: skip
    from rich.table import Table

    grid = Table()
    grid.add_column("strategy", no_wrap=True)
    for column in ("k", "accuracy [95% CI]", "tokens/question", "completion", "seconds"):
        grid.add_column(column)
    for r in rows:
        acc = (
            ""
            if math.isnan(r["accuracy"])
            else f"{r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        )
        grid.add_row(r["strategy"], str(r["k"]), acc, f"{r['tokens']:.0f}",
                     f"{r['completion_tokens']:.0f}", f"{r['seconds']:.1f}")  # fmt: skip
    console.print(grid)
    for v in verifiers:
        console.print(
            f"verifier {v['scorer']}: false-positive rate {v['false_positive_rate']:.3f} on "
            f"{v['questions_with_right_and_wrong']} questions; "
            f"best-of-∞ ceiling {v['ceiling']:.3f}",
            markup=False,
        )
    console.print(
        f"{meta['complete_questions']}/{meta['questions']} questions complete; generated "
        f"{meta['generated_samples']} samples, reused {meta['reused_samples']}; "
        f"{meta['seconds']} s" + (f"; stopped: {meta['stopped']}" if meta["stopped"] else ""),
        markup=False,
    )
    console.print(
        f"report: {paths['html']}  plot: {paths['png']}  data: {paths['json']}", markup=False
    )
