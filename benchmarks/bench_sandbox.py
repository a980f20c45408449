"""The sandbox's overhead per candidate run: a trivial program, many runs, the pool on.

    python benchmarks/bench_sandbox.py [--runs 64] [--workers 2]

Each run is a fresh fenced child (namespaces, limits, Landlock, the audit hook where the
machine allows them): what a code question pays per distinct program before the program
does anything. Distinct programs (a counter in each) so the cache does not answer; then the
same programs again, all cache hits. Prints the fences in force, then the last line
`sandbox_ms_per_run=X` (wall milliseconds per run with the pool on) with the sequential
per-run cost, the cache-hit cost and the fences' count.
"""

from __future__ import annotations

import argparse
import time

from ponder.sandbox import Sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    pooled = Sandbox(workers=args.workers)
    layers = pooled.isolation()
    print("fences:", ", ".join(layers))
    programs = [f"x = {i}\nprint(x * 2)" for i in range(args.runs)]
    started = time.perf_counter()
    outcomes = pooled.run_many(programs)
    pool_ms = (time.perf_counter() - started) * 1000 / args.runs
    assert all(o.passed for o in outcomes), [o.reason for o in outcomes if not o.passed][:3]
    started = time.perf_counter()
    for program in programs:
        pooled.run(program)
    hit_ms = (time.perf_counter() - started) * 1000 / args.runs
    single = Sandbox(workers=1)
    count = max(8, args.runs // 4)
    started = time.perf_counter()
    for i in range(count):
        single.run(f"y = {i}")
    one_ms = (time.perf_counter() - started) * 1000 / count
    print(
        f"sandbox_ms_per_run={pool_ms:.1f} sequential_ms_per_run={one_ms:.1f} "
        f"cache_hit_ms={hit_ms:.4f} workers={args.workers} runs={args.runs} fences={len(layers)}"
    )


if __name__ == "__main__":
    main()
