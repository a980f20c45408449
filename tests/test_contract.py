"""The contract every registered strategy keeps, whatever its kind (plug-ins included): built
from a spec with its task's default scorer, it answers, spends exactly what its backend and
scorer calls spent, says its kind, and its Result survives a JSON round trip."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from ponder.backends.scripted import ScriptedRequest
from ponder.core import SamplingParams
from ponder.result import Result
from ponder.serialize import dumps
from ponder.strategies import STRATEGIES, Kind
from ponder.strategies.spec import StrategySpec
from ponder.usage import Usage
from tests.support.recording import Recording

NAMES = STRATEGIES.names()


def _reply(request: ScriptedRequest) -> str:
    """A first step ending at the step delimiter, then an answer: fits every kind."""
    if "\n\n" in request.params.stop and not request.prefix:
        return "First, 2 + 3 = 5.\n\n"
    return "So 2 + 3 = 5.\nThe answer is 5."


def _spec(name: str, folder: Path, seed: int, scorer: str | None = None) -> StrategySpec:
    cls = STRATEGIES.get(name)
    return StrategySpec(
        name, samples=4, scorer=scorer, sampling=SamplingParams(max_tokens=64), seed=seed,
        options=cls.example_options(folder, Recording(_reply).model_id),
    )  # fmt: skip


@pytest.mark.parametrize("scorer", [None, "self-eval"])
@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_keeps_the_contract(name: str, scorer: str | None, tmp_path: Path) -> None:
    # self-eval spends model tokens through the same backend: they must be counted too
    backend = Recording(_reply, score_rule=lambda _p, reply: -0.1 if reply == "Yes" else -2.0)
    spec = _spec(name, tmp_path, 3, scorer)
    strategy = spec.build(backend)
    result = strategy.run("What is 2 + 3?", backend)

    assert result.answer == "5", result.trace.decision
    assert result.trace.strategy == name and result.strategy == name
    assert result.trace.kind == STRATEGIES.get(name).kind.value
    assert result.trace.kind in {k.value for k in Kind}
    assert result.trace.decision and result.candidates
    if result.trace.kind == Kind.SAMPLE:
        assert result.trace.used == len(result.candidates)

    usage, spent = result.usage, backend.spent
    assert usage.completion_tokens > 0 and usage.calls >= 1
    for field in (f.name for f in fields(Usage) if f.name != "seconds"):
        assert getattr(usage, field) == pytest.approx(getattr(spent, field)), field

    data = json.loads(dumps(result.to_dict()))
    assert Result.from_dict(data).to_dict() == data
    assert data == result.to_dict()  # to_dict is strict JSON already


@pytest.mark.parametrize("name", NAMES)
def test_every_strategy_is_reproducible_from_its_seed(name: str, tmp_path: Path) -> None:
    def run() -> Result:
        backend = Recording(_reply)
        return _spec(name, tmp_path, 7).build(backend).run("What is 2 + 3?", backend)

    first, second = run(), run()
    assert [c.text for c in first.candidates] == [c.text for c in second.candidates]
    assert first.trace.to_dict() == second.trace.to_dict()
