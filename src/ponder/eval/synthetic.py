"""Procedural multi-step arithmetic word problems with exact answers.

Fresh questions no model has seen: each is a chain of `steps` operations on a quantity
(buys, gives away, doubles, shares equally...), numbers up to `max_number`; the answer is
computed exactly with fractions and every division is chosen to come out whole. The same
(seed, index, difficulty) always gives the same question.
"""

from __future__ import annotations

import random
from fractions import Fraction

from ponder.eval.datasets import Question

_NAMES = ["Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo"]
_THINGS = ["marbles", "stickers", "apples", "books", "coins", "shells", "cards", "pencils"]


def generate(seed: int, index: int, *, steps: int = 3, max_number: int = 100) -> Question:
    if steps < 1 or max_number < 4:
        raise ValueError("synthetic questions need steps >= 1 and max_number >= 4")
    rng = random.Random(f"{seed}/{index}/{steps}/{max_number}")
    name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
    value = Fraction(rng.randint(2, max_number))
    sentences = [f"{name} has {value} {thing}."]
    for _ in range(steps):
        kind = rng.choice(("add", "sub", "mul", "div"))
        if kind == "sub" and value > 1:
            k = rng.randint(1, int(value) - 1)
            value -= k
            sentences.append(f"Then {name} gives away {k} {thing}.")
        elif kind == "mul" and value * 2 <= max_number * 10:
            k = rng.randint(2, 4)
            value *= k
            sentences.append(f"Then the number of {thing} {name} has becomes {k} times as large.")
        elif kind == "div" and value > 1 and any(value % d == 0 for d in (2, 3, 4, 5)):
            k = rng.choice([d for d in (2, 3, 4, 5) if value % d == 0])
            value /= k
            sentences.append(
                f"Then {name} shares them equally among {k} friends, keeping one share."
            )
        else:
            k = rng.randint(1, max_number)
            value += k
            sentences.append(f"Then {name} buys {k} more {thing}.")
    sentences.append(f"How many {thing} does {name} have now?")
    assert value.denominator == 1
    return Question(
        f"synthetic-{seed}-{steps}-{max_number}-{index}", " ".join(sentences), str(value)
    )
