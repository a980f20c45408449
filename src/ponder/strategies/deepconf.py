"""DeepConf (Fu, Wang, Tian & Zhao 2025, "Deep Think with Confidence"): weigh and filter
reasoning traces by the model's own token confidence, and stop the weak ones early.

    token confidence   C_i = -(1/k) sum_{j<=k} log P_i(j)      (top-k alternatives)
    group confidence   the mean of C_i over a sliding window of `window` tokens
    trace confidence   its lowest group confidence (the mean over all tokens when shorter)

    offline: draw N traces; keep the `keep` share with the highest trace confidence;
             answer by majority weighted by trace confidence
    online:  draw `warmup` traces in full; s = the (1 - keep) quantile of their confidences
             draw the rest `batch_size` at a time; a trace whose group confidence falls below
             s is halted at that token (it leaves the batch; its later tokens are never
             decoded) and gives no answer
             after each batch: the confidence-weighted share of the leading answer among the
             warm-up traces above s and the traces not halted; stop once it reaches
             `consensus`
             answer by that weighted majority

A trace is halted only once a whole window of its tokens is seen. Replay from a sample bank
applies the same rule to the stored logprobs, so a replayed run halts every trace at the token
a live run does and is charged only the tokens up to it.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import numpy as np

from ponder.backends.base import Backend
from ponder.core import SamplingParams, TokenCallback, TokenLogprob, TokenWatch, token_confidence
from ponder.errors import ConfigError, UnsupportedError
from ponder.result import Candidate, Result, Vote
from ponder.strategies.base import (
    STRATEGIES,
    Budget,
    SampleStrategy,
    Selection,
    vote_table,
)

Mode = Literal["online", "offline"]
DEFAULT_WARMUP = 4


def trace_confidence(confidences: Sequence[float], window: int) -> float:
    """The lowest mean of `window` consecutive token confidences (all of them when fewer)."""
    if not confidences:
        return math.nan
    values = np.asarray(confidences, dtype=float)
    if len(values) <= window:
        return float(values.mean())
    sums = np.convolve(values, np.ones(window), mode="valid")
    return float(sums.min() / window)


@dataclass(frozen=True, slots=True)
class GroupConfidenceFloor:
    """Halts a trace at the first token where the mean confidence of its last `window`
    tokens is below `threshold` (the same arithmetic live and in replay)."""

    threshold: float
    window: int

    def watch(self) -> TokenWatch:
        windows: dict[int, tuple[deque[float], list[float]]] = {}

        def watch(index: int, token: TokenLogprob) -> bool:
            recent, total = windows.setdefault(index, (deque(), [0.0]))
            return self._push(recent, total, token_confidence(token))

        return watch

    def halts(self, confidences: Sequence[float]) -> int | None:
        recent: deque[float] = deque()
        total = [0.0]
        for i, value in enumerate(confidences):
            if self._push(recent, total, value):
                return i
        return None

    def _push(self, recent: deque[float], total: list[float], value: float) -> bool:
        """Add a token; whether the window it completes is below the threshold. The running
        sum is a cheap pre-check; the decision is taken on the exact sum, the same on both
        paths whatever the order of additions."""
        recent.append(value)
        total[0] += value
        if len(recent) > self.window:
            total[0] -= recent.popleft()
        if len(recent) < self.window or total[0] / self.window >= self.threshold + 1e-9:
            return False
        return math.fsum(recent) / self.window < self.threshold


@STRATEGIES.register("deepconf", aliases=("deep-conf",))
@dataclass(frozen=True, kw_only=True)
class DeepConf(SampleStrategy):
    summary = "confidence-filtered, confidence-weighted voting; weak traces halted (Fu 2025)"
    reads_confidences: ClassVar[bool] = True

    budget: Budget = Budget(samples=16)
    batch_size: int | None = None
    """Online: traces per call after the warm-up; None: as many as the warm-up."""
    mode: Mode = "online"
    window: int = 64
    keep: float = 0.9
    warmup: int | None = None
    """Online: traces drawn in full to set the threshold; None: 4, or the budget if smaller."""
    consensus: float = 0.95
    top_k: int = 20

    def __post_init__(self) -> None:
        warmup = self.warmup
        if warmup is None:
            warmup = min(DEFAULT_WARMUP, self.budget.samples or DEFAULT_WARMUP)
        object.__setattr__(self, "warmup", warmup)
        if self.batch_size is None and self.mode == "online" and isinstance(warmup, int):
            object.__setattr__(self, "batch_size", min(warmup, self.budget.samples or warmup))
        super().__post_init__()
        if self.mode not in ("online", "offline"):
            raise ConfigError(f"mode must be online or offline, got {self.mode!r}")
        for name in ("keep", "consensus"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 < value <= 1.0):
                raise ConfigError(f"{name} must be in (0, 1], got {value!r}")
        for name, most in (("window", 1 << 20), ("warmup", 1 << 20), ("top_k", 20)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
                raise ConfigError(f"{name} must be an integer from 1 to {most}, got {value!r}")
        samples = self.budget.samples
        if self.mode == "online" and samples is not None and self.warmup > samples:
            raise ConfigError(
                f"a warm-up of {self.warmup} traces is larger than the sample budget of "
                f"{samples}; lower warmup or raise n"
            )

    def sampling_params(self) -> SamplingParams:
        params = super().sampling_params()
        return dataclasses.replace(
            params, logprobs=True, top_logprobs=max(params.top_logprobs, self.top_k)
        )

    def next_batch(self, drawn: Sequence[Candidate], total: int | None) -> int:
        """Online: the warm-up in one call, then `batch_size` at a time; offline: the
        sample strategies' batches (all at once by default)."""
        warmup = self.warmup or 0
        if self.mode == "online" and len(drawn) < warmup:
            return warmup - len(drawn) if total is None else min(warmup, total) - len(drawn)
        return super().next_batch(drawn, total)

    def halting(self, candidates: Sequence[Candidate]) -> GroupConfidenceFloor | None:
        if self.mode == "offline" or len(candidates) < self.warmup:
            return None
        return GroupConfidenceFloor(self.threshold(candidates), self.window)

    def threshold(self, candidates: Sequence[Candidate]) -> float:
        """s: the (1 - keep) quantile of the warm-up traces' confidences."""
        warm = [self.confidence(c) for c in candidates[: self.warmup]]
        warm = [v for v in warm if not math.isnan(v)]
        return float(np.quantile(warm, 1.0 - self.keep)) if warm else -math.inf

    def confidence(self, candidate: Candidate) -> float:
        return trace_confidence(candidate.confidences or (), self.window)

    def voters(self, candidates: Sequence[Candidate]) -> list[int]:
        """The traces that vote: offline, the `keep` share most confident; online, the
        warm-up traces above the threshold and every trace that was not halted."""
        scored = [
            (self.confidence(c), i)
            for i, c in enumerate(candidates)
            if c.answer is not None and c.finish_reason != "halted"
        ]
        if self.mode == "offline":
            scored.sort(key=lambda x: (-x[0], x[1]))
            kept = max(1, math.ceil(self.keep * len(candidates)))
            return sorted(i for _, i in scored[:kept])
        s = self.threshold(candidates)
        return [i for conf, i in scored if i >= self.warmup or conf >= s]

    def weighted(self, candidates: Sequence[Candidate]) -> tuple[list[int], tuple[Vote, ...]]:
        """The voters and their confidence-weighted vote table."""
        voters = set(self.voters(candidates))
        weights = [self.confidence(c) if i in voters else 0.0 for i, c in enumerate(candidates)]
        silent = [c if i in voters else replace(c, cluster=None) for i, c in enumerate(candidates)]
        return sorted(voters), vote_table(silent, weights)

    def settled(self, candidates: Sequence[Candidate]) -> str | None:
        if self.mode == "offline" or len(candidates) < self.warmup:
            return None
        _, votes = self.weighted(candidates)
        total = math.fsum(v.weight for v in votes)
        if not votes or total <= 0:
            return None
        share = votes[0].weight / total
        if share < self.consensus:
            return None
        return (
            f"consensus: {votes[0].answer} holds {share:.3f} >= {self.consensus:g} of the "
            f"confidence-weighted vote after {len(candidates)} traces"
        )

    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        del rng
        voters, votes = self.weighted(candidates)
        if not votes:
            return Selection(None, None, f"deepconf: none of {len(candidates)} traces answered")
        top = votes[0]
        halted = sum(c.finish_reason == "halted" for c in candidates)
        return Selection(
            top.members[0],
            top.answer,
            f"deepconf {self.mode}: weighted majority {top.weight:.4g} from {top.count} of "
            f"{len(voters)} voting traces ({halted} halted, {len(candidates)} drawn)",
            votes,
        )

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        caps = backend.capabilities
        if not caps.logprobs or caps.top_logprobs < self.top_k:
            raise UnsupportedError(
                f"deepconf reads {self.top_k} top logprobs per token; backend "
                f"{backend.model_id!r} gives {caps.top_logprobs if caps.logprobs else 0}"
            )
        if self.mode == "online" and not caps.halting:
            raise UnsupportedError(
                f"deepconf online halts traces mid-generation, which backend "
                f"{backend.model_id!r} cannot; use -o mode=offline"
            )
        return await super().arun(question, backend, on_tokens=on_tokens)
