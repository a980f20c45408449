"""Scorers: confidence, self-certainty, self-evaluation, reward model over HTTP, oracle."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ponder.backends import Backend, SamplingParams
from ponder.backends.base import Completion, TokenLogprob
from ponder.backends.scripted import ScriptedBackend
from ponder.errors import ScorerError, UnsupportedError
from ponder.scorers import Attempt, build_scorer
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


def test_self_eval_reads_p_yes_and_counts_its_tokens() -> None:
    backend = ScriptedBackend(["Yes"], token_logprob=math.log(0.8))
    scorer = build_scorer("self-eval", backend=backend)
    batch = scorer.score([Attempt.whole("2+2?", Completion("4", "stop", Usage()))])
    # the scripted backend's top alternatives hold only "Yes": P(Yes)/(P(Yes)+P(No)) = 1
    assert batch.scores == (1.0,)
    assert batch.usage.calls == 1 and batch.usage.prompt_tokens > 0
    assert "Is this answer correct?" in backend.requests[0].text
    step = Attempt("2+2?", ("2+2 is 4.\n\n", "So 4.\n\n"), None)
    scorer.score([step])
    assert "Is this next step correct?" in backend.requests[-1].text


def test_self_eval_on_the_embedded_model(embedded_backend: Backend) -> None:
    scorer = build_scorer("self-eval", backend=embedded_backend)
    right = Attempt.whole(
        "What is 2 + 2?", Completion("2 + 2 = 4. The answer is 4.", "stop", Usage())
    )
    wrong = Attempt.whole(
        "What is 2 + 2?", Completion("2 + 2 = 5. The answer is 5.", "stop", Usage())
    )
    batch = scorer.score([right, wrong])
    assert all(0.0 <= s <= 1.0 for s in batch.scores)
    assert batch.scores[0] > batch.scores[1]
    assert batch.usage.calls == 2


def test_self_eval_refuses_a_backend_without_logprobs() -> None:
    with pytest.raises(UnsupportedError, match="logprobs"):
        build_scorer("self-eval", backend=ScriptedBackend(logprobs=False))


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
    delay = 0.0
    shape = "classify"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(self.delay)
        texts = body["input"]
        if self.shape == "classify":
            reply = {"data": [{"probs": [0.1, 0.9 if "4" in t else 0.2]} for t in texts]}
        elif self.shape == "pooling":
            reply = {"data": [{"data": [0.0, 0.5, 2.0 if "4" in t else -1.0]} for t in texts]}
        else:
            reply = {"oops": True}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def reward_server() -> Iterator[tuple[str, type[_Reward]]]:
    handler = type("Handler", (_Reward,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/classify", handler
    server.shutdown()


ATTEMPTS = [
    Attempt.whole("2+2?", Completion("The answer is 4.", "stop", Usage())),
    Attempt.whole("2+2?", Completion("The answer is 5.", "stop", Usage())),
]


def test_reward_http_shapes(reward_server: tuple[str, type[_Reward]]) -> None:
    url, handler = reward_server
    scorer = build_scorer("reward-http", url=url, timeout=5)
    assert scorer.score(ATTEMPTS).scores == (0.9, 0.2)
    handler.shape = "pooling"
    assert scorer.score(ATTEMPTS).scores == (2.0, -1.0)
    handler.shape = "garbage"
    with pytest.raises(ScorerError, match="unexpected reply"):
        scorer.score(ATTEMPTS)


def test_reward_http_slow_or_down(reward_server: tuple[str, type[_Reward]]) -> None:
    url, handler = reward_server
    handler.delay = 2.0
    started = time.perf_counter()
    with pytest.raises(ScorerError, match=r"within 0\.5 s"):
        build_scorer("reward-http", url=url, timeout=0.5).score(ATTEMPTS)
    assert time.perf_counter() - started < 2.0
    with pytest.raises(ScorerError, match="unreachable"):
        build_scorer("reward-http", url="http://127.0.0.1:9/none", timeout=2).score(ATTEMPTS)


def test_sampling_asks_for_logprobs_the_scorer_reads() -> None:
    from ponder import make_strategy

    backend = ScriptedBackend(["The answer is 1."])
    plan = make_strategy("best-of-n", backend=backend, n=2, scorer="self-certainty")
    plan.run("q", backend)
    params: SamplingParams = backend.requests[0].params
    assert params.logprobs and params.top_logprobs >= 5
