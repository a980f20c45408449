"""Prefix reuse over whole step-level searches on the embedded model.

    python benchmarks/bench_search.py [--model small] [--questions 2] [-n 4]

Runs beam search and particle filtering (arithmetic checker: no model tokens for scoring)
on the first GSM8K test questions and compares the tokens the model actually decoded
(`llama_decode` input, from the engine's counters) with the distinct tokens of the search:
the prompt once plus every node's own step tokens once. Without KV reuse every expansion
would decode its whole prefix again. Last line: `decode_ratio=X.XX` (target <= 1.10) and the
same ratio per strategy.
"""

from __future__ import annotations

import argparse
import json
from importlib import resources

from ponder import make_strategy
from ponder.backends import SamplingParams
from ponder.backends.embedded import EmbeddedBackend


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="small")
    parser.add_argument("--questions", type=int, default=2)
    parser.add_argument("-n", type=int, default=4)
    args = parser.parse_args()
    import gzip

    data = resources.files("ponder") / "data" / "gsm8k_test.jsonl.gz"
    with data.open("rb") as raw, gzip.open(raw, "rt") as lines:
        questions = [json.loads(next(lines))["question"] for _ in range(args.questions)]
    backend = EmbeddedBackend(args.model)
    totals = {}
    for name in ("beam-search", "particle-filtering"):
        decoded = distinct = generated = 0
        for question in questions:
            plan = make_strategy(
                name, backend=backend, n=args.n, beam_width=2, scorer="arithmetic",
                max_step_tokens=96, max_steps=6, seed=1,
                sampling=SamplingParams(max_tokens=96, temperature=0.8),
            )  # fmt: skip
            prompt = len(
                backend.engine.tokenize(backend.render(plan.task.prompt(question)), special=True)
            )
            before = backend.stats().decoded_tokens
            result = plan.run(question, backend)
            decoded += backend.stats().decoded_tokens - before
            tree = sum(node.tokens for node in result.trace.nodes)
            distinct += prompt + tree
            generated += tree
            spent = backend.stats().decoded_tokens - before
            print(
                f"{name}: {len(result.trace.nodes)} nodes, answer {result.answer}, "
                f"decoded {spent}, tree {tree} + prompt {prompt}"
            )
        totals[name] = decoded / distinct
        print(f"{name}: decoded {decoded} vs distinct {distinct} (generated {generated})")
    backend.close()
    worst = max(totals.values())
    parts = " ".join(f"{k.replace('-', '_')}_ratio={v:.2f}" for k, v in totals.items())
    print(f"decode_ratio={worst:.2f} {parts}")


if __name__ == "__main__":
    main()
