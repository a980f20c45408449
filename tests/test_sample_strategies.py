"""Sample-based strategies on the scripted backend, with known right answers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from ponder import make_strategy
from ponder.backends.scripted import ScriptedBackend
from ponder.errors import BudgetError, ConfigError, UnknownNameError, UnsupportedError
from ponder.result import Candidate
from ponder.scorers import SCORERS, Attempt, ScoreBatch, Scorer
from ponder.strategies import STRATEGIES, Budget, SampleStrategy, build_strategy
from ponder.tasks import get_task
from ponder.usage import Usage


class KnowsSeventeen(Scorer):
    """A scorer that likes answers containing 17 (the 'right' one in these tests)."""

    name = "knows-17"
    score_range = (0.0, 1.0)

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        return ScoreBatch(
            tuple(1.0 if "17" in a.text else 0.1 for a in attempts),
            Usage(prompt_tokens=len(attempts), calls=1),
        )


REPLIES = [
    "The answer is 18.",
    "#### 17",
    "The answer is $18.00",
    "I am not sure.",
    "so it is 18",
    "The answer is 17.",
]


def test_self_consistency_votes_over_equivalent_spellings() -> None:
    backend = ScriptedBackend(REPLIES)
    result = make_strategy("self-consistency", backend=backend, n=6).run("q", backend)
    assert result.answer == "18"
    top = result.trace.votes[0]
    assert top.count == 3  # "18", "$18.00" and "18" cluster together
    assert sum(v.count for v in result.trace.votes) == 5  # the abstention does not vote
    assert result.candidates[3].answer is None
    assert len(backend.requests) == 6


def test_self_consistency_tie_goes_to_the_earliest_sample() -> None:
    backend = ScriptedBackend(["The answer is 5.", "The answer is 7.", "7", "5"])
    result = make_strategy("self-consistency", backend=backend, n=4).run("q", backend)
    assert result.answer == "5"
    assert "tie" in result.trace.decision


def test_all_abstaining_gives_no_answer() -> None:
    backend = ScriptedBackend(["no idea", "none"])
    result = make_strategy("self-consistency", backend=backend, n=2).run("q", backend)
    assert result.answer is None and result.chosen is None


def test_best_of_n_takes_the_scorers_favourite() -> None:
    backend = ScriptedBackend(REPLIES)
    result = make_strategy("best-of-n", backend=backend, n=6, scorer=KnowsSeventeen()).run(
        "q", backend
    )
    assert result.answer == "17"
    assert result.candidates[result.chosen].scores["knows-17"] == 1.0


def test_best_of_majority_filters_rare_answers() -> None:
    # the scorer likes 17, but 17 appears once in 10 samples: below min_fraction 0.2
    replies = ["The answer is 18."] * 9 + ["The answer is 17."]
    backend = ScriptedBackend(replies)
    bom = make_strategy(
        "best-of-majority", backend=backend, n=10, scorer=KnowsSeventeen(), min_fraction=0.2
    )
    assert bom.run("q", backend).answer == "18"
    backend = ScriptedBackend(["The answer is 18."] * 6 + ["The answer is 17."] * 4)
    assert bom.run("q", backend).answer == "17"


def test_weighted_majority_by_probability_and_by_scorer() -> None:
    replies = [
        ("The answer is 18.", -3.0),
        ("The answer is 18.", -3.0),
        ("The answer is 17.", -0.01),
    ]
    backend = ScriptedBackend(replies)
    result = make_strategy("weighted-majority", backend=backend, n=3).run("q", backend)
    # two unlikely votes for 18 weigh less than one confident vote for 17
    assert result.answer == "17"
    assert backend.requests[0].params.logprobs
    backend = ScriptedBackend(["The answer is 18."] * 2 + ["The answer is 17."])
    scored = make_strategy("weighted-majority", backend=backend, n=3, scorer=KnowsSeventeen())
    assert scored.run("q", backend).answer == "17"


def test_greedy_uses_temperature_zero_and_one_sample() -> None:
    backend = ScriptedBackend(["The answer is 3."])
    result = make_strategy("greedy", backend=backend, n=8).run("q", backend)
    assert result.answer == "3"
    assert len(backend.requests) == 1
    assert backend.requests[0].params.temperature == 0.0


def test_samples_are_drawn_in_one_batched_call() -> None:
    backend = ScriptedBackend(REPLIES)
    result = make_strategy("self-consistency", backend=backend, n=6).run("q", backend)
    assert result.usage.calls == 1


def test_token_budget_stops_sampling() -> None:
    backend = ScriptedBackend(["The answer is 18."])  # 9 tokens each
    plan = make_strategy("self-consistency", backend=backend, token_budget=30, batch_size=2)
    result = plan.run("q", backend)
    assert len(result.candidates) < 16
    assert any("token budget" in note for note in result.trace.notes)


def test_bad_input_errors() -> None:
    backend = ScriptedBackend()
    with pytest.raises(UnknownNameError, match=r"Valid strategys: .*self-consistency"):
        build_strategy("self-consistancy")
    with pytest.raises(UnknownNameError, match="self-eval"):
        make_strategy("best-of-n", backend=backend, scorer="slef-eval")
    with pytest.raises(ConfigError, match="needs a scorer"):
        make_strategy("best-of-n", backend=backend)
    with pytest.raises(ConfigError, match="evaluation only"):
        make_strategy("best-of-n", backend=backend, scorer="oracle", scorer_options={"gold": "1"})
    with pytest.raises(ConfigError, match="no option beam_width"):
        make_strategy("self-consistency", backend=backend, beam_width=3)
    with pytest.raises(BudgetError, match="samples"):
        Budget(samples=0)
    with pytest.raises(ConfigError, match="min_fraction"):
        make_strategy("best-of-majority", backend=backend, scorer=KnowsSeventeen(), min_fraction=0)


def test_scorer_needing_logprobs_fails_before_any_sampling() -> None:
    backend = ScriptedBackend(logprobs=False)
    plan = make_strategy("best-of-n", backend=ScriptedBackend(), scorer="mean-logprob", n=4)
    with pytest.raises(UnsupportedError, match="logprobs"):
        plan.run("q", backend)
    assert backend.requests == []


@pytest.mark.parametrize(
    "name", [n for n, c in STRATEGIES.items() if issubclass(c, SampleStrategy)]
)
def test_every_sample_strategy_counts_usage_from_its_calls(name: str) -> None:
    backend = ScriptedBackend(REPLIES)
    scorer = KnowsSeventeen() if STRATEGIES.get(name).needs_scorer else None
    result = make_strategy(name, backend=backend, n=4, scorer=scorer).run("q", backend)
    assert result.usage.completion_tokens > 0
    assert result.usage.calls >= 1
    per_candidate = Usage.total(c.usage for c in result.candidates)
    scoring = Usage(prompt_tokens=len({c.text for c in result.candidates}), calls=1)
    expected = per_candidate + Usage(calls=1) + (scoring if scorer else Usage())
    assert result.usage.completion_tokens == expected.completion_tokens
    assert result.usage.prompt_tokens == expected.prompt_tokens
    assert result.usage.calls == expected.calls
    assert result.to_dict()["trace"]["strategy"] == name


def test_select_is_pure_and_replayable() -> None:
    task = get_task("math")
    answers = ["18", "17", "18", None]
    candidates = [
        Candidate(text=f"The answer is {a}", answer=a, usage=Usage(), cluster=k, scores={})
        for a, k in zip(answers, task.cluster(answers), strict=True)
    ]
    plan = STRATEGIES.get("self-consistency")()
    one = plan.select(candidates, np.random.default_rng(0))  # type: ignore[attr-defined]
    two = plan.select(candidates, np.random.default_rng(1))  # type: ignore[attr-defined]
    assert one == two and one.answer == "18"


def test_registered_scorers_document_their_range() -> None:
    for name, cls in SCORERS.items():
        low, high = cls.score_range
        assert low < high, name
        assert not math.isnan(low) and cls.summary, name
