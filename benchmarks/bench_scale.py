"""Scale-out: throughput with 1 and 2 Ray workers, and the Ray path's overhead on the model.

    python benchmarks/bench_scale.py [--questions 20] [-n 4] [--delay 0.4]
                                     [--model small] [--model-questions 4] [--skip-model]

Speedup: one evaluation (synthetic questions, N samples each, self-consistency with the
mean-logprob scorer) on a local Ray cluster with 1 worker, then with 2, each on a fresh
bank, one question at a time per worker. The backend is the scripted one whose every call
waits a fixed `--delay` seconds (asleep, so the ratio shows how ponder spreads the work,
not how many cores this machine has). Throughput is questions per second of the evaluation
itself (starting the actors and this process's first imports are left out: they are paid
once per run, not per question).

Overhead: the same evaluation on the embedded model (`--model`, the small one by default,
`--max-tokens` tokens a sample) in this process, then through Ray with one worker that
loads its own copy: seconds through Ray / seconds here, loading left out both times. The
two runs draw the same samples (same seeds), so they do the same work.

Last line: `ray_speedup_2_workers=X ray_overhead=Y` (targets: >= 1.8 and <= 1.10);
`--skip-model` skips the model part and prints `ray_overhead=skipped`.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# the local cluster listens on loopback only (read when ray is imported)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray

from ponder.backends import Backend, load_backend
from ponder.backends.scripted import ScriptedBackend, ScriptedRequest
from ponder.core import Generation, Prompt, SamplingParams, TokenCallback, TokenWatch
from ponder.eval.api import EvalConfig, Evaluation, Pool
from ponder.eval.distributed import RayPool


def _by_seed(request: ScriptedRequest) -> str:
    seed = (request.params.seed or 0) + request.index
    return f"2 + 3 = 5, so the answer is {seed % 5}."


class Slow(ScriptedBackend):
    """The scripted backend, each call taking `delay` seconds more (asleep)."""

    def __init__(self, delay: float) -> None:
        super().__init__(_by_seed)
        self.delay = delay

    async def acontinue(
        self,
        prompt: Prompt,
        prefixes: Sequence[str],
        params: SamplingParams = SamplingParams(),
        *,
        n: int = 1,
        on_tokens: TokenCallback | None = None,
        watch: TokenWatch | None = None,
    ) -> Generation:
        await asyncio.sleep(self.delay)
        return await super().acontinue(
            prompt, prefixes, params, n=n, on_tokens=on_tokens, watch=watch
        )


def _timed(config: EvalConfig, backend: Backend | Pool) -> float:
    started = time.perf_counter()
    summary = Evaluation(config).run(backend)
    seconds = time.perf_counter() - started
    assert summary.meta["complete_questions"] == len(summary.meta["question_ids"])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.4)
    parser.add_argument("--model", default="small")
    parser.add_argument("--model-questions", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--skip-model", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        scripted = EvalConfig(
            dataset="synthetic", limit=args.questions, n=args.n, strategies=["self-consistency"],
            sampling=SamplingParams(max_tokens=32),
        )  # fmt: skip
        # what this process imports on its first evaluation (the report's modules) is not
        # scheduling: paid here, before anything is timed
        warm = EvalConfig(**{**vars(scripted), "limit": 2, "bank": folder / "warm.sqlite"})
        Evaluation(warm).run(Slow(0.0))
        seconds = {}
        for workers in (1, 2):
            with RayPool(functools.partial(Slow, args.delay), workers=workers, cpus=1) as pool:
                bank = folder / f"scripted-{workers}.sqlite"
                seconds[workers] = _timed(EvalConfig(**{**vars(scripted), "bank": bank}), pool)
            print(
                f"{workers} worker(s): {args.questions} questions in {seconds[workers]:.2f} s "
                f"({args.questions / seconds[workers]:.2f} questions/s; "
                f"{args.delay:g} s a call, one call a question)"
            )
        speedup = seconds[1] / seconds[2]
        overhead = "skipped"
        if not args.skip_model:
            model = EvalConfig(
                dataset="synthetic", limit=args.model_questions, n=args.n,
                strategies=["self-consistency"],
                sampling=SamplingParams(max_tokens=args.max_tokens),
            )  # fmt: skip
            with load_backend("embedded", model=args.model) as backend:
                here = _timed(
                    EvalConfig(**{**vars(model), "bank": folder / "here.sqlite"}), backend
                )
            factory = functools.partial(load_backend, "embedded", model=args.model)
            with RayPool(factory, workers=1, cpus=1) as pool:
                there = _timed(EvalConfig(**{**vars(model), "bank": folder / "ray.sqlite"}), pool)
            print(
                f"{args.model}: {args.model_questions} questions x {args.n} samples in "
                f"{here:.2f} s here, {there:.2f} s through Ray (one worker)"
            )
            overhead = f"{there / here:.3f}"
    finally:
        ray.shutdown()
    print(f"ray_speedup_2_workers={speedup:.3f} ray_overhead={overhead}")


if __name__ == "__main__":
    main()
