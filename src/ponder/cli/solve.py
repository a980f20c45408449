"""`ponder solve`: answer one question with a strategy and show why that answer won."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ponder.backends.base import Backend
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
    console,
    err_console,
    open_backend,
    parse_options,
    print_json,
    say,
    show_progress,
)
from ponder.core import SamplingParams, check_text
from ponder.errors import ConfigError
from ponder.result import Result
from ponder.strategies.base import Kind, Strategy
from ponder.strategies.spec import StrategySpec


def solve(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", help="See `ponder strategies`.")
    ] = "self-consistency",
    n: Annotated[
        int | None, typer.Option("-n", help="Samples (beams, particles) to spend.", min=1)
    ] = None,
    scorer: Annotated[
        str | None,
        typer.Option(help="Scorer (default: the task's free one where a strategy needs one)."),
    ] = None,
    process_scorer: Annotated[
        str | None, typer.Option(help="Process scorer for step-level search.")
    ] = None,
    reward_url: RewardUrlOpt = None,
    token_budget: Annotated[
        int | None, typer.Option(help="Most tokens the model may decode for this question.")
    ] = None,
    max_tokens: MaxTokensOpt = 512,
    temperature: TemperatureOpt = 0.8,
    seed: Annotated[int, typer.Option(help="Same seed, same result.")] = 0,
    beam_width: BeamWidthOpt = None,
    particles: Annotated[int | None, typer.Option(help="Particle filtering: = -n.")] = None,
    step_delimiter: StepDelimiterOpt = None,
    policy: PolicyOpt = None,
    budget_tokens: BudgetTokensOpt = None,
    option: OptionsOpt = None,
    task: Annotated[
        str,
        typer.Option(help="math, math-exec, math-program, or code (QUESTION: a Python stub)."),
    ] = "math",
    trace_html: Annotated[
        str | None, typer.Option(help="Write the search tree (step-level strategies) here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    backend: BackendOpt = "embedded",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Answer QUESTION by spending a budget with a strategy; print the answer and its cost."""
    if not question.strip():
        raise ConfigError("the question is empty: give some text")
    check_text(question, "the question")
    options = parse_options(option)
    flags = {
        "beam_width": beam_width,
        "step_delimiter": step_delimiter,
        "policy": str(policy) if policy else None,
        "budget_tokens": budget_tokens,
    }
    options.update({k: v for k, v in flags.items() if v is not None})
    if particles is not None and n is not None and particles != n:
        raise ConfigError(f"--particles {particles} and -n {n} disagree: give one of them")
    if scorer and process_scorer:
        raise ConfigError("give --scorer or --process-scorer, not both")
    spec = StrategySpec(
        strategy,
        samples=particles if particles is not None else n,
        tokens=token_budget,
        scorer=process_scorer or scorer,
        scorer_options={"url": reward_url} if reward_url else {},
        options=options,
        sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature),
        seed=seed,
        task=task,
    )
    if process_scorer and spec.strategy_class.kind is not Kind.STEP:
        raise ConfigError(
            f"--process-scorer is for step-level strategies; {spec.strategy!r} judges whole "
            "answers: use --scorer"
        )
    with open_backend(backend, model, base_url, api_key, timeout) as engine:
        plan = spec.build(engine)
        result = _run(plan, question, engine)
    if trace_html:
        from ponder.tracehtml import write_trace_html

        write_trace_html(result, trace_html)
    if as_json:
        print_json({**result.to_dict(), "model": engine.model_id})
        return
    if spec.defaulted_scorer:
        say(f"scorer: {spec.scorer} (the {spec.task} task's default; choose one with --scorer)")
    _print_result(result, engine.model_id)


def _run(plan: Strategy, question: str, engine: Backend) -> Result:
    if not show_progress():
        return plan.run(question, engine)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:.0f} tokens"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(f"{plan.name} sampling", total=None)
        return plan.run(question, engine, on_tokens=lambda k: progress.advance(task, k))


def _print_result(result: Result, model_id: str) -> None:
    if result.text is not None:
        console.rule(f"chosen sample #{result.chosen}", style="dim")
        say(result.text.strip())
        console.rule(style="dim")
    if result.trace.votes:
        table = Table("answer", "votes", "weight", "samples", title="vote table")
        for vote in result.trace.votes:
            members = ", ".join(str(i) for i in vote.members[:12])
            more = f" (+{len(vote.members) - 12})" if len(vote.members) > 12 else ""
            table.add_row(vote.answer, str(vote.count), f"{vote.weight:.4g}", members + more)
        console.print(table)
    abstained = sum(c.answer is None for c in result.candidates)
    if abstained:
        say(f"{abstained} of {len(result.candidates)} samples gave no answer")
    for note in result.trace.notes:
        say(f"note: {note}")
    if result.trace.stop:
        say(f"stopped early: {result.trace.stop}")
    say(f"decision: {result.trace.decision}")
    u = result.usage
    say(
        f"{model_id}: {u.prompt_tokens} prompt tokens ({u.cached_prompt_tokens} cached), "
        f"{u.completion_tokens} completion tokens, {u.calls} calls, {result.seconds:.1f} s"
    )
    say(f"answer: {result.answer}", style="bold")
