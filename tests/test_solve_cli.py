"""`ponder solve` and `ponder strategies` end to end, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PONDER = [sys.executable, "-m", "ponder.cli"]


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PONDER, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.model
def test_solve_on_the_embedded_model_prints_json() -> None:
    done = run(
        "solve", "What is 12 + 30? Answer with the number.", "--model", "small",
        "-n", "2", "--max-tokens", "48", "--seed", "1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["strategy"] == "self-consistency"
    assert len(data["candidates"]) == 2
    assert data["usage"]["completion_tokens"] > 0
    assert data["usage"]["calls"] == 1
    assert {"answer", "usage", "candidates", "trace"} <= set(data)


@pytest.mark.model
def test_solve_plain_output_has_votes_usage_and_answer() -> None:
    done = run("solve", "What is 2 + 2?", "--model", "small", "-n", "2", "--max-tokens", "32")
    assert done.returncode == 0, done.stderr
    assert "answer:" in done.stdout
    assert "completion tokens" in done.stdout


def test_strategies_lists_every_name() -> None:
    done = run("strategies")
    assert done.returncode == 0
    for name in ("greedy", "best-of-n", "self-consistency", "weighted-majority",
                 "best-of-majority", "self-eval", "mean-logprob", "reward-http"):  # fmt: skip
        assert name in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["solve", "q", "--strategy", "nope", "--backend", "scripted", "--model", "x.json"], ""),
        (["solve", "q", "--strategy", "nope"], "Valid strategys"),
        (["solve", "q", "--strategy", "best-of-n", "--model", "small"], "needs a scorer"),
        (["generate", "hi", "-n", "0", "--model", "small"], "n must be"),
        (["generate", "hi", "--model", "/no/such.gguf"], "does not exist"),
        (
            [
                "generate",
                "hi",
                "--backend",
                "openai",
                "--base-url",
                "http://127.0.0.1:9/v1",
                "--model",
                "m",
                "--timeout",
                "2",
            ],
            "",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = run(*args, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error:")
    assert message in done.stderr
