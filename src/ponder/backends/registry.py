"""Backends by name: what `--backend` on the CLI and the server choose from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ponder.backends.base import Backend
from ponder.registry import Registry


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """Options common to the backends; each reads what it needs and ignores None."""

    model: str | None = None
    """Embedded: a model name or a .gguf path. HTTP: the server's model name.
    Scripted: a JSON file of replies."""
    base_url: str | None = None
    api_key: str | None = None
    timeout: float | None = None
    """Seconds per request (HTTP backends)."""
    max_concurrency: int | None = None
    parameters: int | None = None
    """Parameter count for the FLOPs estimate, when the backend cannot read it."""
    context: int | None = None
    """Context window in tokens (embedded)."""


BackendFactory = Callable[[BackendSpec], Backend]

BACKENDS: Registry[BackendFactory] = Registry("backend", "ponder.backends")


def load_backend(kind: str = "embedded", **options: object) -> Backend:
    """Build a backend by name, e.g. `load_backend("embedded", model="small")`."""
    return BACKENDS.get(kind)(BackendSpec(**options))  # type: ignore[arg-type]
