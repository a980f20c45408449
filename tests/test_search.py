"""Step-level search on the scripted backend (a scorer that knows the right path) and on
the embedded model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from ponder import make_strategy
from ponder.backends import Backend, SamplingParams
from ponder.backends.scripted import ScriptedBackend, ScriptedRequest
from ponder.errors import BudgetError, ConfigError
from ponder.scorers import Attempt, ScoreBatch, Scorer
from ponder.strategies import STRATEGIES
from ponder.usage import Usage

STEP_LEVEL = [name for name, cls in STRATEGIES.items() if cls.step_level]


def world(request: ScriptedRequest) -> str:
    """Three steps to the answer; at each step sample 0 of a group goes right, others wrong."""
    depth = request.prefix.count("\n\n")
    if depth >= 3 or "wrong" in request.prefix:
        return "The answer is 42." if "wrong" not in request.prefix else "The answer is 7."
    return f"right step {depth}\n\n" if request.index % 3 == 0 else f"wrong step {depth}\n\n"


class KnowsTheWay(Scorer):
    name = "knows-the-way"
    process = True

    def __init__(self, fail_on: str | None = None, nan_on: str | None = None) -> None:
        self.fail_on, self.nan_on = fail_on, nan_on

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        scores = []
        for a in attempts:
            if self.fail_on and self.fail_on in a.steps[-1]:
                raise RuntimeError("scorer broke")
            if self.nan_on and self.nan_on in a.steps[-1]:
                scores.append(math.nan)
                continue
            scores.append(0.1 if "wrong" in a.steps[-1] or "7" in a.steps[-1] else 0.9)
        return ScoreBatch(tuple(scores), Usage(prompt_tokens=len(attempts), calls=1))


@pytest.mark.parametrize("name", STEP_LEVEL)
def test_each_search_finds_the_right_path(name: str) -> None:
    assert set(STEP_LEVEL) == {"beam-search", "dvts", "particle-filtering", "a-star"}
    backend = ScriptedBackend(world)
    plan = make_strategy(name, backend=backend, n=6, scorer=KnowsTheWay(), beam_width=3)
    result = plan.run("q", backend)
    assert result.answer == "42", result.trace.decision
    nodes = result.trace.nodes
    assert result.trace.chosen_path[0] == 0 and len(result.trace.chosen_path) == 5
    assert {n.status for n in nodes} <= {"kept", "pruned", "finished", "dropped", "cut"}
    assert nodes[result.trace.chosen_path[-1]].status == "finished"
    # usage over the search = every node's usage + the scoring calls
    node_usage = Usage.total(n.usage for n in nodes)
    assert result.usage.completion_tokens == node_usage.completion_tokens
    assert result.usage.prompt_tokens >= node_usage.prompt_tokens
    assert result.usage.calls >= 2


def test_a_failing_or_nan_scorer_drops_nodes_and_goes_on() -> None:
    backend = ScriptedBackend(world)
    flaky = KnowsTheWay(fail_on="wrong step 1", nan_on="wrong step 2")
    plan = make_strategy("beam-search", backend=backend, n=6, beam_width=3, scorer=flaky)
    result = plan.run("q", backend)
    assert result.answer == "42"
    dropped = [n for n in result.trace.nodes if n.status == "dropped"]
    assert dropped and any("dropped" in note for note in result.trace.notes)


def test_steps_without_delimiter_are_cut() -> None:
    backend = ScriptedBackend(lambda r: "word " * 50)
    plan = make_strategy("beam-search", backend=backend, n=2, beam_width=2, scorer="arithmetic",
                         max_step_tokens=10, max_steps=2)  # fmt: skip
    result = plan.run("q", backend)
    assert any("cut at max_step_tokens" in n.note for n in result.trace.nodes)
    assert any("cut" in note for note in result.trace.notes)


def test_bad_budgets_and_options() -> None:
    backend = ScriptedBackend(world)
    with pytest.raises(BudgetError, match="below one step"):
        make_strategy("beam-search", backend=backend, scorer="arithmetic", token_budget=10).run(
            "q", backend
        )
    with pytest.raises(BudgetError, match="samples"):
        plan = make_strategy("beam-search", backend=backend, scorer="arithmetic", n=2, beam_width=4)
        plan.run("q", backend)
    with pytest.raises(ConfigError, match="needs a scorer"):
        make_strategy("dvts", backend=backend)
    with pytest.raises(ConfigError, match="aggregate"):
        make_strategy("dvts", backend=backend, scorer="arithmetic", aggregate="max")
    outcome_only = type("OutcomeOnly", (KnowsTheWay,), {"process": False, "name": "outcome"})()
    with pytest.raises(ConfigError, match="cannot judge single steps"):
        make_strategy("dvts", backend=backend, scorer=outcome_only)


def test_token_budget_stops_the_search() -> None:
    backend = ScriptedBackend(world)
    plan = make_strategy("beam-search", backend=backend, n=6, beam_width=3,
                         scorer=KnowsTheWay(), token_budget=200)  # fmt: skip
    result = plan.run("q", backend)
    assert any("token budget" in note for note in result.trace.notes)


@pytest.mark.model
@pytest.mark.parametrize("name", STEP_LEVEL)
def test_each_search_runs_on_the_embedded_model(embedded_backend: Backend, name: str) -> None:
    plan = make_strategy(name, backend=embedded_backend, n=2, beam_width=2, scorer="arithmetic",
                         max_step_tokens=24, max_steps=2,
                         sampling=SamplingParams(max_tokens=24, temperature=0.8))  # fmt: skip
    result = plan.run("Tom has 3 apples and buys 5 more. How many apples?", embedded_backend)
    assert result.candidates
    assert result.usage.completion_tokens > 0
    assert result.usage.cached_prompt_tokens > 0  # later steps reuse the earlier ones' KV


def test_search_tree_page(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    replies = tmp_path / "replies.json"
    replies.write_text('["2 + 2 = 4\\n\\n", "The answer is 4."]')
    page = tmp_path / "tree.html"
    done = subprocess.run(
        [sys.executable, "-m", "ponder.cli", "solve", "2+2?", "--strategy", "beam-search",
         "-n", "2", "--beam-width", "2", "--process-scorer", "arithmetic", "--backend",
         "scripted", "--model", str(replies), "--trace-html", str(page)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    assert "beam-search search tree" in text and "chosen" in text and "finished" in text
