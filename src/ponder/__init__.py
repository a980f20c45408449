"""ponder: turn inference-time compute into better answers, and measure by how much.

    import ponder
    result = ponder.solve("What is 17 * 23?", strategy="self-consistency", n=8)
    print(result.answer, result.usage.total_tokens)

For composing your own: `load_backend`, `build_strategy`, `build_scorer`, `Budget`,
`SamplingParams`, `get_task`, and the `Result` every strategy returns.
"""

from __future__ import annotations

from typing import Any

from ponder.backends import Backend, SamplingParams, load_backend
from ponder.result import Candidate, Result, Trace
from ponder.scorers import Scorer, build_scorer
from ponder.strategies import STRATEGIES, Budget, Strategy, build_strategy
from ponder.tasks import Task, get_task
from ponder.usage import Usage

__version__ = "0.1.0"


def make_strategy(
    strategy: str,
    *,
    backend: Backend,
    n: int | None = None,
    token_budget: int | None = None,
    scorer: str | Scorer | None = None,
    scorer_options: dict[str, Any] | None = None,
    sampling: SamplingParams | None = None,
    task: str | Task = "math",
    seed: int = 0,
    **options: Any,
) -> Strategy:
    """A strategy from names and numbers (what the CLI, the server and `solve` use)."""
    cls = STRATEGIES.get(strategy)
    built: dict[str, Any] = dict(options)
    built["task"] = get_task(task) if isinstance(task, str) else task
    if isinstance(scorer, str):
        scorer = build_scorer(scorer, backend=backend, **(scorer_options or {}))
    if scorer is not None:
        built["scorer"] = scorer
    if sampling is not None:
        built["sampling"] = sampling
    if n is not None or token_budget is not None:
        default = cls.__dataclass_fields__["budget"].default
        samples = n if n is not None else (None if token_budget else default.samples)  # type: ignore[union-attr]
        built["budget"] = Budget(samples=samples, tokens=token_budget)
    built["seed"] = seed
    return build_strategy(strategy, **built)


def solve(
    question: str,
    strategy: str = "self-consistency",
    n: int | None = 8,
    *,
    scorer: str | Scorer | None = None,
    model: str | None = None,
    backend: Backend | None = None,
    max_tokens: int = 512,
    temperature: float = 0.8,
    seed: int = 0,
    **options: Any,
) -> Result:
    """Answer `question` with a strategy; the embedded default model unless told otherwise."""
    owned = backend is None
    engine = backend or load_backend("embedded", model=model)
    try:
        chosen = make_strategy(
            strategy,
            backend=engine,
            n=n,
            scorer=scorer,
            sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature),
            seed=seed,
            **options,
        )
        return chosen.run(question, engine)
    finally:
        if owned:
            engine.close()


__all__ = [
    "Backend",
    "Budget",
    "Candidate",
    "Result",
    "SamplingParams",
    "Scorer",
    "Strategy",
    "Task",
    "Trace",
    "Usage",
    "build_scorer",
    "build_strategy",
    "get_task",
    "load_backend",
    "make_strategy",
    "solve",
]
