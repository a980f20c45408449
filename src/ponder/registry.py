"""A small typed registry: one per kind of plug-in (strategies, scorers, backends, tasks).

Entries register themselves with a decorator in their own module, which also sets the
class's `name`, so adding a strategy is one new file and its name is written once. The
registry finds the built-in entries by importing every module of its package, and
third-party ones through an entry-point group (`ponder.strategies`, `ponder.scorers`,
`ponder.tasks`, `ponder.backends`): a user's package declares

    [project.entry-points."ponder.strategies"]
    my-search = "my_package.search:MySearch"

and `ponder strategies` lists it. An entry point may name a module (its decorators run when
it is imported) or a class (registered under the entry point's name). Unknown names raise
`UnknownNameError` listing the valid ones, with a "did you mean" when a close match exists.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ponder.errors import ConfigError, UnknownNameError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str, base: type, *, plural: str = "") -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.base = base
        self.group = f"ponder.{self.plural}"
        self._package = package
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = False

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Class decorator: register the class as `name` and set its `name` to it."""

        def decorator(entry: T) -> T:
            self.add(name, entry, aliases)
            return entry

        return decorator

    def add(self, name: str, entry: T, aliases: tuple[str, ...] = ()) -> None:
        if not (isinstance(entry, type) and issubclass(entry, self.base)):
            raise ConfigError(
                f"{self.kind} {name!r} must be a subclass of {self.base.__name__}, got {entry!r}"
            )
        key = name.strip().lower()
        for alias in (key, *aliases):
            if alias in self._entries or alias in self._aliases:
                raise ConfigError(f"{self.kind} name {alias!r} is registered twice")
        entry.name = key  # type: ignore[attr-defined]
        self._entries[key] = entry
        for alias in aliases:
            self._aliases[alias] = key

    def _load(self) -> None:
        """Import every module of the package once, then the installed plug-ins."""
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self._package)
        for module in pkgutil.iter_modules(package.__path__, prefix=f"{self._package}."):
            importlib.import_module(module.name)
        for point in importlib.metadata.entry_points(group=self.group):
            try:
                loaded = point.load()
            except Exception as exc:  # a broken plug-in must say which one it is
                raise ConfigError(
                    f"the {self.kind} plug-in {point.name!r} ({point.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if isinstance(loaded, type) and loaded not in self._entries.values():
                self.add(point.name, loaded)  # type: ignore[arg-type]

    def canonical(self, name: str) -> str:
        self._load()
        if not isinstance(name, str):
            raise UnknownNameError(f"a {self.kind} name must be a string, got {name!r}")
        key = name.strip().lower()
        key = self._aliases.get(key, key)
        if key not in self._entries:
            valid = sorted(self._entries)
            close = difflib.get_close_matches(key, valid + sorted(self._aliases), n=1)
            hint = f" Did you mean {self._aliases.get(close[0], close[0])!r}?" if close else ""
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
