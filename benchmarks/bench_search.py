"""Prefix reuse over whole step-level searches on the embedded model.

    python benchmarks/bench_search.py [--model small] [--questions 2] [-n 4]

Runs beam search and particle filtering with the arithmetic checker (no model tokens for
scoring), and beam search with self-evaluation as the process scorer (the model judges every
new step), on the first GSM8K test questions. It compares the tokens the model actually
decoded (`llama_decode` input, from the engine's counters) with the distinct tokens of the
search: the prompt once, every node's own step tokens once, and for self-eval every judge
call's own text once (the judge question after the path, and the "Yes"/"No" replies). Without
KV reuse every expansion and every judgement would decode its whole prefix again. Last line:
`decode_ratio=X.XX` (the worst; target <= 1.10) and the same ratio per run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from importlib import resources

from ponder.backends.embedded import EmbeddedBackend
from ponder.core import Message, Prompt, SamplingParams
from ponder.result import Node
from ponder.scorers import Attempt
from ponder.scorers.self_eval import judge_prompt
from ponder.strategies.spec import StrategySpec


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

    def tokens(text: bytes) -> int:
        return len(backend.engine.tokenize(text, special=True))

    totals = {}
    for name, scorer in RUNS:
        decoded = distinct = generated = judged = 0
        for question in questions:
            width = {"beam_width": 2} if name == "beam-search" else {}
            plan = StrategySpec(
                name, samples=args.n, scorer=scorer, seed=1,
                options={"max_step_tokens": 96, "max_steps": 6, **width},
                sampling=SamplingParams(max_tokens=96, temperature=0.8),
            ).build(backend)  # fmt: skip
            prompt = plan.task.prompt(question)
            before = backend.stats().decoded_tokens
            result = plan.run(question, backend)
            decoded += backend.stats().decoded_tokens - before
            tree = sum(node.tokens for node in result.trace.nodes)
            judges = sum(
                judge_tokens(tokens, backend.render, prompt, question, path)
                for path in scored_paths(result.trace.nodes, scorer)
                if scorer == "self-eval"  # the only one here that asks the model
            )
            distinct += tokens(backend.render(prompt)) + tree + judges
            generated += tree
            judged += judges
            print(
                f"{name}[{scorer}]: {len(result.trace.nodes)} nodes, answer {result.answer}, "
                f"decoded {backend.stats().decoded_tokens - before}, tree {tree}, "
                f"judge texts {judges}"
            )
        key = f"{name}[{scorer}]"
        totals[key] = decoded / distinct
        print(
            f"{key}: decoded {decoded} vs distinct {distinct} "
            f"(generated {generated}, judge texts {judged})"
        )
    backend.close()
    worst = max(totals.values())
    parts = " ".join(
        f"{k.replace('-', '_').replace('[', '_').replace(']', '')}_ratio={v:.2f}"
        for k, v in totals.items()
    )
    print(f"decode_ratio={worst:.2f} {parts}")


RUNS = (("beam-search", "arithmetic"), ("particle-filtering", "arithmetic"),
        ("beam-search", "self-eval"))  # fmt: skip


def scored_paths(nodes: Sequence[Node], scorer: str) -> set[tuple[str, ...]]:
    """The distinct partial solutions the scorer judged (it judges each text once)."""
    by_id = {node.id: node for node in nodes}
    paths = set()
    for node in nodes:
        if scorer not in node.step_scores:
            continue
        steps, at = [], node
        while at.parent is not None:
            steps.append(at.step)
            at = by_id[at.parent]
        paths.add(tuple(reversed(steps)))
    return paths


def judge_tokens(
    tokens: Callable[[bytes], int],
    render: Callable[[Prompt], bytes],
    prompt: tuple[Message, ...],
    question: str,
    steps: tuple[str, ...],
) -> int:
    """The judge's own tokens: its conversation past the path already in the KV cache, plus
    the two scored replies."""
    if not steps:
        return 0
    judge = judge_prompt(Attempt(question, steps, None, prompt))
    own = tokens(render(judge)) - tokens(render(prompt) + "".join(steps).encode())
    return max(own, 0) + tokens(b"Yes") + tokens(b"No")


if __name__ == "__main__":
    main()
