"""A small typed registry: one per kind of plug-in (strategies, scorers, backends, tasks).

Entries register themselves with a decorator in their own module, so adding a strategy is
one new file. Unknown names raise `UnknownNameError` listing the valid ones, with a
"did you mean" when a close match exists.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ponder.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str | None = None, *, plural: str = "") -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._package = package
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = package is None

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        def decorator(entry: T) -> T:
            for key in (name, *aliases):
                if key in self._entries or key in self._aliases:
                    raise ConfigError(f"{self.kind} name {key!r} is registered twice")
            self._entries[name] = entry
            for alias in aliases:
                self._aliases[alias] = name
            return entry

        return decorator

    def _load(self) -> None:
        """Import every module of the package once, so their decorators run."""
        if self._loaded or self._package is None:
            return
        self._loaded = True
        package = importlib.import_module(self._package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self._package}.{module.name}")

    def canonical(self, name: str) -> str:
        self._load()
        key = name.strip().lower()
        key = self._aliases.get(key, key)
        if key not in self._entries:
            valid = sorted(self._entries)
            close = difflib.get_close_matches(key, valid + sorted(self._aliases), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}.{hint} Valid {self.plural}: {', '.join(valid)}"
            )
        return key

    def get(self, name: str) -> T:
        return self._entries[self.canonical(name)]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        yield from sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        self._load()
        key = name.strip().lower()
        return key in self._entries or key in self._aliases
