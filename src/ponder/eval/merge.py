"""Merge sample banks: the banks of a sharded run (`ponder eval --num-shards K`) become one.

    merged = merge_banks([Path("bank.shard-0-of-2.sqlite"), Path("bank.shard-1-of-2.sqlite")],
                         Path("bank.sqlite"))

Every input must hold the same runs (the same dataset, model and sampling settings: what
keys the samples): banks drawn with other settings are refused, never mixed, as a run
refuses them (`SampleBank.open_run`). Each input is opened like a bank in use, so one that a
running evaluation holds is refused. The merged bank is written to a new file next to the
output and moved into place only when complete; the output must not exist yet, so merging
never overwrites a bank, an input least of all. Samples are keyed by run, question and
index: one found in several inputs is copied once (the first input's, with its scores).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ponder.errors import DataError
from ponder.eval.bank import Merged, RunSpec, SampleBank


@dataclass(frozen=True, slots=True)
class MergeSummary:
    output: Path
    inputs: int
    runs: int
    copied: Merged


def merge_banks(inputs: Sequence[Path], output: Path) -> MergeSummary:
    """Merge `inputs` into the new bank `output` (see the module's docstring)."""
    if not inputs:
        raise DataError("name the banks to merge")
    if output.exists() or output.is_symlink():
        raise DataError(
            f"{output} exists; merging writes a new bank and never overwrites one: give another -o"
        )
    for path in inputs:
        if not path.is_file():
            raise DataError(f"{path} is not a file; name the sample banks to merge")
    for i, path in enumerate(inputs):
        for other in inputs[:i]:
            if os.path.samefile(path, other):
                raise DataError(f"{path} and {other} are the same bank; name each bank once")
    with contextlib.ExitStack() as stack:
        banks = [stack.enter_context(SampleBank(path)) for path in inputs]
        runs = _same_runs(banks)
        partial = output.with_name(f".{output.name}.merging-{os.getpid()}")
        try:
            copied = Merged()
            with SampleBank(partial) as merged:
                for bank in banks:
                    copied += merged.merge(bank)
            # a link fails where a file appeared meanwhile: nothing is ever overwritten
            os.link(partial, output)
        except FileExistsError:
            raise DataError(f"{output} appeared while merging; it was left as it is") from None
        except OSError as exc:
            raise DataError(f"cannot write {output} ({exc.strerror}); give another -o") from None
        finally:
            for leftover in (partial, *(Path(f"{partial}{x}") for x in ("-wal", "-shm"))):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
    return MergeSummary(output, len(inputs), len(runs), copied)


def _same_runs(banks: Sequence[SampleBank]) -> list[RunSpec]:
    """The runs every bank holds; `DataError` naming the difference when they differ."""
    first = {spec.key: spec for spec in banks[0].runs()}
    if not first:
        raise DataError(f"{banks[0].path} holds no run: it is no bank of an evaluation")
    for bank in banks[1:]:
        theirs = {spec.key: spec for spec in bank.runs()}
        if set(theirs) == set(first):
            continue
        extra = [spec for key, spec in theirs.items() if key not in first]
        missing = [spec for key, spec in first.items() if key not in theirs]
        if extra and missing:
            said = "; ".join(missing[0].differences(extra[0])) or "other settings"
            detail = f"{extra[0].dataset} drawn with {said}"
        elif extra:
            detail = f"a run {banks[0].path} does not ({extra[0].dataset})"
        else:
            detail = f"no run of {missing[0].dataset} as {banks[0].path} does"
        raise DataError(
            f"{bank.path} holds {detail}: banks drawn with other settings are never mixed; "
            "merge only the shards of one evaluation"
        )
    return list(first.values())
