"""`ponder serve`: the OpenAI-compatible server (`ponder.server`) on uvicorn."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ponder.cli.common import err_console, open_backend
from ponder.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    backend: Annotated[
        str, typer.Option("--backend", "-b", help="embedded, openai or scripted (tests).")
    ] = "embedded",
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Embedded: model name or .gguf; openai: its model."),
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            help="OpenAI-compatible upstream, e.g. http://127.0.0.1:8080/v1 "
            "(implies --backend openai)."
        ),
    ] = None,
    upstream_key: Annotated[
        str | None,
        typer.Option(
            envvar="PONDER_UPSTREAM_KEY",
            show_envvar=True,
            help="Key for the upstream (falls back to OPENAI_API_KEY).",
        ),
    ] = None,
    upstream_timeout: Annotated[
        float | None,
        typer.Option(
            min=0.1, help="Seconds an upstream request may wait for its reply (default 600)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface; loopback unless told.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="PONDER_SERVER_API_KEY",
            show_envvar=True,
            help="Clients must send Authorization: Bearer <key>.",
        ),
    ] = None,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Requests worked on at once.")] = 4,
    max_queue: Annotated[int, typer.Option(min=0, help="Requests waiting; more get 429.")] = 32,
    max_n: Annotated[int, typer.Option(min=1, help="Most samples per request (else 400).")] = 64,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens per sample.")] = 4096,
    max_budget_tokens: Annotated[
        int | None,
        typer.Option(
            min=1, help="Most tokens one request may spend.", show_default="max-n x max-tokens"
        ),
    ] = None,
    request_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds before a request gets 504.")
    ] = 600.0,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Larger bodies get 413.")] = 1_000_000,
    scorer_option: Annotated[
        list[str] | None,
        typer.Option(
            help="Scorer option requests cannot set, e.g. reward-http.url=http://... "
            "(repeat for more)."
        ),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option(help="The compute-optimal policy (ponder tune) requests may use."),
    ] = None,
) -> None:
    """Serve any strategy over OpenAI's API: /v1/chat/completions, /v1/completions,
    /v1/models, /health and /metrics. Ask for a strategy in the model name
    (`self-consistency@8/<model>`) or in the body field `ponder`."""
    import asyncio
    import dataclasses

    import uvicorn

    from ponder.server.app import ServerSettings, create_app

    settings = ServerSettings(
        api_key=api_key, max_concurrency=max_concurrency, max_queue=max_queue, max_n=max_n,
        max_tokens=max_tokens, max_budget_tokens=max_budget_tokens,
        request_timeout=request_timeout, max_body_bytes=max_body_bytes,
        scorer_options=parse_scorer_options(scorer_option or []),
        strategy_options={"compute-optimal": {"policy": str(policy)}} if policy else {},
    )  # fmt: skip
    if policy is not None and not policy.is_file():
        raise ConfigError(f"the policy {policy} does not exist; give the file ponder tune wrote")
    kind = "openai" if upstream else backend
    engine = open_backend(kind, model, upstream, upstream_key, upstream_timeout)
    served = model or engine.model_id.split("@")[0]
    settings = dataclasses.replace(settings, served_model=served)
    if host not in LOOPBACK and api_key is None:
        err_console.print(
            f"warning: serving on {host} without an API key: anyone who can reach it can use "
            "it (set --api-key or PONDER_SERVER_API_KEY)",
            markup=False,
            soft_wrap=True,
        )
    err_console.print(
        f"ponder serving {engine.model_id} at http://{host}:{port}/v1"
        + (" (API key required)" if api_key else ""),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )

    async def run() -> None:
        config = uvicorn.Config(create_app(engine, settings), host=host, port=port)
        try:
            await uvicorn.Server(config).serve()
        finally:
            await engine.aclose()

    asyncio.run(run())


def parse_scorer_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """`NAME.KEY=VALUE` items by canonical scorer name; VALUE is JSON when it parses."""
    from ponder.scorers import SCORERS

    options: dict[str, dict[str, Any]] = {}
    for item in items:
        target, eq, raw = item.partition("=")
        name, dot, key = target.partition(".")
        if not (eq and dot and name and key):
            raise ConfigError(f"--scorer-option {item!r}: write NAME.KEY=VALUE")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        options.setdefault(SCORERS.canonical(name), {})[key] = value
    return options
