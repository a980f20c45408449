"""Backends by name: what `--backend` on the CLI and the server choose from.

Each backend class registers itself (`@BACKENDS.register("openai")`) and builds itself from a
`BackendSpec` (`backends/base.py`) with its `from_spec` classmethod. Several base URLs make a
`ReplicaPool` (`backends/pool.py`) of one backend per URL.
"""

from __future__ import annotations

from collections.abc import Sequence

from ponder.backends.base import Backend, BackendSpec
from ponder.backends.pool import ReplicaPool
from ponder.registry import Registry

BACKENDS: Registry[type[Backend]] = Registry("backend", "ponder.backends", Backend)


def load_backend(kind: str = "embedded", **options: object) -> Backend:
    """Build a backend by name, e.g. `load_backend("embedded", model="small")`;
    `base_url=[a, b, ...]` builds a pool of replicas, one backend per URL."""
    urls = options.get("base_url")
    if isinstance(urls, Sequence) and not isinstance(urls, str):
        if len(urls) > 1:
            replicas = [load_backend(kind, **{**options, "base_url": url}) for url in urls]
            limit = options.get("max_concurrency")
            return ReplicaPool(replicas, max_concurrency=limit if isinstance(limit, int) else 8)
        options = {**options, "base_url": urls[0] if urls else None}
    return BACKENDS.get(kind).from_spec(BackendSpec(**options))  # type: ignore[arg-type]
