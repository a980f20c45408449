"""`ponder solve` and `ponder strategies` end to end, as a user runs them."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

PONDER = [sys.executable, "-m", "ponder.cli"]


def run(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PONDER, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def replies(tmp_path: Path) -> str:
    path = tmp_path / "replies.json"
    path.write_text(
        json.dumps(["So 1/2 of it.\nThe answer is 0.5.", "The answer is 7.", "#### \\frac{1}{2}"])
    )
    return str(path)


@pytest.mark.model
def test_solve_on_the_embedded_model_prints_json() -> None:
    done = run(
        "solve", "What is 12 + 30?", "--model", "small",
        "-n", "2", "--max-tokens", "64", "--seed", "1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["strategy"] == "self-consistency"
    assert data["model"].startswith("qwen2.5-coder-0.5b")
    assert len(data["candidates"]) == 2
    assert data["usage"]["completion_tokens"] > 0 and data["usage"]["prompt_tokens"] > 0
    assert data["usage"]["calls"] == 1  # both samples in one batched call
    assert data["trace"]["decision"]
    assert {"answer", "usage", "candidates", "trace"} <= set(data)


def test_solve_json_on_the_scripted_backend(replies: str) -> None:
    done = run("solve", "Half of 1?", "--backend", "scripted", "--model", replies,
               "-n", "3", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["answer"] == "0.5" and data["strategy"] == "self-consistency"
    assert [c["answer"] for c in data["candidates"]] == ["0.5", "7", "\\frac{1}{2}"]
    assert data["trace"]["votes"][0] == {
        "answer": "0.5",
        "count": 2,
        "weight": 2.0,
        "members": [0, 2],
    }
    assert data["usage"]["calls"] == 1 and data["usage"]["completion_tokens"] > 0


def test_solve_plain_output_has_answer_votes_and_cost(replies: str) -> None:
    done = run("solve", "Half of 1?", "--backend", "scripted", "--model", replies, "-n", "3")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "vote table" in out and "0.5" in out
    assert "prompt tokens" in out and "cached" in out and "completion tokens" in out
    assert "majority: 2 of 3 samples" in out
    assert out.strip().splitlines()[-1] == "answer: 0.5"
    assert "\x1b[" not in out  # no progress bar or colours when stdout is not a terminal


def test_solve_with_a_scorer_and_options(replies: str) -> None:
    done = run("solve", "Half of 1?", "--backend", "scripted", "--model", replies,
               "-s", "best-of-majority", "--scorer", "mean-logprob", "-n", "3",
               "--option", "min_fraction=0.5", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["trace"]["params"]["min_fraction"] == 0.5
    assert all("mean-logprob" in c["scores"] for c in data["candidates"])


def test_strategies_lists_every_name() -> None:
    done = run("strategies")
    assert done.returncode == 0
    for name in ("greedy", "best-of-n", "self-consistency", "weighted-majority",
                 "best-of-majority", "self-eval", "mean-logprob", "self-certainty",
                 "reward-http", "oracle"):  # fmt: skip
        assert name in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["solve", "q", "--strategy", "nope"], "Valid strategies: a-star"),
        (["solve", "q", "--strategy", "self-consistancy"], "Did you mean 'self-consistency'"),
        (["solve", "q", "--scorer", "slef-eval"], "Valid scorers"),
        (["solve", "q", "-s", "beam-search", "-n", "2"], "needs at least 4 samples"),
        (["solve", "q", "--beam-width", "3"], "has no option beam_width"),
        (["solve", "q", "-o", "min_fraction=0.3"], "has no option min_fraction"),
        (["solve", "q", "--process-scorer", "self-eval"], "use --scorer"),
        (["solve", "q", "--scorer", "self-eval", "--process-scorer", "self-eval"], "not both"),
        (["solve", "q", "-n", "3", "--particles", "4"], "disagree"),
        (["solve", "q", "-o", "nokey"], "key=value"),
        (["solve", "q", "--temperature", "-1", "--backend", "scripted", "--model", "x"], ""),
        (["solve", "q", "--scorer", "oracle", "-s", "best-of-n"], "evaluation only"),
        (["generate", "hi", "-n", "0", "--model", "small"], "Invalid value for '-n'"),
        (["generate", "hi", "--model", "/no/such.gguf"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = run(*args, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error:")
    assert message in done.stderr


def test_reward_endpoint_down_is_one_line(replies: str) -> None:
    done = run("solve", "q", "-s", "best-of-n", "--scorer", "reward-http",
               "--reward-url", "http://127.0.0.1:9/classify",
               "--backend", "scripted", "--model", replies, "-n", "2")  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "error: reward model at http://127.0.0.1:9/classify is unreachable" in done.stderr


def test_json_output_has_no_nan() -> None:
    from ponder.serialize import jsonable

    data = jsonable({"scores": {"self-eval": math.nan, "x": 1.0}, "list": [math.inf, 2.0]})
    assert data == {"scores": {"self-eval": None, "x": 1.0}, "list": [None, 2.0]}
    json.dumps(data, allow_nan=False)
