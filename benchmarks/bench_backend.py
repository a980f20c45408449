"""Embedded backend: batched sampling and prefix reuse, measured in one run.

    python benchmarks/bench_backend.py [--model small] [--tokens 64]

On the small model (qwen2.5-coder-0.5b), with a GSM8K question in the chat template and a
fixed number of new tokens per sample (end-of-sequence ignored), it times one sample, eight
samples in one batched call, and eight samples one after another, and the time spent inside
`llama_decode` during the batched call. Then a step-search round: eight different partial
answers drawn from a ~200-token prompt, each continued once; it counts the tokens the model
decoded against the distinct tokens involved (the prompt once, each partial answer's tokens
once, the new tokens).

Last line: `batched_speedup=X overhead=Y prefix_ratio=Z` where
batched_speedup = sequential / batched wall time (target >= 1.7),
overhead = batched wall time / time inside llama_decode (target <= 1.10),
prefix_ratio = decoded / distinct tokens (target <= 1.10; about 3 with no reuse).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from ponder.backends.embedded import EmbeddedBackend
from ponder.core import SamplingParams

QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?"
)
SYSTEM = (
    "You are a careful math tutor. Solve the problem step by step. Put each step on its own "
    "line, show every calculation with its result, check the arithmetic, and keep the "
    "explanation short and clear. Use only the numbers given in the problem; do not invent "
    "new facts. When a quantity is described relative to another one, such as half as many, "
    "twice as much or three more than, first compute that quantity on its own line, then use "
    "it. Units matter: keep track of dollars, hours, items and people, and convert minutes to "
    "hours or cents to dollars when the question asks for it. After the last step, write the "
    "final answer on its own line in the form 'The answer is N.' where N is a number without "
    "units. Here is the problem."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("-n", type=int, default=8)
    args = parser.parse_args()
    backend = EmbeddedBackend(args.model)
    chat = [{"role": "user", "content": QUESTION}]
    fixed = SamplingParams(max_tokens=args.tokens, temperature=0.8, seed=7, ignore_eos=True)

    backend.generate(chat, SamplingParams(max_tokens=8, temperature=0.0))  # warm up, cache

    def timed(call):  # type: ignore[no-untyped-def]
        before = backend.stats()
        started = time.perf_counter()
        result = call()
        wall = time.perf_counter() - started
        after = backend.stats()
        return result, wall, after.decode_seconds - before.decode_seconds

    _, one, _ = timed(lambda: backend.generate(chat, fixed, n=1))
    batched_result, batched, inside = timed(lambda: backend.generate(chat, fixed, n=args.n))
    _, sequential, _ = timed(lambda: [backend.generate(chat, fixed, n=1) for _ in range(args.n)])
    assert all(c.num_tokens == args.tokens for c in batched_result.completions)

    # A step-search round: partial answers from a long shared prompt, then one continuation each.
    long_chat = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    prompt_tokens = len(backend.engine.tokenize(backend.render(long_chat), special=True))
    before = backend.stats()
    partial = backend.generate(
        long_chat,
        SamplingParams(max_tokens=24, temperature=1.0, seed=11, ignore_eos=True),
        n=args.n,
    )
    prefixes = [c.text for c in partial.completions]
    cont = asyncio.run(
        backend.acontinue(
            long_chat,
            prefixes,
            SamplingParams(max_tokens=24, temperature=1.0, seed=12, ignore_eos=True),
        )
    )
    decoded = backend.stats().decoded_tokens - before.decoded_tokens
    new_tokens = sum(c.num_tokens for c in cont.completions)
    own_tokens = sum(c.num_tokens for c in partial.completions)
    distinct = prompt_tokens + own_tokens + new_tokens
    backend.close()

    speedup = sequential / batched
    overhead = batched / inside
    prefix_ratio = decoded / distinct
    print(f"model {backend.model_id}, {args.tokens} new tokens per sample, n={args.n}")
    print(f"1 sample                 {one:7.2f} s  ({args.tokens / one:5.1f} tokens/s)")
    print(
        f"{args.n} samples batched        {batched:7.2f} s  "
        f"({args.n * args.tokens / batched:5.1f} tokens/s, {batched / one:.2f}x one sample)"
    )
    print(f"{args.n} samples sequential     {sequential:7.2f} s")
    print(f"inside llama_decode      {inside:7.2f} s  (batched run)")
    print(
        f"step round: prompt {prompt_tokens} tokens, partial answers {own_tokens}, "
        f"new {new_tokens}; decoded {decoded} vs distinct {distinct}; "
        f"cached prompt tokens reported {cont.usage.cached_prompt_tokens}"
    )
    print(f"batched_speedup={speedup:.2f} overhead={overhead:.2f} prefix_ratio={prefix_ratio:.2f}")


if __name__ == "__main__":
    main()
