"""Evaluation as a library, and the extension point early-stopping strategies stand on: a
sample strategy that stops early decides the same live and in replay, and replay charges it
only for the samples it read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ponder.backends.scripted import ScriptedBackend, ScriptedRequest
from ponder.core import SamplingParams
from ponder.eval.api import EvalConfig, Evaluation
from ponder.eval.bank import Sample
from ponder.eval.collect import QuestionData
from ponder.eval.lines import Line
from ponder.eval.question import Question
from ponder.eval.replay import candidates_of, replay
from ponder.result import Candidate
from ponder.strategies.base import Budget, SampleStrategy, Selection, vote_table
from ponder.tasks import get_task
from ponder.usage import Usage

TASK = get_task("math")
ANSWERS = ["3", "4", "3", "5", "3", "3"]


@dataclass(frozen=True, kw_only=True)
class FirstRepeat(SampleStrategy):
    """Draw one sample at a time; stop as soon as an answer has come twice."""

    name = "first-repeat"
    batch_size: int | None = 1

    def settled(self, candidates: Sequence[Candidate]) -> str | None:
        votes = vote_table(candidates)
        return f"{votes[0].answer} came twice" if votes and votes[0].count >= 2 else None

    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        votes = vote_table(candidates)
        top = votes[0]
        return Selection(top.members[0], top.answer, "most frequent so far", votes)


def _by_seed(request: ScriptedRequest) -> str:
    """Sample i of the question answers ANSWERS[i], whichever call draws it."""
    assert request.params.seed is not None
    return f"The answer is {ANSWERS[(request.params.seed + request.index) % len(ANSWERS)]}."


def test_an_early_stop_is_the_same_live_and_in_replay_and_charged_only_what_it_read() -> None:
    backend = ScriptedBackend(_by_seed)
    strategy = FirstRepeat(budget=Budget(samples=6), sampling=SamplingParams(seed=0))
    live = strategy.run("q", backend)
    assert [c.answer for c in live.candidates] == ["3", "4", "3"]
    assert live.answer == "3" and live.trace.used == 3 and live.trace.stop == "3 came twice"
    assert len(backend.requests) == 3  # one sample a call: nothing past the stop was drawn

    samples = tuple(
        Sample(
            idx=i, seed=i, text=f"The answer is {a}.", answer=a, finish_reason="stop",
            usage=Usage(prompt_tokens=10 if i == 0 else 0, completion_tokens=5),
        )
        for i, a in enumerate(ANSWERS)
    )  # fmt: skip
    replayed = strategy.decide(candidates_of(samples, TASK), np.random.default_rng(0))
    assert (replayed.answer, replayed.used, replayed.stop) == ("3", 3, "3 came twice")

    item = QuestionData(Question("q", "q", "3"), samples, {}, True)
    cells = replay([item], TASK, [Line("first-repeat", strategy, ks=(6,))], n=6)
    cell = cells[("first-repeat", 6)]
    assert cell.values == [1.0]
    assert cell.samples_used == [3.0]
    assert cell.completion_tokens == [15.0]  # 3 samples of 5 tokens, not 6


def test_evaluation_runs_as_a_library(tmp_path: Path) -> None:
    config = EvalConfig(
        dataset="synthetic", limit=2, n=2, strategies=["self-consistency"],
        bank=tmp_path / "bank.sqlite", sampling=SamplingParams(max_tokens=32),
    )  # fmt: skip
    evaluation = Evaluation(config)
    seen: list[str] = []
    summary = evaluation.run(
        ScriptedBackend(_by_seed), on_question=lambda data: seen.append(data.question.id)
    )
    assert len(seen) == 2 and summary.paths == {}
    lines = {(r["strategy"], r["k"]) for r in summary.rows}
    assert lines == {("pass@k", 1), ("pass@k", 2), ("self-consistency", 1), ("self-consistency", 2)}
    assert summary.meta["complete_questions"] == 2 and summary.meta["generated_samples"] == 4
    assert summary.meta["question_ids"] == [q.id for q in evaluation.dataset.questions]
    assert summary.meta["questions_chosen"].startswith("2 generated")
    again = Evaluation(config).run(ScriptedBackend(_by_seed))
    assert again.meta["generated_samples"] == 0 and again.rows == summary.rows


def test_a_bad_config_fails_before_any_model_is_needed() -> None:
    from ponder.errors import ConfigError, UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean 'beam-search'"):
        Evaluation(EvalConfig(dataset="synthetic", strategies=["beem-search"], out=Path("x")))
    with pytest.raises(ConfigError, match="n must be an integer from 1 to 10,000"):
        EvalConfig(dataset="synthetic", n=10**9)
