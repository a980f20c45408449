"""Compute-optimal allocation (Snell, Lee, Xu & Kumar 2024, "Scaling LLM Test-Time Compute
Optimally can be More Effective than Scaling Model Parameters"): spend more where it pays.
A policy learned by `ponder tune` on a training split says, per difficulty bin, which
strategy to run with how many samples; the difficulty is predicted without the gold answer,
from a cheap probe.

    draw the probe: the first m samples of the question
    d = 1 - (share of the probe's most frequent answer)  (+ a sliver of its mean sample
        probability, to order ties)                            no gold answer needed
    b = the bin of d (the policy's quantile edges, fitted on the training split)
    go on with bin b's choice: its strategy over its k >= m samples, the probe's m among them
    (never wasted: sample i keeps seed base + i)

The policy file holds one allocation per target mean budget (tokens per question);
`budget_tokens` picks the largest target within it. The trace says the probe's agreement,
the bin and the choice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ponder.backends.base import Backend
from ponder.core import TokenCallback
from ponder.errors import BudgetError, ConfigError
from ponder.result import Candidate, Result
from ponder.scorers.base import SCORERS, build_scorer
from ponder.strategies.base import STRATEGIES, Budget, SampleStrategy, Selection, vote_table

POLICY_VERSION = 1


@dataclass(frozen=True)
class Choice:
    """What one difficulty bin gets: a sample strategy, its options, its k samples."""

    strategy: str
    k: int
    options: Mapping[str, Any] = field(default_factory=dict)
    accuracy: float = math.nan
    """On the training split (the questions of this bin)."""
    tokens: float = math.nan
    """Mean tokens decoded per question of this bin on the training split."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "k": self.k,
            "options": dict(self.options),
            "train_accuracy": self.accuracy,
            "train_tokens": self.tokens,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Choice:
        return cls(
            str(data["strategy"]),
            int(data["k"]),
            dict(data.get("options") or {}),
            float(data.get("train_accuracy") or math.nan),
            float(data.get("train_tokens") or math.nan),
        )


@dataclass(frozen=True)
class Allocation:
    """The choices for one target mean budget, with the figures they were chosen by."""

    budget: float
    choices: tuple[Choice, ...]
    """One per bin, easiest first."""
    figures: Mapping[str, Any] = field(default_factory=dict)
    """Training accuracy and tokens, the reusable holdout's answer, ..."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget_tokens": self.budget,
            "choices": [c.to_dict() for c in self.choices],
            "figures": dict(self.figures),
        }


@dataclass(frozen=True)
class Policy:
    """What `ponder tune` learned: written as versioned JSON, read back by the strategy."""

    model: str
    task: str
    fingerprint: str
    """The task's prompt fingerprint: a policy tuned on other prompts does not apply."""
    dataset: str
    sampling: Mapping[str, Any]
    probe: int
    edges: tuple[float, ...]
    """Bin edges on the difficulty score: bin i holds d <= edges[i] (the last: the rest)."""
    allocations: tuple[Allocation, ...]
    scorer: str | None = None
    """The scorer the choices read (one, scored on every sample)."""
    figures: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": POLICY_VERSION,
            "model": self.model,
            "task": self.task,
            "fingerprint": self.fingerprint,
            "dataset": self.dataset,
            "sampling": dict(self.sampling),
            "scorer": self.scorer,
            "probe": {"samples": self.probe, "difficulty": "1 - agreement of the probe"},
            "bins": list(self.edges),
            "allocations": [a.to_dict() for a in self.allocations],
            "figures": dict(self.figures),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        if not isinstance(data, Mapping) or data.get("version") != POLICY_VERSION:
            raise ConfigError(
                f"not a ponder policy of version {POLICY_VERSION} (version "
                f"{data.get('version') if isinstance(data, Mapping) else None!r}); tune again"
            )
        try:
            return cls(
                model=str(data["model"]),
                task=str(data["task"]),
                fingerprint=str(data["fingerprint"]),
                dataset=str(data["dataset"]),
                sampling=dict(data["sampling"]),
                probe=int(data["probe"]["samples"]),
                edges=tuple(float(e) for e in data["bins"]),
                allocations=tuple(
                    Allocation(
                        float(a["budget_tokens"]),
                        tuple(Choice.from_dict(c) for c in a["choices"]),
                        dict(a.get("figures") or {}),
                    )
                    for a in data["allocations"]
                ),
                scorer=data.get("scorer"),
                figures=dict(data.get("figures") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the policy is malformed ({type(exc).__name__}: {exc})") from None

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read the policy {path} ({exc.strerror})") from None
        except ValueError as exc:
            raise ConfigError(f"the policy {path} is not JSON (truncated?): {exc}") from None
        policy = cls.from_dict(data)
        if not policy.allocations or any(
            len(a.choices) != len(policy.edges) + 1 for a in policy.allocations
        ):
            raise ConfigError(f"the policy {path} has no allocation or a bin without a choice")
        return policy

    def allocation(self, budget: float | None) -> Allocation:
        """The allocation of the largest target mean budget within `budget` (None: the
        largest of all)."""
        ordered = sorted(self.allocations, key=lambda a: a.budget)
        if budget is None:
            return ordered[-1]
        within = [a for a in ordered if a.budget <= budget]
        if not within:
            raise BudgetError(
                f"a budget of {budget:g} tokens is below this policy's smallest target "
                f"({ordered[0].budget:g} tokens a question, the probe included)"
            )
        return within[-1]

    def bin(self, difficulty: float) -> int:
        return int(np.searchsorted(np.asarray(self.edges), difficulty, side="left"))


def difficulty(probe: Sequence[Candidate]) -> float:
    """1 - the share of the probe's most frequent answer (abstentions count against it),
    plus a sliver of 1 - its mean sample probability to order equal agreements."""
    votes = vote_table(probe)
    agreement = votes[0].count / len(probe) if votes and probe else 0.0
    probs = [math.exp(c.mean_logprob) for c in probe if c.mean_logprob is not None]
    tie = 1.0 - float(np.mean(probs)) if probs else 0.5
    return (1.0 - agreement) + 1e-3 * tie


@STRATEGIES.register("compute-optimal", aliases=("co", "allocate"))
@dataclass(frozen=True, kw_only=True)
class ComputeOptimal(SampleStrategy):
    summary = "probe, predict the difficulty, spend what a tuned policy says (Snell et al. 2024)"
    required_options = ("policy",)

    policy: str = ""
    """The policy file `ponder tune` wrote."""
    budget_tokens: int | None = None
    """The mean tokens per question to aim at: the policy's largest target within it."""

    def __post_init__(self) -> None:
        if not self.policy:
            raise ConfigError(
                "compute-optimal needs a policy file (--policy FILE, written by ponder tune)"
            )
        loaded = Policy.load(self.policy)
        allocation = loaded.allocation(self.budget_tokens)
        if loaded.task != self.task.name or loaded.fingerprint != self.task.fingerprint():
            raise ConfigError(
                f"the policy {self.policy} was tuned for task {loaded.task!r} with other prompts; "
                f"this run asks task {self.task.name!r}: tune for it"
            )
        if loaded.scorer is not None:
            if self.scorer is None:
                if SCORERS.get(loaded.scorer).needs_backend:
                    raise ConfigError(
                        f"the policy's choices read scorer {loaded.scorer!r}: pass it (--scorer)"
                    )
                object.__setattr__(self, "scorer", build_scorer(loaded.scorer))
            elif self.scorer.name != loaded.scorer:
                raise ConfigError(
                    f"the policy's choices read scorer {loaded.scorer!r}, not {self.scorer.name!r}"
                )
        object.__setattr__(self, "_policy", loaded)
        object.__setattr__(self, "_allocation", allocation)
        deepest = max(c.k for c in allocation.choices)
        object.__setattr__(self, "budget", Budget(samples=max(deepest, loaded.probe)))
        object.__setattr__(self, "_strategies", tuple(self._build(c) for c in allocation.choices))
        super().__post_init__()

    def _build(self, choice: Choice) -> SampleStrategy:
        cls = STRATEGIES.get(choice.strategy)
        if not issubclass(cls, SampleStrategy) or cls is ComputeOptimal:
            raise ConfigError(f"a policy choice must be a sample strategy, got {choice.strategy!r}")
        if choice.k < self.loaded.probe:
            raise ConfigError(f"a policy choice of k={choice.k} is below the probe's samples")
        return cls(  # type: ignore[call-arg]
            task=self.task, scorer=self.scorer, sampling=self.sampling,
            budget=Budget(samples=choice.k), seed=self.seed, **dict(choice.options),
        )  # fmt: skip

    @property
    def loaded(self) -> Policy:
        return self._policy  # type: ignore[attr-defined, no-any-return]

    @property
    def allocation(self) -> Allocation:
        return self._allocation  # type: ignore[attr-defined, no-any-return]

    def placed(self, probe: Sequence[Candidate]) -> tuple[int, SampleStrategy, Choice]:
        """The bin the probe puts the question in, its strategy and choice."""
        b = self.loaded.bin(difficulty(probe))
        return b, self._strategies[b], self.allocation.choices[b]  # type: ignore[attr-defined]

    def next_batch(self, drawn: Sequence[Candidate], total: int | None) -> int:
        probe = self.loaded.probe
        if len(drawn) < probe:
            return probe - len(drawn)
        _, _, choice = self.placed(drawn[:probe])
        return max(choice.k - len(drawn), 0)

    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        probe = self.loaded.probe
        b, strategy, choice = self.placed(candidates[:probe])
        chosen = strategy.select(candidates, rng)
        agreement = 1.0 - difficulty(candidates[:probe])
        return Selection(
            chosen.chosen,
            chosen.answer,
            f"compute-optimal: probe of {probe} agreed {agreement:.2f} -> bin {b + 1} of "
            f"{len(self.loaded.edges) + 1} -> {choice.strategy} with k={choice.k}: "
            f"{chosen.decision}",
            chosen.votes,
        )

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "target_tokens": self.allocation.budget,
            "choices": [c.to_dict() for c in self.allocation.choices],
        }

    @classmethod
    def example_options(cls, folder: Path, model_id: str) -> dict[str, Any]:
        """A one-bin policy (a probe of 2, then self-consistency over 4) for `model_id`."""
        from ponder.tasks.base import get_task

        task = get_task("math")
        policy = Policy(
            model=model_id, task=task.name, fingerprint=task.fingerprint(), dataset="example",
            sampling={}, probe=2, edges=(),
            allocations=(Allocation(1e9, (Choice("self-consistency", 4),)),),
        )  # fmt: skip
        path = folder / "policy.json"
        path.write_text(json.dumps(policy.to_dict()), encoding="utf-8")
        return {"policy": str(path)}

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        if self.loaded.model != backend.model_id:
            raise ConfigError(
                f"the policy {self.policy} was tuned on model {self.loaded.model!r}; this "
                f"backend is {backend.model_id!r}: tune for it"
            )
        return await super().arun(question, backend, on_tokens=on_tokens)
