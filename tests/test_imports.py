"""The import graph is one-way: no module imports one that imports it back, nothing imports
the CLI, and every module imports on its own in a fresh interpreter.

The graph counts every import of a ponder module written in the source, at the top of a
module or inside a function, type-checking imports included: a lazy import is still a
dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ponder

SOURCE = Path(ponder.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolved against this module's package
                    head = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*head, base]).strip(".")
                # `from a import b` depends on a.b when b is a module, else on a itself (a
                # parent package is imported first either way, as for every import)
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("ponder"):
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = _graph()
    assert len(graph) > 40
    assert _cycles(graph) == []


def test_nothing_imports_the_cli() -> None:
    graph = _graph()
    users = sorted(
        name
        for name, targets in graph.items()
        if not name.startswith("ponder.cli") and any(t.startswith("ponder.cli") for t in targets)
    )
    assert users == []


def test_data_flows_one_way() -> None:
    """Core types and backends never import strategies, eval or the server; strategies never
    import eval or the server."""
    graph = _graph()
    below = {
        "ponder.core": ("ponder.backends", "ponder.strategies", "ponder.eval", "ponder.server"),
        "ponder.backends": ("ponder.strategies", "ponder.scorers", "ponder.eval", "ponder.server"),
        "ponder.tasks": ("ponder.strategies", "ponder.eval", "ponder.server"),
        "ponder.scorers": ("ponder.strategies", "ponder.eval", "ponder.server"),
        "ponder.strategies": ("ponder.eval", "ponder.server"),
        "ponder.eval": ("ponder.server",),
    }
    wrong = [
        (name, target)
        for name, targets in graph.items()
        for layer, forbidden in below.items()
        if name == layer or name.startswith(layer + ".")
        for target in targets
        if target.startswith(forbidden)
    ]
    assert wrong == []


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    """In name order and in reverse order, so no module depends on another having been
    imported first."""
    names = sorted(n for n in _modules() if not n.endswith("__main__"))
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    for order in (names, names[::-1]):
        done = subprocess.run(
            [sys.executable, "-c", code, *order], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-1500:]
