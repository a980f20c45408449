"""The sample bank: resumable, never mixing runs, refusing locked or corrupt files; the
datasets and the synthetic generator; replay on stored samples."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from ponder.backends import SamplingParams
from ponder.backends.scripted import ScriptedBackend
from ponder.errors import DataError, UnknownNameError
from ponder.eval.bank import SampleBank
from ponder.eval.datasets import load_questions
from ponder.eval.replay import Replayable, false_positives, replay
from ponder.eval.runner import collect, template_hash
from ponder.eval.synthetic import generate
from ponder.scorers import build_scorer
from ponder.strategies import STRATEGIES
from ponder.tasks import get_task

TASK = get_task("math")


def _fill(bank: SampleBank, key: str, questions, backend, n: int):  # type: ignore[no-untyped-def]
    scorer = build_scorer("mean-logprob")
    params = SamplingParams(max_tokens=32, logprobs=True)
    return asyncio.run(collect(bank, key, questions, backend, TASK, params, n, [scorer]))


def test_shipped_datasets_load_offline() -> None:
    gsm8k = load_questions("gsm8k", limit=3)
    assert gsm8k[0].answer == "18" and "Janet" in gsm8k[0].question
    assert len(load_questions("gsm8k")) == 1319
    assert len(load_questions("math500", limit=5)) == 5
    assert len(load_questions("aime24")) == 30
    assert len(load_questions("gsm8k-train", offset=7000)) == 473


def test_jsonl_with_field_mapping_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"q": "1+1?", "a": "2"}\nnot json\n{"q": "2+2?", "a": "4"}\n')
    with pytest.raises(DataError, match=r"mine\.jsonl:2"):
        load_questions(str(path), question_field="q", answer_field="a")
    warnings: list[str] = []
    rows = load_questions(
        str(path), question_field="q", answer_field="a", on_bad_line="skip", warnings=warnings
    )
    assert [r.answer for r in rows] == ["2", "4"] and "mine.jsonl:2" in warnings[0]
    with pytest.raises(DataError, match="no field 'question'"):
        load_questions(str(path), on_bad_line="skip")
    with pytest.raises(UnknownNameError, match="gsm8k"):
        load_questions("gsm9k")


def test_synthetic_questions_are_exact_and_reproducible() -> None:
    a, b = generate(3, 7, steps=4, max_number=50), generate(3, 7, steps=4, max_number=50)
    assert a == b
    assert generate(3, 8) != a
    for i in range(50):
        q = generate(0, i, steps=5)
        assert int(q.answer) >= 0 and q.question.endswith("now?")


def test_resume_generates_only_missing_samples(tmp_path: Path) -> None:
    questions = load_questions("synthetic", limit=3)
    backend = ScriptedBackend(lambda r: f"The answer is {r.index}.")
    with SampleBank(tmp_path / "bank.sqlite") as bank:
        key, _ = bank.open_run("synthetic", "scripted", template_hash(TASK), {"t": 0.8})
        first = _fill(bank, key, questions, backend, 2)
        assert (first.generated, first.reused) == (6, 0)
        calls = len(backend.requests)
        again = _fill(bank, key, questions, backend, 2)
        assert (again.generated, again.reused) == (0, 6)
        assert len(backend.requests) == calls
        more = _fill(bank, key, questions, backend, 4)
        assert (more.generated, more.reused) == (6, 6)
        rows = bank.samples(key, questions[0].id)
        assert [r.idx for r in rows] == [0, 1, 2, 3]
        assert len({r.seed for r in rows}) == 4
        assert all("mean-logprob" in r.scores for r in rows)


def test_runs_with_other_parameters_never_mix(tmp_path: Path) -> None:
    with SampleBank(tmp_path / "bank.sqlite") as bank:
        one, others = bank.open_run("gsm8k", "m", "h", {"temperature": 0.8})
        assert others == []
        two, others = bank.open_run("gsm8k", "m", "h", {"temperature": 0.2})
        assert one != two and others[0]["params"] == {"temperature": 0.8}


def test_locked_and_corrupt_banks_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bank.sqlite"
    with SampleBank(path), pytest.raises(DataError, match="in use by another run"):
        SampleBank(path)
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    before = corrupt.read_bytes()
    with pytest.raises(DataError, match="left untouched"):
        SampleBank(corrupt)
    assert corrupt.read_bytes() == before
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(DataError, match="not a ponder sample bank"):
        SampleBank(other)


def test_replay_and_false_positives_on_stored_samples(tmp_path: Path) -> None:
    questions = load_questions("synthetic", limit=2)
    gold = {q.question: q.answer for q in questions}

    # samples 0 and 2 are right; sample 1 is wrong but the most confident one
    def reply(r):  # type: ignore[no-untyped-def]
        right = gold[r.prompt[-1].content]
        return (
            ("The answer is 999999.", -0.01) if r.index == 1 else (f"The answer is {right}.", -1.0)
        )

    backend = ScriptedBackend(reply)
    with SampleBank(tmp_path / "bank.sqlite") as bank:
        key, _ = bank.open_run("synthetic", "scripted", "h", {})
        _fill(bank, key, questions, backend, 3)
        samples = {q.id: bank.samples(key, q.id) for q in questions}
    scorer = type("Named", (), {"name": "mean-logprob", "score_range": (-1e9, 0.0),
                                "uses_gold": False, "needs_logprobs": False})()  # fmt: skip
    entries = [
        Replayable("pass@k", None),
        Replayable("sc", STRATEGIES.get("self-consistency")(task=TASK)),
        Replayable("bon", STRATEGIES.get("best-of-n")(task=TASK, scorer=scorer), True),
    ]
    cells = replay(questions, samples, TASK, entries, n=3)
    assert cells[("pass@k", 3)].accuracy == 1.0
    assert cells[("pass@k", 1)].accuracy == pytest.approx(2 / 3)
    assert cells[("sc", 3)].accuracy == 1.0
    assert cells[("bon", 3)].accuracy == 0.0  # the verifier is fooled every time
    assert cells[("bon", 1)].accuracy == pytest.approx(2 / 3)
    assert cells[("bon", 2)].score_tokens == 0  # mean-logprob costs nothing extra
    rate, ceiling, eligible = false_positives(questions, samples, TASK, "mean-logprob", 3)
    assert (rate, ceiling, eligible) == (1.0, 0.0, 2)
    assert json.dumps(cells[("sc", 3)].values)
