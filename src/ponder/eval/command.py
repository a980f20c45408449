"""`ponder eval`: fill the sample bank, replay every strategy at every budget, report.

    ponder eval --dataset gsm8k --limit 50 -n 16 --model small --out runs/gsm8k

Only what `--help` needs is imported at module level; the work is imported lazily.
"""

from __future__ import annotations

import math
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ponder.eval.datasets import DATASETS, OnBadLine

if TYPE_CHECKING:
    from ponder.backends.base import Backend
    from ponder.eval.replay import Verifier
    from ponder.eval.runner import Collector, QuestionData
    from ponder.scorers.base import Scorer
    from ponder.tasks.base import Task

DEFAULT_SUBSETS = 64


def eval_command(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help=f"{', '.join(DATASETS)}, or a JSONL file.")
    ] = "gsm8k",
    limit: Annotated[int | None, typer.Option(help="Use this many questions.", min=1)] = None,
    offset: Annotated[int, typer.Option(help="Skip this many questions first.", min=0)] = 0,
    n: Annotated[
        int, typer.Option("-n", help="Samples per question: the largest budget k.", min=1)
    ] = 16,
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            "--strategy",
            "-s",
            help="Measure only these (repeatable; default: every sample-based strategy). "
            "Step-level ones (beam-search...) run live per question.",
        ),
    ] = None,
    scorer: Annotated[
        list[str] | None,
        typer.Option(
            help="Outcome scorer scored on every sample (repeatable; default "
            "mean-logprob). Add self-eval to let the model judge its answers."
        ),
    ] = None,
    process_scorer: Annotated[
        list[str] | None,
        typer.Option(
            help="Process scorer of step-level strategies (repeatable; default: the "
            "--scorer ones that judge steps)."
        ),
    ] = None,
    reward_url: Annotated[
        str | None, typer.Option(help="Reward model URL for reward-http / prm-http.")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="Line every other is compared with (default self-consistency)."),
    ] = None,
    beam_width: Annotated[int | None, typer.Option(help="Beam search / DVTS width M.")] = None,
    step_delimiter: Annotated[
        str | None, typer.Option(help="Where a reasoning step ends (step-level strategies).")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Strategy option key=value (repeatable)."),
    ] = None,
    live_budget: Annotated[
        list[int] | None,
        typer.Option(help="Budgets of the live strategies (repeatable; default 1, 2, 4.. N)."),
    ] = None,
    question_field: Annotated[
        str | None, typer.Option(help="JSONL: the question's field (default question).")
    ] = None,
    answer_field: Annotated[
        str | None, typer.Option(help="JSONL: the gold answer's field (default answer).")
    ] = None,
    on_bad_line: Annotated[
        OnBadLine, typer.Option(help="JSONL: stop at a malformed line, or skip it.")
    ] = OnBadLine.stop,
    steps: Annotated[int, typer.Option(help="Synthetic: operations per question.", min=1)] = 3,
    max_number: Annotated[int, typer.Option(help="Synthetic: size of the numbers.", min=4)] = 100,
    data_seed: Annotated[int, typer.Option(help="Synthetic: which questions.")] = 0,
    max_tokens: Annotated[int, typer.Option(help="Tokens per sample.", min=1)] = 512,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.", min=0.0)] = 0.8,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling.")] = 1.0,
    top_logprobs: Annotated[
        int,
        typer.Option(
            help="Alternatives kept per token in the bank (confidence rules read them).",
            min=0,
            max=20,
        ),
    ] = 0,
    seed: Annotated[int, typer.Option(help="Base seed of samples, subsets and bootstraps.")] = 0,
    subsets: Annotated[
        int, typer.Option(help="Random k-subsets per question and budget.", min=1)
    ] = DEFAULT_SUBSETS,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the report (default runs/DATASET-MODEL).")
    ] = None,
    bank: Annotated[
        Path | None, typer.Option(help="Sample bank (default OUT/bank.sqlite).")
    ] = None,
    new_run: Annotated[
        bool, typer.Option(help="Keep runs with other settings in the same bank.")
    ] = False,
    max_tokens_total: Annotated[
        int | None, typer.Option(help="Stop after this many decoded tokens.", min=1)
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Stop after this many seconds.", min=0.0)
    ] = None,
    concurrency: Annotated[
        int, typer.Option(help="Questions worked on at once (the backend batches them).", min=1)
    ] = 1,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the results as JSON instead of tables.")
    ] = False,
    backend: Annotated[
        str, typer.Option("--backend", "-b", help="embedded, openai or scripted.")
    ] = "embedded",
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model name, .gguf path, or replies.")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="OpenAI-compatible server.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="PONDER_API_KEY", help="Key for it.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds per HTTP request.", min=0.1)
    ] = None,
) -> None:
    """Measure strategies x budgets on a dataset: accuracy against compute, with 95% CIs."""
    import dataclasses

    from ponder.backends.base import SamplingParams
    from ponder.cli import console, err_console, make_backend, parse_options, show_progress
    from ponder.errors import ConfigError
    from ponder.eval.bank import RunSpec, SampleBank
    from ponder.eval.datasets import load_dataset
    from ponder.eval.replay import build_lines
    from ponder.eval.runner import Collector, Plan, template_hash
    from ponder.scorers import SCORERS
    from ponder.strategies import STRATEGIES
    from ponder.tasks import get_task

    started = time.monotonic()
    # everything that can be checked without a model is checked first
    data_set = load_dataset(
        dataset, limit=limit, offset=offset, question_field=question_field,
        answer_field=answer_field, on_bad_line=on_bad_line, seed=data_seed, steps=steps,
        max_number=max_number,
    )  # fmt: skip
    for skipped in data_set.skipped:
        err_console.print(f"warning: skipped {skipped}", markup=False, highlight=False)
    names = [STRATEGIES.canonical(s) for s in strategy] if strategy else None
    scorer_names = [SCORERS.canonical(s) for s in scorer or ()]
    process_names = [SCORERS.canonical(s) for s in process_scorer or ()]
    for name in (*scorer_names, *process_names):
        if SCORERS.get(name).uses_gold:
            raise ConfigError(
                f"scorer {name!r} knows the gold answer; no strategy may select by it. "
                "pass@k is already the oracle line"
            )
    for name in scorer_names:
        if not SCORERS.get(name).outcome:
            raise ConfigError(f"scorer {name!r} only judges steps; pass it as --process-scorer")
    for name in process_names:
        if not SCORERS.get(name).process:
            raise ConfigError(f"scorer {name!r} cannot judge steps; pass it as --scorer")
    options = parse_options(option)
    flags = {"beam_width": beam_width, "step_delimiter": step_delimiter}
    options.update({k: v for k, v in flags.items() if v is not None})
    if live_budget and any(k < 1 for k in live_budget):
        raise ConfigError("--live-budget takes positive integers")
    task = get_task("math")
    sampling = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p)

    with make_backend(backend, model, base_url, api_key, timeout) as engine:
        if not scorer_names and engine.capabilities.logprobs:
            scorer_names = ["mean-logprob"]
        scorers = [_scorer(x, engine, reward_url) for x in scorer_names]
        process = (
            [_scorer(x, engine, reward_url) for x in process_names]
            if process_names
            else [s for s in scorers if s.process]
        )
        sampling = dataclasses.replace(
            sampling,
            logprobs=engine.capabilities.logprobs,
            top_logprobs=max([s.top_logprobs for s in scorers] + [top_logprobs]),
        )
        lines = build_lines(
            names, task=task, sampling=sampling, scorers=scorers, process_scorers=process,
            n=n, seed=seed, options=options, live_ks=live_budget,
        )  # fmt: skip
        labels = [x.label for x in (*lines.replayed, *lines.live)]
        if baseline is not None and baseline not in labels:
            raise ConfigError(
                f"--baseline {baseline!r} is not measured; lines: {', '.join(labels)}"
            )
        chosen_baseline = baseline or next(
            (x for x in labels if x == "self-consistency"), labels[min(1, len(labels) - 1)]
        )
        folder = out or Path("runs") / f"{data_set.name}-{engine.model_id.split(':')[0]}"
        bank_path = bank or folder / "bank.sqlite"
        identity = {
            "max_tokens": sampling.max_tokens, "temperature": sampling.temperature,
            "top_p": sampling.top_p, "top_k": sampling.top_k, "min_p": sampling.min_p,
            "stop": list(sampling.stop), "seed": seed,
        }  # fmt: skip
        spec = RunSpec(data_set.name, engine.model_id, template_hash(task), identity)
        with SampleBank(bank_path) as store:
            run = store.open_run(spec, keep_others=new_run)
            plan = Plan(
                run=run, questions=data_set.questions, n=n, sampling=sampling, seed=seed,
                scorers=scorers, live=lines.jobs, max_tokens_total=max_tokens_total,
                max_seconds=max_seconds, concurrency=concurrency,
            )  # fmt: skip
            collector = Collector(store, engine, task, plan)
            data = _collect(collector, task, n, show_progress())
        generation_seconds = time.monotonic() - started

    progress = collector.progress
    complete = [d for d in data if d.complete]
    notes = [*progress.notes]
    if progress.stopped:
        notes.append(f"stopped: {progress.stopped}; rerun the same command to continue")
    if len(complete) < len(data):
        notes.append(
            f"{len(data) - len(complete)} of {len(data)} questions are incomplete and left out"
        )
    meta: dict[str, Any] = {
        "command": shlex.join(["ponder", *sys.argv[1:]]),
        "dataset": data_set.name,
        "questions": len(data),
        "complete_questions": len(complete),
        "n": n,
        "model": engine.model_id,
        "backend": backend,
        "parameters": engine.parameters,
        "sampling": identity,
        "scorers": [s.name for s in scorers],
        "process_scorers": [s.name for s in process],
        "baseline": chosen_baseline,
        "subsets": subsets,
        "bank": str(bank_path),
        "run": run,
        "out": str(folder),
        "generated_samples": progress.generated,
        "reused_samples": progress.reused,
        "scores_computed": progress.scored,
        "live_runs": progress.live_runs,
        "live_reused": progress.live_reused,
        "tokens_decoded_this_run": progress.spent.decoded_tokens,
        "generation_seconds": round(generation_seconds, 2),
        "stopped": progress.stopped,
        "notes": notes,
    }
    if not complete:
        err_console.print(
            "no question is complete yet (" + "; ".join(notes or ["nothing stored"]) + ")",
            markup=False,
        )
        return
    summary = _analyse(
        folder, meta, complete, task, lines, n, subsets, seed, chosen_baseline,
        [s.name for s in scorers], collector.unusable,
    )  # fmt: skip
    meta["seconds"] = round(time.monotonic() - started, 2)
    if as_json:
        from ponder.cli import print_json
        from ponder.eval.report import _clean

        print_json(_clean({k: v for k, v in summary.items() if k != "paths"} | {"meta": meta}))
        return
    _print(console, summary, meta)


def _scorer(name: str, engine: Backend, reward_url: str | None) -> Scorer:
    import inspect

    from ponder.scorers import SCORERS, build_scorer

    accepted = inspect.signature(SCORERS.get(name).__init__).parameters
    extra = {"url": reward_url} if reward_url and "url" in accepted else {}
    return build_scorer(name, backend=engine, **extra)


def _collect(collector: Collector, task: Task, n: int, live: bool) -> list[QuestionData]:
    """Run the collector, with a progress bar (ETA, running accuracy) when a person watches."""
    import asyncio

    if not live:
        return asyncio.run(collector.run())
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ponder.cli import err_console

    tally = {"questions": 0, "pass1": 0.0, "majority": 0, "tokens": 0}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        job = bar.add_task("sampling", total=len(collector.plan.questions))

        def describe() -> str:
            done = max(tally["questions"], 1)
            return (
                f"pass@1 {tally['pass1'] / done:.2f} · majority@{n} {tally['majority'] / done:.2f}"
                f" · {tally['tokens']:,} tokens"
            )

        def on_question(data: QuestionData) -> None:
            if data.samples:
                right = [task.is_correct(s.answer, data.question.answer) for s in data.samples]
                labels = task.cluster([s.answer for s in data.samples])
                counts: dict[int, int] = {}
                for label in labels:
                    if label is not None:
                        counts[label] = counts.get(label, 0) + 1
                top = max(counts, key=lambda x: (counts[x], -labels.index(x)), default=None)
                tally["questions"] += 1
                tally["pass1"] += sum(right) / len(right)
                tally["majority"] += top is not None and right[labels.index(top)]
            bar.update(job, advance=1, description=describe())

        def on_tokens(count: int) -> None:
            tally["tokens"] += count

        collector.on_question = on_question
        collector.on_tokens = on_tokens
        return asyncio.run(collector.run())


def _analyse(
    folder: Path,
    meta: dict[str, Any],
    complete: list[QuestionData],
    task: Task,
    lines: Any,
    n: int,
    subsets: int,
    seed: int,
    baseline: str,
    scorer_names: list[str],
    unusable: set[tuple[str, int]],
) -> dict[str, Any]:
    from ponder.eval.bank import result_from_dict
    from ponder.eval.replay import drop_duplicates, live_cells, replay, verifier
    from ponder.eval.report import comparisons, table, tree_name, write_report
    from ponder.tracehtml import write_trace_html

    cells = replay(complete, task, lines.replayed, n=n, subset_count=subsets, seed=seed)
    cells, _ = drop_duplicates(cells, lines.replayed)
    cells.update(live_cells(complete, lines.live))
    rows = table(cells, seed=seed)
    paired = comparisons(cells, baseline, seed=seed)
    verifiers: list[Verifier] = [verifier(complete, task, name, n) for name in scorer_names]
    trees: dict[tuple[str, int, str], str] = {}
    for item in complete:
        for (label, k), stored in item.live.items():
            if (label, k) in unusable or not stored.data["trace"]["nodes"]:
                continue
            name = tree_name(label, k, item.question.id)
            write_trace_html(result_from_dict(stored.data), folder / name)
            trees[(label, k, item.question.id)] = name
    paths = write_report(
        folder, meta=meta, rows=rows, paired=paired, verifiers=verifiers, data=complete,
        task=task, n=n, trees=trees,
    )  # fmt: skip
    return {
        "results": rows,
        "comparisons": paired,
        "verifiers": [v.to_dict() for v in verifiers],
        "paths": paths,
    }


def _print(console: Any, summary: dict[str, Any], meta: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if not console.is_terminal:  # a pipe or a file: no terminal width to wrap at
        console = Console(width=160)
    title = (
        f"{meta['dataset']} · {meta['model']} · {meta['complete_questions']} questions · "
        f"N={meta['n']}"
    )
    grid = Table(title=Text(title))
    grid.add_column("strategy", no_wrap=True)
    for column in ("k", "acc", "95% CI", "prompt", "cached", "compl.", "FLOPs", "s"):
        grid.add_column(column, justify="right", no_wrap=True)
    for r in summary["results"]:
        nan = math.isnan(r["accuracy"])
        grid.add_row(
            Text(r["strategy"] + (" (live)" if r["live"] else "")),  # "[scorer]" is no markup
            str(r["k"]),
            "–" if nan else f"{r['accuracy']:.3f}",
            "–" if nan else f"{r['ci_low']:.2f}–{r['ci_high']:.2f}",
            f"{r['prompt_tokens']:.0f}",
            f"{r['cached_prompt_tokens']:.0f}",
            f"{r['completion_tokens']:.0f}",
            f"{r['flops']:.2g}",
            f"{r['seconds']:.1f}",
        )
    console.print(grid)
    for c in summary["comparisons"]:
        if c["p_bootstrap"] < 0.05 or (c["p_mcnemar"] is not None and c["p_mcnemar"] < 0.05):
            mcnemar = "" if c["p_mcnemar"] is None else f", McNemar p={c['p_mcnemar']:.3g}"
            console.print(
                f"{c['strategy']}@{c['k']} vs {c['versus']}: {c['difference']:+.3f} "
                f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], bootstrap p={c['p_bootstrap']:.3g}"
                f"{mcnemar}",
                markup=False,
                highlight=False,
            )
    for v in summary["verifiers"]:
        rate = v["false_positive_rate"]
        if rate is None or math.isnan(rate):
            text = "no question had both right and wrong samples"
        else:
            text = (
                f"false-positive rate {rate:.3f} on {v['questions_with_right_and_wrong']} "
                f"questions; best-of-k ceiling as k→∞ {v['ceiling_limit']:.3f}"
            )
        if v["unjudged_samples"]:
            text += f" ({v['unjudged_samples']} of {v['samples']} samples could not be judged)"
        console.print(f"verifier {v['scorer']}: {text}", markup=False, highlight=False)
    for note in meta["notes"]:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(
        f"{meta['complete_questions']}/{meta['questions']} questions complete; generated "
        f"{meta['generated_samples']} samples, reused {meta['reused_samples']}; "
        f"{meta['live_runs']} live runs, {meta['live_reused']} reused; {meta['seconds']} s",
        markup=False,
        highlight=False,
    )
    paths = summary["paths"]
    console.print(
        f"report: {paths['html']}  plot: {paths['png']}  data: {paths['json']}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
