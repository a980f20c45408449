"""Backends by name: what `--backend` on the CLI and the server choose from.

Each backend class registers itself (`@BACKENDS.register("openai")`) and builds itself from a
`BackendSpec` with its `from_spec` classmethod.
"""

from __future__ import annotations

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


BACKENDS: Registry[type[Backend]] = Registry("backend", "ponder.backends", Backend)


def load_backend(kind: str = "embedded", **options: object) -> Backend:
    """Build a backend by name, e.g. `load_backend("embedded", model="small")`."""
    return BACKENDS.get(kind).from_spec(BackendSpec(**options))  # type: ignore[arg-type]
