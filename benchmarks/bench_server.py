"""Pass-through latency: a request through `ponder serve` vs the same request sent directly to
the upstream, both on loopback, interleaved, one run.

    python benchmarks/bench_server.py [--requests 10] [--max-tokens 8]

The upstream is the real `python -m llama_cpp.server` with the small model. Last line:
`passthrough_overhead=X.XX direct_ms=... ponder_ms=...` (median ponder / median direct).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ponder.backends.openai import OpenAIBackend
from ponder.server.app import ServerSettings, create_app
from tests.support.llama_server import llama_server
from tests.support.uvicorn_thread import serve


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()
    body = {
        "model": "small",
        "messages": [{"role": "user", "content": "Name a color."}],
        "max_tokens": args.max_tokens,
        "temperature": 0.0,
    }
    with llama_server() as upstream:
        app = create_app(OpenAIBackend(upstream, "small"), ServerSettings())
        with serve(app) as ponder_url, httpx.Client(timeout=120) as client:
            direct, through = [], []
            for i in range(args.requests + 1):
                for url, times in ((upstream, direct), (ponder_url + "/v1", through)):
                    started = time.perf_counter()
                    response = client.post(url + "/chat/completions", json=body)
                    response.raise_for_status()
                    if i:  # the first round warms both paths up
                        times.append(time.perf_counter() - started)
    d, p = statistics.median(direct) * 1000, statistics.median(through) * 1000
    print(f"direct median {d:.1f} ms, through ponder median {p:.1f} ms ({args.requests} each)")
    print(f"passthrough_overhead={p / d:.2f} direct_ms={d:.1f} ponder_ms={p:.1f}")


if __name__ == "__main__":
    main()
