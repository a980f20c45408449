"""One seed derivation: `ponder solve Q --seed S` draws exactly the samples `ponder eval
--seed S` stored for Q, on the real embedded model, through the real CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ponder import seeds

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def _ponder(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args], capture_output=True, text=True, timeout=600
    )


def test_seeds_are_stable_and_spread() -> None:
    assert seeds.derive(0, "a") == seeds.derive(0, "a") != seeds.derive(1, "a")
    assert seeds.sample_seed(0, QUESTION) == seeds.sample_seed(0, f"  {QUESTION}\n")
    assert 0 <= seeds.sample_seed(5, QUESTION) < 2**30
    assert seeds.rng(0, "x").random() == seeds.rng(0, "x").random()


@pytest.mark.model
def test_solve_draws_the_samples_eval_stored(tmp_path: Path) -> None:
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"question": QUESTION, "answer": "7"}) + "\n")
    stored = _ponder(
        "eval", "--dataset", str(data), "-n", "4", "--seed", "5", "--max-tokens", "24",
        "--strategy", "self-consistency", "--model", "small", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    with sqlite3.connect(tmp_path / "out" / "bank.sqlite") as db:
        rows = db.execute("SELECT seed, text FROM samples ORDER BY idx").fetchall()
    assert [seed for seed, _ in rows] == [seeds.sample_seed(5, QUESTION) + i for i in range(4)]

    solved = _ponder(
        "solve", QUESTION, "-s", "self-consistency", "-n", "4", "--seed", "5",
        "--max-tokens", "24", "--model", "small", "--json",
    )  # fmt: skip
    assert solved.returncode == 0, solved.stderr
    texts = [c["text"] for c in json.loads(solved.stdout)["candidates"]]
    assert texts == [text for _, text in rows]
    assert len(set(texts)) > 1  # four different samples, not one seed four times
