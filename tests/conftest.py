"""Shared fixtures. Tests run against real parts: the embedded small model, real servers
on loopback, real SQLite files. The scripted backend is only for fast unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ponder.backends import Backend, load_backend


@pytest.fixture(scope="session")
def embedded_backend() -> Iterator[Backend]:
    """The real embedded small model (qwen2.5-coder-0.5b), loaded once per test session."""
    backend = load_backend("embedded", model="small")
    yield backend
    backend.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that loads the embedded model is a model test, marked or not: `-m "not model"`
    must not load it."""
    for item in items:
        if "embedded_backend" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.model)
