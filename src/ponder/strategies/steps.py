"""What step-level searches share: steps, the search tree, scoring, budgets, the Result.

**Steps.** A step is the text the model writes up to the step delimiter: a blank line by
default; `newline`; `step` (a line starting `Step k:` opens the next step); any literal
string; or `re:PATTERN`, a regular expression. Literal delimiters are backend stop strings
kept in the text (`include_stop`), so a partial solution is exactly the text the model
produced and the embedded backend continues it from its KV cache without decoding it again.
Backends cannot stop at a regular expression: a `re:` step is sampled up to
`max_step_tokens` and cut after the first match (the tokens past it are spent, and counted).
Patterns come from users (and server clients): they run under the `regex` module with a
time limit per search (`MATCH_SECONDS`), so a catastrophic pattern fails the run with a
`ConfigError` instead of freezing the process.
A step that reaches `max_step_tokens` without a delimiter is kept as it is and the trace says
so. A path is finished when the model ends its answer (end of sequence, or one of the
sampling's own stop strings) or after `max_steps` steps.

**One call per round.** `Search.extend(parents, k)` asks for `k` next steps of every parent in
one `acontinue` call, then scores every new step with the process scorer: each distinct
partial solution once, concurrently, in its own call so its cost is known. A node the scorer
cannot judge (it raises, or returns NaN) is dropped and counted, and the search goes on; only
a scorer that has failed on every node so far stops the run (`ScorerError`: a reward server
that is down should say so, not answer at random).

**Path scores.** Step scores are put on one [0, 1] scale (the scorer's `probability`:
log-probabilities exponentiated, unbounded scores through a logistic) and aggregated along
the path as the papers do: `last` (the PRM's value of the prefix, Snell et al.), `min`,
`prod` or `mean`. The default depends on what the scorer judges: `last` for scorers that
judge the whole prefix (`judges_prefix`: a PRM's P(on track so far)), `min` for step-local
ones (the arithmetic checker, self-eval of the last step, a step's mean logprob), which
would otherwise forget every step but the last. A step in which a scorer finds nothing to
judge (the arithmetic checker on a step without a calculation, such as the closing "The
answer is 8.") adds no evidence: the path keeps its parent's score. A path with no evidence
at all scores 0.5.

**The answer.** Among the finished paths, `final="best"` takes the path of best path score;
`final="weighted"` (the weighted best-of-N that Snell et al. and search-and-learn report,
the default of beam search and DVTS) sums the path scores of paths with equivalent answers
and takes the heaviest answer.

**Usage.** Every node carries what it cost: its completion (the backend charges a group's
prompt, i.e. the part of the parent not already in the KV cache, to the group's first
completion), its own scoring call, and, for the first node of each backend call, the call
itself (`calls`, wall time). The run's Usage is the sum over its nodes; the root holds nothing.

**Budget.** `budget.samples` is N (beams, subtrees x width, particles, solutions). A token
budget counts decoded tokens, scoring included. It caps every call: a round's steps may
sample only what the budget has left, shared among them (a step cut short by it is marked
cut), so the tokens sampled never exceed the budget; the prompt tokens a call reads and the
scoring after it are known only once it returns, so a search may pass the budget by those of
its last round. The search then answers with the best finished path, or the best partial one
when none finished. A token budget below one step raises `BudgetError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import regex

from ponder.backends.base import Backend
from ponder.core import Completion, SamplingParams, TokenCallback
from ponder.errors import BudgetError, ConfigError, PonderError, ScorerError
from ponder.result import Candidate, Node, NodeStatus, Result, Vote
from ponder.scorers.base import Attempt
from ponder.strategies.base import Kind, Run, Selection, Strategy, vote_table
from ponder.usage import Usage

Aggregate = Literal["last", "min", "prod", "mean"]
AGGREGATES = ("last", "min", "prod", "mean")
Final = Literal["best", "weighted"]
FINALS = ("best", "weighted")
NO_EVIDENCE = 0.5
"""The score of a path none of whose steps the scorer could find anything to judge in."""
MATCH_SECONDS = 0.05
"""Most time one search of a step delimiter may take (a catastrophic pattern must not block
the process; a sane one takes microseconds)."""
DEFAULT_SAMPLES = 8
"""N when the budget gives only tokens."""


@dataclass(frozen=True, slots=True)
class Delimiter:
    """Where a step ends: at the first match of `pattern` that leaves some text before it."""

    spec: str
    pattern: regex.Pattern[str]
    stops: tuple[str, ...]
    """Strings the backend stops at (none for a regular expression)."""
    opens_next: bool = False
    """The match is the head of the next step (`Step 2:`): the step ends where it starts."""

    NAMED: ClassVar[dict[str, str]] = {"blank-line": "\n\n", "newline": "\n"}

    @classmethod
    def parse(cls, spec: str) -> Delimiter:
        if not isinstance(spec, str) or not spec:
            raise ConfigError(
                "step_delimiter must be a non-empty string: blank-line, newline, step, "
                "a literal string or re:PATTERN"
            )
        if spec == "step":
            return cls(spec, regex.compile(r"(?<=\n)Step "), ("\nStep ",), opens_next=True)
        if spec.startswith("re:"):
            try:
                pattern = regex.compile(spec[3:])
            except regex.error as exc:
                raise ConfigError(f"step_delimiter {spec!r} is not a valid regex: {exc}") from None
            if pattern.search("", timeout=MATCH_SECONDS) is not None:
                raise ConfigError(
                    f"step_delimiter {spec!r} matches the empty string; every step would be empty"
                )
            return cls(spec, pattern, ())
        literal = cls.NAMED.get(spec, spec.replace("\\n", "\n").replace("\\t", "\t"))
        return cls(spec, regex.compile(regex.escape(literal)), (literal,))

    def end(self, text: str) -> int | None:
        """Where the step ends in `text` (None: no delimiter in it)."""
        try:
            for match in self.pattern.finditer(text, timeout=MATCH_SECONDS):
                end = match.start() if self.opens_next else match.end()
                if text[:end].strip():
                    return end
        except TimeoutError:
            raise ConfigError(
                f"step_delimiter {self.spec!r} took more than {MATCH_SECONDS:g} s to search "
                f"one step of {len(text)} characters; use a simpler pattern"
            ) from None
        return None


@dataclass(eq=False)
class Branch:
    """A node of the search tree while the search runs: a partial solution ending in `step`."""

    id: int
    parent: Branch | None
    step: str
    completion: Completion | None = None
    usage: Usage = Usage()
    status: NodeStatus = "open"
    done: bool = False
    """Finished: the model ended its answer (`ended`) or the path has `max_steps` steps."""
    ended: bool = False
    cut: bool = False
    """The step hit `max_step_tokens` before any delimiter."""
    step_score: float | None = None
    """The scorer's raw score of this step."""
    probs: tuple[float, ...] = ()
    """The path's informative step scores on the [0, 1] scale, root to here."""
    score: float = math.nan
    """The aggregated path score the search ranks by."""
    notes: list[str] = field(default_factory=list)
    depth: int = 0
    text: str = ""
    """The whole partial solution: every step from the root, concatenated."""

    def __post_init__(self) -> None:
        if self.parent is not None:
            self.depth = self.parent.depth + 1
            self.text = self.parent.text + self.step

    @property
    def tokens(self) -> int:
        return self.completion.num_tokens if self.completion else 0

    def lineage(self) -> list[Branch]:
        """Root first, this node last."""
        out: list[Branch] = []
        node: Branch | None = self
        while node is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    def steps(self) -> tuple[str, ...]:
        return tuple(b.step for b in self.lineage()[1:])


def best_first(branches: Iterable[Branch]) -> list[Branch]:
    """Highest path score first; ties go to the earlier node."""
    return sorted(branches, key=lambda b: (-b.score, b.id))


def unique(branches: Iterable[Branch]) -> list[Branch]:
    """Each node once, in order (resampling draws the same particle several times)."""
    return list({id(b): b for b in branches}.values())


def ess(weights: np.ndarray) -> float:
    """Effective sample size of normalized importance weights: 1 / sum(w^2)."""
    return float(1.0 / np.sum(weights**2))


@dataclass(frozen=True, kw_only=True)
class StepSearch(Strategy):
    """Base of the step-level strategies; `arun` in each subclass reads like its paper."""

    kind: ClassVar[Kind] = Kind.STEP
    needs_scorer: ClassVar[bool] = True

    step_delimiter: str = "\n\n"
    max_step_tokens: int = 192
    max_steps: int = 10
    aggregate: Aggregate | None = None
    """None: `last` for scorers that judge the whole prefix, else `min`."""
    final: Final = "best"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.delimiter  # noqa: B018 - validates step_delimiter
        for name in ("max_step_tokens", "max_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.aggregate is not None and self.aggregate not in AGGREGATES:
            raise ConfigError(
                f"aggregate must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}"
            )
        if self.final not in FINALS:
            raise ConfigError(f"final must be one of {', '.join(FINALS)}, got {self.final!r}")
        extra = len(self.delimiter.stops) + len(self.sampling.stop)
        if extra > 16:
            raise ConfigError("too many stop strings: the step delimiter and sampling.stop")

    @property
    def delimiter(self) -> Delimiter:
        return Delimiter.parse(self.step_delimiter)

    @property
    def samples(self) -> int:
        """N: beams, particles or solutions."""
        return self.budget.samples or DEFAULT_SAMPLES

    def step_params(self) -> SamplingParams:
        """Sample one step: stop at the delimiter and keep it, so prefixes stay verbatim."""
        assert self.scorer is not None
        params = dataclasses.replace(
            self.sampling,
            max_tokens=self.max_step_tokens,
            stop=(*self.delimiter.stops, *self.sampling.stop),
            include_stop=True,
        )
        if self.scorer.needs_logprobs:
            params = dataclasses.replace(
                params,
                logprobs=True,
                top_logprobs=max(params.top_logprobs, self.scorer.top_logprobs),
            )
        return params

    def search(
        self, question: str, backend: Backend, on_tokens: TokenCallback | None = None
    ) -> Search:
        """A new search of `question`, after checking that it can run at all."""
        tokens = self.budget.tokens
        if tokens is not None and tokens < self.max_step_tokens:
            raise BudgetError(
                f"a token budget of {tokens} is below one step (max_step_tokens="
                f"{self.max_step_tokens}); raise the budget or lower max_step_tokens"
            )
        return Search(self, self.begin(question, backend, on_tokens))

    @property
    def aggregation(self) -> Aggregate:
        """The aggregate in use: the one asked for, else the scorer's natural one."""
        if self.aggregate is not None:
            return self.aggregate
        return "last" if self.scorer is not None and self.scorer.judges_prefix else "min"

    def path_score(self, probs: Sequence[float]) -> float:
        if not probs:
            return NO_EVIDENCE
        how = self.aggregation
        if how == "last":
            return probs[-1]
        if how == "min":
            return min(probs)
        if how == "prod":
            return math.prod(probs)
        return math.fsum(probs) / len(probs)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "aggregate": self.aggregation}


@dataclass(frozen=True, kw_only=True)
class WideSearch(StepSearch):
    """A step search that expands each partial solution it keeps `beam_width` (M) ways."""

    beam_width: int = 4
    needs_width: ClassVar[bool] = True
    """N must hold at least one full expansion (M samples); A* spends N differently."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.beam_width, int) or self.beam_width < 1:
            raise ConfigError(f"beam_width must be a positive integer, got {self.beam_width!r}")
        if (
            self.needs_width
            and self.budget.samples is not None
            and (self.beam_width > self.budget.samples)
        ):
            raise BudgetError(
                f"{self.name} with beam width {self.beam_width} needs at least "
                f"{self.beam_width} samples (N >= M) but the budget allows "
                f"{self.budget.samples}; raise n or lower the beam width"
            )


class Search:
    """One run of a step-level strategy on one question: the tree, the spending, the notes.

    Strategies are frozen and shared between runs, so everything a run changes lives here.
    """

    def __init__(self, plan: StepSearch, run: Run) -> None:
        assert plan.scorer is not None
        self.plan, self.scorer, self.run = plan, plan.scorer, run
        self.question, self.prompt = run.question, run.prompt
        self.params = plan.step_params()
        self.rng = run.rng
        """Every random choice of the run (resampling, ties)."""
        self.seed = plan.sample_seed(run.question)
        self.root = Branch(id=0, parent=None, step="", status="kept")
        self.nodes: list[Branch] = [self.root]
        self.scored = 0
        self.raised: list[str] = []
        self.nans = 0
        self.starved = 0
        """1 once the budget cannot give a single token to each new step."""

    @property
    def spent(self) -> Usage:
        return self.run.usage

    @property
    def exhausted(self) -> bool:
        """The token budget is spent: no further round may start."""
        tokens = self.plan.budget.tokens
        return tokens is not None and self.spent.decoded_tokens >= tokens - self.starved

    def allowance(self, sequences: int) -> int:
        """Tokens each of `sequences` new steps may sample within the token budget (the
        budget is a cap on every call, not only a check between rounds)."""
        tokens = self.plan.budget.tokens
        if tokens is None:
            return self.params.max_tokens
        left = tokens - self.spent.decoded_tokens
        return min(self.params.max_tokens, max(left, 0) // max(sequences, 1))

    async def extend(self, parents: Sequence[Branch], k: int) -> list[Branch]:
        """`k` next steps of every parent in one backend call, each scored.

        Returns the new nodes the scorer could judge, parent by parent, in sampling order.
        """
        if not parents:
            return []
        allowed = self.allowance(len(parents) * k)
        if allowed < 1:
            self.starved = 1  # not a token left for each new step: the search is over
            return []
        params = dataclasses.replace(
            self.params, seed=self.seed + len(self.nodes), max_tokens=allowed
        )
        generation = await self.run.extend([p.text for p in parents], params, n=k)
        pairs = [(p, c) for p, group in zip(parents, generation.groups, strict=True) for c in group]
        ends = await self._ends([c.text for _, c in pairs])
        children = [
            self._child(parent, c, end) for (parent, c), end in zip(pairs, ends, strict=True)
        ]
        if not children:
            return []
        sampled = Usage.total(c.usage for c in children)
        children[0].usage += _less(generation.usage, sampled)
        await self._judge(children)
        return [c for c in children if c.status != "dropped"]

    async def _ends(self, texts: list[str]) -> list[int | None]:
        """Where each step ends. A regular expression (a user's, a server client's) is
        searched off the event loop, with the `regex` module's time limit per search, so a
        slow pattern never stalls other work."""
        delimiter = self.plan.delimiter
        if delimiter.stops:  # literal: a substring search, microseconds
            return [delimiter.end(t) for t in texts]
        return await asyncio.to_thread(lambda: [delimiter.end(t) for t in texts])

    def _child(self, parent: Branch, completion: Completion, end: int | None) -> Branch:
        plan = self.plan
        if end is not None and end < len(completion.text):
            completion = _trimmed(completion, end)
        user_stop = completion.stop is not None and completion.stop in plan.sampling.stop
        ended = (
            end is None
            and completion.finish_reason == "stop"
            and (completion.stop is None or user_stop)
        )
        cut = end is None and completion.finish_reason == "length"
        child = Branch(
            id=len(self.nodes),
            parent=parent,
            step=completion.text,
            completion=completion,
            usage=completion.usage,
            ended=ended,
            cut=cut,
        )
        child.done = ended or child.depth >= plan.max_steps
        if cut:
            limit = (
                f"max_step_tokens={plan.max_step_tokens}"
                if completion.num_tokens >= plan.max_step_tokens
                else f"{completion.num_tokens} tokens, what the token budget left"
            )
            child.notes.append(f"cut at {limit} (no delimiter)")
        if child.done:
            child.status = "finished"
            if not ended:
                child.notes.append(f"stopped at max_steps={plan.max_steps}")
        self.nodes.append(child)
        return child

    async def _judge(self, children: list[Branch]) -> None:
        """Score each distinct partial solution once; drop the nodes that get no score."""
        first: dict[str, Branch] = {}
        for child in children:
            first.setdefault(child.text, child)
        judged = list(first.values())
        outcomes = await asyncio.gather(*(self._score(c) for c in judged), return_exceptions=True)
        for outcome in outcomes:
            if not isinstance(outcome, Exception | tuple):
                raise outcome  # cancellation and the like end the run
        failures = [o for o in outcomes if isinstance(o, Exception)]
        if failures and len(failures) == len(outcomes) and not self.scored:
            error = failures[0]
            if isinstance(error, PonderError):
                raise error
            raise ScorerError(
                f"process scorer {self.scorer.name!r} failed on every step: "
                f"{type(error).__name__}: {error}"
            ) from error
        by_text = {c.text: o for c, o in zip(judged, outcomes, strict=True)}
        for child in children:
            outcome = by_text[child.text]
            source = first[child.text]
            if source is not child:
                child.notes.append(f"same text as node {source.id}: scored once")
            if isinstance(outcome, Exception):
                reason = f"{type(outcome).__name__}: {outcome}"
                self._drop(child, f"dropped: the scorer raised {reason}")
                self.raised.append(reason)
                continue
            score, informative = outcome
            if math.isnan(score):
                self._drop(child, "dropped: the scorer gave no score (NaN)")
                self.nans += 1
                continue
            if source is child:
                self.scored += 1
            child.step_score = score
            assert child.parent is not None
            child.probs = child.parent.probs
            if informative:
                child.probs = (*child.probs, self.scorer.probability(score))
            else:
                child.notes.append("nothing to judge in this step: the path keeps its score")
            child.score = self.plan.path_score(child.probs)

    async def _score(self, child: Branch) -> tuple[float, bool]:
        """The step's score, and whether the scorer found anything to judge in it."""
        attempt = Attempt(self.question, child.steps(), child.completion, self.prompt)
        batch = await self.run.judge(self.scorer, [attempt])
        if len(batch.scores) != 1:
            raise ScorerError(f"scorer returned {len(batch.scores)} scores for 1 attempt")
        child.usage += batch.usage
        return float(batch.scores[0]), batch.informs(0)

    def _drop(self, child: Branch, why: str) -> None:
        child.status = "dropped"
        child.done = False
        child.notes.append(why)

    def keep(self, branches: Iterable[Branch]) -> None:
        """These partial solutions go on to the next round."""
        for branch in branches:
            branch.status = "kept"

    def prune(self, branches: Iterable[Branch], why: str) -> None:
        for branch in branches:
            branch.status = "pruned"
            branch.notes.append(why)

    def note(self, text: str) -> None:
        self.run.note(text)

    def result(self, finished: Iterable[Branch], unfinished: Iterable[Branch]) -> Result:
        """The best finished path wins; with none finished, the best partial one."""
        plan = self.plan
        done = unique(finished)
        pool = done or best_first(unique(unfinished))
        candidates = [self._candidate(b) for b in pool]
        labels = self.run.task.cluster([c.answer for c in candidates])
        candidates = [
            dataclasses.replace(c, cluster=k) for c, k in zip(candidates, labels, strict=True)
        ]
        weighted = plan.final == "weighted" and bool(done)
        votes = vote_table(candidates, [b.score for b in pool] if weighted else None)
        chosen = best_first(pool)[0] if pool else None
        if weighted and votes:
            chosen = best_first(pool[i] for i in votes[0].members)[0]
        self._close(chosen, partial=not done)
        index = pool.index(chosen) if chosen is not None else None
        selection = Selection(
            index,
            candidates[index].answer if index is not None else None,
            self._decision(chosen, len(pool), partial=not done, votes=votes if weighted else ()),
            votes,
        )
        return self.run.result(
            candidates,
            selection,
            nodes=[self._node(b) for b in self.nodes],
            chosen_path=[b.id for b in chosen.lineage()] if chosen else [],
        )

    def _close(self, chosen: Branch | None, *, partial: bool) -> None:
        """Final statuses and the notes that sum the run up."""
        plan = self.plan
        stopped = "the token budget ran out" if self.exhausted else "the search ended"
        for branch in self.nodes:
            if branch is chosen and partial:
                branch.status = "kept"
                branch.notes.append(f"partial answer: {stopped}")
            elif branch.status == "open":
                self.prune([branch], f"not extended: {stopped}")
            if branch.status == "kept" and branch.cut:
                branch.status = "cut"
        if self.exhausted:
            self.note(
                f"token budget of {plan.budget.tokens} spent "
                f"({self.spent.decoded_tokens} tokens decoded)"
            )
        dropped = len(self.raised) + self.nans
        if dropped:
            why = []
            if self.raised:
                why.append(f"the scorer raised on {len(self.raised)} (first: {self.raised[0]})")
            if self.nans:
                why.append(f"gave NaN on {self.nans}")
            self.note(f"{dropped} node(s) dropped, search went on: {'; '.join(why)}")
        cut = sum(b.cut for b in self.nodes)
        if cut:
            self.note(f"{cut} step(s) cut at max_step_tokens={plan.max_step_tokens}")
        if partial and chosen is not None:
            self.note("no path finished: answered with the best partial path")

    def _decision(
        self, chosen: Branch | None, count: int, *, partial: bool, votes: Sequence[Vote] = ()
    ) -> str:
        plan = self.plan
        if chosen is None:
            return f"{plan.name}: no path could be scored"
        if votes:
            top = votes[0]
            return (
                f"{plan.name}: weighted best-of-{count}: answer {top.answer} with path scores "
                f"summing to {top.weight:.3f} over {top.count} finished path(s) "
                f"({plan.aggregation} path score, {self.scorer.name})"
            )
        kind = "partial" if partial else "finished"
        return (
            f"{plan.name}: the {kind} path with the highest {plan.aggregation} path score "
            f"({chosen.score:.3f}, {self.scorer.name}) among {count}"
        )

    def _candidate(self, branch: Branch) -> Candidate:
        completions = [b.completion for b in branch.lineage()[1:]]
        logprobs = [t.logprob for c in completions if c and c.logprobs for t in c.logprobs]
        complete = bool(completions) and all(c and c.logprobs for c in completions)
        text = branch.text
        scores = {"path": branch.score}
        if branch.step_score is not None:
            scores[self.scorer.name] = branch.step_score
        return Candidate(
            text=text,
            answer=self.run.task.extract(text, complete=branch.ended),
            usage=Usage.total(b.usage for b in branch.lineage()),
            finish_reason="stop" if branch.ended else "length",
            mean_logprob=math.fsum(logprobs) / len(logprobs) if complete else None,
            sum_logprob=math.fsum(logprobs) if complete else None,
            scores=scores,
        )

    def _node(self, branch: Branch) -> Node:
        return Node(
            id=branch.id,
            parent=branch.parent.id if branch.parent else None,
            depth=branch.depth,
            step=branch.step,
            status=branch.status,
            score=None if math.isnan(branch.score) else branch.score,
            step_scores={} if branch.step_score is None else {self.scorer.name: branch.step_score},
            tokens=branch.tokens,
            usage=branch.usage,
            note="; ".join(branch.notes),
        )


def _less(total: Usage, part: Usage) -> Usage:
    """What a call cost beyond its completions (the call itself, its wall time)."""
    names = [f.name for f in dataclasses.fields(Usage)]
    return Usage(**{name: getattr(total, name) - getattr(part, name) for name in names})


def _trimmed(completion: Completion, end: int) -> Completion:
    """The completion cut to its first `end` characters (the tokens past them stay spent)."""
    logprobs = completion.logprobs
    token_ids = None
    if logprobs is not None:
        kept, length = 0, 0
        for token in logprobs:
            if length >= end:
                break
            length += len(token.token)
            kept += 1
        logprobs = logprobs[:kept]
        if completion.token_ids is not None:
            token_ids = completion.token_ids[:kept]
    return dataclasses.replace(
        completion, text=completion.text[:end], logprobs=logprobs, token_ids=token_ids
    )
