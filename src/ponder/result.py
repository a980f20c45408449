"""What a strategy returns: a frozen `Result` holding every candidate and the `Trace`.

One return type for every strategy. A `Trace` keeps enough to see why an answer won: the
vote table and decision rule of sample-based strategies, how many samples they used and why
they stopped, and the search tree (`Node`s) of step-level ones.

`Result.to_dict()` is strict JSON data (a NaN score is `null`) and `Result.from_dict` reads it
back: the CLI, the server, the sample bank and the report all write a Result this way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ponder.core import Completion, token_confidences
from ponder.serialize import jsonable
from ponder.usage import Usage

NodeStatus = Literal["open", "kept", "pruned", "finished", "dropped", "cut"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One complete answer the strategy considered."""

    text: str
    answer: str | None
    """The extracted final answer; None when the text has none (the candidate abstains)."""
    usage: Usage
    finish_reason: str = "stop"
    mean_logprob: float | None = None
    sum_logprob: float | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    """Scorer name -> score (each scorer documents its range)."""
    cluster: int | None = None
    """Index of its equivalence class among the candidates (None when abstaining)."""
    confidences: tuple[float, ...] | None = field(default=None, compare=False)
    """Per token, the model's confidence (`core.token_confidence`) when its top logprobs
    are known: what confidence rules (DeepConf) read. Not written to JSON."""

    @property
    def completion_tokens(self) -> int:
        return self.usage.completion_tokens

    @classmethod
    def from_completion(cls, completion: Completion, answer: str | None) -> Candidate:
        return cls(
            text=completion.text,
            answer=answer,
            usage=completion.usage,
            finish_reason=completion.finish_reason,
            mean_logprob=completion.mean_logprob,
            sum_logprob=completion.sum_logprob,
            confidences=token_confidences(completion.logprobs),
        )

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "text": self.text,
                "answer": self.answer,
                "cluster": self.cluster,
                "finish_reason": self.finish_reason,
                "completion_tokens": self.completion_tokens,
                "mean_logprob": self.mean_logprob,
                "sum_logprob": self.sum_logprob,
                "scores": dict(self.scores),
                "usage": self.usage.to_dict(),
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Candidate:
        return cls(
            text=data["text"],
            answer=data["answer"],
            usage=Usage.from_dict(data["usage"]),
            finish_reason=data["finish_reason"],
            mean_logprob=data["mean_logprob"],
            sum_logprob=data["sum_logprob"],
            scores={k: _float(v) for k, v in data["scores"].items()},
            cluster=data["cluster"],
        )


@dataclass(frozen=True, slots=True)
class Vote:
    """One row of the vote table: an equivalence class of answers."""

    answer: str
    count: int
    weight: float
    members: tuple[int, ...]
    """Indices of the candidates in this class."""

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "answer": self.answer,
                "count": self.count,
                "weight": self.weight,
                "members": list(self.members),
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vote:
        return cls(data["answer"], data["count"], _float(data["weight"]), tuple(data["members"]))


@dataclass(frozen=True, slots=True)
class Node:
    """One node of a step-level search tree (a partial solution ending with `step`)."""

    id: int
    parent: int | None
    depth: int
    step: str
    status: NodeStatus
    score: float | None = None
    """The aggregated path score the search ranked this node by."""
    step_scores: Mapping[str, float] = field(default_factory=dict)
    tokens: int = 0
    """Tokens sampled for this step."""
    usage: Usage = Usage()
    """Everything spent to produce and score this node."""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "id": self.id,
                "parent": self.parent,
                "depth": self.depth,
                "step": self.step,
                "status": self.status,
                "score": self.score,
                "step_scores": dict(self.step_scores),
                "tokens": self.tokens,
                "usage": self.usage.to_dict(),
                "note": self.note,
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Node:
        return cls(
            id=data["id"],
            parent=data["parent"],
            depth=data["depth"],
            step=data["step"],
            status=data["status"],
            score=data["score"],
            step_scores={k: _float(v) for k, v in data["step_scores"].items()},
            tokens=data["tokens"],
            usage=Usage.from_dict(data["usage"]),
            note=data["note"],
        )


@dataclass(frozen=True, slots=True)
class Trace:
    """What happened: the rule that decided, the votes, the tree, and notes."""

    strategy: str
    decision: str
    """The rule that picked the answer, in words (e.g. "majority of 8; tie broken by ...")."""
    kind: str = "sample"
    """The strategy's kind: sample, step or sequential."""
    params: Mapping[str, Any] = field(default_factory=dict)
    votes: tuple[Vote, ...] = ()
    nodes: tuple[Node, ...] = ()
    chosen_path: tuple[int, ...] = ()
    """Node ids from the root to the chosen leaf (step-level search)."""
    notes: tuple[str, ...] = ()
    """Things the user should know: dropped nodes, cut steps, budget stops."""
    used: int | None = None
    """Complete samples the decision read (sample strategies)."""
    stop: str | None = None
    """Why the strategy stopped before its budget (an early-stopping rule), if it did."""

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "strategy": self.strategy,
                "kind": self.kind,
                "decision": self.decision,
                "params": self.params,
                "votes": [v.to_dict() for v in self.votes],
                "nodes": [n.to_dict() for n in self.nodes],
                "chosen_path": list(self.chosen_path),
                "notes": list(self.notes),
                "used": self.used,
                "stop": self.stop,
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trace:
        return cls(
            strategy=data["strategy"],
            kind=data.get("kind", "sample"),
            decision=data["decision"],
            params=data["params"],
            votes=tuple(Vote.from_dict(v) for v in data["votes"]),
            nodes=tuple(Node.from_dict(n) for n in data["nodes"]),
            chosen_path=tuple(data["chosen_path"]),
            notes=tuple(data["notes"]),
            used=data.get("used"),
            stop=data.get("stop"),
        )


@dataclass(frozen=True, slots=True)
class Result:
    question: str
    answer: str | None
    chosen: int | None
    """Index of the chosen candidate (None when every candidate abstained)."""
    candidates: tuple[Candidate, ...]
    usage: Usage
    trace: Trace
    seconds: float = 0.0
    """Wall-clock time of the whole run."""

    @property
    def text(self) -> str | None:
        return None if self.chosen is None else self.candidates[self.chosen].text

    @property
    def strategy(self) -> str:
        return self.trace.strategy

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "question": self.question,
                "answer": self.answer,
                "strategy": self.strategy,
                "chosen": self.chosen,
                "text": self.text,
                "usage": self.usage.to_dict(),
                "seconds": self.seconds,
                "candidates": [c.to_dict() for c in self.candidates],
                "trace": self.trace.to_dict(),
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """A Result back from its `to_dict()` (stored live results, search trees)."""
        return cls(
            question=data["question"],
            answer=data["answer"],
            chosen=data["chosen"],
            candidates=tuple(Candidate.from_dict(c) for c in data["candidates"]),
            usage=Usage.from_dict(data["usage"]),
            trace=Trace.from_dict(data["trace"]),
            seconds=data["seconds"],
        )


def _float(value: float | None) -> float:
    """A score read back from JSON: null was NaN."""
    return math.nan if value is None else float(value)
