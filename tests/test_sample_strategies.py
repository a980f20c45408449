"""Sample-based strategies on the scripted backend, with known right answers."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import ponder
from ponder.backends.scripted import ScriptedBackend
from ponder.core import SamplingParams
from ponder.errors import BudgetError, ConfigError, UnknownNameError, UnsupportedError
from ponder.result import Candidate
from ponder.scorers import SCORERS, Attempt, ScoreBatch, Scorer
from ponder.strategies import STRATEGIES, Budget, SampleStrategy
from ponder.strategies.spec import StrategySpec
from ponder.tasks import get_task
from ponder.usage import Usage
from tests.support.recording import Recording
from tests.support.strategies import make as make_strategy

SAMPLE_STRATEGIES = [n for n, c in STRATEGIES.items() if issubclass(c, SampleStrategy)]


class KnowsSeventeen(Scorer):
    """A scorer that likes answers containing 17 (the 'right' one in these tests)."""

    name = "knows-17"
    score_range = (0.0, 1.0)

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        self.seen += [a.text for a in attempts]
        return ScoreBatch(
            tuple(1.0 if "17" in a.text else 0.1 for a in attempts),
            tuple(Usage(prompt_tokens=1, calls=1) for _ in attempts),
        )


class Reward(Scorer):
    """An unbounded reward model: 17 gets +3, everything else -3, 'unsure' is not judged."""

    name = "reward"
    score_range = (-math.inf, math.inf)

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        def one(text: str) -> float:
            if "sure" in text:
                return math.nan
            return 3.0 if "17" in text else -3.0

        return ScoreBatch(tuple(one(a.text) for a in attempts))


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
    assert top.count == 3 and top.members == (0, 2, 4)  # "18", "$18.00" and "18"
    assert sum(v.count for v in result.trace.votes) == 5  # the abstention does not vote
    assert result.candidates[3].answer is None and result.candidates[3].cluster is None
    assert len(backend.requests) == 6
    assert result.chosen == 0 and result.text == "The answer is 18."


def test_self_consistency_clusters_fractions_and_decimals() -> None:
    replies = ["The answer is 1/2.", "\\boxed{\\frac{1}{2}}", "The answer is 0.75.", "#### 0.5"]
    backend = ScriptedBackend(replies)
    result = make_strategy("self-consistency", backend=backend, n=4).run("q", backend)
    assert result.answer == "1/2"
    assert result.trace.votes[0].count == 3


def test_self_consistency_tie_goes_to_the_cluster_sampled_first() -> None:
    backend = ScriptedBackend(["The answer is 5.", "The answer is 7.", "7", "5"])
    result = make_strategy("self-consistency", backend=backend, n=4).run("q", backend)
    assert result.answer == "5"
    assert "2-way tie broken by the earliest sample" in result.trace.decision
    backend = ScriptedBackend(["no idea", "The answer is 7.", "The answer is 5.", "5", "7"])
    result = make_strategy("self-consistency", backend=backend, n=5).run("q", backend)
    assert result.answer == "7"  # the abstention at index 0 does not decide the tie


def test_all_abstaining_gives_no_answer(tmp_path: Path) -> None:
    backend = ScriptedBackend(["no idea", "none"])
    for name in SAMPLE_STRATEGIES:
        cls = STRATEGIES.get(name)
        scorer = KnowsSeventeen() if cls.needs_scorer else None
        options = cls.example_options(tmp_path, backend.model_id)
        strategy = make_strategy(name, backend=backend, n=2, scorer=scorer, **options)
        result = strategy.run("q", backend)
        assert result.answer is None, name
        if name not in ("best-of-n", "greedy"):  # these still show a text, without answer
            assert result.chosen is None, name


def test_best_of_n_takes_the_scorers_favourite() -> None:
    backend = ScriptedBackend(REPLIES)
    result = make_strategy("best-of-n", backend=backend, n=6, scorer=KnowsSeventeen()).run(
        "q", backend
    )
    assert result.answer == "17"
    assert result.chosen == 1  # "#### 17" and "The answer is 17." tie at 1.0: lowest index
    assert result.candidates[result.chosen].scores["knows-17"] == 1.0


def test_best_of_n_never_invents_a_score() -> None:
    backend = ScriptedBackend(["I am not sure, 17", "The answer is 18.", "The answer is 17."])
    result = make_strategy("best-of-n", backend=backend, n=3, scorer=Reward()).run("q", backend)
    assert math.isnan(result.candidates[0].scores["reward"])  # not judged, kept as NaN
    assert result.chosen == 2 and result.answer == "17"


def test_scores_are_computed_once_per_distinct_text() -> None:
    scorer = KnowsSeventeen()
    backend = ScriptedBackend(["The answer is 18."] * 3 + ["The answer is 17."])
    result = make_strategy("best-of-n", backend=backend, n=4, scorer=scorer).run("q", backend)
    assert scorer.seen == ["The answer is 18.", "The answer is 17."]
    assert [c.scores["knows-17"] for c in result.candidates] == [0.1, 0.1, 0.1, 1.0]


def test_best_of_majority_filters_rare_answers() -> None:
    # the scorer likes 17, but 17 appears once in 10 samples: below min_fraction 0.2
    backend = ScriptedBackend(["The answer is 18."] * 9 + ["The answer is 17."])
    bom = make_strategy(
        "best-of-majority", backend=backend, n=10, scorer=KnowsSeventeen(), min_fraction=0.2
    )
    assert bom.run("q", backend).answer == "18"
    backend = ScriptedBackend(["The answer is 18."] * 6 + ["The answer is 17."] * 4)
    assert bom.run("q", backend).answer == "17"


def test_best_of_majority_without_frequent_answers_trusts_the_scorer() -> None:
    # every answer once: none reaches 0.5 of 4, so all the (equally) largest clusters stay
    backend = ScriptedBackend([f"The answer is {a}." for a in (15, 16, 17, 18)])
    bom = make_strategy(
        "best-of-majority", backend=backend, n=4, scorer=KnowsSeventeen(), min_fraction=0.5
    )
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
    assert result.trace.votes[0].weight == pytest.approx(math.exp(-0.01))
    assert backend.requests[0].params.logprobs
    backend = ScriptedBackend(["The answer is 18."] * 2 + ["The answer is 17."])
    scored = make_strategy("weighted-majority", backend=backend, n=3, scorer=KnowsSeventeen())
    assert scored.run("q", backend).answer == "17"


def test_weighted_majority_maps_unbounded_rewards_to_probabilities() -> None:
    # raw rewards would give 18 a negative total (-6) and "sure" a NaN; sigmoid weights
    # keep every vote non-negative: 18 -> 2 * 0.047, 17 -> 0.953
    backend = ScriptedBackend(["The answer is 18."] * 2 + ["The answer is 17.", "sure: 18"])
    result = make_strategy("weighted-majority", backend=backend, n=4, scorer=Reward()).run(
        "q", backend
    )
    assert result.answer == "17"
    weights = {v.answer: v.weight for v in result.trace.votes}
    assert weights["18"] == pytest.approx(2 / (1 + math.exp(3)))  # the NaN vote weighs 0
    assert all(w >= 0 for w in weights.values())


def test_weighted_majority_without_scorer_needs_logprobs_before_sampling() -> None:
    backend = ScriptedBackend(logprobs=False)
    plan = make_strategy("weighted-majority", backend=backend, n=2)
    with pytest.raises(UnsupportedError, match="logprobs"):
        plan.run("q", backend)
    assert backend.requests == []


def test_greedy_uses_temperature_zero_and_one_sample() -> None:
    backend = ScriptedBackend(["The answer is 3."])
    result = make_strategy("greedy", backend=backend, n=8).run("q", backend)
    assert result.answer == "3"
    assert len(backend.requests) == 1
    assert backend.requests[0].params.temperature == 0.0
    assert result.trace.params["budget"]["samples"] == 1


def test_samples_are_drawn_in_batched_calls_within_the_backend_limit() -> None:
    backend = Recording(REPLIES)
    result = make_strategy("self-consistency", backend=backend, n=6).run("q", backend)
    assert result.usage.calls == 1 and backend.sizes == [6]
    backend = Recording(REPLIES, max_n=4)
    result = make_strategy("self-consistency", backend=backend, n=10).run("q", backend)
    assert backend.sizes == [4, 4, 2] and len(result.candidates) == 10


def test_sample_seeds_follow_the_sample_index_across_batches() -> None:
    backend = Recording(REPLIES, max_n=2)
    sampling = SamplingParams(seed=100)
    make_strategy("self-consistency", backend=backend, n=5, sampling=sampling).run("q", backend)
    # the scripted backend sees each call's base seed; sample i of a call uses seed + i
    assert [r.params.seed + r.index for r in backend.requests] == [100, 101, 102, 103, 104]  # type: ignore[operator]


def test_derived_seeds_depend_on_the_strategy_seed_and_the_question() -> None:
    def first_seed(question: str, seed: int) -> int | None:
        backend = ScriptedBackend(REPLIES)
        make_strategy("self-consistency", backend=backend, n=2, seed=seed).run(question, backend)
        return backend.requests[0].params.seed

    assert first_seed("q", 0) == first_seed("q", 0)
    assert first_seed("q", 0) != first_seed("q", 1)
    assert first_seed("q", 0) != first_seed("another question", 0)


def test_token_budget_stops_sampling_without_overshooting_by_a_batch() -> None:
    backend = Recording(["The answer is 18."])  # 9 tokens each, plus the prompt once
    plan = make_strategy(
        "self-consistency",
        backend=backend,
        token_budget=300,
        batch_size=16,
        sampling=SamplingParams(max_tokens=20),
    )
    result = plan.run("q", backend)
    assert any("token budget of 300 reached" in note for note in result.trace.notes)
    # 300 / max_tokens 20 before anything was measured: 91 prompt + 15 x 8 = 211 tokens;
    # another call would pay the 91-token prompt again (no KV reuse here) and overshoot
    assert backend.sizes == [15] and len(result.candidates) == 15
    assert result.usage.decoded_tokens == 211
    larger = Recording(["The answer is 18."])
    plan = make_strategy("self-consistency", backend=larger, token_budget=1000, batch_size=64)
    result = plan.run("q", larger)
    # max_tokens 512: one sample first (99 tokens); then (901 - 91) / 8 -> 64 (the batch
    # size), 702 tokens; then (298 - 91) / 8 -> 25, 993 tokens; 7 left: less than a call
    assert larger.sizes == [1, 64, 25]
    assert result.usage.decoded_tokens == 993


def test_token_budget_with_a_sample_budget_stops_at_whichever_comes_first() -> None:
    backend = Recording(["The answer is 18."])
    plan = make_strategy("self-consistency", backend=backend, n=3, token_budget=10_000)
    assert len(plan.run("q", backend).candidates) == 3


def test_bad_input_errors() -> None:
    backend = ScriptedBackend()
    with pytest.raises(UnknownNameError, match=r"Did you mean 'self-consistency'.*greedy"):
        StrategySpec("self-consistancy")
    with pytest.raises(UnknownNameError, match=r"self-eval.*Valid scorers: .*mean-logprob"):
        make_strategy("best-of-n", backend=backend, scorer="slef-eval")
    # a strategy that needs a scorer and names none gets the task's free default
    assert make_strategy("best-of-n", backend=backend).scorer.name == "mean-logprob"  # type: ignore[union-attr]
    assert StrategySpec("best-of-n").defaulted_scorer
    with pytest.raises(ConfigError, match="no option beam_width; its options: batch_size"):
        make_strategy("self-consistency", backend=backend, beam_width=3)
    with pytest.raises(BudgetError, match="samples"):
        Budget(samples=0)
    with pytest.raises(BudgetError, match="tokens"):
        Budget(samples=None, tokens=-5)
    with pytest.raises(ConfigError, match="min_fraction"):
        make_strategy("best-of-majority", backend=backend, scorer=KnowsSeventeen(), min_fraction=0)
    with pytest.raises(BudgetError, match=r"token budget \(100\) is below max_tokens \(512\)"):
        make_strategy("self-consistency", backend=backend, n=4, token_budget=100)
    with pytest.raises(ConfigError, match="batch_size"):
        make_strategy("self-consistency", backend=backend, batch_size=0)
    with pytest.raises(ConfigError, match="above this backend's maximum of 4"):
        ScriptedBackend(max_n=4).generate("q", n=5)


@pytest.mark.parametrize("name", SAMPLE_STRATEGIES)
def test_the_oracle_is_refused_by_every_strategy(name: str) -> None:
    backend = ScriptedBackend()
    with pytest.raises(ConfigError, match="evaluation only"):
        make_strategy(name, backend=backend, scorer="oracle", scorer_options={"gold": "1"})


def test_scorer_needing_logprobs_fails_before_any_sampling() -> None:
    backend = ScriptedBackend(logprobs=False)
    plan = make_strategy("best-of-n", backend=ScriptedBackend(), scorer="mean-logprob", n=4)
    with pytest.raises(UnsupportedError, match=r"mean-logprob.*logprobs"):
        plan.run("q", backend)
    assert backend.requests == []
    with pytest.raises(UnsupportedError, match="logprobs"):
        make_strategy("best-of-n", backend=backend, scorer="self-certainty")


@pytest.mark.parametrize("name", SAMPLE_STRATEGIES)
def test_every_sample_strategy_reports_exactly_what_its_calls_spent(
    name: str, tmp_path: Path
) -> None:
    backend = Recording(REPLIES, score_rule=lambda _p, reply: -0.1 if reply == "Yes" else -2.0)
    cls = STRATEGIES.get(name)
    options = cls.example_options(tmp_path, backend.model_id)
    # self-eval spends model tokens through the same backend: they must be counted too
    scorer = "self-eval" if cls.needs_scorer else None
    plan = make_strategy(name, backend=backend, n=4, scorer=scorer, **options)
    result = plan.run("a question", backend)
    spent = backend.spent
    assert spent.calls >= 1 and spent.completion_tokens > 0 and spent.prompt_tokens > 0
    for field in ("prompt_tokens", "cached_prompt_tokens", "completion_tokens", "calls"):
        assert getattr(result.usage, field) == getattr(spent, field), field
    assert result.usage.flops == pytest.approx(spent.flops)
    data = result.to_dict()
    assert data["trace"]["strategy"] == name and data["trace"]["decision"]
    assert len(data["candidates"]) == (1 if name == "greedy" else 4)


@pytest.mark.parametrize("name", SAMPLE_STRATEGIES)
def test_select_is_pure_and_replayable(name: str, tmp_path: Path) -> None:
    task = get_task("math")
    answers = ["18", "17", "18", None, "17"]
    candidates = [
        Candidate(
            text=f"The answer is {a}",
            answer=a,
            usage=Usage(),
            cluster=k,
            mean_logprob=-0.5 - i / 10,
            scores={"knows-17": 1.0 if a == "17" else 0.1},
        )
        for i, (a, k) in enumerate(zip(answers, task.cluster(answers), strict=True))
    ]
    cls = STRATEGIES.get(name)
    options = cls.example_options(tmp_path, "any")
    plan = cls(scorer=KnowsSeventeen(), **options) if cls.needs_scorer else cls(**options)
    assert isinstance(plan, SampleStrategy)
    one = plan.select(candidates, np.random.default_rng(0))
    two = plan.select(list(candidates), np.random.default_rng(1))
    assert one == two
    assert one.answer in {"17", "18"}


@pytest.mark.parametrize(
    "name", ["mean-logprob", "self-certainty", "self-eval", "reward-http", "oracle"]
)
def test_outcome_scorers_document_their_range(name: str) -> None:
    cls = SCORERS.get(name)
    low, high = cls.score_range
    assert low < high and not math.isnan(low) and cls.summary and cls.outcome
    documented = (cls.__doc__ or "") + (sys.modules[cls.__module__].__doc__ or "")
    assert "range" in documented.lower()


def test_python_api_solve_and_asolve() -> None:
    backend = ScriptedBackend(["The answer is 4.", "The answer is 5.", "The answer is 4."])
    result = ponder.solve("2+2?", n=3, backend=backend)
    assert result.answer == "4" and result.strategy == "self-consistency"
    assert result.usage.completion_tokens > 0
    best = ponder.solve("2+2?", "best-of-n", n=3, backend=backend, scorer=KnowsSeventeen())
    assert best.trace.strategy == "best-of-n"
    with pytest.raises(ConfigError, match="no option beam_width"):
        ponder.solve("2+2?", backend=backend, beam_width=2)


async def test_python_api_inside_an_event_loop() -> None:
    backend = ScriptedBackend(["The answer is 4."])
    result = await ponder.asolve("2+2?", "greedy", backend=backend)
    assert result.answer == "4"
    with pytest.raises(ConfigError, match="asolve"):
        ponder.solve("2+2?", backend=backend)


def test_import_ponder_is_light() -> None:
    import subprocess

    code = (
        "import sys, ponder; heavy = {'numpy', 'math_verify', 'sympy', 'httpx', 'llama_cpp'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
