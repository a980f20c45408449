"""`ponder serve`: the OpenAI-compatible server on uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer


def serve_command(
    backend: Annotated[
        str, typer.Option("--backend", "-b", help="embedded or openai.")
    ] = "embedded",
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name or .gguf.")] = None,
    upstream: Annotated[
        str | None, typer.Option(help="OpenAI-compatible upstream URL (implies --backend openai).")
    ] = None,
    upstream_key: Annotated[
        str | None, typer.Option(envvar="PONDER_UPSTREAM_KEY", help="Key for the upstream.")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface (loopback unless told).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    api_key: Annotated[
        str | None, typer.Option(envvar="PONDER_SERVER_API_KEY", help="Clients must send it.")
    ] = None,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Requests worked on at once.")] = 4,
    max_queue: Annotated[int, typer.Option(min=0, help="Requests waiting; more get 429.")] = 32,
    max_n: Annotated[int, typer.Option(min=1, help="Most samples per request.")] = 64,
    request_timeout: Annotated[float, typer.Option(help="Seconds before 504.")] = 600.0,
    max_body_bytes: Annotated[int, typer.Option(help="Larger bodies get 413.")] = 1_000_000,
) -> None:
    """Serve /v1/chat/completions, /v1/completions, /v1/models, /health and /metrics."""
    import uvicorn

    from ponder.cli import err_console, make_backend
    from ponder.server.app import ServerSettings, create_app

    kind = "openai" if upstream else backend
    engine = make_backend(kind, model, upstream, upstream_key or os.environ.get("OPENAI_API_KEY"))
    settings = ServerSettings(
        api_key=api_key, max_concurrency=max_concurrency, max_queue=max_queue, max_n=max_n,
        request_timeout=request_timeout, max_body_bytes=max_body_bytes,
        served_model=model or engine.model_id.split(":")[0],
    )  # fmt: skip
    err_console.print(
        f"ponder serving {engine.model_id} on http://{host}:{port}/v1"
        + (" (API key required)" if api_key else ""),
        markup=False,
    )
    uvicorn.run(create_app(engine, settings), host=host, port=port, log_level="warning")
