"""Diverse verifier tree search (Beeching, Tunstall & Rush 2024, "Scaling test-time compute
with open models", Hugging Face blog): beam search collapses onto a few lines of thought when
the verifier likes one of them early; DVTS splits the N samples into N / M independent
subtrees and searches each greedily with the verifier.

    sample N first steps; subtree i gets the M steps M*i .. M*i + M - 1 and keeps its best
    repeat until every subtree finished or the token budget is spent:
        extend the path of every unfinished subtree with M next steps   (one batched call)
        in each subtree keep the new step with the best path score, prune the others
    answer by weighted best-of-N over the subtrees' finished paths (the answer whose paths'
    scores sum highest, as search-and-learn reports; `final="best"`: the best single path)
"""

from __future__ import annotations

from dataclasses import dataclass

from ponder.backends.base import Backend
from ponder.core import TokenCallback
from ponder.result import Result
from ponder.strategies.base import STRATEGIES
from ponder.strategies.steps import Branch, Final, Search, WideSearch, best_first


@STRATEGIES.register("dvts")
@dataclass(frozen=True, kw_only=True)
class DVTS(WideSearch):
    summary = "N/M independent subtrees, each greedy by process score (Beeching et al. 2024)"

    final: Final = "weighted"

    async def arun(
        self, question: str, backend: Backend, *, on_tokens: TokenCallback | None = None
    ) -> Result:
        search = self.search(question, backend, on_tokens)
        m = self.beam_width
        subtrees = max(self.samples // m, 1)
        first = await search.extend([search.root], subtrees * m)
        leaves = [_greedy(search, first[i : i + m]) for i in range(0, len(first), m)]
        finished = [b for b in leaves if b.done]
        active = [b for b in leaves if not b.done]
        while active and not search.exhausted:
            search.keep(active)
            children = await search.extend(active, m)
            leaves = [_greedy(search, [c for c in children if c.parent is b]) for b in active]
            stuck = [b for b, leaf in zip(active, leaves, strict=True) if leaf is None]
            search.prune(stuck, "subtree ended: the scorer judged none of its next steps")
            finished += [b for b in leaves if b is not None and b.done]
            active = [b for b in leaves if b is not None and not b.done]
        return search.result(finished, active)


def _greedy(search: Search, siblings: list[Branch]) -> Branch | None:
    """The sibling with the best path score; the others are pruned."""
    if not siblings:
        return None
    best, *rest = best_first(siblings)
    search.prune(rest, "not the best step of its subtree")
    return best
