"""`ponder strategies`: every registered strategy and scorer, one line each."""

from __future__ import annotations

from ponder.cli.common import console, say
from ponder.scorers.base import SCORERS
from ponder.strategies.spec import describe_strategies


def strategies() -> None:
    """List the strategies and scorers, one line each (plug-ins included)."""

    def line(name: str, kind: str, summary: str) -> None:
        # one line each, however narrow the terminal: easy to grep
        say(f"  {name:<20} {kind:<33} {summary}")

    console.print("[bold]strategies[/bold]")
    for entry in describe_strategies():
        needs = ", needs a scorer" if entry["needs_scorer"] else ""
        line(entry["strategy"], entry["kind"] + needs, entry["summary"])
    console.print("[bold]scorers[/bold]")
    for name, scorer in SCORERS.items():
        kinds = "/".join(
            k for k, on in (("outcome", scorer.outcome), ("process", scorer.process)) if on
        )
        low, high = scorer.score_range
        line(name, f"{kinds}, range {low:g}..{high:g}", scorer.summary)
