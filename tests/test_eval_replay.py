"""Replay against brute-force enumeration of every subset, the cost of a budget, verifier
false positives, the lines built from the registries, and live step-level strategies."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ponder.backends.scripted import ScriptedBackend, ScriptedRequest
from ponder.core import SamplingParams
from ponder.errors import ConfigError
from ponder.eval.bank import RunSpec, Sample, SampleBank
from ponder.eval.collect import Collector, Plan, QuestionData
from ponder.eval.datasets import Question, load_dataset
from ponder.eval.lines import COVERAGE, LineRequest, Lines, build_lines
from ponder.eval.replay import drop_duplicates, live_cells, replay
from ponder.eval.verifiers import verifier
from ponder.result import Result
from ponder.scorers import build_scorer
from ponder.tasks import get_task
from ponder.usage import Usage

TASK = get_task("math")
SAMPLING = SamplingParams(max_tokens=64, temperature=0.8, logprobs=True)
SCORER = build_scorer("mean-logprob")


def _lines(
    names: list[str] | None,
    scorers: Sequence[str] = (),
    process: Sequence[str] = (),
    n: int = 6,
    options: dict[str, object] | None = None,
) -> Lines:
    request = LineRequest(names, scorers, process, n, 0, SAMPLING, options or {})
    return build_lines(request, ScriptedBackend())


def _item(
    qid: str, gold: str, answers: list[str | None], scores: list[float], prompt: int = 50
) -> QuestionData:
    samples = []
    for i, (answer, score) in enumerate(zip(answers, scores, strict=True)):
        text = f"The answer is {answer}." if answer is not None else "no idea"
        samples.append(
            Sample(
                idx=i,
                seed=i,
                text=text,
                answer=answer,
                finish_reason="stop",
                usage=Usage.for_tokens(
                    prompt=prompt if i == 0 else 0, completion=10 * (i + 1), parameters=1000
                )
                + Usage(seconds=0.1 * (i + 1)),
                mean_logprob=score,
                scores={"mean-logprob": score},
                score_usage={"mean-logprob": Usage()},
            )
        )
    return QuestionData(Question(qid, f"question {qid}", gold), tuple(samples), {}, True)


ITEMS = [
    _item("a", "5", ["5", "7", "7", "5", "9", None], [-0.9, -0.1, -0.5, -0.2, -0.3, -0.05]),
    _item("b", "3", ["3", "3", "4", "4", "4", "3"], [-0.3, -0.3, -0.2, -0.9, -0.9, -0.1]),
    _item("c", "8", ["1", "2", "1", None, "2", "2"], [-0.4, -0.4, -0.4, -0.4, -0.4, -0.4]),
]


def _majority_right(answers: list[str | None], gold: str) -> bool:
    """Self-consistency by hand: the largest answer group, ties to the earliest sample."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, a in enumerate(answers):
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
            first.setdefault(a, i)
    if not counts:
        return False
    best = min(counts, key=lambda a: (-counts[a], first[a]))
    return best == gold


def _best_right(answers: list[str | None], scores: list[float], gold: str) -> bool:
    """Best-of-k by hand: highest score among samples with an answer, ties to the earliest."""
    pool = [i for i, a in enumerate(answers) if a is not None] or list(range(len(answers)))
    best = max(pool, key=lambda i: (scores[i], -i))
    return answers[best] == gold


def test_replay_equals_enumeration_of_every_subset() -> None:
    lines = _lines(["self-consistency", "best-of-n"], ["mean-logprob"], n=6)
    cells = replay(ITEMS, TASK, lines.replayed, n=6, subset_count=64)
    for item, qi in zip(ITEMS, range(3), strict=True):
        answers = [s.answer for s in item.samples]
        scores = [s.scores["mean-logprob"] for s in item.samples]
        gold = item.question.answer
        right = [a == gold for a in answers]
        for k in (1, 2, 4, 6):
            subsets = list(itertools.combinations(range(6), k))
            majority = np.mean([_majority_right([answers[i] for i in s], gold) for s in subsets])
            best = np.mean(
                [
                    _best_right([answers[i] for i in s], [scores[i] for i in s], gold)
                    for s in subsets
                ]
            )
            coverage = np.mean([any(right[i] for i in s) for s in subsets])
            assert cells[("self-consistency", k)].values[qi] == pytest.approx(majority)
            assert cells[("best-of-n[mean-logprob]", k)].values[qi] == pytest.approx(best)
            assert cells[(COVERAGE, k)].values[qi] == pytest.approx(coverage)
            # cost: the prompt once, plus the completions of the k samples used
            completion = np.mean([sum(10 * (i + 1) for i in s) for s in subsets])
            cell = cells[("self-consistency", k)]
            assert cell.prompt_tokens[qi] == 50
            assert cell.completion_tokens[qi] == pytest.approx(completion)
            assert cell.seconds[qi] == pytest.approx(completion / 100)
            assert cell.flops[qi] == pytest.approx(2 * 1000 * (50 + completion))
            assert cells[(COVERAGE, k)].completion_tokens[qi] == pytest.approx(completion)


def test_random_subsets_are_seeded_and_estimate_the_exact_mean() -> None:
    rng = np.random.default_rng(5)
    answers: list[str | None] = [
        str(x) for x in rng.choice([1, 2, 3], size=16, p=[0.4, 0.35, 0.25])
    ]
    item = _item("z", "1", answers, [float(-x) for x in rng.random(16)])
    lines = _lines(["self-consistency"], n=16)
    one = replay([item], TASK, lines.replayed, n=16, subset_count=400, seed=1)
    same = replay([item], TASK, lines.replayed, n=16, subset_count=400, seed=1)
    assert one[("self-consistency", 8)].values == same[("self-consistency", 8)].values
    exact = np.mean(
        [
            _majority_right([answers[i] for i in s], "1")
            for s in itertools.combinations(range(16), 8)
        ]
    )
    assert one[("self-consistency", 8)].values[0] == pytest.approx(exact, abs=0.1)
    assert one[("self-consistency", 16)].values[0] == float(_majority_right(answers, "1"))


def test_scorer_cost_is_paid_only_by_lines_that_read_the_scorer() -> None:
    costly = [
        QuestionData(
            item.question,
            tuple(
                dataclasses.replace(
                    s,
                    scores={"self-eval": i / 10},
                    score_usage={"self-eval": Usage(prompt_tokens=100, completion_tokens=1)},
                )
                for i, s in enumerate(item.samples)
            ),
            {},
            True,
        )
        for item in ITEMS
    ]
    lines = _lines(["best-of-n", "self-consistency"], ["self-eval"], n=6)
    cells = replay(costly, TASK, lines.replayed, n=6)
    scored, plain = cells[("best-of-n[self-eval]", 4)], cells[("self-consistency", 4)]
    assert scored.scoring_tokens[0] == pytest.approx(4 * 101)
    assert scored.prompt_tokens[0] == pytest.approx(50 + 400)
    assert plain.scoring_tokens[0] == 0 and plain.prompt_tokens[0] == 50


def test_verifier_rates_and_the_accuracy_they_allow() -> None:
    # mean-logprob probabilities exp(score): -0.1 -> 0.90 and -0.5 -> 0.61 are accepted
    # (>= 0.5), -0.9 -> 0.41 and -1.0 -> 0.37 are not. q1: a wrong answer is the most
    # confident; q2: the right one is; q3: all wrong.
    items = [
        _item("1", "5", ["5", "9", "5"], [-1.0, -0.1, -0.5]),
        _item("2", "5", ["5", "9", "9"], [-0.1, -0.5, -0.9]),
        _item("3", "5", ["4", "9", "9"], [-0.1, -0.5, -0.9]),
    ]
    report = verifier(items, TASK, "mean-logprob", 3)
    assert (report.tpr.accepted, report.tpr.samples) == (2, 3)
    assert (report.fpr.accepted, report.fpr.samples) == (4, 6)
    assert report.threshold == 0.5 and report.unjudged == 0 and report.judged_questions == 3
    # TPR = FPR: accepting tells nothing, so resampling gets what one sample gets
    assert report.pass_at_1 == pytest.approx(1 / 3)
    assert report.resampling_limit == pytest.approx(1 / 3)
    assert report.resampling[1] == pytest.approx(1 / 3)
    assert report.best_of[1] == pytest.approx(1 / 3)  # one sample: no choice to get wrong
    assert report.best_of[3] == pytest.approx(1 / 3)  # q2 only
    assert report.best_of[2] == pytest.approx(np.mean([1 / 3, 2 / 3, 0.0]))
    # an unjudged sample is left out and counted; a question with none judged is left out
    blind = dataclasses.replace(
        items[0], samples=tuple(
            dataclasses.replace(s, scores={"mean-logprob": math.nan}) for s in items[0].samples
        )
    )  # fmt: skip
    partial = verifier([blind, *items[1:]], TASK, "mean-logprob", 3)
    assert (partial.unjudged, partial.samples, partial.judged_questions) == (3, 9, 2)
    assert partial.pass_at_1 == pytest.approx(1 / 6)


def test_lines_come_from_the_registries_and_duplicates_are_dropped() -> None:
    lines = _lines(None, ["mean-logprob"], n=4)
    labels = [line.label for line in lines.replayed]
    assert labels[0] == COVERAGE
    assert {
        "self-consistency",
        "weighted-majority",
        "best-of-n[mean-logprob]",
        "best-of-majority[mean-logprob]",
        "weighted-majority[mean-logprob]",
    } <= set(labels)
    # greedy samples at temperature 0: it runs live, once, whatever the budgets
    assert [(j.label, j.k) for j in lines.jobs] == [("greedy", 1)]
    items = [_item("a", "5", ["5", "7", "7", "5"], [-0.9, -0.1, -0.5, -0.2])]
    cells = replay(items, TASK, lines.replayed, n=4)
    cells, kept = drop_duplicates(cells, lines.replayed)
    kept_labels = {line.label for line in kept}
    # exp(mean-logprob) weights are the unscored RPC weights: the same line twice
    assert "weighted-majority[mean-logprob]" not in kept_labels
    assert "self-consistency[mean-logprob]" not in kept_labels
    assert "best-of-n[mean-logprob]" in kept_labels
    assert all(label in kept_labels for label, _ in cells)
    with pytest.raises(ConfigError, match="no chosen strategy takes beam_width"):
        _lines(["self-consistency"], n=4, options={"beam_width": 2})
    # a step-level strategy named without a process scorer gets the task's free default
    defaulted = _lines(["beam-search"], n=4)
    assert {line.label for line in defaulted.live} == {"beam-search[arithmetic]"}


def _steps(request: ScriptedRequest) -> str:
    """Two steps, the second one ending the answer."""
    if request.prefix:
        return "So 2 + 3 = 5.\nThe answer is 5."
    return f"Step {request.index}: add.\n\n"


def test_step_level_strategies_run_live_and_are_stored_per_question_and_budget(
    tmp_path: Path,
) -> None:
    questions = load_dataset("synthetic", limit=2).questions
    lines = _lines(["beam-search"], [], ["mean-logprob"], n=4,
                   options={"beam_width": 2, "max_steps": 3})  # fmt: skip
    # one beam is below the width of 2: that budget is skipped, with a note
    assert [(j.label, j.k) for j in lines.jobs] == [
        ("beam-search[mean-logprob]", k) for k in (2, 4)
    ]
    assert any("k=1 skipped" in note for note in lines.notes)
    backend = ScriptedBackend(_steps)
    with SampleBank(tmp_path / "bank.sqlite") as bank:
        run = bank.open_run(RunSpec("synthetic", "scripted", "t", {}))
        plan = Plan(
            run=run,
            questions=questions,
            n=4,
            sampling=SAMPLING,
            seed=0,
            scorers=[SCORER],
            live=lines.jobs,
        )
        first = Collector(bank, backend, TASK, plan)
        data = asyncio.run(first.run())
        assert first.progress.live_runs == 4 and all(d.complete for d in data)
        requests = len(backend.requests)
        again = Collector(bank, backend, TASK, plan)
        data = asyncio.run(again.run())
        assert again.progress.live_reused == 4 and again.progress.live_runs == 0
        assert len(backend.requests) == requests
    stored = data[0].live[("beam-search[mean-logprob]", 4)]
    assert stored.data["answer"] == "5" and stored.correct == (questions[0].answer == "5")
    assert Result.from_dict(stored.data).to_dict() == stored.data
    cells = live_cells(data, lines.live)
    cell = cells[("beam-search[mean-logprob]", 4)]
    assert cell.live and len(cell.values) == 2
    assert cell.prompt_tokens[0] == stored.data["usage"]["prompt_tokens"] > 0
