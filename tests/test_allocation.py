"""Compute-optimal allocation: the knapsack finds the known best per-bin choice, Thresholdout
keeps its promise on simulated data where the naive holdout overfits, a policy survives its
JSON round trip and refuses what it was not tuned for, and it runs in solve and serve."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from ponder.backends.base import Backend
from ponder.backends.scripted import ScriptedBackend, ScriptedRequest
from ponder.core import SamplingParams
from ponder.errors import BudgetError, ConfigError
from ponder.eval.thresholdout import Thresholdout
from ponder.eval.tune import Table, allocate, edges_for, per_question, split
from ponder.server.app import ServerSettings, create_app
from ponder.strategies.compute_optimal import Allocation, Choice, Policy
from ponder.strategies.spec import StrategySpec
from ponder.tasks import get_task
from tests.support.uvicorn_thread import serve

TASK = get_task("math")


def _synthetic_table() -> Table:
    """Easy questions (d = 0) need only the cheap configuration; hard ones (d = 0.5) are
    right only with the expensive one."""
    easy, hard = 30, 30
    hardness = np.array([0.0] * easy + [0.5] * hard)
    cheap = np.array([1.0] * easy + [0.1] * hard)
    dear = np.array([1.0] * easy + [0.8] * hard)
    right = np.vstack([cheap, dear])
    tokens = np.vstack([np.full(easy + hard, 400.0), np.full(easy + hard, 1600.0)])
    return Table([("self-consistency", 4), ("self-consistency", 16)], right, tokens, hardness)


def test_the_knapsack_gives_more_compute_where_it_pays() -> None:
    table = _synthetic_table()
    rows = np.arange(60)
    edges = edges_for(table.difficulty, 2)
    assert edges == (0.0,)
    combo, accuracy, tokens = allocate(table, rows, edges, budget=1000)  # type: ignore[misc]
    assert combo == [0, 1]  # cheap for the easy bin, dear for the hard one
    assert accuracy == pytest.approx(0.9) and tokens == pytest.approx(1000)
    right, spent = per_question(table, edges, combo)
    assert right.mean() == pytest.approx(0.9) and spent.mean() == pytest.approx(1000)
    # one bin cannot do as well within the same budget: all cheap
    flat = allocate(table, rows, (), budget=1000)
    assert flat is not None and flat[0] == [0] and flat[1] == pytest.approx(0.55)
    assert allocate(table, rows, edges, budget=100) is None  # nothing fits


def test_thresholdout_stays_honest_where_the_naive_holdout_overfits() -> None:
    """500 configurations of no real effect (each right on a question with probability 1/2).
    Naive: pick the best by its holdout accuracy and report that: biased upward, by the
    maximum of 500 noisy estimates. Reusable holdout: pick by the training estimate, ask the
    holdout only through Thresholdout (the 20 best by training, adaptively) and report its
    answer for the pick: within the mechanism's stated tolerance of the truth (0.5) in at
    least 95% of the runs, and less biased. (Thresholdout's answers are good to about its
    threshold T = 0.04, here close to the naive bias itself: a smaller T buys accuracy with
    budget.)"""
    rng = np.random.default_rng(0)
    naive, honest, within = [], [], 0
    runs = 100
    n = 1000
    for run in range(runs):
        train = (rng.random((500, n)) < 0.5).astype(float)
        hold = (rng.random((500, n)) < 0.5).astype(float)
        naive.append(hold.mean(axis=1).max() - 0.5)
        guard = Thresholdout(seed=run)
        shortlist = np.argsort(-train.mean(axis=1))[:20]
        answers = {int(c): guard.query(train[c], hold[c]) for c in shortlist}
        best = max(answers, key=answers.__getitem__)
        honest.append(answers[best] - 0.5)
        within += abs(answers[best] - 0.5) <= guard.tolerance(n)
    assert np.mean(naive) > 0.04  # the best of 500 coin flips looks good on its own holdout
    assert within >= 0.95 * runs
    assert np.mean(honest) < np.mean(naive)


def test_thresholdout_says_when_its_guarantee_is_spent() -> None:
    guard = Thresholdout(threshold=0.01, sigma=0.001, budget=2, seed=1)
    guard.query([1.0] * 50, [0.0] * 50)
    guard.query([1.0] * 50, [0.0] * 50)
    assert guard.exhausted and guard.to_dict()["guarantee"] == "spent"
    with pytest.raises(ConfigError, match="budget of 2 is spent"):
        guard.query([1.0], [0.0])


def test_the_split_is_seeded_and_keeps_a_holdout() -> None:
    fit, hold = split(100, 0.3, seed=4)
    assert len(hold) == 30 and len(fit) == 70 and not set(fit) & set(hold)
    again = split(100, 0.3, seed=4)
    assert (again[0] == fit).all()


def _policy(tmp_path: Path, model: str = "scripted", task: str = "math") -> Path:
    math_task = get_task("math")
    policy = Policy(
        model=model, task=task, fingerprint=math_task.fingerprint(), dataset="toy",
        sampling={"temperature": 0.8}, probe=2, edges=(0.1,),
        allocations=(
            Allocation(600, (Choice("self-consistency", 2), Choice("self-consistency", 4)),
                       {"fit_accuracy": 0.5}),
            Allocation(2000, (Choice("self-consistency", 2), Choice("weighted-majority", 8)),
                       {"fit_accuracy": 0.6}),
        ),
    )  # fmt: skip
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy.to_dict()))
    return path


def test_a_policy_round_trips_and_refuses_what_it_was_not_tuned_for(tmp_path: Path) -> None:
    path = _policy(tmp_path)
    loaded = Policy.load(path)
    assert loaded.to_dict() == json.loads(path.read_text())
    assert loaded.allocation(None).budget == 2000 and loaded.allocation(1000).budget == 600
    with pytest.raises(BudgetError, match="below this policy's smallest target"):
        loaded.allocation(100)
    truncated = tmp_path / "truncated.json"
    truncated.write_text(path.read_text()[:40])
    with pytest.raises(ConfigError, match="not JSON"):
        Policy.load(truncated)
    with pytest.raises(ConfigError, match="version"):
        Policy.from_dict({"version": 99})
    with pytest.raises(ConfigError, match="tuned for task 'algebra'"):
        StrategySpec("compute-optimal", options={"policy": str(_policy(tmp_path, task="algebra"))})
    path = _policy(tmp_path)
    spec = StrategySpec("compute-optimal", options={"policy": str(path)})
    with pytest.raises(ConfigError, match="tuned on model 'scripted'"):
        spec.build(ScriptedBackend(model_id="other")).run("q", ScriptedBackend(model_id="other"))


def _by_seed(request: ScriptedRequest) -> str:
    """Samples 0 and 1 agree on easy questions ('easy' in the text), disagree otherwise."""
    assert request.params.seed is not None
    i = request.params.seed + request.index
    easy = "easy" in request.text
    return f"The answer is {4 if easy or i % 2 == 0 else i}."


def test_the_policy_spends_by_the_bin_the_probe_finds(tmp_path: Path) -> None:
    path = _policy(tmp_path)
    for budget, hard_k in ((1000, 4), (None, 8)):
        spec = StrategySpec(
            "compute-optimal", options={"policy": str(path), "budget_tokens": budget},
            sampling=SamplingParams(seed=0, max_tokens=32),
        )  # fmt: skip
        backend = ScriptedBackend(_by_seed)
        easy = spec.build(backend).run("an easy one", backend)
        assert easy.trace.used == 2 and "bin 1 of 2" in easy.trace.decision
        hard = spec.build(backend).run("a hard one", backend)
        assert hard.trace.used == hard_k and "bin 2 of 2" in hard.trace.decision
        assert len(hard.candidates) == hard_k  # the probe's 2 samples among them


def test_the_policy_from_the_cli_and_the_server(tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps(["The answer is 4.", "The answer is 5."]))
    # the scripted model id carries a hash of the replies: the policy names it exactly
    model_id = ScriptedBackend.from_file(replies).model_id
    path = _policy(tmp_path, model=model_id)
    done = subprocess.run(
        [sys.executable, "-m", "ponder.cli", "solve", "q", "-s", "compute-optimal",
         "--policy", str(path), "--budget-tokens", "5000", "--backend", "scripted",
         "--model", str(replies), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert "compute-optimal: probe of 2" in data["trace"]["decision"]
    missing = subprocess.run(
        [sys.executable, "-m", "ponder.cli", "solve", "q", "-s", "compute-optimal",
         "--backend", "scripted", "--model", str(replies)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and "needs a policy file" in missing.stderr

    settings = ServerSettings(strategy_options={"compute-optimal": {"policy": str(path)}})
    with serve(create_app(ScriptedBackend.from_file(replies), settings)) as url:
        chat = [{"role": "user", "content": "q"}]
        reply = httpx.post(url + "/v1/chat/completions", timeout=30, json={
            "model": "compute-optimal/m", "messages": chat, "ponder": {"budget_tokens": 5000,
                                                                       "trace": True},
        })  # fmt: skip
        assert reply.status_code == 200, reply.text
        assert "bin" in reply.json()["ponder"]["decision"]
        sneaky = httpx.post(url + "/v1/chat/completions", timeout=30, json={
            "model": "compute-optimal/m", "messages": chat,
            "ponder": {"policy": "/etc/passwd"},
        })  # fmt: skip
        assert sneaky.status_code == 400 and "set by the server" in sneaky.text


def test_eval_with_a_policy_adds_its_line_at_the_budget_that_holds_it(tmp_path: Path) -> None:
    """`ponder eval --policy`: compute-optimal joins the default lineup as one row, at the
    smallest budget that holds the policy's deepest choice (8 of a bank of 16), and spends by
    the bin the probe of each replayed subset finds."""
    from ponder.eval.api import EvalConfig, Evaluation

    backend = ScriptedBackend(_by_seed)
    path = _policy(tmp_path, model=backend.model_id)
    questions = tmp_path / "q.jsonl"
    rows = [{"question": f"{kind} question {i}", "answer": "4"} for i in range(6)
            for kind in ("an easy", "a hard")]  # fmt: skip
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = EvalConfig(
        dataset=str(questions), n=16, subsets=8, bank=tmp_path / "bank.sqlite",
        options={"policy": str(path)}, sampling=SamplingParams(max_tokens=32, temperature=0.8),
    )  # fmt: skip
    evaluation = Evaluation(config)
    text = {q.id: q.question for q in evaluation.dataset.questions}
    summary = evaluation.run(backend)
    assert [r["k"] for r in summary.rows if r["strategy"] == "compute-optimal"] == [8]
    assert "self-consistency" in {r["strategy"] for r in summary.rows}
    cell = summary.cells[("compute-optimal", 8)]
    used = dict(zip(cell.question_ids, cell.samples_used, strict=True))
    easy = [u for q, u in used.items() if "easy" in text[q]]
    hard = [u for q, u in used.items() if "hard" in text[q]]
    assert easy == [2.0] * 6  # every probe agrees: the cheap bin
    assert all(2.0 < u <= 8.0 for u in hard)  # most probes disagree: the deep bin


def test_tune_then_solve_on_the_real_model(embedded_backend: Backend, tmp_path: Path) -> None:
    """End to end on the embedded model (short samples): tune draws a training bank, writes a
    policy that names this model, and compute-optimal answers with it, spending at most the
    policy's deepest choice."""
    from ponder.eval.tune import TuneConfig, tune, write

    sampling = SamplingParams(max_tokens=48, temperature=0.8)
    config = TuneConfig(
        dataset="gsm8k-train", limit=6, n=4, probe=2, sweep=(sampling,), subsets=4,
        out=tmp_path / "tune", max_bins=2,
    )  # fmt: skip
    result = tune(config, embedded_backend)
    paths = write(result, tmp_path / "tune")
    policy = Policy.load(paths["policy"])
    assert policy.model == embedded_backend.model_id and policy.probe == 2
    assert "Thresholdout" in paths["html"].read_text() or "holdout" in paths["html"].read_text()
    spec = StrategySpec(
        "compute-optimal", options={"policy": str(paths["policy"])}, sampling=sampling
    )
    answer = spec.build(embedded_backend).run("What is 3 + 4?", embedded_backend)
    deepest = max(c.k for a in policy.allocations for c in a.choices)
    assert 2 <= answer.trace.used <= deepest
    assert "compute-optimal: probe of 2" in answer.trace.decision
