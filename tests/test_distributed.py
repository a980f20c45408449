"""`ponder eval` on a real local Ray cluster (started once per test session on 127.0.0.1,
2 CPUs): the same bank and report as one process, a worker killed mid-question costing
nothing but time, a killed driver losing nothing it had stored, budgets reaching the
workers, and the workers' errors reaching the user as themselves."""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Ray resolves "this machine" to its network address unless told it is alone: the test
# cluster must listen on loopback only (read when ray is imported)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import pytest
import ray

import ponder
from ponder.backends import Backend, load_backend
from ponder.core import SamplingParams
from ponder.errors import ConfigError
from ponder.eval.api import EvalConfig, Evaluation
from ponder.eval.distributed import RayPool
from tests.support import ray_work
from tests.support.banks import rows, untimed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """One local cluster for the session; its workers import ponder and tests.support as
    this process does. Yields its address."""
    code = os.pathsep.join([str(Path(ponder.__file__).resolve().parents[1]), str(ROOT)])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=100 * 2**20,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": code}},
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _config(bank: Path, **changes: Any) -> EvalConfig:
    base: dict[str, Any] = dict(
        dataset="synthetic", limit=6, n=4, bank=bank, sampling=SamplingParams(max_tokens=32),
        strategies=["self-consistency", "best-of-n", "beam-search"], scorers=["self-eval"],
        options={"beam_width": 2, "max_steps": 2}, live_budgets=[2],
    )  # fmt: skip
    return EvalConfig(**{**base, **changes})


def _plain(bank: Path, **changes: Any) -> EvalConfig:
    """Self-consistency only: a collection of samples and nothing else."""
    return _config(
        bank, strategies=["self-consistency"], scorers=[], options={}, live_budgets=None,
        **changes,
    )  # fmt: skip


def test_a_ray_run_stores_and_reports_what_one_process_does(
    ray_cluster: str, tmp_path: Path
) -> None:
    here = Evaluation(_config(tmp_path / "here.sqlite")).run(ray_work.scripted())
    assert here.meta["complete_questions"] == 6 and here.meta["live_runs"] == 6
    seen: list[str] = []
    tokens: list[int] = []
    with RayPool(ray_work.scripted, workers=2, cpus=1) as pool:
        assert pool.backend.model_id == "scripted" and len(pool.actors) == 2
        there = Evaluation(_config(tmp_path / "ray.sqlite")).run(
            pool, on_question=lambda d: seen.append(d.question.id), on_tokens=tokens.append
        )
        # the samples, their self-eval scores (a model call: made by the workers) and the
        # live beam searches are the ones one process stores, and so is the report
        assert rows(tmp_path / "ray.sqlite") == rows(tmp_path / "here.sqlite")
        assert untimed(there.rows) == untimed(here.rows)
        assert there.comparisons == here.comparisons and there.verifiers == here.verifiers
        assert sorted(seen) == sorted(there.meta["question_ids"]) and sum(tokens) > 0
        for key in ("generated_samples", "scores_computed", "live_runs", "complete_questions"):
            assert there.meta[key] == here.meta[key], key
        again = Evaluation(_config(tmp_path / "ray.sqlite")).run(pool)
    assert again.meta["generated_samples"] == again.meta["scores_computed"] == 0
    assert again.meta["live_runs"] == 0 and again.meta["live_reused"] == 6
    assert untimed(again.rows) == untimed(here.rows)


def test_a_worker_killed_mid_question_loses_nothing_and_stores_nothing_twice(
    ray_cluster: str, tmp_path: Path
) -> None:
    config = _plain(tmp_path / "ray.sqlite")
    here = Evaluation(dataclasses.replace(config, bank=tmp_path / "here.sqlite"))
    here.run(ray_work.scripted(max_n=1))
    marker = tmp_path / "killed"
    factory = functools.partial(ray_work.scripted, delay=0.05, max_n=1, kill_once=str(marker))
    with RayPool(factory, workers=2, cpus=1, restarts=1) as pool:
        summary = Evaluation(config).run(pool)
    assert marker.exists()  # one worker did die, with samples of its question in flight
    lost = [note for note in summary.notes if "was lost" in note]
    assert len(lost) == 1 and "went to another worker" in lost[0]
    # every sample is there once (a second insert of a key would have failed the run),
    # and what was drawn again after the loss is the same sample, by its seed
    assert summary.meta["complete_questions"] == 6
    assert summary.meta["generated_samples"] == 24
    assert rows(tmp_path / "ray.sqlite") == rows(tmp_path / "here.sqlite")


def test_a_killed_driver_loses_nothing_it_had_received(ray_cluster: str, tmp_path: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text('["The answer is 5.", "The answer is 7.", "The answer is 5."]')
    bank = tmp_path / "bank.sqlite"
    args = [sys.executable, "-m", "ponder.cli", "eval", "--dataset", "synthetic",
            "--limit", "200", "-n", "4", "--strategy", "self-consistency", "--backend",
            "scripted", "--model", str(replies), "--bank", str(bank), "--ray", ray_cluster,
            "--workers", "2"]  # fmt: skip
    driver = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stored = 0
    deadline = time.monotonic() + 120
    while stored < 40 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.05)
        if bank.exists():
            with sqlite3.connect(bank) as db, db:
                found = db.execute("SELECT name FROM sqlite_master WHERE name = 'samples'")
                if found.fetchone():
                    stored = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    assert driver.poll() is None, driver.communicate()[1].decode()[-2000:]
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=30)
    with sqlite3.connect(bank) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        kept = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    assert 40 <= kept < 800
    config = EvalConfig(
        dataset="synthetic", limit=200, n=4, strategies=["self-consistency"], bank=bank
    )
    factory = functools.partial(load_backend, "scripted", model=str(replies))
    with RayPool(factory, workers=2, cpus=1) as pool:
        summary = Evaluation(config).run(pool)
    assert summary.meta["reused_samples"] == kept
    assert summary.meta["generated_samples"] == 800 - kept
    assert summary.meta["complete_questions"] == 200


def test_a_token_budget_stops_the_workers_and_the_rerun_continues(
    ray_cluster: str, tmp_path: Path
) -> None:
    config = _plain(tmp_path / "bank.sqlite")
    factory = functools.partial(ray_work.scripted, delay=0.05, max_n=1)
    with RayPool(factory, workers=2, cpus=1) as pool:
        stopped = Evaluation(dataclasses.replace(config, max_tokens_total=60)).run(pool)
        assert stopped.meta["stopped"] == "--max-tokens-total 60 reached"
        drawn = stopped.meta["generated_samples"]
        # each worker starts no call once told: at most the calls in flight then finish
        assert 0 < drawn < 24 and stopped.meta["complete_questions"] < 6
        rest = Evaluation(config).run(pool)
    assert rest.meta["generated_samples"] == 24 - drawn
    assert rest.meta["complete_questions"] == 6


def _unloadable() -> Backend:
    return load_backend("scripted")  # no replies file: a ConfigError in the worker


def test_the_workers_errors_reach_the_user_as_themselves(ray_cluster: str) -> None:
    with (
        pytest.raises(ConfigError, match="the scripted backend needs --model"),
        RayPool(_unloadable, workers=1, cpus=1),
    ):
        pass
    with (
        pytest.raises(ConfigError, match=r"3 worker.* do not fit"),
        RayPool(ray_work.scripted, workers=3, cpus=1),
    ):
        pass
    with pytest.raises(ConfigError, match="at least 1"):
        RayPool(ray_work.scripted, workers=0)
    with pytest.raises(ConfigError, match="not started: use it in a with block"):
        Evaluation(_plain(Path("unused.sqlite"))).run(RayPool(ray_work.scripted))


def _drawn(path: Path) -> set[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return set(
            db.execute("SELECT question_id, idx, seed, text, completion_tokens FROM samples")
        )


def test_a_ray_run_on_the_small_model_stores_what_one_process_stores(
    ray_cluster: str, embedded_backend: Backend, tmp_path: Path
) -> None:
    """The same texts and token counts, so the same accuracies.

    Both sides start from a cold model: the single process is a `ponder eval` of its own, not
    this session's model, whose prompt cache holds prompts other tests evaluated in other
    batches (a cached prefix rounds differently from a freshly evaluated one, so a warm model
    draws the same distribution, not the same texts)."""
    config = EvalConfig(
        dataset="synthetic", limit=2, n=2, strategies=["self-consistency"],
        bank=tmp_path / "here.sqlite", sampling=SamplingParams(max_tokens=32),
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "ponder.cli", "eval", "--dataset", "synthetic", "--limit", "2",
         "-n", "2", "-s", "self-consistency", "--max-tokens", "32", "--model", "small",
         "--bank", str(config.bank), "--out", str(tmp_path / "here")],
        check=True, cwd=ROOT, capture_output=True, timeout=600,
    )  # fmt: skip
    here = Evaluation(config).run(embedded_backend)
    assert here.meta["generated_samples"] == 0  # a replay of what the subprocess stored
    factory = functools.partial(load_backend, "embedded", model="small")
    with RayPool(factory, workers=1, cpus=1) as pool:
        there = Evaluation(dataclasses.replace(config, bank=tmp_path / "ray.sqlite")).run(pool)
    assert _drawn(tmp_path / "ray.sqlite") == _drawn(tmp_path / "here.sqlite")
    accuracy = [(r["strategy"], r["k"], r["accuracy"], r["completion_tokens"]) for r in here.rows]
    assert [
        (r["strategy"], r["k"], r["accuracy"], r["completion_tokens"]) for r in there.rows
    ] == accuracy
