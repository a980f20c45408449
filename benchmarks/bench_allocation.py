"""Compute-optimal allocation: tune on gsm8k-train, evaluate once on GSM8K test.

    python benchmarks/bench_allocation.py --train-questions 100 --questions 100 \\
        [--train-bank runs/train/bank.sqlite --train-n 8 --probe 2] [--bank runs/gsm100/bank.sqlite]

1. `ponder tune` on the first `--train-questions` of gsm8k-train (N = 16, small model):
   a policy of per-difficulty-bin choices for a few target budgets (reusable holdout inside).
2. Once on the first `--questions` GSM8K test questions, replayed from a bank of N = 16: the
   policy (compute-optimal at `--budget-tokens`, by default its largest target), and every
   fixed strategy at k = 1 .. 16.
3. At the policy's mean tokens: its accuracy against the best fixed strategy there (the
   fixed configuration of the nearest cost, paired sign-flip test), and the tokens the best
   fixed strategy needs to reach the policy's accuracy (interpolated on log tokens).
4. Thresholdout by simulation: 500 configurations of no real effect; the naive best holdout
   accuracy's bias and the reusable holdout's.

Last line: `policy_token_ratio=X policy_acc_delta=Y naive_bias=Z thresholdout_bias=W`
(target: ratio <= 0.5, or a positive paired difference at matched tokens).
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ponder.backends.registry import load_backend
from ponder.core import SamplingParams
from ponder.eval.api import EvalConfig, Evaluation
from ponder.eval.stats import paired_test
from ponder.eval.thresholdout import Thresholdout
from ponder.eval.tune import TuneConfig, tune, write

FIXED = ("self-consistency", "weighted-majority", "best-of-n", "adaptive-consistency")


def thresholdout_bias(runs: int = 200, configs: int = 500, n: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    naive, honest = [], []
    for run in range(runs):
        train = (rng.random((configs, n)) < 0.5).astype(float)
        hold = (rng.random((configs, n)) < 0.5).astype(float)
        naive.append(hold.mean(axis=1).max() - 0.5)
        guard = Thresholdout(seed=run)
        shortlist = np.argsort(-train.mean(axis=1))[:20]
        answers = {int(c): guard.query(train[c], hold[c]) for c in shortlist}
        honest.append(max(answers.values()) - 0.5)
    return float(np.mean(naive)), float(np.mean(honest))


def crossing(curve: list[tuple[float, float]], accuracy: float) -> float:
    """The tokens at which a (tokens, accuracy) curve first reaches `accuracy` (log-linear
    between its points); inf when it never does."""
    for (t0, a0), (t1, a1) in itertools.pairwise(curve):
        if a0 >= accuracy:
            return t0
        if a1 >= accuracy:
            share = (accuracy - a0) / (a1 - a0)
            return math.exp(math.log(t0) + share * (math.log(t1) - math.log(t0)))
    return curve[-1][0] if curve and curve[-1][1] >= accuracy else math.inf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-questions", type=int, default=100)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--train-bank", type=Path)
    parser.add_argument("--bank", type=Path)
    parser.add_argument("--model", default="small")
    parser.add_argument("-n", type=int, default=16, help="samples per test question")
    parser.add_argument("--train-n", type=int, default=16, help="samples per training question")
    parser.add_argument("--probe", type=int, default=4, help="samples of the difficulty probe")
    parser.add_argument(
        "--budget-tokens", type=int, help="the policy's target (default: its largest)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-allocation-"))
    sampling = SamplingParams(max_tokens=512, temperature=0.8)
    with load_backend("embedded", model=args.model) as backend:
        tuned = tune(
            TuneConfig(dataset="gsm8k-train", limit=args.train_questions, n=args.train_n,
                       probe=args.probe, sweep=(sampling,), out=work / "tune",
                       bank=args.train_bank),
            backend,
        )  # fmt: skip
        paths = write(tuned, work / "tune")
        test = Evaluation(
            EvalConfig(
                dataset="gsm8k",
                limit=args.questions,
                n=args.n,
                strategies=["compute-optimal", *FIXED],
                scorers=["mean-logprob"],
                options={"policy": str(paths["policy"])}
                | ({"budget_tokens": args.budget_tokens} if args.budget_tokens else {}),
                sampling=sampling,
                top_logprobs=20,
                bank=args.bank or work / "test.sqlite",
                out=work / "test",
                baseline="self-consistency",
            )
        )
        summary = test.run(backend)
    policy_row = next(r for r in summary.rows if r["strategy"] == "compute-optimal")
    tokens, accuracy = policy_row["decoded_tokens"], policy_row["accuracy"]
    curves: dict[str, list[dict[str, Any]]] = {}
    for r in summary.rows:
        label = r["strategy"]
        if label not in ("compute-optimal", "pass@k") and not r["live"]:
            curves.setdefault(label, []).append(r)
    needed, matched = math.inf, None
    for rows in curves.values():
        rows.sort(key=lambda r: r["decoded_tokens"])
        curve = [(r["decoded_tokens"], r["accuracy"]) for r in rows]
        needed = min(needed, crossing(curve, accuracy))
        # each fixed line's configuration nearest the policy's cost; the best of them
        near = min(rows, key=lambda r: abs(math.log(r["decoded_tokens"] / tokens)))
        if matched is None or near["accuracy"] > matched["accuracy"]:
            matched = near
    assert matched is not None
    policy_cell = summary.cells[("compute-optimal", policy_row["k"])]
    fixed_cell = summary.cells[(matched["strategy"], matched["k"])]
    test_of = paired_test(policy_cell.values, fixed_cell.values, seed=0)
    bins = len(tuned.policy.edges) + 1
    print(f"policy: {paths['policy']} ({tuned.policy.probe}-sample probe, {bins} bins)")
    print(f"test report: {work / 'test'}/report.html")
    print(
        f"compute-optimal: accuracy {accuracy:.3f} [{policy_row['ci_low']:.3f}, "
        f"{policy_row['ci_high']:.3f}] at {tokens:,.0f} decoded tokens a question"
    )
    print(
        f"best fixed near that cost: {matched['strategy']}@{matched['k']} "
        f"{matched['accuracy']:.3f} at {matched['decoded_tokens']:,.0f} tokens"
    )
    print(
        f"paired (policy - fixed), {len(policy_cell.values)} questions: "
        f"{test_of.difference:+.3f} [{test_of.ci[0]:+.3f}, {test_of.ci[1]:+.3f}], "
        f"p = {test_of.p:.3f}"
    )
    print(f"tokens the best fixed strategy needs for {accuracy:.3f}: {needed:,.0f}")
    naive, honest = thresholdout_bias()
    ratio = tokens / needed if math.isfinite(needed) else tokens / max(
        r["decoded_tokens"] for rows in curves.values() for r in rows
    )  # fmt: skip
    delta = accuracy - matched["accuracy"]
    print(
        f"policy_token_ratio={ratio:.3f} policy_acc_delta={delta:+.3f} "
        f"paired_p={test_of.p:.4f} naive_bias={naive:.4f} thresholdout_bias={honest:.4f}"
    )


if __name__ == "__main__":
    main()
