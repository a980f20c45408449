"""ponder: turn inference-time compute into better answers, and measure by how much.

    import ponder
    result = ponder.solve("What is 17 * 23?", strategy="self-consistency", n=8)
    print(result.answer, result.usage.total_tokens, result.trace.decision)

For composing your own: `load_backend`, `StrategySpec` (a strategy by name, validated, built
for a backend), `build_scorer`, `Budget`, `SamplingParams`, `get_task`, and the `Result`
every strategy returns; `Evaluation` / `EvalConfig` for the evaluation pipeline. `import
ponder` is cheap: those names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ponder.backends.base import Backend
    from ponder.backends.registry import load_backend
    from ponder.core import SamplingParams, TokenCallback
    from ponder.errors import PonderError
    from ponder.eval.api import EvalConfig, EvalSummary, Evaluation, evaluate
    from ponder.result import Candidate, Result, Trace
    from ponder.scorers.base import Scorer, build_scorer
    from ponder.strategies.base import STRATEGIES, Budget, Kind, Strategy
    from ponder.strategies.spec import StrategySpec
    from ponder.tasks.base import Task, get_task
    from ponder.usage import Usage

__version__ = "0.1.0"

_LAZY = {
    "Backend": "ponder.backends.base",
    "load_backend": "ponder.backends.registry",
    "SamplingParams": "ponder.core",
    "PonderError": "ponder.errors",
    "EvalConfig": "ponder.eval.api",
    "EvalSummary": "ponder.eval.api",
    "Evaluation": "ponder.eval.api",
    "evaluate": "ponder.eval.api",
    "Candidate": "ponder.result",
    "Result": "ponder.result",
    "Trace": "ponder.result",
    "Scorer": "ponder.scorers.base",
    "build_scorer": "ponder.scorers.base",
    "STRATEGIES": "ponder.strategies.base",
    "Budget": "ponder.strategies.base",
    "Kind": "ponder.strategies.base",
    "Strategy": "ponder.strategies.base",
    "StrategySpec": "ponder.strategies.spec",
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
    task: str = "math",
    on_tokens: TokenCallback | None = None,
    **options: Any,
) -> Result:
    """`solve` for code that already runs an event loop."""
    from ponder.backends.base import Backend
    from ponder.backends.registry import load_backend
    from ponder.core import SamplingParams
    from ponder.scorers.base import Scorer
    from ponder.strategies.spec import StrategySpec

    own = scorer if isinstance(scorer, Scorer) else None
    spec = StrategySpec(
        strategy,
        samples=n,
        tokens=token_budget,
        scorer=None if own is not None else scorer,
        scorer_options=scorer_options or {},
        options=options,
        sampling=SamplingParams(max_tokens=max_tokens, temperature=temperature),
        seed=seed,
        task=task,
    )
    owned = not isinstance(backend, Backend)
    engine = (
        backend
        if isinstance(backend, Backend)
        else load_backend(backend or "embedded", model=model, base_url=base_url)
    )
    try:
        strategy_ = spec.build(engine, scorer=own)
        return await strategy_.arun(question, engine, on_tokens=on_tokens)
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
    the 0.5B model). A strategy that needs a scorer and is given none gets its task's free
    default. Other keywords: `max_tokens`, `temperature`, `seed`, `token_budget`,
    `scorer_options`, `task`, `on_tokens`, and the strategy's own options (see
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
    "EvalConfig",
    "EvalSummary",
    "Evaluation",
    "Kind",
    "PonderError",
    "Result",
    "SamplingParams",
    "Scorer",
    "Strategy",
    "StrategySpec",
    "Task",
    "Trace",
    "Usage",
    "asolve",
    "build_scorer",
    "evaluate",
    "get_task",
    "load_backend",
    "solve",
]
