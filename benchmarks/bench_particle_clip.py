"""How much a checked step should weigh in particle filtering, from a training split.

    python benchmarks/bench_particle_clip.py --bank runs/train/bank.sqlite [--dataset gsm8k-train]

Particle filtering resamples particles by softmax(logit(path probability) / T): at T = 1 a
particle weighs its probability's odds. The arithmetic checker scores 1 a step whose claims
all hold and 0 one whose claims all fail, whose odds are infinite; its `probability` turns the
score into odds against a path with nothing checked (odds 1), and those odds are what this
measures: how much more (or less) likely a confirmed (refuted) path is to end right than an
unchecked one. `ponder.scorers.arithmetic.CONFIRMED_ODDS` and `REFUTED_ODDS` are set from it.
The symmetric clip c with (1 - c) / c equal to the confirmed ratio is printed too (a single
clip cannot also match the refuted side).

This measures that on stored samples of a training split (drawn by `ponder eval` or
`ponder tune`; no model runs here): every prefix of every sample, cut into steps at the
default delimiter, gets the path score a particle with that prefix would have (the minimum of
the checked steps' scores, as the filter aggregates the arithmetic checker), beside whether
the sample ended right. The clip whose odds ratio (1 - c) / c equals the measured ratio
P(right | confirmed) / P(right | unchecked) is printed, with the ratio on the refuted side.

Last line: `clip=C confirmed_ratio=R refuted_ratio=Q prefixes=P samples=S`.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from ponder.eval.bank import SampleBank
from ponder.eval.datasets import load_dataset
from ponder.scorers.arithmetic import claims
from ponder.strategies.steps import NO_EVIDENCE, Delimiter
from ponder.tasks.base import get_task


def steps_of(text: str, delimiter: Delimiter) -> list[str]:
    out = []
    while text:
        end = delimiter.end(text)
        if end is None:
            out.append(text)
            break
        out.append(text[:end])
        text = text[end:]
    return out


def bucket(score: float) -> str:
    if score == NO_EVIDENCE:
        return "unchecked"
    if score >= 1.0:
        return "confirmed"
    if score <= 0.0:
        return "refuted"
    return "mixed"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bank", type=Path, required=True)
    parser.add_argument("--dataset", default="gsm8k-train")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    if not args.dataset.endswith("-train"):
        parser.error("choose a clip on a training split only")
    task = get_task("math")
    delimiter = Delimiter.parse("\n\n")
    questions = {q.id: q for q in load_dataset(args.dataset, limit=args.limit).questions}
    seen: Counter[str] = Counter()
    right: Counter[str] = Counter()
    samples = 0
    with SampleBank(args.bank) as bank:
        runs = bank.runs(args.dataset)
        if not runs:
            parser.error(f"{args.bank} holds no samples of {args.dataset}")
        run = runs[0].key
        for question in questions.values():
            for sample in bank.samples(run, question):
                samples += 1
                ok = task.is_correct(sample.answer, question.answer)
                checked: list[float] = []
                for step in steps_of(sample.text, delimiter):
                    found = claims(step)
                    if found:
                        checked.append(sum(found) / len(found))
                    score = min(checked) if checked else NO_EVIDENCE
                    seen[bucket(score)] += 1
                    right[bucket(score)] += ok
    rates = {b: right[b] / seen[b] for b in seen if seen[b]}
    for name in ("confirmed", "mixed", "unchecked", "refuted"):
        if seen[name]:
            print(f"{name:>10}: {seen[name]:6d} prefixes, P(right) = {rates[name]:.3f}")
    confirmed = rates.get("confirmed", 0.0) / rates["unchecked"]
    refuted = rates.get("refuted", 0.0) / rates["unchecked"]
    clip = 1.0 / (1.0 + confirmed)
    print(
        f"a confirmed path is {confirmed:.2f}x as likely to end right as an unchecked one, a "
        f"refuted one {refuted:.2f}x: a clip of {clip:.3f} gives odds {confirmed:.2f} : 1 : "
        f"{clip / (1 - clip):.2f}"
    )
    print(
        f"clip={clip:.4f} confirmed_ratio={confirmed:.3f} refuted_ratio={refuted:.3f} "
        f"prefixes={sum(seen.values())} samples={samples}"
    )


if __name__ == "__main__":
    main()
