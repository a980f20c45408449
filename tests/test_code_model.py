"""The code task and program-aided math on the real embedded model (small, few tokens)."""

from __future__ import annotations

import ast
from pathlib import Path

from ponder.backends import Backend
from ponder.core import SamplingParams
from ponder.eval import EvalConfig, Evaluation
from ponder.eval.datasets import load_dataset
from ponder.strategies.spec import StrategySpec


def test_the_model_completes_a_humaneval_function(embedded_backend: Backend) -> None:
    question = load_dataset("humaneval", limit=1).questions[0]
    spec = StrategySpec(
        "self-consistency", samples=2, task="code", sampling=SamplingParams(max_tokens=64)
    )
    result = spec.build(embedded_backend).run(question.question, embedded_backend)
    assert result.usage.completion_tokens > 0 and len(result.candidates) == 2
    for candidate in result.candidates:
        if candidate.answer is not None:
            ast.parse(candidate.answer)  # a whole program that parses, or no answer


def test_an_eval_on_humaneval(embedded_backend: Backend, tmp_path: Path) -> None:
    config = EvalConfig(
        dataset="humaneval", limit=2, n=2, strategies=["self-consistency", "best-of-n"],
        sampling=SamplingParams(max_tokens=64), out=tmp_path / "out",
    )  # fmt: skip
    summary = Evaluation(config).run(embedded_backend)
    labels = {r["strategy"] for r in summary.rows}
    assert {"pass@k", "self-consistency", "best-of-n[public-tests]"} <= labels
    assert {v["scorer"] for v in summary.verifiers} >= {"public-tests"}
    assert summary.meta["task"] == "code"


def test_a_program_answers_a_word_problem(embedded_backend: Backend) -> None:
    question = load_dataset("gsm8k", limit=1).questions[0]
    spec = StrategySpec("greedy", task="math-program", sampling=SamplingParams(max_tokens=64))
    result = spec.build(embedded_backend).run(question.question, embedded_backend)
    assert result.usage.completion_tokens > 0
