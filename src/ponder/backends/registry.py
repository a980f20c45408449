"""Backends by name: what `--backend` on the CLI and the server choose from.

Each backend class registers itself (`@BACKENDS.register("openai")`) and builds itself from a
`BackendSpec` (`backends/base.py`) with its `from_spec` classmethod.
"""

from __future__ import annotations

from ponder.backends.base import Backend, BackendSpec
from ponder.registry import Registry

BACKENDS: Registry[type[Backend]] = Registry("backend", "ponder.backends", Backend)


def load_backend(kind: str = "embedded", **options: object) -> Backend:
    """Build a backend by name, e.g. `load_backend("embedded", model="small")`."""
    return BACKENDS.get(kind).from_spec(BackendSpec(**options))  # type: ignore[arg-type]
