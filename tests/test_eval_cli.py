"""`ponder eval` as a user runs it: the report, live step-level runs with their trees, bad
input, and resuming after SIGKILL on the real embedded model."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ponder.cli import main

PONDER = [sys.executable, "-m", "ponder.cli"]


def _replies(tmp_path: Path, replies: list[str]) -> Path:
    path = tmp_path / "replies.json"
    path.write_text(json.dumps(replies))
    return path


def test_report_on_a_small_bank(tmp_path: Path) -> None:
    replies = _replies(tmp_path, ["The answer is 5.", "The answer is 7.", "no idea", "5"])
    out = tmp_path / "out"
    args = [*PONDER, "eval", "--dataset", "synthetic", "--limit", "3", "-n", "4",
            "--backend", "scripted", "--model", str(replies), "--out", str(out)]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("results.json", "results.csv", "scaling.png", "compute.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "results.json").read_text())
    rows = data["results"]
    labels = {r["strategy"] for r in rows}
    assert {"pass@k", "self-consistency", "best-of-n[mean-logprob]", "greedy"} <= labels
    assert {r["k"] for r in rows if r["strategy"] == "self-consistency"} == {1, 2, 4}
    for r in rows:
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
        assert r["tokens"] == pytest.approx(r["prompt_tokens"] + r["completion_tokens"])
        assert r["decoded_tokens"] == pytest.approx(r["tokens"] - r["cached_prompt_tokens"])
    by = {(r["strategy"], r["k"]): r for r in rows}
    assert by[("pass@k", 4)]["completion_tokens"] > by[("pass@k", 1)]["completion_tokens"]
    assert data["meta"]["generated_samples"] == 12 and data["meta"]["complete_questions"] == 3
    assert data["verifiers"][0]["scorer"] == "mean-logprob"
    assert data["comparisons"] and data["questions"][0]["samples"][0]["scores"]
    header = (out / "results.csv").read_text().splitlines()[0]
    assert header.startswith("strategy,k,live,questions,samples,samples_min")
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "synthetic-0-3x100-0" in page and "The answer is 7." in page
    assert "http" not in page.replace("http-equiv", "")  # self-contained: nothing to fetch

    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    summary = " ".join(again.stdout.split())
    assert "generated 0 samples, reused 12" in summary and "1 reused" not in summary
    assert "3 live runs" not in summary and "0 live runs, 3 reused" in summary


def test_a_step_level_strategy_runs_live_with_its_search_trees(tmp_path: Path) -> None:
    replies = _replies(tmp_path, ["First, 2 + 3 = 5.\n\nThe answer is 5."])
    out = tmp_path / "out"
    args = [*PONDER, "eval", "--dataset", "synthetic", "--limit", "2", "-n", "2",
            "--backend", "scripted", "--model", str(replies), "--out", str(out),
            "--strategy", "self-consistency", "--strategy", "beam-search",
            "--beam-width", "2", "-o", "max_steps=2", "--json"]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    live = [r for r in printed["results"] if r["live"]]
    assert [(r["strategy"], r["k"]) for r in live] == [("beam-search[mean-logprob]", 2)]
    assert any("k=1 skipped" in note for note in printed["meta"]["notes"])
    trees = sorted((out / "trees").glob("*.html"))
    assert len(trees) == 2
    page = (out / "report.html").read_text()
    assert f"trees/{trees[0].name}" in page
    assert "beam-search search tree" in trees[0].read_text()


def _fail(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    return " ".join(capsys.readouterr().err.split())


def test_bad_input_fails_with_a_message_that_says_what_to_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = _replies(tmp_path, ["The answer is 1."])
    common = ["eval", "--backend", "scripted", "--model", str(replies), "--limit", "1",
              "--out", str(tmp_path / "o")]  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "1+1?", "answer": "2"}\n{broken\n')
    cases = [
        (["--dataset", "gms8k"], "no dataset 'gms8k'. Did you mean 'gsm8k'?"),
        (["--dataset", str(tmp_path / "missing.jsonl")], "does not exist"),
        (["--dataset", str(bad), "--limit", "2"], "bad.jsonl:2: malformed JSON"),
        (["--dataset", str(bad), "--question-field", "q", "--on-bad-line", "skip"], "no field 'q'"),
        (["--dataset", "gsm8k", "--strategy", "beem-search"], "Did you mean 'beam-search'"),
        (["--dataset", "gsm8k", "--scorer", "nope"], "unknown scorer 'nope'"),
        (["--dataset", "gsm8k", "--scorer", "oracle"], "pass@k is already the oracle"),
        (["--dataset", "gsm8k", "--live-budget", "0"], "Invalid value for '--live-budget'"),
        (["--dataset", "gsm8k", "--beam-width", "2"], "no chosen strategy takes beam_width"),
        (["--dataset", "gsm8k", "--baseline", "nope"], "baseline 'nope' is not measured"),
    ]  # fmt: skip
    for extra, message in cases:
        assert message in _fail([*common, *extra], capsys), extra
    # a malformed line can be skipped instead
    main([*common, "--dataset", str(bad), "--on-bad-line", "skip", "--limit", "5"])
    assert "warning: skipped" in capsys.readouterr().err


def test_a_bank_of_other_settings_or_a_corrupt_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replies = _replies(tmp_path, ["The answer is 1."])
    common = ["eval", "--backend", "scripted", "--model", str(replies), "--dataset",
              "synthetic", "--limit", "1", "-n", "2", "--out", str(tmp_path / "o")]  # fmt: skip
    main(common)
    message = _fail([*common, "--temperature", "0.3"], capsys)
    assert "temperature=0.8 (asked 0.3)" in message and "never mixed" in message
    main([*common, "--temperature", "0.3", "--new-run"])
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\x07" * 4096)
    before = corrupt.read_bytes()
    assert "left untouched" in _fail([*common, "--bank", str(corrupt)], capsys)
    assert corrupt.read_bytes() == before


def _rows(bank: Path) -> list[tuple[str, int, str]]:
    if not bank.exists():
        return []
    try:
        with sqlite3.connect(f"file:{bank}?mode=ro", uri=True, timeout=5) as db:
            return list(db.execute("SELECT question_id, idx, text FROM samples ORDER BY 1, 2"))
    except sqlite3.OperationalError:  # the writer is creating the tables
        return []


@pytest.mark.model
def test_resume_after_sigkill_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [*PONDER, "eval", "--dataset", "synthetic", "--limit", "5", "-n", "2",
            "--model", "small", "--max-tokens", "8", "--strategy", "self-consistency",
            "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bank = out / "bank.sqlite"
    deadline = time.monotonic() + 120
    while len(_rows(bank)) < 4 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _rows(bank)
    assert 4 <= len(before) < 10, f"the kill should land mid-run, found {len(before)} samples"
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = _rows(bank)
    assert len(after) == 10
    assert len({(q, i) for q, i, _ in after}) == 10  # no sample stored twice
    assert set(before) <= set(after)  # none lost, none drawn again
    summary = " ".join(done.stdout.split())
    assert f"generated {10 - len(before)} samples, reused {len(before)}" in summary
