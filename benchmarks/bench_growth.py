"""How cost grows with work on the embedded backend: one prompt at N = 1, 2, 4, ..., 64
samples, then 1, 2 and 4 questions at once at N = 8 beside the same questions one after another.

    python benchmarks/bench_growth.py [--model small] [--max-tokens 400] [--out runs/growth]
    python benchmarks/bench_growth.py --smoke          # N up to 4, 2 questions, 32 tokens
    python benchmarks/bench_growth.py --fixed-length   # every sample exactly max-tokens long

The samples of one prompt are drawn as ponder draws them: one call of N samples, the prompt
decoded once and the samples batched, at temperature 0.8 (the math task's prompt of the first
GSM8K test question). By default they end where the model ends them, so a large N also pays
for the tail of its longest sample; --fixed-length ignores end-of-sequence and measures the
engine's own scaling. For each N: wall seconds, completion tokens and decoded tokens per
second, and the growth of seconds with N fitted two ways: a line a + b·N (least squares) and
a power law c·N^p (least squares on the logarithms; p < 1 is what batching buys).

Then Q = 1, 2, 4 questions (the first Q GSM8K test questions) with self-consistency over 8
samples: all at once, sharing the decode batches as `ponder eval --concurrency Q` runs them,
and one after another (the two alternate which goes first). Batched decoding is not
bit-identical across batch compositions, so the two may draw slightly different samples:
tokens per second is the fair comparison, and both are printed.

Writes growth.png and growth.json to --out (default runs/growth). Last line:
`growth_exponent=P seconds_per_sample=B base_seconds=A tokens_per_s_1=X tokens_per_s_64=Y
together_vs_sequential_2=R2 together_vs_sequential_4=R4` (the last two: seconds per
completion token together / one after another).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from ponder.backends.embedded import EmbeddedBackend
from ponder.core import SamplingParams
from ponder.eval.datasets import Question, load_dataset
from ponder.serialize import dumps
from ponder.strategies.spec import StrategySpec
from ponder.tasks.base import get_task

CONTEXT = 32768
"""64 samples of 400 tokens share one KV cache: more than the default 16k cells."""


@dataclass(frozen=True)
class Point:
    work: int
    seconds: float
    tokens: int

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def samples_of_one_prompt(
    backend: EmbeddedBackend, question: Question, ns: list[int], params: SamplingParams
) -> list[Point]:
    prompt = get_task("math").prompt(question.question)
    points = []
    for n in ns:
        started = time.perf_counter()
        generation = backend.generate(prompt, params, n=n)
        point = Point(n, time.perf_counter() - started, generation.usage.completion_tokens)
        print(
            f"N={n:<3} {point.seconds:7.1f} s {point.tokens:6d} tokens {point.rate:6.1f} tokens/s",
            flush=True,
        )
        points.append(point)
    return points


def questions_at_once(
    backend: EmbeddedBackend, questions: list[Question], qs: list[int], params: SamplingParams
) -> list[tuple[Point, Point]]:
    strategy = StrategySpec("self-consistency", samples=8, sampling=params).build(backend)

    async def together(group: list[Question]) -> Point:
        started = time.perf_counter()
        results = await asyncio.gather(*(strategy.arun(q.question, backend) for q in group))
        tokens = sum(r.usage.completion_tokens for r in results)
        return Point(len(group), time.perf_counter() - started, tokens)

    def sequential(group: list[Question]) -> Point:
        started = time.perf_counter()
        tokens = sum(strategy.run(q.question, backend).usage.completion_tokens for q in group)
        return Point(len(group), time.perf_counter() - started, tokens)

    pairs = []
    for i, q in enumerate(qs):
        group = questions[:q]
        if i % 2 == 0:
            at_once, one_by_one = asyncio.run(together(group)), sequential(group)
        else:
            one_by_one, at_once = sequential(group), asyncio.run(together(group))
        print(
            f"Q={q}: at once {at_once.seconds:6.1f} s ({at_once.rate:6.1f} tokens/s), one after "
            f"another {one_by_one.seconds:6.1f} s ({one_by_one.rate:6.1f} tokens/s)",
            flush=True,
        )
        pairs.append((at_once, one_by_one))
    return pairs


def fit(points: list[Point]) -> tuple[float, float, float, float]:
    """(a, b) of seconds = a + b·N, and (c, p) of seconds = c·N^p."""
    n = np.array([p.work for p in points], dtype=float)
    s = np.array([p.seconds for p in points])
    b, a = np.polyfit(n, s, 1)
    p, log_c = np.polyfit(np.log(n), np.log(s), 1)
    return float(a), float(b), float(math.exp(log_c)), float(p)


def plot(
    points: list[Point],
    pairs: list[tuple[Point, Point]],
    growth: tuple[float, float, float, float],
    path: Path,
    title: str,
) -> None:
    plt.rcParams["text.parse_math"] = False  # labels are text, never mathtext
    a, b, c, p = growth
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    n = np.array([x.work for x in points], dtype=float)
    smooth = np.geomspace(n.min(), n.max(), 100)
    left.plot(n, [x.seconds for x in points], "o", color="C0", label="wall seconds")
    sign = "+" if b >= 0 else "-"
    left.plot(
        smooth, a + b * smooth, "-", color="C0", alpha=0.5, label=f"{a:.1f} {sign} {abs(b):.2f} N"
    )
    left.plot(smooth, c * smooth**p, "--", color="C0", alpha=0.5, label=f"{c:.1f} N^{p:.2f}")
    left.set_xscale("log", base=2)
    left.set_xticks(n, [f"{v:g}" for v in n])  # the default labels are mathtext
    left.minorticks_off()
    left.set_xlabel("samples of one prompt (N)")
    left.set_ylabel("seconds")
    rates = left.twinx()
    rates.plot(n, [x.rate for x in points], "s-", color="C1", label="tokens/s")
    rates.set_ylabel("decoded tokens per second", color="C1")
    handles = left.get_legend_handles_labels()[0] + rates.get_legend_handles_labels()[0]
    left.legend(handles=handles, loc="upper left", fontsize=8)
    left.set_title("one prompt, N samples in one call")
    qs = [at_once.work for at_once, _ in pairs]
    x = np.arange(len(qs))
    right.bar(x - 0.2, [s.seconds for _, s in pairs], 0.4, label="one after another")
    right.bar(x + 0.2, [t.seconds for t, _ in pairs], 0.4, label="all at once")
    for i, (together, alone) in enumerate(pairs):
        right.annotate(
            f"{alone.rate:.0f} / {together.rate:.0f} tokens/s",
            (i, max(together.seconds, alone.seconds)),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    right.set_xticks(x, [f"{q} question{'s' if q > 1 else ''}" for q in qs])
    right.set_ylabel("seconds")
    right.set_title("self-consistency, N = 8 a question (tokens/s: one by one / at once)")
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--fixed-length", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/growth"))
    parser.add_argument("--smoke", action="store_true", help="N up to 4, 2 questions, 32 tokens")
    args = parser.parse_args()
    ns, qs = [1, 2, 4, 8, 16, 32, 64], [1, 2, 4]
    if args.smoke:
        ns, qs, args.max_tokens = [1, 2, 4], [1, 2], 32
    params = SamplingParams(
        max_tokens=args.max_tokens, temperature=args.temperature, seed=7,
        ignore_eos=args.fixed_length,
    )  # fmt: skip
    questions = load_dataset("gsm8k", limit=max(qs)).questions
    args.out.mkdir(parents=True, exist_ok=True)
    with EmbeddedBackend(args.model, context=CONTEXT) as backend:
        backend.generate("Hi", SamplingParams(max_tokens=2))  # load and warm the model
        points = samples_of_one_prompt(backend, questions[0], ns, params)
        pairs = questions_at_once(backend, questions, qs, params)
        model = backend.model_id
    a, b, c, p = growth = fit(points)
    print(f"seconds = {a:.2f} + {b:.3f} N (least squares); seconds = {c:.2f} N^{p:.3f} (log-log)")
    kind = "fixed length" if args.fixed_length else "ending at end-of-sequence"
    title = f"{model}: {args.max_tokens} tokens at most a sample ({kind}), T={args.temperature:g}"
    plot(points, pairs, growth, args.out / "growth.png", title)
    ratios = {q.work: ratio_of(q, s) for q, s in pairs}
    record = {
        "model": model, "max_tokens": args.max_tokens, "fixed_length": args.fixed_length,
        "samples": [vars(x) for x in points],
        "questions": [{"at_once": vars(t), "one_after_another": vars(s)} for t, s in pairs],
        "fit": {"a": a, "b": b, "c": c, "p": p},
    }  # fmt: skip
    (args.out / "growth.json").write_text(dumps(record, indent=2) + "\n")
    print(f"wrote {args.out / 'growth.png'} and {args.out / 'growth.json'}")
    rate = {x.work: x.rate for x in points}
    print(
        f"growth_exponent={p:.3f} seconds_per_sample={b:.3f} base_seconds={a:.2f} "
        f"tokens_per_s_1={rate.get(1, math.nan):.1f} "
        f"tokens_per_s_64={rate.get(64, math.nan):.1f} "
        f"together_vs_sequential_2={ratios.get(2, math.nan):.2f} "
        f"together_vs_sequential_4={ratios.get(4, math.nan):.2f}"
    )


def ratio_of(together: Point, alone: Point) -> float:
    """Seconds per completion token at once / one after another."""
    return (together.seconds / together.tokens) / (alone.seconds / alone.tokens)


if __name__ == "__main__":
    main()
