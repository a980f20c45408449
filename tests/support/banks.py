"""What a sample bank holds, to compare banks written by different runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def rows(path: Path) -> dict[str, set[tuple[Any, ...]]]:
    """Every row of the bank without the times (when it was written, how long it took)."""
    with sqlite3.connect(path) as db:
        return {
            "runs": set(db.execute(
                "SELECT run, dataset, model_id, template_hash, sampling FROM runs")),
            "samples": set(db.execute(
                "SELECT run, question_id, idx, seed, question_digest, text, answer, finish_reason,"
                " prompt_tokens, cached_tokens, completion_tokens, flops, mean_logprob,"
                " sum_logprob, top_logprobs, logprobs FROM samples")),
            "scores": set(db.execute("SELECT run, question_id, idx, scorer, score FROM scores")),
            "results": set(db.execute(
                "SELECT run, question_id, config, k, label, correct FROM results")),
        }  # fmt: skip


def untimed(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Report rows without their wall times."""
    return [{k: v for k, v in row.items() if "seconds" not in k} for row in table]
