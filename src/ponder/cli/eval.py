"""`ponder eval`: flags and printing over `ponder.eval.Evaluation`.

ponder eval --dataset gsm8k --limit 50 -n 16 --model small --out runs/gsm8k
ponder eval ... --ray auto --workers 4 --worker-gpus 1         # on a Ray cluster
ponder eval ... --num-shards 8 --shard-index 3                  # one shard (Slurm arrays)
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ponder import redact
from ponder.backends.base import Backend
from ponder.backends.models import DEFAULT_MODEL, find_spec
from ponder.backends.registry import load_backend
from ponder.cli.common import (
    ApiKeyOpt,
    BackendOpt,
    BaseUrlOpt,
    BeamWidthOpt,
    BudgetTokensOpt,
    MaxTokensOpt,
    ModelOpt,
    OptionsOpt,
    PolicyOpt,
    RewardUrlOpt,
    StepDelimiterOpt,
    TemperatureOpt,
    TimeoutOpt,
    backend_options,
    console,
    err_console,
    open_backend,
    parse_options,
    print_json,
    show_progress,
    warn,
)
from ponder.core import SamplingParams
from ponder.errors import ConfigError, UnknownNameError
from ponder.eval.api import EvalConfig, EvalSummary, Evaluation, Pool
from ponder.eval.collect import QuestionData
from ponder.eval.datasets import DATASETS, OnBadLine
from ponder.eval.replay import SUBSETS, candidates_of
from ponder.scorers.base import SCORERS
from ponder.strategies.base import vote_table
from ponder.strategies.spec import required_options


def eval_(
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help=f"{', '.join(DATASETS)}, or a JSONL file.")
    ] = "gsm8k",
    limit: Annotated[
        int | None, typer.Option(help="Use the first LIMIT questions (after --offset).", min=1)
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(help="Use SAMPLE questions at random (seeded by --data-seed).", min=1),
    ] = None,
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
    reward_url: RewardUrlOpt = None,
    baseline: Annotated[
        str | None,
        typer.Option(help="Line every other is compared with (default self-consistency)."),
    ] = None,
    beam_width: BeamWidthOpt = None,
    step_delimiter: StepDelimiterOpt = None,
    policy: PolicyOpt = None,
    budget_tokens: BudgetTokensOpt = None,
    option: OptionsOpt = None,
    live_budget: Annotated[
        list[int] | None,
        typer.Option(
            help="Budgets of the live strategies (repeatable; default 1, 2, 4.. N).", min=1
        ),
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
    data_seed: Annotated[
        int, typer.Option(help="Which questions --sample picks (synthetic: which are made).")
    ] = 0,
    max_tokens: MaxTokensOpt = 512,
    temperature: TemperatureOpt = 0.8,
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
    ] = SUBSETS,
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
    task: Annotated[
        str | None,
        typer.Option(help="math, math-exec, math-program, code (default: the dataset's)."),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Spread the questions over Ray actors, each with its own backend, on the "
            "cluster at ADDRESS: auto (the one running), local (a new one here), HOST:PORT "
            "or ray://HOST:PORT. Needs ponder[ray].",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Ray: actors (default: as many as the cluster fits).", min=1),
    ] = None,
    worker_cpus: Annotated[float, typer.Option(help="Ray: CPUs per actor.", min=0.0)] = 1.0,
    worker_gpus: Annotated[float, typer.Option(help="Ray: GPUs per actor.", min=0.0)] = 0.0,
    num_shards: Annotated[
        int | None,
        typer.Option(
            help="Split the questions into this many shards and do one, into a bank of its "
            "own (default SLURM_ARRAY_TASK_COUNT, else 1); merge them with `ponder bank merge`.",
            min=1,
        ),
    ] = None,
    shard_index: Annotated[
        int | None,
        typer.Option(help="Which shard, from 0 (default: the Slurm array task's).", min=0),
    ] = None,
    replica_concurrency: Annotated[
        int | None,
        typer.Option(help="Calls in flight per --base-url server (default 8).", min=1),
    ] = None,
    backend: BackendOpt = "embedded",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Measure strategies x budgets on a dataset: accuracy against compute, with 95% CIs."""
    started = time.monotonic()
    options = parse_options(option)
    flags = {
        "beam_width": beam_width,
        "step_delimiter": step_delimiter,
        "policy": str(policy) if policy else None,
        "budget_tokens": budget_tokens,
    }
    options.update({k: v for k, v in flags.items() if v is not None})
    scorer_options = _reward_options(reward_url, [*(scorer or ()), *(process_scorer or ())])
    shards, shard = _shards(num_shards, shard_index)
    config = EvalConfig(
        dataset=dataset, limit=limit, sample=sample, offset=offset, question_field=question_field,
        answer_field=answer_field, on_bad_line=on_bad_line, steps=steps,
        max_number=max_number, data_seed=data_seed, n=n, strategies=strategy or None,
        scorers=scorer or None, process_scorers=process_scorer or None,
        scorer_options=scorer_options, options=options, live_budgets=live_budget or None,
        baseline=baseline,
        sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p),
        top_logprobs=top_logprobs, seed=seed, subsets=subsets, bank=bank,
        out=out, label=_model_name(backend, model), new_run=new_run,
        max_tokens_total=max_tokens_total,
        max_seconds=max_seconds, concurrency=concurrency, task=task,
        command=redact.command(["ponder", *sys.argv[1:]]), shards=shards, shard=shard,
    )  # fmt: skip
    # everything that can be checked without a model is checked first
    evaluation = Evaluation(config)
    for skipped in evaluation.skipped:
        warn(f"warning: skipped {skipped}")
    if shards > 1:
        warn(f"shard {shard} of {shards}: {len(evaluation.dataset.questions)} questions")
    options = backend_options(model, base_url, api_key, timeout, replica_concurrency)
    if ray is not None:
        from ponder.eval.distributed import RayPool

        factory = functools.partial(load_backend, backend, **_portable(options))
        pool = RayPool(factory, workers=workers, cpus=worker_cpus, gpus=worker_gpus, address=ray)
        with pool:
            try:
                summary = _run(evaluation, pool, n)
            except KeyboardInterrupt:
                _interrupted(evaluation)
    else:
        if workers is not None:
            raise ConfigError("--workers is for --ray; here --concurrency sets the parallelism")
        with open_backend(backend, **options) as engine:
            try:
                summary = _run(evaluation, engine, n)
            except KeyboardInterrupt:
                _interrupted(evaluation)
    summary.meta["seconds"] = round(time.monotonic() - started, 2)
    if as_json:
        print_json({k: v for k, v in summary.to_dict().items() if k != "paths"})
        return
    if not summary.rows:
        warn("no question is complete yet (" + "; ".join(summary.notes or ["nothing stored"]) + ")")
        return
    _print(summary)


def _model_name(backend: str, model: str | None) -> str:
    """What the default report folder calls the model (before it is loaded)."""
    if backend == "embedded":
        try:
            return find_spec(model or DEFAULT_MODEL).name
        except UnknownNameError:
            return Path(model or "model").stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model or backend).name) or backend


def _shards(count: int | None, index: int | None) -> tuple[int, int]:
    """--num-shards and --shard-index, by default a Slurm array task's place in its array."""
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    if count is None:
        count = int(os.environ.get("SLURM_ARRAY_TASK_COUNT") or 1) if task else 1
    if index is None and count > 1:
        if not task:
            raise ConfigError(f"--num-shards {count} needs --shard-index (which shard, from 0)")
        first = int(os.environ.get("SLURM_ARRAY_TASK_MIN") or 0)
        step = int(os.environ.get("SLURM_ARRAY_TASK_STEP") or 1)
        index = (int(task) - first) // max(step, 1)
    index = index or 0
    if not 0 <= index < count:
        raise ConfigError(
            f"shard index {index} is not below the number of shards {count}: pass "
            "--shard-index and --num-shards"
        )
    return count, index


def _portable(options: dict[str, Any]) -> dict[str, Any]:
    """Backend options as a worker elsewhere reads them: a model that names a local file by
    a relative path named by its absolute path (the workers' folder is not this one)."""
    model = options.get("model")
    if model and Path(model).is_file():
        return {**options, "model": str(Path(model).resolve())}
    return options


def _interrupted(evaluation: Evaluation) -> None:
    """Ctrl-C: the calls in flight were dropped; say what this run stored, exit 130."""
    done = evaluation.progress
    stored = (
        f"this run stored {done.generated} samples, {done.scored} scores and "
        f"{done.live_runs} live results in {evaluation.bank_path}"
        if done is not None
        else "nothing was stored"
    )
    warn(f"interrupted: {stored}; rerun the same command to continue")
    raise SystemExit(130)


def _reward_options(url: str | None, names: list[str]) -> dict[str, dict[str, Any]]:
    """--reward-url for every named scorer that takes a url."""
    if url is None:
        return {}
    out = {}
    for name in names:
        canonical = SCORERS.canonical(name)
        if "url" in required_options(SCORERS.get(canonical)):
            out[canonical] = {"url": url}
    return out


def _run(evaluation: Evaluation, engine: Backend | Pool, n: int) -> EvalSummary:
    """The evaluation, with a progress bar (ETA, running accuracy) when a person watches."""
    if not show_progress():
        return evaluation.run(engine)
    task = evaluation.task
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
        job = bar.add_task("sampling", total=len(evaluation.dataset.questions))

        def describe() -> str:
            done = max(tally["questions"], 1)
            return (
                f"pass@1 {tally['pass1'] / done:.2f} · majority@{n} {tally['majority'] / done:.2f}"
                f" · {tally['tokens']:,} tokens"
            )

        def on_question(data: QuestionData) -> None:
            if data.samples:
                bound = task.for_question(data.question.question)
                right = [bound.is_correct(s.answer, data.question.answer) for s in data.samples]
                votes = vote_table(candidates_of(data.samples, bound))
                tally["questions"] += 1
                tally["pass1"] += sum(right) / len(right)
                tally["majority"] += bool(votes) and right[votes[0].members[0]]
            bar.update(job, advance=1, description=describe())

        def on_tokens(count: int) -> None:
            tally["tokens"] += count

        return evaluation.run(engine, on_question=on_question, on_tokens=on_tokens)


def _print(summary: EvalSummary) -> None:
    meta = summary.meta
    out = console
    if not out.is_terminal:  # a pipe or a file: no terminal width to wrap at
        out = Console(width=160)
    title = (
        f"{meta['dataset']} · {meta['model']} · {meta['complete_questions']} questions · "
        f"N={meta['n']}"
    )
    grid = Table(title=Text(title))
    grid.add_column("strategy", no_wrap=True)
    for column in ("k", "acc", "95% CI", "prompt", "cached", "compl.", "FLOPs", "s"):
        grid.add_column(column, justify="right", no_wrap=True)
    for r in summary.rows:
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
    out.print(grid)
    comparisons = summary.comparisons
    significant = [c for c in comparisons if c["p_holm"] < 0.05]
    if comparisons:
        out.print(
            f"{len(significant)} of {len(comparisons)} paired comparisons significant at 0.05 "
            "after Holm's correction over all of them (sign-flip test)"
            + ("; mean difference [95% CI]:" if significant else ""),
            markup=False,
            highlight=False,
        )
    for c in significant:
        out.print(
            f"  {c['strategy']}@{c['k']} vs {c['versus']}: {c['difference']:+.3f} "
            f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], Holm p={c['p_holm']:.3g} "
            f"(p={c['p']:.3g}; {c['questions_differing']} of {c['questions']} questions differ, "
            f"{c['strategy_higher']} higher / {c['versus_higher']} lower)",
            markup=False,
            highlight=False,
        )

    def rate(v: dict[str, Any], name: str) -> str:
        value = v[f"{name}_rate"]
        if math.isnan(value):
            return "– (no such sample)"
        return f"{value:.3f} [{v[f'{name}_ci_low']:.3f}, {v[f'{name}_ci_high']:.3f}]"

    for v in summary.verifiers:
        if v["judged_questions"] == 0:
            text = "judged no sample"
        else:
            n = meta["n"]
            text = (
                f"accepting P≥{v['threshold']:g}, per sample: TPR {rate(v, 'true_positive')}, "
                f"FPR {rate(v, 'false_positive')}; resample until accepted: "
                f"{v['resampling_by_k'][str(n)]:.3f} within {n} tries, "
                f"{v['resampling_limit']:.3f} with no limit; best-of-{n} by score "
                f"{v['best_of_k'][str(n)]:.3f}"
            )
        if v["unjudged_samples"]:
            text += f" ({v['unjudged_samples']} of {v['samples']} samples unjudged, left out)"
        out.print(f"verifier {v['scorer']}: {text}", markup=False, highlight=False)
    for note in meta["notes"]:
        out.print(f"note: {note}", markup=False, highlight=False)
    out.print(
        f"{meta['complete_questions']}/{meta['questions']} questions complete; generated "
        f"{meta['generated_samples']} samples, reused {meta['reused_samples']}; "
        f"{meta['live_runs']} live runs, {meta['live_reused']} reused; {meta['seconds']} s",
        markup=False,
        highlight=False,
    )
    paths = summary.paths
    where = (
        f"report: {paths['html']}  plot: {paths['png']}  data: {paths['json']}"
        if paths
        else f"bank: {meta['bank']} (no report written)"
    )
    out.print(where, markup=False, highlight=False, soft_wrap=True)
