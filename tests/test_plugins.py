"""A user's own package adds a strategy and a scorer through entry points, without touching
ponder: installed (a module and its dist-info with `entry_points.txt`, what pip writes) on
the path of a fresh interpreter, it is listed and runs from the CLI like a built-in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PLUGIN = '''
"""A tiny third-party plug-in: a strategy and a scorer of its own."""

from collections.abc import Sequence
from dataclasses import dataclass

from ponder.result import Candidate
from ponder.scorers.base import Attempt, ScoreBatch, Scorer
from ponder.strategies.base import SampleStrategy, Selection, vote_table


@dataclass(frozen=True, kw_only=True)
class LastAnswer(SampleStrategy):
    summary = "the answer of the last sample (a plug-in)"

    def select(self, candidates: Sequence[Candidate], rng: object) -> Selection:
        last = len(candidates) - 1
        return Selection(last, candidates[last].answer, "the last sample", vote_table(candidates))


class Length(Scorer):
    summary = "the length of the answer (a plug-in)"
    score_range = (0.0, float("inf"))

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        return ScoreBatch(tuple(float(len(a.text)) for a in attempts))
'''


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "ponder_demo_plugin").mkdir(parents=True)
    (root / "ponder_demo_plugin" / "__init__.py").write_text(PLUGIN)
    info = root / "ponder_demo_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ponder-demo-plugin\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [ponder.strategies]
            last-answer = ponder_demo_plugin:LastAnswer

            [ponder.scorers]
            length = ponder_demo_plugin:Length
            """
        )
    )
    (info / "RECORD").write_text("")
    return root


def _ponder(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    return subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_a_plugin_strategy_and_scorer_are_listed_and_run(site: Path, tmp_path: Path) -> None:
    listed = _ponder(site, "strategies")
    assert listed.returncode == 0, listed.stderr
    assert "last-answer" in listed.stdout and "a plug-in" in listed.stdout
    assert "length" in listed.stdout

    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["The answer is 3.", "The answer is 3.", "The answer is 7."]))
    done = _ponder(
        site, "solve", "q", "-s", "last-answer", "-n", "3", "--scorer", "length",
        "--backend", "scripted", "--model", str(replies), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["answer"] == "7" and data["strategy"] == "last-answer"
    assert data["candidates"][0]["scores"]["length"] == len("The answer is 3.")

    picked = _ponder(
        site, "solve", "q", "-s", "best-of-n", "-n", "3", "--scorer", "length",
        "--backend", "scripted", "--model", str(replies), "--json",
    )  # fmt: skip
    assert picked.returncode == 0, picked.stderr
    assert json.loads(picked.stdout)["strategy"] == "best-of-n"


def test_a_broken_plugin_is_named_in_a_one_line_error(site: Path) -> None:
    (site / "ponder_demo_plugin" / "__init__.py").write_text("raise ImportError('oops')\n")
    done = _ponder(site, "strategies")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "plug-in 'last-answer'" in done.stderr
