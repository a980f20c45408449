"""Step-level search: beam search, DVTS, particle filtering and A*-decoding.

Unit tests run on the scripted backend with a "world" whose right path a scorer knows; one
end-to-end run of each strategy uses the embedded model; the PRM scorer talks to a real HTTP
server on loopback.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ponder.backends import Backend
from ponder.backends.scripted import ReplyRule, ScriptedRequest
from ponder.core import SamplingParams
from ponder.errors import BudgetError, ConfigError, ScorerError
from ponder.result import Result
from ponder.scorers import Attempt, ScoreBatch, Scorer, build_scorer
from ponder.scorers.arithmetic import ArithmeticChecker
from ponder.strategies import STRATEGIES, Kind
from ponder.strategies.particle_filtering import resampling_weights
from ponder.strategies.steps import Delimiter
from ponder.tracehtml import render_tree
from ponder.usage import Usage
from tests.support.recording import Recording
from tests.support.strategies import make as make_strategy

STEP_LEVEL = sorted(name for name, cls in STRATEGIES.items() if cls.kind is Kind.STEP)
STATUSES = {"kept", "pruned", "finished", "dropped", "cut"}


def test_the_four_searches_are_registered() -> None:
    assert STEP_LEVEL == ["a-star", "beam-search", "dvts", "particle-filtering"]
    for name in STEP_LEVEL:
        assert STRATEGIES.get(name).needs_scorer


def world(steps: int = 3) -> ReplyRule:
    """`steps` steps to "The answer is 42."; every third sample goes right, once wrong always
    wrong (ending in 7)."""
    counter = itertools.count()

    def rule(request: ScriptedRequest) -> str:
        depth = request.prefix.count("\n\n")
        lost = "wrong" in request.prefix
        if depth >= steps:
            return "The answer is 7." if lost else "The answer is 42."
        good = not lost and next(counter) % 3 == 0
        return f"{'right' if good else 'wrong'} step {depth}\n\n"

    return rule


class KnowsTheWay(Scorer):
    """0.9 for a right step, 0.1 for a wrong one; spends one "token" per word it reads."""

    name = "knows-the-way"
    process = True

    def __init__(
        self,
        fail_on: str | None = None,
        nan_on: str | None = None,
        judge: Callable[[str], float] | None = None,
    ) -> None:
        self.fail_on, self.nan_on = fail_on, nan_on
        self.judge = judge or (lambda step: 0.1 if "wrong" in step or "7" in step else 0.9)
        self.spent: list[Usage] = []

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        scores = []
        for attempt in attempts:
            last = attempt.steps[-1]
            if self.fail_on and self.fail_on in last:
                raise RuntimeError("scorer broke")
            scores.append(math.nan if self.nan_on and self.nan_on in last else self.judge(last))
        usages = tuple(
            Usage(prompt_tokens=len(a.text.split()), completion_tokens=1, calls=1) for a in attempts
        )
        self.spent += usages
        return ScoreBatch(tuple(scores), usages)


def plan_for(name: str, backend: Backend, scorer: Scorer | str, **options: Any) -> Any:
    fields = STRATEGIES.get(name).__dataclass_fields__
    defaults = {"beam_width": 3, "resample_temperature": 0.1}
    extra = {k: v for k, v in defaults.items() if k in fields and k not in options}
    return make_strategy(name, backend=backend, scorer=scorer, **extra, **options)


def check_tree(result: Result) -> None:
    """Invariants of every search tree."""
    nodes = result.trace.nodes
    assert [n.id for n in nodes] == list(range(len(nodes)))
    assert nodes[0].parent is None and nodes[0].depth == 0
    assert {n.status for n in nodes[1:]} <= STATUSES
    for node in nodes[1:]:
        assert node.parent is not None and node.parent < node.id
        assert node.depth == nodes[node.parent].depth + 1
        assert (node.status == "dropped") == (node.score is None)
    path = result.trace.chosen_path
    if path:
        assert path[0] == 0
        assert all(nodes[b].parent == a for a, b in itertools.pairwise(path))
        assert result.text == "".join(nodes[i].step for i in path[1:])
        assert result.answer == result.candidates[result.chosen or 0].answer


@pytest.mark.parametrize("name", STEP_LEVEL)
def test_each_search_finds_the_right_path(name: str) -> None:
    backend = Recording(world())
    scorer = KnowsTheWay()
    result = plan_for(name, backend, scorer, n=6).run("q", backend)
    assert result.answer == "42", result.trace.decision
    check_tree(result)
    nodes = result.trace.nodes
    path = result.trace.chosen_path
    assert len(path) == 5 and nodes[path[-1]].status == "finished"
    assert all("right" in nodes[i].step for i in path[1:4])
    assert all(c.finish_reason == "stop" for c in result.candidates)
    # one backend call per round (A*: per expansion)
    expanded = {n.parent for n in nodes[1:] if n.parent is not None}
    rounds = {nodes[p].depth for p in expanded}
    assert len(backend.generations) == (len(expanded) if name == "a-star" else len(rounds))
    # the run's Usage is the sum over its nodes, and over the backend and scorer calls
    by_nodes = Usage.total(n.usage for n in nodes)
    by_calls = Usage.total(g.usage for g in backend.generations) + Usage.total(scorer.spent)
    for usage in (by_nodes, by_calls):
        assert usage.prompt_tokens == result.usage.prompt_tokens
        assert usage.completion_tokens == result.usage.completion_tokens
        assert usage.calls == result.usage.calls
        assert usage.flops == pytest.approx(result.usage.flops)


def test_beam_search_keeps_n_over_m_and_expands_each_m_ways() -> None:
    backend = Recording(world())
    result = plan_for("beam-search", backend, KnowsTheWay(), n=6, beam_width=3).run("q", backend)
    nodes = result.trace.nodes
    by_depth: dict[int, list[str]] = {}
    for node in nodes[1:]:
        by_depth.setdefault(node.depth, []).append(node.status)
    assert len(by_depth[1]) == 6 and by_depth[1].count("kept") == 2
    assert all(len(statuses) == 6 for statuses in by_depth.values())
    assert [len(c.groups) for c in backend.generations] == [1, 2, 2, 2]
    assert all(len(g) == 3 for c in backend.generations[1:] for g in c.groups)


def test_dvts_runs_independent_greedy_subtrees() -> None:
    backend = Recording(world())
    result = plan_for("dvts", backend, KnowsTheWay(), n=6, beam_width=3).run("q", backend)
    nodes = result.trace.nodes
    assert len(backend.generations[0].groups[0]) == 6  # N first steps, M per subtree
    for depth in (1, 2, 3):
        kept = [n for n in nodes if n.depth == depth and n.status in ("kept", "finished")]
        assert len(kept) == 2  # one per subtree, N / M = 2
    assert len(result.candidates) == 2


def test_particle_filtering_resamples_and_tracks_ess() -> None:
    backend = Recording(world())
    plan = plan_for("particle-filtering", backend, KnowsTheWay(), n=6, resample_temperature=1.0)
    result = plan.run("q", backend)
    check_tree(result)
    ess = [note for note in result.trace.notes if note.startswith("effective sample size")]
    assert ess and all(0 < float(x) <= 6 for x in ess[0].split(": ")[1].split(", "))
    assert all(len(group) == 1 for call in backend.generations[1:] for group in call.groups)
    again = plan.run("q", Recording(world()))
    assert again.trace.to_dict()["nodes"] == result.trace.to_dict()["nodes"]  # seeded
    other = plan_for("particle-filtering", backend, KnowsTheWay(), n=6, seed=5)
    assert other.run("q", Recording(world())).trace.nodes != result.trace.nodes


def test_particle_weights_are_the_softmax_of_log_odds() -> None:
    weights = resampling_weights([0.9, 0.1], 1.0)
    assert weights[0] / weights[1] == pytest.approx(81.0)  # odds 9 against odds 1/9
    hotter = resampling_weights([0.9, 0.1], 2.0)
    assert hotter[0] / hotter[1] == pytest.approx(9.0)
    for scores in ([0.0, 0.0], [1.0, 1.0], [1.0, 0.0, 0.5]):
        weights = resampling_weights(scores, 0.5)
        assert all(math.isfinite(w) for w in weights) and weights.sum() == pytest.approx(1.0)
    assert resampling_weights([1.0, 0.0, 0.5], 1.0)[1] < 1e-6  # a refuted step is all but gone
    assert list(resampling_weights([0.3, 0.3, 0.3], 1.0)) == pytest.approx([1 / 3] * 3)


def test_a_star_stops_at_the_first_solution_with_n_1() -> None:
    backend = Recording(world())
    result = plan_for("a-star", backend, KnowsTheWay(), n=1).run("q", backend)
    assert result.answer == "42" and len(result.candidates) == 1
    assert len(backend.generations) == 4  # root, then the three right steps: nothing else expanded


def test_a_failing_or_nan_scorer_drops_nodes_and_goes_on() -> None:
    for name in STEP_LEVEL:
        backend = Recording(world())
        scorer = KnowsTheWay(fail_on="wrong step 1", nan_on="wrong step 0")
        result = plan_for(name, backend, scorer, n=6).run("q", backend)
        assert result.answer == "42", name
        dropped = [n for n in result.trace.nodes if n.status == "dropped"]
        assert dropped and all(n.score is None and "dropped" in n.note for n in dropped)
        (note,) = [x for x in result.trace.notes if "dropped" in x]
        assert str(len(dropped)) in note and "NaN" in note
        check_tree(result)


def test_a_scorer_that_never_works_is_an_error() -> None:
    backend = Recording(world())
    with pytest.raises(ScorerError, match="failed on every step"):
        plan_for("beam-search", backend, KnowsTheWay(fail_on="step"), n=6).run("q", backend)


def test_steps_without_delimiter_are_cut_and_noted() -> None:
    backend = Recording(lambda r: "word " * 50)
    plan = plan_for("beam-search", backend, "arithmetic", n=2, beam_width=2,
                    max_step_tokens=10, max_steps=3)  # fmt: skip
    result = plan.run("q", backend)
    nodes = result.trace.nodes[1:]
    assert all("cut at max_step_tokens=10" in n.note for n in nodes)
    assert {n.status for n in nodes} <= {"cut", "pruned", "finished"}
    assert any(n.status == "cut" for n in nodes)
    assert any("cut at max_step_tokens=10" in note for note in result.trace.notes)
    assert all(n.tokens == 10 for n in nodes)
    assert result.candidates and result.candidates[0].finish_reason == "length"


def test_bad_budgets_and_options() -> None:
    backend = Recording(world())
    with pytest.raises(BudgetError, match="below one step"):
        plan_for("beam-search", backend, "arithmetic", token_budget=10).run("q", backend)
    with pytest.raises(BudgetError, match="beam width 4 needs at least 4 samples"):
        plan_for("dvts", backend, "arithmetic", n=2, beam_width=4).run("q", backend)
    # named without a process scorer, a search gets the task's free default
    assert make_strategy("dvts", backend=backend).scorer.name == "arithmetic"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="aggregate"):
        plan_for("dvts", backend, "arithmetic", aggregate="max")
    with pytest.raises(ConfigError, match="regex"):
        plan_for("a-star", backend, "arithmetic", step_delimiter="re:(")
    with pytest.raises(ConfigError, match="empty string"):
        plan_for("a-star", backend, "arithmetic", step_delimiter="re:x*")
    with pytest.raises(ConfigError, match="beam_width"):
        plan_for("particle-filtering", backend, "arithmetic", beam_width=2)
    with pytest.raises(ConfigError, match="resample_temperature"):
        plan_for("particle-filtering", backend, "arithmetic", resample_temperature=0)
    outcome_only = type("OutcomeOnly", (KnowsTheWay,), {"process": False, "name": "outcome"})()
    with pytest.raises(ConfigError, match="cannot judge single steps"):
        plan_for("dvts", backend, outcome_only)
    assert not backend.generations


@pytest.mark.parametrize("name", STEP_LEVEL)
def test_token_budget_stops_cleanly_with_the_best_path(name: str) -> None:
    backend = Recording(world(steps=8))
    plan = plan_for(name, backend, KnowsTheWay(), n=6, token_budget=150, max_step_tokens=8)
    result = plan.run("q", backend)
    assert any("token budget of 150 spent" in note for note in result.trace.notes)
    last_round = len(backend.generations[-1].completions)
    before = Usage.total(n.usage for n in result.trace.nodes[:-last_round])
    assert before.decoded_tokens < 150 <= result.usage.decoded_tokens  # stopped after it
    assert result.candidates and all(c.finish_reason == "length" for c in result.candidates)
    assert any("no path finished" in note for note in result.trace.notes)
    assert "wrong" not in (result.text or "wrong")  # the best partial path
    check_tree(result)


def test_aggregates() -> None:
    backend = Recording(world())
    probs = (0.9, 0.5, 0.8)
    expected = {"last": 0.8, "min": 0.5, "prod": 0.36, "mean": 2.2 / 3}
    for aggregate, value in expected.items():
        plan = plan_for("beam-search", backend, "arithmetic", aggregate=aggregate)
        assert plan.path_score(probs) == pytest.approx(value)
    # log-probability scorers are exponentiated before aggregating
    result = plan_for("beam-search", backend, "mean-logprob", n=3, aggregate="prod").run(
        "q", backend
    )
    chosen = result.trace.nodes[result.trace.chosen_path[-1]]
    assert chosen.score == pytest.approx(math.exp(-0.5) ** (len(result.trace.chosen_path) - 1))


def test_logprob_scorers_get_logprobs_of_exactly_their_step() -> None:
    backend = Recording(lambda r: "Step 1: 2 + 2 = 4\nStep 2: 4 * 2 = 8\n")
    plan = plan_for("beam-search", backend, "self-certainty", n=3, step_delimiter="step")
    assert plan.step_params().logprobs and plan.step_params().top_logprobs == 5
    result = plan.run("q", backend)
    assert result.trace.nodes[1].step == "Step 1: 2 + 2 = 4\n"  # cut before the next header
    assert backend.requests[0].params.stop == ("\nStep ",)


@pytest.mark.parametrize(
    ("spec", "text", "end"),
    [
        ("\n\n", "a\n\nb", 3),
        ("blank-line", "a\nb\n\n", 5),
        ("newline", "a\nb", 2),
        ("\\n", "a\nb", 2),
        ("step", "Step 1: x\nStep ", 10),
        ("step", "\nStep 2: x", None),  # nothing before the header yet
        ("re:[.!?]\\s", "One. Two", 5),
        ("re:\\n(?=\\d+\\.)", "1. a\n2. b", 5),
        (" ;; ", "a ;; b", 5),
        ("\n\n", "no delimiter", None),
    ],
)
def test_delimiters(spec: str, text: str, end: int | None) -> None:
    assert Delimiter.parse(spec).end(text) == end


def test_regex_steps_are_cut_after_the_match() -> None:
    backend = Recording(lambda r: "One step. Another one. And more")
    plan = plan_for("beam-search", backend, "arithmetic", n=2, beam_width=2,
                    step_delimiter=r"re:\.\s", max_steps=2)  # fmt: skip
    result = plan.run("q", backend)
    assert backend.requests[0].params.stop == ()
    assert {n.step for n in result.trace.nodes[1:]} == {"One step. "}
    assert result.text == "One step. One step. "


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(STEP_LEVEL),
    seed=st.integers(0, 10_000),
    n=st.integers(1, 6),
    width=st.integers(1, 3),
    budget=st.one_of(st.none(), st.integers(40, 400)),
    aggregate=st.sampled_from(["last", "min", "prod", "mean"]),
)
def test_usage_is_the_sum_over_nodes(
    name: str, seed: int, n: int, width: int, budget: int | None, aggregate: str
) -> None:
    """Property: on any run, the Result's Usage equals the sum over its nodes' usages, which
    equals the sum over the backend calls and the scoring calls; the tree stays consistent."""
    chance = random.Random(seed)

    def rule(request: ScriptedRequest) -> str:
        words = " ".join(chance.choice(["2 + 2 = 4", "3 * 3 = 10", "so"]) for _ in range(3))
        ending = chance.choice(["\n\n", "\n\n", "", "The answer is 4."])
        return words + ending if ending != "" else words * 4

    def judge(step: str) -> float:
        value = chance.random()
        if value < 0.08:
            return math.nan
        if value < 0.12:
            raise RuntimeError("flaky")
        return value

    backend = Recording(rule)
    scorer = KnowsTheWay(judge=judge)
    fields = STRATEGIES.get(name).__dataclass_fields__
    options: dict[str, Any] = {"beam_width": min(width, n)} if "beam_width" in fields else {}
    plan = make_strategy(name, backend=backend, scorer=scorer, n=n, seed=seed,
                         token_budget=budget, max_step_tokens=12, max_steps=4,
                         aggregate=aggregate, **options)  # fmt: skip
    try:
        result = plan.run("q", backend)
    except ScorerError:
        return  # every node of the first round failed: nothing to add up
    check_tree(result)
    nodes = result.trace.nodes
    expected = Usage.total(g.usage for g in backend.generations) + Usage.total(scorer.spent)
    for usage in (Usage.total(node.usage for node in nodes), expected):
        assert usage.prompt_tokens == result.usage.prompt_tokens
        assert usage.cached_prompt_tokens == result.usage.cached_prompt_tokens
        assert usage.completion_tokens == result.usage.completion_tokens
        assert usage.calls == result.usage.calls
        assert usage.seconds == pytest.approx(result.usage.seconds, abs=1e-9)
    assert sum(n.tokens for n in nodes) == result.usage.completion_tokens - len(scorer.spent)
    for candidate in result.candidates:
        assert candidate.usage.completion_tokens <= result.usage.completion_tokens


# the process reward model over HTTP, on a real loopback server


def _prm_score(step: str) -> float | None:
    if "unsure" in step:
        return None
    return 0.1 if "wrong" in step or "7" in step else 0.9


class _PRM(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(body)  # type: ignore[attr-defined]
        mode = self.path.strip("/")
        if mode == "slow":
            time.sleep(1.0)
        if mode == "fail":
            self._send(500, {"error": "out of memory"})
            return
        if mode == "short":
            self._send(200, {"scores": [[0.5] for _ in body["items"]][:-1]})
            return
        scores = [[_prm_score(s) for s in i["steps"]] for i in body["items"]]
        if mode == "logits":
            scores = [[3.5 for _ in i["steps"]] for i in body["items"]]
        self._send(200, {"scores": scores})

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def prm_server() -> Iterator[tuple[str, list[Any]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PRM)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def test_prm_http_scores_the_last_step(prm_server: tuple[str, list[Any]]) -> None:
    url, seen = prm_server
    scorer = build_scorer("prm-http", url=f"{url}/ok", model="prm-7b", batch_size=2)
    batch = scorer.score(
        [
            Attempt("q", ("right step\n\n", "wrong step\n\n")),
            Attempt("q", ("wrong step\n\n", "right step\n\n")),
            Attempt("q", ("unsure step",)),
        ]
    )
    assert batch.scores[:2] == (0.1, 0.9) and math.isnan(batch.scores[2])
    assert seen[-2] == {
        "items": [
            {"question": "q", "steps": ["right step", "wrong step"]},
            {"question": "q", "steps": ["wrong step", "right step"]},
        ],
        "model": "prm-7b",
    }
    assert len(seen[-1]["items"]) == 1  # batch_size=2: two requests


def test_prm_http_errors(prm_server: tuple[str, list[Any]]) -> None:
    url, _ = prm_server
    one = [Attempt("q", ("a step",))]
    with pytest.raises(ScorerError, match=r"within 0\.2 s"):
        build_scorer("prm-http", url=f"{url}/slow", timeout=0.2).score(one)
    with pytest.raises(ScorerError, match="answered 500"):
        build_scorer("prm-http", url=f"{url}/fail").score(one)
    with pytest.raises(ScorerError, match="unexpected reply"):
        build_scorer("prm-http", url=f"{url}/short").score(one)
    with pytest.raises(ScorerError, match="not a probability"):
        build_scorer("prm-http", url=f"{url}/logits").score(one)
    closed = ThreadingHTTPServer(("127.0.0.1", 0), _PRM)
    port = closed.server_address[1]
    closed.server_close()
    with pytest.raises(ScorerError, match="unreachable"):
        build_scorer("prm-http", url=f"http://127.0.0.1:{port}/").score(one)
    with pytest.raises(ConfigError, match="http"):
        build_scorer("prm-http", url="localhost:9000")


def test_beam_search_with_a_prm_server(prm_server: tuple[str, list[Any]]) -> None:
    url, _ = prm_server
    backend = Recording(world())
    scorer = build_scorer("prm-http", url=f"{url}/ok")
    result = plan_for("beam-search", backend, scorer, n=6).run("q", backend)
    assert result.answer == "42"


def test_a_prm_server_that_is_down_stops_the_search_with_a_clear_error() -> None:
    closed = ThreadingHTTPServer(("127.0.0.1", 0), _PRM)
    port = closed.server_address[1]
    closed.server_close()
    backend = Recording(world())
    scorer = build_scorer("prm-http", url=f"http://127.0.0.1:{port}/")
    with pytest.raises(ScorerError, match="unreachable"):
        plan_for("dvts", backend, scorer, n=6).run("q", backend)


# the search-tree page


def test_search_tree_page_from_the_cli(tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["2 + 2 = 4\n\n", "2 + 2 = 5\n\n", "The answer is 4."]))
    page = tmp_path / "tree.html"
    done = subprocess.run(
        [sys.executable, "-m", "ponder.cli", "solve", "2+2?", "--strategy", "beam-search",
         "-n", "2", "--beam-width", "2", "--process-scorer", "arithmetic", "--backend",
         "scripted", "--model", str(replies), "--trace-html", str(page), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    text = page.read_text()
    assert "beam-search search tree" in text and "Chosen path" in text
    for node in data["trace"]["nodes"][1:]:
        assert f"#{node['id']} {node['status']}</b>" in text
    assert text.count("class='node chosen'") == len(data["trace"]["chosen_path"])
    assert "2 + 2 = 5" in text and "pruned" in text


def test_tree_page_escapes_text() -> None:
    backend = Recording(lambda r: "<script>alert(1)</script>\n\n" if not r.prefix else "4")
    plan = plan_for("beam-search", backend, "arithmetic", n=2, beam_width=2)
    result = plan.run("<b>q</b>", backend)
    page = render_tree(result)
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;q" in page


# the real model


@pytest.mark.model
@pytest.mark.parametrize("name", STEP_LEVEL)
def test_each_search_runs_on_the_embedded_model(embedded_backend: Backend, name: str) -> None:
    fields = STRATEGIES.get(name).__dataclass_fields__
    width = {"beam_width": 2} if "beam_width" in fields else {}
    plan = make_strategy(name, backend=embedded_backend, n=2, scorer="arithmetic",
                         max_step_tokens=24, max_steps=2, seed=3,
                         sampling=SamplingParams(temperature=0.8), **width)  # fmt: skip
    result = plan.run("Tom has 3 apples and buys 5 more. How many apples?", embedded_backend)
    check_tree(result)
    assert result.candidates and result.text
    assert result.usage == Usage.total(n.usage for n in result.trace.nodes)
    assert result.usage.completion_tokens == sum(n.tokens for n in result.trace.nodes)
    # later steps continue earlier ones from the KV cache instead of decoding them again
    assert result.usage.cached_prompt_tokens > 0
    assert max(n.depth for n in result.trace.nodes) == 2 or all(
        c.finish_reason == "stop" for c in result.candidates
    )


def _two_answers(request: ScriptedRequest) -> str:
    """A wrong calculation sampled first, a right one second; both close with a claim-free
    "The answer is ..." step."""
    if request.prefix:
        return f"The answer is {request.prefix.split('= ')[1].split('.')[0]}."
    return "3 + 4 = 8.\n\n" if request.index == 0 else "3 + 4 = 7.\n\n"


@pytest.mark.parametrize("name", ["beam-search", "dvts", "a-star", "particle-filtering"])
def test_a_closing_step_without_claims_keeps_the_evidence_of_its_path(name: str) -> None:
    """With the arithmetic checker, the closing "The answer is N." step has nothing to check.
    It used to score 0.5 on every path (aggregate=last), so the searches picked the final
    answer by node order (the wrong path, sampled first); now it adds no evidence."""
    backend = Recording(_two_answers)
    width = {"beam_width": 2} if "beam_width" in STRATEGIES.get(name).__dataclass_fields__ else {}
    plan = plan_for(name, backend, "arithmetic", n=2, **width)
    assert plan.aggregation == "min"  # a step-local scorer aggregates over the path
    result = plan.run("What is 3 + 4?", backend)
    assert result.answer == "7", result.trace.decision
    finished = [n for n in result.trace.nodes if n.status == "finished"]
    # the path's probability is its checked step's: the claim-free closing step changed nothing
    confirmed, refuted = ArithmeticChecker.probability(1.0), ArithmeticChecker.probability(0.0)
    assert {n.score for n in finished if "7" in n.step} == {confirmed}
    assert all(n.score == refuted for n in finished if "8" in n.step)


def test_prefix_judging_scorers_aggregate_by_last() -> None:
    plan = make_strategy("beam-search", backend=Recording(world()), scorer="prm-http",
                         scorer_options={"url": "http://127.0.0.1:9/prm"})  # fmt: skip
    assert plan.aggregation == "last"
    assert plan.params()["aggregate"] == "last"


def _three_paths(request: ScriptedRequest) -> str:
    return ["The answer is 5.", "The answer is 6.", "The answer is 6."][request.index]


def test_weighted_best_of_n_sums_the_scores_of_equal_answers() -> None:
    scores = {"The answer is 5.": 0.6, "The answer is 6.": 0.45}
    judge = KnowsTheWay(judge=lambda step: scores[step.strip()])
    weighted = plan_for("beam-search", Recording(_three_paths), judge, n=3, beam_width=3)
    assert weighted.final == "weighted"  # what Snell et al. and search-and-learn report
    result = weighted.run("q", Recording(_three_paths))
    assert result.answer == "6" and "weighted best-of-3" in result.trace.decision
    assert result.trace.votes[0].weight == pytest.approx(0.9)
    best = plan_for("beam-search", Recording(_three_paths), judge, n=3, beam_width=3,
                    final="best")  # fmt: skip
    assert best.run("q", Recording(_three_paths)).answer == "5"


def test_a_star_with_prod_counts_the_path_cost_once() -> None:
    from ponder.strategies.steps import Branch

    root = Branch(0, None, "")
    path = Branch(1, root, "x\n\n", probs=(0.5, 0.25), score=0.125)
    prod = make_strategy("a-star", backend=Recording(world()), scorer="arithmetic",
                         aggregate="prod")  # fmt: skip
    g = -math.log(0.5) - math.log(0.25)
    assert prod.priority(path) == pytest.approx(g)  # not g + (-log(0.125)) = 2g
    last = make_strategy("a-star", backend=Recording(world()), scorer="arithmetic",
                         aggregate="last")  # fmt: skip
    assert last.priority(path) == pytest.approx(g - math.log(0.125))
