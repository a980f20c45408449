"""The report folder (`--out`): checked before any sampling, written only where ponder may.

* A file where the folder should be, a folder that cannot be made or written: a one-line
  `DataError` before the model is loaded, not a traceback after the run.
* ponder overwrites only files it wrote there before: each report lists what it wrote in
  `.ponder-report.json`; an existing file of the same name that is not listed is refused.
* ponder writes no file through a symbolic link (it could point out of the folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ponder.errors import DataError

MANIFEST = ".ponder-report.json"


def _owned(folder: Path) -> set[str]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    files = data.get("files") if isinstance(data, dict) else None
    return {str(f) for f in files} if isinstance(files, list) else set()


def prepare(folder: Path, names: Iterable[str]) -> None:
    """Make sure the report can be written to `folder` under `names` (relative paths)."""
    if folder.is_symlink() and not folder.is_dir():
        raise DataError(f"the report folder {folder} is a link to no folder; pass another --out")
    if folder.exists() and not folder.is_dir():
        raise DataError(f"--out {folder} is a file; give a folder for the report")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe, name = tempfile.mkstemp(prefix=".ponder-probe-", dir=folder)
        os.close(probe)
        os.unlink(name)
    except OSError as exc:
        raise DataError(
            f"cannot write the report folder {folder} ({exc.strerror}); pass another --out"
        ) from None
    owned = _owned(folder)
    for name in names:
        guard(folder, name, owned)


def guard(folder: Path, name: str, owned: set[str] | None = None) -> Path:
    """The path `folder/name`, if ponder may write it (raises `DataError` otherwise)."""
    owned = _owned(folder) if owned is None else owned
    target = folder / name
    for part in [target, *target.parents]:
        if part == folder:
            break
        if part.is_symlink():
            raise DataError(
                f"{part} is a symbolic link; ponder writes no file through a link "
                "(remove it or pass another --out)"
            )
    if target.exists() and name not in owned:
        raise DataError(
            f"{target} exists and was not written by ponder; move it away or pass another --out"
        )
    return target


def claim(folder: Path, names: Iterable[str]) -> None:
    """Record that ponder wrote `names` in `folder` (so a rerun may overwrite them)."""
    files = sorted(_owned(folder) | set(names))
    with contextlib.suppress(OSError):
        (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=1), encoding="utf-8")
