"""What the commands share: the consoles, the backend options, `key=value` options, JSON
output and progress bars. Nothing outside `ponder.cli` imports this."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ponder.backends.base import Backend
from ponder.backends.registry import load_backend
from ponder.errors import ConfigError, DataError
from ponder.serialize import dumps

console = Console()
err_console = Console(stderr=True)

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
    list[str] | None,
    typer.Option(
        "--base-url",
        help="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1; repeat it for replicas "
        "of one model (requests are spread over them), or give @FILE, one URL a line.",
    ),
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
    float | None,
    typer.Option(
        "--timeout",
        help="Seconds an HTTP request may wait for its reply (queue included; default 600).",
        min=0.1,
    ),
]
OptionsOpt = Annotated[
    list[str] | None,
    typer.Option("--option", "-o", help="Strategy option key=value (repeatable)."),
]
# options that solve and eval share, spelled once
MaxTokensOpt = Annotated[int, typer.Option(help="Tokens per sample.", min=1)]
TemperatureOpt = Annotated[float, typer.Option(help="Sampling temperature.", min=0.0)]
RewardUrlOpt = Annotated[
    str | None, typer.Option(help="URL of the reward model for reward-http / prm-http.")
]
BeamWidthOpt = Annotated[int | None, typer.Option(help="Beam search / DVTS width M.", min=1)]
StepDelimiterOpt = Annotated[
    str | None,
    typer.Option(help="Where a reasoning step ends (step-level search; default a blank line)."),
]
PolicyOpt = Annotated[
    Path | None, typer.Option(help="compute-optimal: the policy ponder tune wrote.")
]
BudgetTokensOpt = Annotated[
    int | None,
    typer.Option(help="compute-optimal: the mean tokens per question to aim at.", min=1),
]


def open_backend(
    backend: str,
    model: str | None,
    base_url: str | Sequence[str] | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    max_concurrency: int | None = None,
) -> Backend:
    """The backend the options describe (a pool of replicas for several base URLs)."""
    options = backend_options(model, base_url, api_key, timeout, max_concurrency)
    return load_backend(backend, **options)


def backend_options(
    model: str | None,
    base_url: str | Sequence[str] | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    max_concurrency: int | None = None,
) -> dict[str, Any]:
    """`load_backend`'s options from the command line's."""
    urls = base_urls([base_url] if isinstance(base_url, str) else base_url or [])
    return {
        "model": model,
        "base_url": urls if len(urls) > 1 else (urls[0] if urls else None),
        "api_key": api_key,
        "timeout": timeout,
        "max_concurrency": max_concurrency,
    }


def base_urls(values: Sequence[str]) -> list[str]:
    """`--base-url` values, each `@FILE` read as one URL a line (blank lines and `#`
    comments skipped), in order, each once."""
    urls: list[str] = []
    for value in values:
        if not value.startswith("@"):
            urls.append(value.strip())
            continue
        try:
            text = Path(value[1:]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read the URLs in {value[1:]} ({exc})") from None
        found = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        if not any(found):
            raise DataError(f"{value[1:]} holds no URL (one a line)")
        urls += [url for url in found if url]
    return list(dict.fromkeys(urls))


def show_progress() -> bool:
    """Progress bars only where a person watches."""
    return sys.stderr.isatty() and sys.stdout.isatty()


def print_json(data: Any) -> None:
    sys.stdout.write(dumps(data, indent=2) + "\n")


def say(text: str, **style: Any) -> None:
    """A line of plain text: no rich markup read into it, never cut at the console's width
    (a pipe or a narrow terminal must get whole lines)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True, **style)


def warn(text: str) -> None:
    err_console.print(text, markup=False, highlight=False, soft_wrap=True)


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
