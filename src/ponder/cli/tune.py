"""`ponder tune`: learn on a training split how to spend a budget per question.

ponder tune --dataset gsm8k-train --limit 120 -n 16 --model small --out runs/tune
ponder eval --dataset gsm8k --limit 100 -s compute-optimal --policy runs/tune/policy.json
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ponder import redact
from ponder.cli.common import (
    ApiKeyOpt,
    BackendOpt,
    BaseUrlOpt,
    MaxTokensOpt,
    ModelOpt,
    TemperatureOpt,
    TimeoutOpt,
    open_backend,
    parse_options,
    say,
)
from ponder.core import SamplingParams
from ponder.errors import ConfigError
from ponder.eval.tune import DEFAULT_STRATEGIES, TuneConfig, tune, write


def tune_(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="The training split.")] = (
        "gsm8k-train"
    ),
    limit: Annotated[int | None, typer.Option(help="The first LIMIT questions.", min=1)] = None,
    sample: Annotated[
        int | None, typer.Option(help="SAMPLE questions at random (--data-seed).", min=1)
    ] = None,
    data_seed: Annotated[int, typer.Option(help="Which questions --sample picks.", min=0)] = 0,
    n: Annotated[int, typer.Option("-n", help="Samples per question.", min=2)] = 16,
    probe: Annotated[int, typer.Option(help="Samples of the difficulty probe.", min=1)] = 4,
    k: Annotated[
        list[int] | None, typer.Option("-k", help="Sample budgets a bin may get (repeatable).")
    ] = None,
    strategy: Annotated[
        list[str] | None,
        typer.Option("--strategy", "-s", help="Strategies a bin may get (repeatable)."),
    ] = None,
    scorer: Annotated[str, typer.Option(help="The one scorer the choices may read.")] = (
        "mean-logprob"
    ),
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            help="A sampling setting to try, e.g. 'temperature=0.6,top_p=0.95' (repeatable; "
            "the default setting is always tried first)."
        ),
    ] = None,
    budget: Annotated[
        list[float] | None,
        typer.Option("--budget", help="Target mean tokens per question (repeatable).", min=1),
    ] = None,
    bins: Annotated[int, typer.Option(help="Most difficulty bins.", min=1, max=6)] = 3,
    holdout: Annotated[float, typer.Option(help="Share of the questions held out.")] = 0.3,
    max_tokens: MaxTokensOpt = 512,
    temperature: TemperatureOpt = 0.8,
    seed: Annotated[int, typer.Option(help="Seed of samples, split and subsets.", min=0)] = 0,
    out: Annotated[Path, typer.Option(help="Folder for the policy and its report.")] = Path(
        "runs/tune"
    ),
    bank: Annotated[Path | None, typer.Option(help="Sample bank (default OUT/bank.sqlite).")] = (
        None
    ),
    max_seconds: Annotated[
        float | None, typer.Option(help="Stop drawing after this many seconds.", min=0.0)
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Questions worked on at once.", min=1)] = 1,
    backend: BackendOpt = "embedded",
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Tune a compute-optimal policy on a training split: a difficulty probe, bins, and per
    bin the strategy and samples that pay, chosen honestly with a reusable holdout."""
    base = SamplingParams(max_tokens=max_tokens, temperature=temperature)
    settings = [base, *(_setting(base, text) for text in sweep or ())]
    config = TuneConfig(
        dataset=dataset, limit=limit, sample=sample, data_seed=data_seed, n=n, probe=probe,
        ks=k or None, strategies=strategy or DEFAULT_STRATEGIES, scorer=scorer,
        sweep=settings, budgets=budget or None, max_bins=bins, holdout=holdout, seed=seed,
        out=out, bank=bank, max_seconds=max_seconds, concurrency=concurrency,
        command=redact.command(["ponder", *sys.argv[1:]]),
    )  # fmt: skip
    with open_backend(backend, model, base_url, api_key, timeout) as engine:
        result = tune(config, engine)
    paths = write(result, out)
    policy = result.policy
    say(
        f"policy: {len(policy.edges) + 1} bin(s) by the agreement of a {policy.probe}-sample "
        f"probe, {len(policy.allocations)} target budget(s); "
        f"{len(result.fit)} fit and {len(result.holdout)} held-out questions"
    )
    for allocation in policy.allocations:
        choices = ", ".join(f"{c.strategy}@{c.k}" for c in allocation.choices)
        honest = allocation.figures.get("holdout_accuracy_thresholdout")
        say(
            f"  {allocation.budget:,.0f} tokens: {choices}; fit accuracy "
            f"{allocation.figures['fit_accuracy']:.3f} at {allocation.figures['fit_tokens']:,.0f} "
            f"tokens; reusable holdout: {honest:.3f}"
        )
    guard = result.thresholdout.to_dict()
    say(
        f"reusable holdout: {guard['queries']} queries, consulted {guard['holdout_consulted']} "
        f"times, budget left {guard['budget_left']} ({guard['guarantee']})"
    )
    say(f"policy: {paths['policy']}  report: {paths['html']}")


def _setting(base: SamplingParams, text: str) -> SamplingParams:
    """A sweep setting: `key=value` pairs over the base sampling."""
    options = parse_options([pair for pair in text.split(",") if pair.strip()])
    known = {"temperature", "top_p", "top_k", "min_p", "max_tokens"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"--sweep sets {', '.join(sorted(known))}; not {', '.join(unknown)}")
    return SamplingParams(**{**{f: getattr(base, f) for f in known}, **options})
