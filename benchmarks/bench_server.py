"""Pass-through latency: a request through `ponder serve` vs the same request sent directly to
the upstream, both on loopback, interleaved, one run.

    python benchmarks/bench_server.py [--upstream llama|fake] [--requests 20] [--max-tokens 8]

`llama` (default) is the real `python -m llama_cpp.server` with the small model; `fake` is the
test suite's fake OpenAI server (answers at once, so the ratio shows the bare HTTP overhead of
one more hop). Last line: `passthrough_overhead=X.XX direct_ms=... ponder_ms=...
overhead_ms=... upstream=...` (median through ponder / median direct).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ponder.backends.openai import OpenAIBackend
from ponder.server.app import ServerSettings, create_app
from tests.support.fake_openai import FakeOpenAI
from tests.support.llama_server import llama_server
from tests.support.uvicorn_thread import serve


@contextmanager
def upstream(kind: str) -> Iterator[str]:
    if kind == "fake":
        with FakeOpenAI() as fake:
            yield fake.base_url
    else:
        with llama_server() as url:
            yield url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", choices=("llama", "fake"), default="llama")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()
    body = {
        "model": "small",
        "messages": [{"role": "user", "content": "Name a color."}],
        "max_tokens": args.max_tokens,
        "temperature": 0.0,
        "seed": 1,
    }
    with upstream(args.upstream) as base_url:
        backend = OpenAIBackend(base_url, "small")
        with (
            serve(create_app(backend, ServerSettings())) as ponder_url,
            httpx.Client(timeout=120) as client,
        ):
            direct: list[float] = []
            through: list[float] = []
            for i in range(args.requests + 2):
                for url, times in ((base_url, direct), (ponder_url + "/v1", through)):
                    started = time.perf_counter()
                    response = client.post(url + "/chat/completions", json=body)
                    response.raise_for_status()
                    if i >= 2:  # the first rounds warm both paths up
                        times.append(time.perf_counter() - started)
    d, p = statistics.median(direct) * 1000, statistics.median(through) * 1000
    print(f"direct median {d:.1f} ms, through ponder median {p:.1f} ms ({args.requests} each)")
    print(
        f"passthrough_overhead={p / d:.2f} direct_ms={d:.1f} ponder_ms={p:.1f} "
        f"overhead_ms={p - d:.1f} upstream={args.upstream}"
    )


if __name__ == "__main__":
    main()
