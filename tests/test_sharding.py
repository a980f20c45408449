"""Sharding without Ray (Slurm arrays): each shard writes its own bank, `ponder bank merge`
joins them into what one unsharded run stores, and `ponder eval` reports from the merged
bank drawing nothing. Merging refuses mixed settings and never overwrites a bank."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ponder.backends.scripted import ScriptedBackend, ScriptedRequest
from ponder.cli import main
from ponder.core import SamplingParams
from ponder.errors import DataError
from ponder.eval.api import EvalConfig, Evaluation
from ponder.eval.bank import SampleBank
from ponder.eval.merge import merge_banks
from tests.support.banks import rows, untimed


def _by_seed(request: ScriptedRequest) -> str:
    """A reply that depends only on the sample's own seed, like a seeded sampler."""
    assert request.params.seed is not None
    return f"First, 2 + 3 = 5.\n\nThe answer is {(request.params.seed + request.index) % 4}."


def _config(bank: Path, **changes: Any) -> EvalConfig:
    base: dict[str, Any] = dict(
        dataset="synthetic", limit=7, n=3, bank=bank, sampling=SamplingParams(max_tokens=32),
        strategies=["self-consistency", "best-of-n", "beam-search"],
        options={"beam_width": 2, "max_steps": 2}, live_budgets=[2],
    )  # fmt: skip
    return EvalConfig(**{**base, **changes})


def test_merged_shards_are_the_unsharded_bank_and_report_the_same(tmp_path: Path) -> None:
    whole = Evaluation(_config(tmp_path / "whole.sqlite")).run(ScriptedBackend(_by_seed))
    assert whole.meta["complete_questions"] == 7
    ids: list[str] = []
    for shard in range(3):
        evaluation = Evaluation(_config(tmp_path / "bank.sqlite", shards=3, shard=shard))
        assert evaluation.bank == tmp_path / f"bank.shard-{shard}-of-3.sqlite"
        summary = evaluation.run(ScriptedBackend(_by_seed))
        assert summary.paths == {} and any("shard" in note for note in summary.notes)
        ids += summary.meta["question_ids"]
    assert sorted(ids) == sorted(whole.meta["question_ids"])  # each question in one shard
    shards = [tmp_path / f"bank.shard-{i}-of-3.sqlite" for i in range(3)]
    before = [rows(path) for path in shards]
    merged = merge_banks(shards, tmp_path / "bank.sqlite")
    assert merged.copied.samples == 21 and merged.copied.conflicts == 0
    assert [rows(path) for path in shards] == before  # the inputs are as they were
    assert rows(tmp_path / "bank.sqlite") == rows(tmp_path / "whole.sqlite")
    report = Evaluation(_config(tmp_path / "bank.sqlite", out=tmp_path / "report"))
    again = report.run(ScriptedBackend(_by_seed))
    assert again.meta["generated_samples"] == 0 and again.meta["live_runs"] == 0
    assert untimed(again.rows) == untimed(whole.rows)
    assert again.comparisons == whole.comparisons
    assert again.paths["html"].exists()


def test_the_command_line_takes_its_shard_from_a_slurm_array(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["The answer is 5.", "The answer is 7."]))
    common = ["eval", "--dataset", "synthetic", "--limit", "5", "-n", "2", "--strategy",
              "self-consistency", "--backend", "scripted", "--model", str(replies),
              "--out", str(tmp_path / "out")]  # fmt: skip
    # an array 1-2 (Slurm numbers tasks as the script says, here from 1)
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
    for task in ("1", "2"):
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", task)
        main([*common, "--json"])
        printed = json.loads(capsys.readouterr().out)
        assert printed["meta"]["shard"] == [int(task) - 1, 2]
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID")
    shards = sorted((tmp_path / "out").glob("bank.shard-*-of-2.sqlite"))
    assert [p.name for p in shards] == ["bank.shard-0-of-2.sqlite", "bank.shard-1-of-2.sqlite"]
    assert not (tmp_path / "out" / "results.json").exists()  # a shard writes no report
    main(["bank", "merge", *map(str, shards), "-o", str(tmp_path / "out" / "bank.sqlite")])
    assert "merged 2 banks" in capsys.readouterr().out
    said = _fail([*common, "--num-shards", "2"], capsys)
    assert "--num-shards 2 needs --shard-index" in said
    main(common)
    said = " ".join(capsys.readouterr().out.split())
    assert "5/5 questions complete; generated 0 samples, reused 10" in said
    assert (tmp_path / "out" / "results.json").exists()


def _fail(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    return " ".join(capsys.readouterr().err.split())


def test_merging_refuses_mixed_settings_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, hot = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "hot.sqlite"
    Evaluation(_config(a, limit=2)).run(ScriptedBackend(_by_seed))
    cold = SamplingParams(max_tokens=32, temperature=0.2)
    Evaluation(_config(b, limit=2, sampling=cold)).run(ScriptedBackend(_by_seed))
    out = str(tmp_path / "m.sqlite")
    said = _fail(["bank", "merge", str(a), str(b), "-o", out], capsys)
    assert "error:" in said and "temperature=0.2 (asked 0.8)" in said and "never mixed" in said
    assert not Path(out).exists() and not list(tmp_path.glob(".m.sqlite*"))
    said = _fail(["bank", "merge", str(a), str(tmp_path / "b.sqlite"), "-o", str(a)], capsys)
    assert "exists" in said and "never overwrites" in said
    said = _fail(["bank", "merge", str(a), str(tmp_path / "." / "a.sqlite"), "-o", out], capsys)
    assert "the same bank" in said
    Evaluation(_config(hot, limit=2)).run(ScriptedBackend(_by_seed))
    with SampleBank(hot):  # an evaluation still writing it
        said = _fail(["bank", "merge", str(a), str(hot), "-o", out], capsys)
    assert "in use by another run" in said
    assert not Path(out).exists()


def test_a_sample_in_two_banks_is_copied_once_and_a_conflict_keeps_the_first(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    Evaluation(_config(a, limit=2)).run(ScriptedBackend(_by_seed))
    Evaluation(_config(b, limit=3)).run(ScriptedBackend(_by_seed))
    with sqlite3.connect(b) as db:  # one sample drawn differently (another batch, say)
        db.execute("UPDATE samples SET text = 'The answer is 9.' WHERE idx = 0 AND rowid = 1")
    merged = merge_banks([a, b], tmp_path / "m.sqlite")
    assert (merged.copied.samples, merged.copied.duplicates, merged.copied.conflicts) == (9, 5, 1)
    held = rows(tmp_path / "m.sqlite")
    assert "The answer is 9." not in {r[5] for r in held["samples"]}
    assert len(held["samples"]) == 9 and len(held["scores"]) == 9
    with pytest.raises(DataError, match="exists"):
        merge_banks([a, b], tmp_path / "m.sqlite")
