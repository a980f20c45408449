"""`ponder eval` as a user runs it: the report, bad input, and resuming after SIGKILL."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

PONDER = [sys.executable, "-m", "ponder.cli"]


def test_report_on_a_small_bank(tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["The answer is 5.", "The answer is 7.", "no idea"]))
    out = tmp_path / "out"
    args = [*PONDER, "eval", "--dataset", "synthetic", "--limit", "3", "-n", "4",
            "--backend", "scripted", "--model", str(replies), "--out", str(out)]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in ("results.json", "results.csv", "scaling.png", "report.html", "bank.sqlite"):
        assert (out / name).is_file(), name
    data = json.loads((out / "results.json").read_text())
    labels = {r["strategy"] for r in data["results"]}
    assert {"pass@k", "self-consistency", "best-of-n[mean-logprob]"} <= labels
    assert {r["k"] for r in data["results"]} == {1, 2, 4}
    assert all(r["ci_low"] <= r["accuracy"] <= r["ci_high"] for r in data["results"])
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "synthetic-0-3-100-0" in page
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert "generated 0 samples, reused 12" in again.stdout.replace("\n", " ")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "nope"], "no dataset 'nope'"),
        (["--dataset", "gsm8k", "--strategy", "beam-search"], "not sample-based"),
        (["--dataset", "gsm8k", "--strategy", "nope"], "unknown strategy"),
        (["--dataset", "gsm8k", "--scorer", "nope"], "unknown scorer"),
    ],
)
def test_bad_input(tmp_path: Path, extra: list[str], message: str) -> None:
    replies = tmp_path / "r.json"
    replies.write_text('["x"]')
    args = [*PONDER, "eval", "--backend", "scripted", "--model", str(replies),
            "--out", str(tmp_path / "o"), "--limit", "1", *extra]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def _rows(bank: Path) -> list[tuple[str, int, str]]:
    if not bank.exists():
        return []
    with sqlite3.connect(bank) as db:
        return list(db.execute("SELECT question_id, idx, text FROM samples ORDER BY 1, 2"))


@pytest.mark.model
def test_resume_after_sigkill_on_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [*PONDER, "eval", "--dataset", "synthetic", "--limit", "6", "-n", "2",
            "--model", "small", "--max-tokens", "12", "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bank = out / "bank.sqlite"
    deadline = time.monotonic() + 120
    while len(_rows(bank)) < 4 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _rows(bank)
    assert 4 <= len(before) < 12, "the kill should land mid-run"
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    after = _rows(bank)
    assert len(after) == 12
    assert len({(q, i) for q, i, _ in after}) == 12  # no sample stored twice
    assert set(before) <= set(after)  # none lost or regenerated
    summary = done.stdout.replace("\n", " ")
    assert f"generated {12 - len(before)} samples, reused {len(before)}" in summary
