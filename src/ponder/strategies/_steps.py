"""What step-level searches share: extending partial solutions by one step, scoring the
new steps, keeping the search tree, and turning it into a Result.

A step is the text the model writes up to the step delimiter (a blank line by default),
the delimiter included, so a partial solution is exactly the text the model produced and
the embedded backend continues it from its KV cache without decoding it again. A path is
finished when the model ends its answer (end of sequence) or after `max_steps` steps; a
step that reaches `max_step_tokens` without the delimiter is cut there (noted in the trace).

Scores: the process scorer judges the last step of each path; a node the scorer cannot
judge (an exception or NaN) is dropped and counted, and the search goes on. Path scores
aggregate the step scores (`last`, `min`, `prod`, `mean`, as in the papers).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from ponder.backends.base import Backend, Completion, SamplingParams, TokenCallback
from ponder.errors import BudgetError, ConfigError
from ponder.result import Candidate, Node, NodeStatus, Result, Trace
from ponder.scorers.base import Attempt
from ponder.strategies.base import Strategy, vote_table
from ponder.usage import Usage

Aggregate = Literal["last", "min", "prod", "mean"]
DELIMITERS = {"blank-line": "\n\n", "newline": "\n", "step": "\nStep "}


@dataclass
class Path:
    """A partial solution: the id of its last node, its steps and their scores."""

    node: int
    steps: tuple[str, ...]
    scores: tuple[float, ...]
    done: bool = False
    completion: Completion | None = None

    @property
    def text(self) -> str:
        return "".join(self.steps)


@dataclass
class Search:
    """The state of one run (strategies are frozen and shared, so it lives here)."""

    question: str
    backend: Backend
    prompt: object
    on_tokens: TokenCallback | None
    started: float = field(default_factory=time.perf_counter)
    nodes: list[Node] = field(default_factory=list)
    usage: Usage = Usage()
    notes: list[str] = field(default_factory=list)
    dropped: int = 0
    cut: int = 0


@dataclass(frozen=True, kw_only=True)
class StepSearch(Strategy):
    step_level: ClassVar[bool] = True
    needs_scorer: ClassVar[bool] = True

    beam_width: int = 4
    step_delimiter: str = "\n\n"
    max_step_tokens: int = 192
    max_steps: int = 10
    aggregate: Aggregate = "last"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(
            self, "step_delimiter", DELIMITERS.get(self.step_delimiter, self.step_delimiter)
        )
        if not self.step_delimiter:
            raise ConfigError("step_delimiter must not be empty")
        if self.beam_width < 1 or self.max_steps < 1 or self.max_step_tokens < 1:
            raise ConfigError("beam_width, max_steps and max_step_tokens must be >= 1")
        if self.aggregate not in ("last", "min", "prod", "mean"):
            raise ConfigError(f"aggregate must be last, min, prod or mean, got {self.aggregate!r}")
        if self.scorer is not None and not self.scorer.process:
            raise ConfigError(
                f"scorer {self.scorer.name!r} cannot judge single steps; use a process scorer "
                "(arithmetic, self-eval, mean-logprob, reward-http)"
            )

    @property
    def samples(self) -> int:
        return self.budget.samples or 8

    def begin(self, question: str, backend: Backend, on_tokens: TokenCallback | None) -> Search:
        assert self.scorer is not None
        if self.budget.tokens is not None and self.budget.tokens < self.max_step_tokens:
            raise BudgetError(
                f"a token budget of {self.budget.tokens} is below one step "
                f"(max_step_tokens={self.max_step_tokens}); raise it or lower max_step_tokens"
            )
        self.scorer.check(backend)
        root = Node(id=0, parent=None, depth=0, step="", status="kept")
        search = Search(question, backend, self.task.prompt(question), on_tokens)
        search.nodes.append(root)
        return search

    def step_params(self) -> SamplingParams:
        params = dataclasses.replace(
            self.sampling,
            max_tokens=self.max_step_tokens,
            stop=(self.step_delimiter,),
            include_stop=True,
        )
        if self.scorer is not None and self.scorer.needs_logprobs:
            params = dataclasses.replace(params, logprobs=True)
        return params

    def out_of_budget(self, search: Search) -> bool:
        tokens = self.budget.tokens
        return tokens is not None and search.usage.decoded_tokens >= tokens

    async def expand(self, search: Search, parents: Sequence[Path], k: int) -> list[Path]:
        """One backend call: `k` next steps for each parent, scored; dropped ones left out."""
        if not parents:
            return []
        seed = self.sampling.seed if self.sampling.seed is not None else self.seed
        params = dataclasses.replace(self.step_params(), seed=seed + len(search.nodes))
        generation = await search.backend.acontinue(
            search.prompt, [p.text for p in parents], params, n=k, on_tokens=search.on_tokens
        )  # type: ignore[arg-type]
        search.usage += generation.usage
        children = []
        for parent, group in zip(parents, generation.groups, strict=True):
            for completion in group:
                depth = len(parent.steps) + 1
                ended = completion.finish_reason == "stop" and completion.stop is None
                note = ""
                if completion.finish_reason == "length":
                    search.cut += 1
                    note = f"cut at max_step_tokens={self.max_step_tokens} (no delimiter)"
                path = Path(
                    node=len(search.nodes),
                    steps=(*parent.steps, completion.text),
                    scores=parent.scores,
                    done=ended or depth >= self.max_steps,
                    completion=completion,
                )
                search.nodes.append(
                    Node(
                        id=path.node, parent=parent.node, depth=depth, step=completion.text,
                        status="open", tokens=completion.num_tokens, usage=completion.usage,
                        note=note,
                    )
                )  # fmt: skip
                children.append(path)
        return await self.judge(search, children)

    async def judge(self, search: Search, paths: list[Path]) -> list[Path]:
        assert self.scorer is not None
        attempts = [Attempt(search.question, p.steps, p.completion) for p in paths]
        try:
            batch = await self.scorer.ascore(attempts)
            scores = list(batch.scores)
            search.usage += batch.usage
        except Exception:  # one failure must not end the search: judge them one by one
            scores = []
            for attempt in attempts:
                try:
                    one = await self.scorer.ascore([attempt])
                    scores.append(one.scores[0])
                    search.usage += one.usage
                except Exception as exc:
                    scores.append(math.nan)
                    search.notes.append(f"scorer failed on a node: {type(exc).__name__}: {exc}")
        kept = []
        for path, score in zip(paths, scores, strict=True):
            if score is None or math.isnan(score):
                search.dropped += 1
                self.mark(search, path.node, "dropped", note="the scorer gave no score")
                continue
            path.scores = (*path.scores, float(score))
            node = search.nodes[path.node]
            search.nodes[path.node] = dataclasses.replace(
                node, score=self.path_score(path), step_scores={self.scorer.name: float(score)}
            )
            kept.append(path)
        return kept

    def path_score(self, path: Path) -> float:
        scores = [self.as_probability(s) for s in path.scores] or [0.0]
        if self.aggregate == "last":
            return scores[-1]
        if self.aggregate == "min":
            return min(scores)
        if self.aggregate == "prod":
            return math.prod(scores)
        return sum(scores) / len(scores)

    def as_probability(self, score: float) -> float:
        """Scores on one [0, 1] scale: log-probabilities exponentiated, others squashed."""
        assert self.scorer is not None
        low, high = self.scorer.score_range
        if low >= 0.0 and high <= 1.0:
            return score
        if high <= 0.0:
            return math.exp(score)
        return 1.0 / (1.0 + math.exp(-score))

    def mark(self, search: Search, node: int, status: NodeStatus, note: str = "") -> None:
        current = search.nodes[node]
        search.nodes[node] = dataclasses.replace(
            current, status=status, note="; ".join(x for x in (current.note, note) if x)
        )

    def finish(self, search: Search, finished: list[Path], open_paths: Sequence[Path]) -> Result:
        """The best finished path wins (by path score); with none, the best partial one."""
        if self.out_of_budget(search):
            search.notes.append(f"token budget of {self.budget.tokens} reached")
        if search.dropped:
            search.notes.append(
                f"{search.dropped} node(s) dropped: the scorer could not judge them"
            )
        if search.cut:
            search.notes.append(
                f"{search.cut} step(s) cut at max_step_tokens={self.max_step_tokens}"
            )
        pool = list(finished) or list(open_paths)
        for path in finished:
            self.mark(search, path.node, "finished")
        candidates = []
        for path in pool:
            text = path.text
            candidates.append(
                Candidate(
                    text=text,
                    answer=self.task.extract(text),
                    usage=Usage.total(n.usage for n in self.lineage(search, path.node)),
                    finish_reason="stop" if path.done else "length",
                    scores={self.scorer.name if self.scorer else "score": self.path_score(path)},
                )
            )
        labels = self.task.cluster([c.answer for c in candidates])
        candidates = [
            dataclasses.replace(c, cluster=k) for c, k in zip(candidates, labels, strict=True)
        ]
        chosen = None
        if pool:
            chosen = max(range(len(pool)), key=lambda i: (self.path_score(pool[i]), -i))
        chosen_path: tuple[int, ...] = ()
        if chosen is not None:
            chosen_path = tuple(n.id for n in self.lineage(search, pool[chosen].node))
        for node in search.nodes:
            if node.status == "open":
                self.mark(search, node.id, "pruned")
        for node_id in chosen_path:
            if search.nodes[node_id].status == "pruned":
                self.mark(search, node_id, "kept")
        what = "finished" if finished else "unfinished (no path finished)"
        decision = (
            f"{self.name}: highest {self.aggregate} path score among {len(pool)} {what} paths"
        )
        trace = Trace(
            strategy=self.name,
            decision=decision,
            params=self.params(),
            votes=vote_table(candidates),
            nodes=tuple(search.nodes),
            chosen_path=chosen_path,
            notes=tuple(search.notes),
        )
        return Result(
            question=search.question,
            answer=candidates[chosen].answer if chosen is not None else None,
            chosen=chosen,
            candidates=tuple(candidates),
            usage=search.usage,
            trace=trace,
            seconds=time.perf_counter() - search.started,
        )

    @staticmethod
    def lineage(search: Search, node: int) -> list[Node]:
        out = []
        current: int | None = node
        while current is not None and current != 0:
            out.append(search.nodes[current])
            current = search.nodes[current].parent
        return [search.nodes[0], *reversed(out)]

    def root(self) -> Path:
        return Path(node=0, steps=(), scores=())

    def require(self, needed: int, why: str) -> None:
        self.budget.require_samples(needed, why)
