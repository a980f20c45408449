"""ponder: turn inference-time compute into better answers, and measure by how much.

    import ponder
    result = ponder.solve("What is 17 * 23?", strategy="self-consistency", n=8)
    print(result.answer, result.usage.total_tokens, result.trace.decision)

For composing your own: `load_backend`, `build_strategy`, `build_scorer`, `Budget`,
`SamplingParams`, `get_task`, and the `Result` every strategy returns. `import ponder` is
cheap: those names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ponder.backends.base import Backend, SamplingParams, TokenCallback
    from ponder.backends.registry import load_backend
    from ponder.errors import PonderError
    from ponder.result import Candidate, Result, Trace
    from ponder.scorers.base import Scorer, build_scorer
    from ponder.strategies.base import STRATEGIES, Budget, Strategy, build_strategy
    from ponder.tasks.base import Task, get_task
    from ponder.usage import Usage

__version__ = "0.1.0"

_LAZY = {
    "Backend": "ponder.backends.base",
    "SamplingParams": "ponder.backends.base",
    "load_backend": "ponder.backends.registry",
    "PonderError": "ponder.errors",
    "Candidate": "ponder.result",
    "Result": "ponder.result",
    "Trace": "ponder.result",
    "Scorer": "ponder.scorers.base",
    "build_scorer": "ponder.scorers.base",
    "STRATEGIES": "ponder.strategies.base",
    "Budget": "ponder.strategies.base",
    "Strategy": "ponder.strategies.base",
    "build_strategy": "ponder.strategies.base",
    "Task": "ponder.tasks.base",
    "get_task": "ponder.tasks.base",
    "Usage": "ponder.usage",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ponder' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
    """A strategy from names and numbers (what the CLI and `solve` use).

    `n` and `token_budget` make the `Budget` (a strategy's own default budget otherwise);
    a scorer given by name is built with `scorer_options` for `backend`; any other keyword
    is a field of the strategy (`min_fraction=0.3`, `beam_width=4`), and a field the
    strategy does not have raises `ConfigError` naming the ones it has.
    """
    from ponder.scorers.base import build_scorer
    from ponder.strategies.base import STRATEGIES, Budget, build_strategy
    from ponder.tasks.base import get_task

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


async def asolve(
    question: str,
    strategy: str = "self-consistency",
    n: int | None = 8,
    *,
    scorer: str | Scorer | None = None,
    model: str | None = None,
    backend: Backend | str | None = None,
    base_url: str | None = None,
    max_tokens: int = 512,
    temperature: float = 0.8,
    seed: int = 0,
    token_budget: int | None = None,
    scorer_options: dict[str, Any] | None = None,
    task: str | Task = "math",
    on_tokens: TokenCallback | None = None,
    **options: Any,
) -> Result:
    """`solve` for code that already runs an event loop."""
    from ponder.backends.base import Backend, SamplingParams
    from ponder.backends.registry import load_backend

    owned = not isinstance(backend, Backend)
    engine = (
        backend
        if isinstance(backend, Backend)
        else load_backend(backend or "embedded", model=model, base_url=base_url)
    )
    try:
        plan = make_strategy(
            strategy,
            backend=engine,
            n=n,
            token_budget=token_budget,
            scorer=scorer,
            scorer_options=scorer_options,
            sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature),
            task=task,
            seed=seed,
            **options,
        )
        return await plan.arun(question, engine, on_tokens=on_tokens)
    finally:
        if owned:
            await engine.aclose()


def solve(
    question: str,
    strategy: str = "self-consistency",
    n: int | None = 8,
    *,
    scorer: str | Scorer | None = None,
    model: str | None = None,
    backend: Backend | str | None = None,
    **options: Any,
) -> Result:
    """Answer `question` by spending `n` samples with `strategy`; returns the `Result`.

    `backend`: a `Backend` you built (kept open), or a backend name ("embedded" by default,
    "openai" with `base_url=`), loaded for this call and closed after it. `model`: for the
    embedded backend a catalog name or .gguf path (default qwen2.5-coder-1.5b; "small" is
    the 0.5B model). Other keywords: `max_tokens`, `temperature`, `seed`, `token_budget`,
    `scorer_options`, `task`, `on_tokens`, and the strategy's own fields (see
    `ponder strategies`).
    """
    import asyncio

    from ponder.errors import ConfigError

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(
            asolve(question, strategy, n, scorer=scorer, model=model, backend=backend, **options)
        )
    raise ConfigError("ponder.solve was called inside a running event loop; await ponder.asolve")


__all__ = [
    "STRATEGIES",
    "Backend",
    "Budget",
    "Candidate",
    "PonderError",
    "Result",
    "SamplingParams",
    "Scorer",
    "Strategy",
    "Task",
    "Trace",
    "Usage",
    "asolve",
    "build_scorer",
    "build_strategy",
    "get_task",
    "load_backend",
    "make_strategy",
    "solve",
]
