"""Adaptive compute from one sample bank: what each stopping rule saves against
self-consistency over all N samples, and what it costs in accuracy.

    python benchmarks/bench_adaptive.py --bank runs/gsm100/bank.sqlite --questions 50
    python benchmarks/bench_adaptive.py --questions 50          # draws the bank first (hours)

The bank holds N = 16 samples per GSM8K test question (small model, temperature 0.8, 512
tokens, 20 top logprobs per token so DeepConf can be replayed); `ponder eval` replays every
rule from it in the order the samples were drawn, charging each only the samples (and, for a
halted trace, the tokens) it used. Every rule is compared with self-consistency@16 on the
same questions (paired sign-flip test, exact for 0/1 outcomes). Last line:
`asc_sample_ratio=X asc_acc_delta=Y deepconf_token_ratio=Z deepconf_acc_delta=W`
(targets: asc <= 0.5 of the samples within 0.01 of the accuracy; DeepConf online <= 0.7 of
the decoded tokens, its paired interval holding 0).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from ponder.backends.registry import load_backend
from ponder.core import SamplingParams
from ponder.eval.api import EvalConfig, EvalSummary, Evaluation

RULES = ("adaptive-consistency", "esc", "deepconf")


def run(
    bank: Path, out: Path, questions: int, n: int, model: str, options: dict[str, Any]
) -> EvalSummary:
    config = EvalConfig(
        dataset="gsm8k", limit=questions, n=n, strategies=["self-consistency", *RULES],
        scorers=["mean-logprob"], options=options, top_logprobs=20,
        sampling=SamplingParams(max_tokens=512, temperature=0.8), bank=bank, out=out,
        baseline="self-consistency",
    )  # fmt: skip
    with load_backend("embedded", model=model) as backend:
        return Evaluation(config).run(backend)


def row(summary: EvalSummary, label: str, k: int) -> dict[str, Any]:
    return next(r for r in summary.rows if r["strategy"] == label and r["k"] == k)


def paired(summary: EvalSummary, label: str, k: int) -> dict[str, Any]:
    return next(
        c for c in summary.comparisons if c["strategy"] == label and c["k"] == k
        and c["versus"].startswith("self-consistency")
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bank", type=Path, help="an existing bank (default: draw one)")
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("-n", type=int, default=16)
    parser.add_argument("--model", default="small")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-adaptive-"))
    bank = args.bank or work / "bank.sqlite"
    online = run(bank, work / "online", args.questions, args.n, args.model, {})
    offline = run(bank, work / "offline", args.questions, args.n, args.model, {"mode": "offline"})
    base = row(online, "self-consistency", args.n)
    print(
        f"{args.questions} questions, N = {args.n}; self-consistency@{args.n}: accuracy "
        f"{base['accuracy']:.3f} [{base['ci_low']:.3f}, {base['ci_high']:.3f}], "
        f"{base['samples']:.1f} samples, {base['decoded_tokens']:,.0f} decoded tokens a question"
    )
    print(f"{'rule':<24}{'acc':>7}{'95% CI':>17}{'Δ vs SC':>9}{'paired 95% CI':>19}"
          f"{'p':>7}{'samples':>9}{'ratio':>7}{'tokens':>9}{'ratio':>7}")  # fmt: skip
    figures = {}
    for summary, label, name in (
        (online, "adaptive-consistency", "adaptive-consistency"),
        (online, "esc", "esc"),
        (online, "deepconf", "deepconf online"),
        (offline, "deepconf", "deepconf offline"),
    ):
        r, c = row(summary, label, args.n), paired(summary, label, args.n)
        samples = r["samples"] / base["samples"]
        tokens = r["decoded_tokens"] / base["decoded_tokens"]
        figures[name] = (samples, tokens, c["difference"])
        print(
            f"{name:<24}{r['accuracy']:>7.3f}   [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            f"{c['difference']:>+9.3f}   [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]"
            f"{c['p']:>7.2f}{r['samples']:>9.1f}{samples:>7.2f}{r['decoded_tokens']:>9,.0f}"
            f"{tokens:>7.2f}"
        )
    print(f"reports: {work}/online/report.html, {work}/offline/report.html")
    asc, deep = figures["adaptive-consistency"], figures["deepconf online"]
    print(
        f"asc_sample_ratio={asc[0]:.3f} asc_acc_delta={asc[2]:+.3f} "
        f"deepconf_token_ratio={deep[1]:.3f} deepconf_acc_delta={deep[2]:+.3f}"
    )


if __name__ == "__main__":
    main()
