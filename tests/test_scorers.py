"""Scorers: confidence, self-certainty, self-evaluation, reward model over HTTP, oracle."""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ponder.backends import Backend
from ponder.backends.scripted import ScriptedBackend
from ponder.core import Completion, Prompt, SamplingParams, TextScore, TokenLogprob
from ponder.errors import ConfigError, ScorerError, UnsupportedError
from ponder.scorers import Attempt, build_scorer
from ponder.tasks import get_task
from ponder.usage import Usage


def _completion(*tokens: tuple[str, float, tuple[tuple[str, float], ...]]) -> Completion:
    return Completion(
        "".join(t for t, _, _ in tokens),
        "stop",
        Usage(),
        logprobs=tuple(TokenLogprob(t, lp, top) for t, lp, top in tokens),
    )


def test_mean_logprob_and_self_certainty() -> None:
    sure = _completion(("7", -0.01, (("7", -0.01), ("8", -5.0), ("9", -6.0))))
    unsure = _completion(("7", -1.1, (("7", -1.1), ("8", -1.1), ("9", -1.1))))
    mean = build_scorer("mean-logprob").score(
        [Attempt.whole("q", sure), Attempt.whole("q", unsure)]
    )
    assert mean.scores == (-0.01, -1.1)
    certainty = build_scorer("self-certainty").score(
        [Attempt.whole("q", sure), Attempt.whole("q", unsure)]
    )
    assert certainty.scores[0] > certainty.scores[1]
    assert certainty.scores[1] == pytest.approx(0.0, abs=1e-9)  # uniform: no certainty
    no_logprobs = Completion("7", "stop", Usage())
    assert math.isnan(
        build_scorer("mean-logprob").score([Attempt.whole("q", no_logprobs)]).scores[0]
    )


def _yes_no(prompt: str, reply: str) -> float:
    """Exact log-probabilities a scripted judge gives: P(Yes) = 0.6, P(No) = 0.2."""
    return math.log(0.6) if reply == "Yes" else math.log(0.2)


def test_self_eval_scores_yes_and_no_exactly_where_the_backend_can() -> None:
    backend = ScriptedBackend(score_rule=_yes_no)
    scorer = build_scorer("self-eval", backend=backend)
    batch = scorer.score([Attempt.whole("2+2?", Completion("4", "stop", Usage()))] * 3)
    assert batch.scores == pytest.approx((0.75,) * 3)  # 0.6 / (0.6 + 0.2)
    assert scorer.method == "score"  # type: ignore[attr-defined]
    assert batch.usage.calls == 6 and batch.usage.prompt_tokens > 0
    assert backend.requests == []  # nothing was generated


class _NoChatScoring(ScriptedBackend):
    """Like the HTTP backend: can generate with logprobs, cannot score a chat reply."""

    async def ascore(self, prompt: Prompt, continuation: str) -> TextScore:
        raise UnsupportedError("scoring a chat prompt over HTTP is not possible")


def test_self_eval_reads_top_logprobs_elsewhere_and_counts_its_tokens() -> None:
    backend = _NoChatScoring(["Yes"], token_logprob=math.log(0.8))
    scorer = build_scorer("self-eval", backend=backend)
    batch = scorer.score([Attempt.whole("2+2?", Completion("4", "stop", Usage()))] * 2)
    # the scripted backend's alternatives hold only "Yes": P(Yes)/(P(Yes)+P(No)) = 1
    assert batch.scores == (1.0, 1.0)
    assert scorer.method == "logprobs"  # type: ignore[attr-defined]
    assert batch.usage.calls == 2 and batch.usage.completion_tokens == 2
    request = backend.requests[0]
    assert "Is this answer correct? Answer Yes or No." in request.text
    assert request.params.max_tokens == 1 and request.params.temperature == 0.0
    assert request.params.top_logprobs == 20  # all the scripted backend offers
    step = Attempt("2+2?", ("2+2 is 4.\n\n", "So 4.\n\n"), None)
    build_scorer("self-eval", backend=backend, method="logprobs").score([step])
    assert "Is this next step correct?" in backend.requests[-1].text
    assert "Steps so far:\n2+2 is 4." in backend.requests[-1].text


def test_self_eval_gives_nan_when_neither_word_is_among_the_alternatives() -> None:
    backend = ScriptedBackend(["Maybe"])
    batch = build_scorer("self-eval", backend=backend, method="logprobs").score(
        [Attempt.whole("q", Completion("4", "stop", Usage()))]
    )
    assert math.isnan(batch.scores[0])


def test_self_eval_on_the_embedded_model(embedded_backend: Backend) -> None:
    right = Attempt.whole(
        "What is 2 + 2?", Completion("2 + 2 = 4. The answer is 4.", "stop", Usage())
    )
    wrong = Attempt.whole(
        "What is 2 + 2?", Completion("2 + 2 = 5. The answer is 5.", "stop", Usage())
    )
    exact = build_scorer("self-eval", backend=embedded_backend)
    batch = exact.score([right, wrong])
    assert exact.method == "score"  # type: ignore[attr-defined]
    assert all(0.0 <= s <= 1.0 for s in batch.scores)
    assert batch.scores[0] > batch.scores[1]
    assert batch.usage.calls == 4
    assert batch.usage.cached_prompt_tokens > 0  # "No" reuses the prompt scored for "Yes"
    read = build_scorer("self-eval", backend=embedded_backend, method="logprobs")
    # both read the same next-token distribution; "logprobs" also counts " yes", "YES"...
    assert read.score([right, wrong]).scores == pytest.approx(batch.scores, abs=0.05)


def test_self_eval_continues_the_conversation_from_the_kv_cache(
    embedded_backend: Backend,
) -> None:
    """Judging an answer the model just wrote reads only the judge's question."""
    question = "Tom has 3 apples and buys 5 more. How many apples does he have?"
    prompt = get_task("math").prompt(question)
    params = SamplingParams(max_tokens=48, temperature=0.8, seed=3)
    written = embedded_backend.generate(prompt, params, n=2).completions
    judge = build_scorer("self-eval", backend=embedded_backend)
    batch = judge.score([Attempt.whole(question, c, prompt) for c in written])
    assert all(0.0 <= s <= 1.0 for s in batch.scores)
    answer_tokens = sum(c.usage.completion_tokens for c in written)
    fresh = batch.usage.prompt_tokens - batch.usage.cached_prompt_tokens
    assert batch.usage.cached_prompt_tokens > answer_tokens
    assert fresh < 4 * 40  # two judge questions, "Yes" then "No" on each: ~20 tokens a call


def test_self_eval_refuses_a_backend_that_can_neither_score_nor_read_logprobs() -> None:
    with pytest.raises(UnsupportedError, match="self-eval"):
        build_scorer("self-eval", backend=ScriptedBackend(logprobs=False, scoring=False))
    with pytest.raises(UnsupportedError, match="exact scoring"):
        build_scorer("self-eval", backend=ScriptedBackend(scoring=False), method="score")
    with pytest.raises(ConfigError, match="method"):
        build_scorer("self-eval", backend=ScriptedBackend(), method="guess")


def test_oracle_knows_the_gold_answer() -> None:
    oracle = build_scorer("oracle", gold="1000")
    batch = oracle.score(
        [
            Attempt.whole("q", Completion("The answer is 1,000.", "stop", Usage())),
            Attempt.whole("q", Completion("The answer is 100.", "stop", Usage())),
        ]
    )
    assert batch.scores == (1.0, 0.0)


class _Reward(BaseHTTPRequestHandler):
    """A reward model on loopback speaking vLLM's /classify and /pooling shapes."""

    delay = 0.0
    trickle = False
    shape = "classify"
    status = 200
    bodies: list[dict[str, object]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append({"body": body, "auth": self.headers.get("Authorization")})
        time.sleep(self.delay)
        texts = body["input"]
        if self.shape == "classify":
            reply: object = {"data": [{"probs": [0.1, 0.9 if "4." in t else 0.2]} for t in texts]}
        elif self.shape == "pooling":
            reply = {"data": [{"data": [0.0, 0.5, 2.0 if "4." in t else -1.0]} for t in texts]}
        elif self.shape == "scores":
            reply = {"scores": [len(t) for t in texts]}
        elif self.shape == "short":
            reply = {"data": [{"probs": [0.5, 0.5]}]}
        else:
            reply = {"oops": True}
        data = json.dumps(reply).encode()
        try:
            self.send_response(self.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            chunks = [data[i : i + 1] for i in range(len(data))] if self.trickle else [data]
            for chunk in chunks:
                self.wfile.write(chunk)
                self.wfile.flush()
                if self.trickle:
                    time.sleep(0.05)  # each read is quick, the whole reply is not
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def reward_server() -> Iterator[tuple[str, type[_Reward]]]:
    handler = type("Handler", (_Reward,), {"bodies": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/classify", handler
    server.shutdown()
    server.server_close()


ATTEMPTS = [
    Attempt.whole("2+2?", Completion("The answer is 4.", "stop", Usage())),
    Attempt.whole("2+2?", Completion("The answer is 5.", "stop", Usage())),
]


def test_reward_http_request_and_response_shapes(
    reward_server: tuple[str, type[_Reward]],
) -> None:
    url, handler = reward_server
    scorer = build_scorer("reward-http", url=url, model="rm", api_key="k", timeout=5)
    assert scorer.score(ATTEMPTS).scores == (0.9, 0.2)
    sent = handler.bodies[0]
    assert sent["body"] == {
        "model": "rm",
        "input": ["2+2?\n\nThe answer is 4.", "2+2?\n\nThe answer is 5."],
    }
    assert sent["auth"] == "Bearer k"
    handler.shape = "pooling"
    assert scorer.score(ATTEMPTS).scores == (2.0, -1.0)
    handler.shape = "scores"
    assert scorer.score(ATTEMPTS).scores == (22.0, 22.0)
    batched = build_scorer("reward-http", url=url, batch_size=1)
    handler.bodies.clear()
    assert len(batched.score(ATTEMPTS).scores) == 2
    assert [len(b["body"]["input"]) for b in handler.bodies] == [1, 1]  # type: ignore[index,arg-type]
    assert "model" not in handler.bodies[0]["body"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("shape", "status", "message"),
    [("garbage", 200, "unexpected reply"), ("short", 200, "1 scores for 2"), ("x", 503, "503")],
)
def test_reward_http_bad_replies(
    reward_server: tuple[str, type[_Reward]], shape: str, status: int, message: str
) -> None:
    url, handler = reward_server
    handler.shape, handler.status = shape, status
    with pytest.raises(ScorerError, match=message):
        build_scorer("reward-http", url=url, timeout=5).score(ATTEMPTS)


def test_reward_http_slow_or_down(reward_server: tuple[str, type[_Reward]]) -> None:
    url, handler = reward_server
    handler.delay = 2.0
    started = time.perf_counter()
    with pytest.raises(ScorerError, match=r"within 0\.5 s"):
        build_scorer("reward-http", url=url, timeout=0.5).score(ATTEMPTS)
    assert time.perf_counter() - started < 1.5
    handler.delay, handler.trickle = 0.0, True
    started = time.perf_counter()
    with pytest.raises(ScorerError, match=r"within 0\.5 s"):
        build_scorer("reward-http", url=url, timeout=0.5).score(ATTEMPTS)
    assert time.perf_counter() - started < 1.5
    started = time.perf_counter()
    with pytest.raises(ScorerError, match="unreachable"):
        build_scorer("reward-http", url="http://127.0.0.1:9/none", timeout=2).score(ATTEMPTS)
    assert time.perf_counter() - started < 2.0
    with pytest.raises(ConfigError, match="http"):
        build_scorer("reward-http", url="localhost:8000/classify")


def test_sampling_asks_for_logprobs_the_scorer_reads() -> None:
    from tests.support.strategies import make as make_strategy

    backend = ScriptedBackend(["The answer is 1."])
    plan = make_strategy("best-of-n", backend=backend, n=2, scorer="self-certainty")
    plan.run("q", backend)
    params: SamplingParams = backend.requests[0].params
    assert params.logprobs and params.top_logprobs >= 5


def test_the_arithmetic_checkers_probability_is_its_measured_odds() -> None:
    """A confirmed path weighs CONFIRMED_ODDS times an unchecked one in particle filtering (not
    10^6 times, as clipping a score of 1 at 1e-6 gave), a refuted one REFUTED_ODDS times."""
    from ponder.scorers.arithmetic import CONFIRMED_ODDS, REFUTED_ODDS, ArithmeticChecker
    from ponder.strategies.particle_filtering import resampling_weights

    def odds(p: float) -> float:
        return p / (1.0 - p)

    p = ArithmeticChecker.probability
    assert odds(p(1.0)) == pytest.approx(CONFIRMED_ODDS)
    assert p(0.5) == pytest.approx(0.5)
    assert odds(p(0.0)) == pytest.approx(REFUTED_ODDS)
    shares = [i / 8 for i in range(9)]
    assert all(p(a) < p(b) for a, b in itertools.pairwise(shares))
    assert math.isnan(p(math.nan))
    confirmed, unchecked, refuted = resampling_weights([p(1.0), p(0.5), p(0.0)], 1.0)
    assert confirmed / unchecked == pytest.approx(CONFIRMED_ODDS)
    assert refuted / unchecked == pytest.approx(REFUTED_ODDS)
