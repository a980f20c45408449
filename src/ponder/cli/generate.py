"""`ponder generate`: raw samples of one prompt and what they cost."""

from __future__ import annotations

from typing import Annotated

import typer

from ponder.cli.common import (
    ApiKeyOpt,
    BackendOpt,
    BaseUrlOpt,
    ModelOpt,
    TimeoutOpt,
    console,
    open_backend,
    print_json,
    say,
)
from ponder.core import SamplingParams, check_text
from ponder.errors import ConfigError


def generate(
    prompt: Annotated[str, typer.Argument(help="The user message (chat template applied).")],
    n: Annotated[int, typer.Option("-n", help="Number of samples.", min=1)] = 1,
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
    check_text(prompt, "the prompt")
    messages = prompt if raw else [{"role": "user", "content": prompt}]
    with open_backend(backend, model, base_url, api_key, timeout) as engine:
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
        say(c.text)
    u = result.usage
    console.rule()
    say(
        f"{engine.model_id}: {u.prompt_tokens} prompt tokens ({u.cached_prompt_tokens} cached), "
        f"{u.completion_tokens} completion tokens, {u.seconds:.2f} s, {u.flops:.3g} FLOPs"
    )
