"""The sample bank and the collector: resumable, seeded per sample, never mixing runs,
refusing locked or corrupt files; scores stored per sample; clean budget stops."""

from __future__ import annotations

import asyncio
import math
import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from ponder.backends.scripted import ScriptedBackend, ScriptedRequest
from ponder.core import SamplingParams
from ponder.errors import DataError, ScorerError
from ponder.eval.bank import RunSpec, SampleBank
from ponder.eval.collect import Collector, Plan, QuestionData
from ponder.eval.datasets import Question, load_dataset
from ponder.scorers import build_scorer
from ponder.scorers.base import Attempt, ScoreBatch, Scorer
from ponder.seeds import sample_seed
from ponder.tasks import get_task

TASK = get_task("math")
QUESTIONS = load_dataset("synthetic", limit=3).questions
PARAMS = SamplingParams(max_tokens=32, logprobs=True)


def _spec(**sampling: object) -> RunSpec:
    return RunSpec("synthetic", "scripted", TASK.fingerprint(), {"temperature": 0.8, **sampling})


def _collect(
    bank: SampleBank,
    backend: ScriptedBackend,
    n: int,
    *,
    questions: Sequence[Question] = QUESTIONS,
    scorers: Sequence[Scorer] | None = None,
    **limits: object,
) -> tuple[Collector, list[QuestionData]]:
    run = bank.open_run(_spec())
    plan = Plan(
        run=run,
        questions=questions,
        n=n,
        sampling=PARAMS,
        seed=0,
        scorers=[build_scorer("mean-logprob")] if scorers is None else scorers,
        **limits,  # type: ignore[arg-type]
    )
    collector = Collector(bank, backend, TASK, plan)
    return collector, asyncio.run(collector.run())


def _by_seed(request: ScriptedRequest) -> str:
    """A reply that depends only on the sample's own seed, like a seeded sampler."""
    assert request.params.seed is not None
    return f"The answer is {(request.params.seed + request.index) % 1000}."


def test_rerun_generates_nothing_and_more_samples_only_the_missing_ones(tmp_path: Path) -> None:
    backend = ScriptedBackend(_by_seed)
    with SampleBank(tmp_path / "bank.sqlite") as bank:
        first, data = _collect(bank, backend, 2)
        assert (first.progress.generated, first.progress.reused) == (6, 0)
        assert all(d.complete and len(d.samples) == 2 for d in data)
        requests = len(backend.requests)
        again, _ = _collect(bank, backend, 2)
        assert (again.progress.generated, again.progress.reused) == (0, 6)
        assert len(backend.requests) == requests
        more, data = _collect(bank, backend, 4)
        assert (more.progress.generated, more.progress.reused) == (6, 6)
        new = backend.requests[requests:]
        # one call per question asking n=2 for samples 2 and 3
        assert [r.index for r in new] == [0, 1] * 3
        rows = data[0].samples
        assert [s.idx for s in rows] == [0, 1, 2, 3]
        base = sample_seed(0, QUESTIONS[0].question)
        assert [s.seed for s in rows] == [base, base + 1, base + 2, base + 3]
        assert all(s.scores["mean-logprob"] == pytest.approx(-0.5) for s in rows)
        assert bank.count() == 12


def test_samples_do_not_depend_on_how_they_were_batched(tmp_path: Path) -> None:
    with SampleBank(tmp_path / "a.sqlite") as bank:
        _, whole = _collect(bank, ScriptedBackend(_by_seed), 5)
    small_calls = ScriptedBackend(_by_seed, max_n=2)
    with SampleBank(tmp_path / "b.sqlite") as bank:
        _collect(bank, small_calls, 1)
        _, pieces = _collect(bank, small_calls, 5)
    assert [[s.text for s in d.samples] for d in whole] == [
        [s.text for s in d.samples] for d in pieces
    ]
    # samples 1..4 came in calls of at most 2 (the backend's max_n)
    sizes = [r.index for r in small_calls.requests[3:]]
    assert sizes == [0, 1, 0, 1] * 3


def test_runs_with_other_settings_are_refused_not_mixed(tmp_path: Path) -> None:
    with SampleBank(tmp_path / "bank.sqlite") as bank:
        _collect(bank, ScriptedBackend(_by_seed), 2)
        other = _spec(temperature=0.2)
        with pytest.raises(DataError, match=r"temperature=0\.8 \(asked 0\.2\).*--new-run"):
            bank.open_run(other)
        with pytest.raises(DataError, match="model scripted \\(asked other-model\\)"):
            bank.open_run(RunSpec("synthetic", "other-model", TASK.fingerprint(), _spec().sampling))
        key = bank.open_run(other, keep_others=True)
        assert key != _spec().key and bank.indices(key, QUESTIONS[0].id) == set()
        assert bank.open_run(RunSpec("gsm8k", "x", "t", {})) != key  # another dataset is fine


def test_a_changed_question_is_refused(tmp_path: Path) -> None:
    with SampleBank(tmp_path / "bank.sqlite") as bank:
        _collect(bank, ScriptedBackend(_by_seed), 1, questions=QUESTIONS[:1])
        changed = Question(QUESTIONS[0].id, QUESTIONS[0].question + " Twice?", "0")
        with pytest.raises(DataError, match="has changed since its samples were stored"):
            _collect(bank, ScriptedBackend(_by_seed), 1, questions=[changed])


def test_every_name_of_a_bank_shares_its_lock(tmp_path: Path) -> None:
    """A hard link or a symbolic link is the same database: a second run through it would
    write it at the same time (with its own WAL file) and corrupt it."""
    path = tmp_path / "bank.sqlite"
    SampleBank(path).close()
    hard, soft = tmp_path / "hard.sqlite", tmp_path / "soft.sqlite"
    os.link(path, hard)
    soft.symlink_to(path)
    with SampleBank(path):
        for alias in (hard, soft):
            with pytest.raises(DataError, match="in use by another run"):
                SampleBank(alias)
    with SampleBank(hard), pytest.raises(DataError, match="in use by another run"):
        SampleBank(path)
    child = subprocess.run(
        [sys.executable, "-c", "from ponder.eval.bank import SampleBank; "
         f"SampleBank({str(hard)!r}).close()"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr  # unlocked again once closed
    with SampleBank(path), sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_locked_corrupt_and_foreign_files_are_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "bank.sqlite"
    with SampleBank(path), pytest.raises(DataError, match="in use by another run"):
        SampleBank(path)
    SampleBank(path).close()  # the lock is released on close

    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    text = tmp_path / "notes.sqlite"
    text.write_text("these are my notes, not a database\n" * 20)
    for victim in (corrupt, text):
        before = victim.read_bytes()
        with pytest.raises(DataError, match="left untouched"):
            SampleBank(victim)
        assert victim.read_bytes() == before

    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    with pytest.raises(DataError, match="not a ponder sample bank"):
        SampleBank(foreign)

    newer = tmp_path / "newer.sqlite"
    SampleBank(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(DataError, match="newer ponder"):
        SampleBank(newer)
    with pytest.raises(DataError, match="is a folder"):
        SampleBank(tmp_path)


class _Counting(Scorer):
    """A stand-in outcome scorer: the length of the text, counting its calls."""

    name = "length"
    score_range = (0.0, math.inf)

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[str] = []
        self.fail_after = fail_after

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise ScorerError("the reward server went away")
        self.calls += [a.text for a in attempts]
        return ScoreBatch(tuple(float(len(a.text)) for a in attempts))


def test_scores_are_stored_per_sample_and_identical_texts_scored_once(tmp_path: Path) -> None:
    backend = ScriptedBackend(["The answer is 1.", "The answer is 1.", "The answer is 22."])
    length = _Counting()
    with SampleBank(tmp_path / "bank.sqlite") as bank:
        _, data = _collect(bank, backend, 3, questions=QUESTIONS[:1], scorers=[length])
        assert sorted(length.calls) == ["The answer is 1.", "The answer is 22."]
        assert [s.scores["length"] for s in data[0].samples] == [16.0, 16.0, 17.0]
        # a scorer added later scores the stored samples without drawing any
        requests = len(backend.requests)
        _, data = _collect(
            bank,
            backend,
            3,
            questions=QUESTIONS[:1],
            scorers=[length, build_scorer("mean-logprob")],
        )
        assert len(backend.requests) == requests
        assert all(set(s.scores) == {"length", "mean-logprob"} for s in data[0].samples)
        # a logprob scorer that needs more than was stored says so
        with pytest.raises(DataError, match=r"self-certainty.*new --bank"):
            _collect(
                bank, backend, 3, questions=QUESTIONS[:1], scorers=[build_scorer("self-certainty")]
            )


def test_samples_survive_a_scorer_failure_and_get_scored_on_the_rerun(tmp_path: Path) -> None:
    backend = ScriptedBackend(_by_seed)
    with SampleBank(tmp_path / "bank.sqlite") as bank:
        with pytest.raises(ScorerError):
            _collect(bank, backend, 2, scorers=[_Counting(fail_after=3)])
        stored = bank.count()
        assert stored >= 2  # drawn and committed before scoring
        healthy = _Counting()
        collector, data = _collect(bank, backend, 2, scorers=[healthy])
        assert collector.progress.reused == stored
        assert all(d.complete for d in data)


def test_a_token_budget_stops_cleanly_and_the_rerun_continues(tmp_path: Path) -> None:
    backend = ScriptedBackend(_by_seed)
    with SampleBank(tmp_path / "bank.sqlite") as bank:
        collector, data = _collect(bank, backend, 2, max_tokens_total=1)
        assert collector.progress.stopped == "--max-tokens-total 1 reached"
        assert [d.complete for d in data] == [True, False, False]
        assert bank.count() == 2
        collector, data = _collect(bank, backend, 2, max_seconds=3600.0)
        assert collector.progress.stopped is None and all(d.complete for d in data)
        assert (collector.progress.generated, collector.progress.reused) == (4, 2)
