"""What a strategy returns: a frozen `Result` holding every candidate and the `Trace`.

One return type for every strategy. A `Trace` keeps enough to see why an answer won: the
vote table and decision rule of sample-based strategies, and the search tree (`Node`s) of
step-level ones. Everything serializes to plain JSON with `to_dict()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ponder.backends.base import Completion
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
        )

    def to_dict(self) -> dict[str, Any]:
        return {
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


@dataclass(frozen=True, slots=True)
class Vote:
    """One row of the vote table: an equivalence class of answers."""

    answer: str
    count: int
    weight: float
    members: tuple[int, ...]
    """Indices of the candidates in this class."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "count": self.count,
            "weight": self.weight,
            "members": list(self.members),
        }


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
        return {
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


@dataclass(frozen=True, slots=True)
class Trace:
    """What happened: the rule that decided, the votes, the tree, and notes."""

    strategy: str
    decision: str
    """The rule that picked the answer, in words (e.g. "majority of 8; tie broken by ...")."""
    params: Mapping[str, Any] = field(default_factory=dict)
    votes: tuple[Vote, ...] = ()
    nodes: tuple[Node, ...] = ()
    chosen_path: tuple[int, ...] = ()
    """Node ids from the root to the chosen leaf (step-level search)."""
    notes: tuple[str, ...] = ()
    """Things the user should know: dropped nodes, cut steps, budget stops."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "decision": self.decision,
            "params": _jsonable(self.params),
            "votes": [v.to_dict() for v in self.votes],
            "nodes": [n.to_dict() for n in self.nodes],
            "chosen_path": list(self.chosen_path),
            "notes": list(self.notes),
        }


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
        return {
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
