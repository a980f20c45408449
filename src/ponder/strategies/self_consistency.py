"""Self-consistency (Wang et al. 2023, "Self-Consistency Improves Chain of Thought Reasoning
in Language Models"): sample N reasoning paths, answer with the most frequent final answer.

    candidates = sample(prompt, N)
    clusters = group candidates by equivalent answers (abstentions do not vote)
    return the largest cluster

Tie-break: among equally large clusters, the one whose first member was sampled first
(samples are i.i.d., so this is a uniformly random choice that needs no extra randomness and
replays identically). The chosen text is that cluster's first member.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ponder.result import Candidate
from ponder.strategies.base import STRATEGIES, SampleStrategy, Selection, vote_table


@STRATEGIES.register("self-consistency", aliases=("sc", "majority", "majority-vote"))
@dataclass(frozen=True, kw_only=True)
class SelfConsistency(SampleStrategy):
    summary = "N samples, majority vote over equivalent answers (Wang et al. 2023)"

    def select(self, candidates: Sequence[Candidate], rng: np.random.Generator) -> Selection:
        del rng
        votes = vote_table(candidates)
        if not votes:
            return Selection(None, None, f"all {len(candidates)} samples abstained (no answer)")
        top = votes[0]
        tied = sum(v.count == top.count for v in votes)
        rule = f"majority: {top.count} of {len(candidates)} samples"
        if tied > 1:
            rule += f"; {tied}-way tie broken by the earliest sample"
        return Selection(top.members[0], top.answer, rule, votes)
