"""`ponder bank`: sample banks. `merge` joins the banks of a sharded evaluation.

ponder bank merge runs/gsm8k/bank.shard-*.sqlite -o runs/gsm8k/bank.sqlite
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ponder.cli.common import say
from ponder.eval.merge import merge_banks

bank = typer.Typer(
    name="bank", help="Sample banks: merge the banks of a sharded evaluation.", no_args_is_help=True
)


@bank.command("merge")
def merge(
    banks: Annotated[
        list[Path], typer.Argument(help="The banks to merge, drawn with the same settings.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The merged bank: a new file.")],
) -> None:
    """Merge the banks of one evaluation's shards into a new bank (then report from it)."""
    summary = merge_banks(banks, output)
    copied = summary.copied
    line = (
        f"merged {summary.inputs} banks into {summary.output}: {copied.samples} samples, "
        f"{copied.scores} scores, {copied.results} live results"
    )
    if copied.duplicates:
        line += f"; {copied.duplicates} samples were in more than one bank (copied once)"
    if copied.conflicts:
        line += (
            f"; {copied.conflicts} samples were in more than one bank under other texts "
            "(the first bank's kept)"
        )
    say(line)
