"""Program-aided math against chain of thought on GSM8K, paired by question.

    python benchmarks/pal_gsm8k.py [--model small] [--limit 50] [-n 8] [--out runs/pal]

Draws (or reuses, from `OUT/TASK/bank.sqlite`) n samples per question and a greedy answer
with the chain-of-thought prompt (`math`) and with the prompt that asks for a program
(`math-program`, whose programs the sandbox runs), through `ponder.eval`. From the stored
samples it then reads, per question:

* greedy: the live greedy answer of each prompt;
* cot@n, program@n: self-consistency over each prompt's n samples;
* exec@n: the chain-of-thought samples with the programs they wrote run (`math-exec`);
* pooled@n: self-consistency over the first n/2 samples of each prompt (same budget), and
  pooled@2n over all of both.

Each line is compared with cot@n (greedy program with greedy cot) by the paired sign-flip
test of `ponder.eval.stats` (difference, 95% interval, p, Holm). Last line:
`pal program_sc=X cot_sc=Y pooled_sc=Z` (accuracies).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ponder.backends import load_backend
from ponder.core import SamplingParams
from ponder.eval import EvalConfig, Evaluation
from ponder.eval.bank import SampleBank
from ponder.eval.stats import holm, paired_test
from ponder.result import Candidate
from ponder.strategies.base import vote_table
from ponder.tasks import get_task
from ponder.tasks.base import Task
from ponder.usage import Usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("--model", default="small")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("-n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("runs/pal"))
    args = parser.parse_args()
    backend = load_backend(args.backend, model=args.model)
    stored: dict[str, dict[str, list[str | None]]] = {}
    greedy: dict[str, dict[str, bool]] = {}
    questions = []
    for task in ("math", "math-program"):
        config = EvalConfig(
            dataset="gsm8k", limit=args.limit, n=args.n, task=task,
            strategies=["greedy", "self-consistency"], out=args.out / task,
            sampling=SamplingParams(max_tokens=args.max_tokens, temperature=0.8),
        )  # fmt: skip
        evaluation = Evaluation(config)
        summary = evaluation.run(backend)
        questions = list(evaluation.dataset.questions)
        with SampleBank(evaluation.bank) as bank:
            for question in questions:
                samples = bank.samples(summary.meta["run"], question)[: args.n]
                stored.setdefault(task, {})[question.id] = [s.text for s in samples]
        details = _details(args.out / task / "results.json")
        greedy[task] = {qid: bool(d["live"]["greedy@1"]["correct"]) for qid, d in details.items()}
    backend.close()
    chain, programs, runs = (get_task(n) for n in ("math", "math-program", "math-exec"))
    half = args.n // 2
    lines: dict[str, list[float]] = {
        "greedy cot": [], "greedy program": [], f"cot@{args.n}": [], f"program@{args.n}": [],
        f"exec@{args.n}": [], f"pooled@{args.n}": [], f"pooled@{2 * args.n}": [],
    }  # fmt: skip
    for q in questions:
        cot_texts, program_texts = stored["math"][q.id], stored["math-program"][q.id]
        cot = [chain.extract(t) for t in cot_texts]
        program = [programs.extract(t) for t in program_texts]
        executed = [runs.extract(t) for t in cot_texts]
        lines["greedy cot"].append(float(greedy["math"][q.id]))
        lines["greedy program"].append(float(greedy["math-program"][q.id]))
        lines[f"cot@{args.n}"].append(_vote(chain, cot, q.answer))
        lines[f"program@{args.n}"].append(_vote(chain, program, q.answer))
        lines[f"exec@{args.n}"].append(_vote(chain, executed, q.answer))
        lines[f"pooled@{args.n}"].append(_vote(chain, cot[:half] + program[:half], q.answer))
        lines[f"pooled@{2 * args.n}"].append(_vote(chain, cot + program, q.answer))
    baseline = f"cot@{args.n}"
    tests = []
    for label, values in lines.items():
        against = "greedy cot" if label == "greedy program" else baseline
        if label in (against, "greedy cot"):
            continue
        tests.append((label, against, paired_test(values, lines[against], seed=0)))
    adjusted = holm([t.p for _, _, t in tests])
    for label, values in lines.items():
        print(f"{label:>16}: {sum(values) / len(values):.3f} ({len(values)} questions)")
    for (label, against, test), p_holm in zip(tests, adjusted, strict=True):
        low, high = test.ci
        print(
            f"{label:>16} - {against}: {test.difference:+.3f} [{low:+.3f}, {high:+.3f}] "
            f"p={test.p:.3g} holm={p_holm:.3g}"
        )
    mean = {k: sum(v) / len(v) for k, v in lines.items()}
    print(
        f"pal program_sc={mean[f'program@{args.n}']:.3f} cot_sc={mean[baseline]:.3f} "
        f"pooled_sc={mean[f'pooled@{args.n}']:.3f} exec_sc={mean[f'exec@{args.n}']:.3f}"
    )


def _vote(task: Task, answers: list[str | None], gold: str) -> float:
    """Whether self-consistency over `answers` is right (ties: the first class to appear)."""
    labels = task.cluster(answers)
    candidates = [
        Candidate(text="", answer=a, usage=Usage(), cluster=k)
        for a, k in zip(answers, labels, strict=True)
    ]
    votes = vote_table(candidates)
    return float(bool(votes) and task.is_correct(votes[0].answer, gold))


def _details(path: Path) -> dict[str, dict[str, Any]]:
    return {q["id"]: q for q in json.loads(path.read_text())["questions"]}


if __name__ == "__main__":
    main()
