"""Procedural multi-step arithmetic word problems with exact answers.

Endless fresh questions no model has seen. Each follows one quantity through `steps`
operations (buying more, giving some away, giving away a fraction, multiplying, sharing
equally) and may end by pricing the lot. Every step is computed with `fractions.Fraction`
and only offered when its result is a whole number, so the gold answer is exact. The two
difficulty knobs are `steps` (reasoning length) and `max_number` (the size of the numbers:
starting amounts and increments go up to it, and the quantity never exceeds its square).
The same (seed, index, steps, max_number) always gives the same question.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction

from ponder.errors import ConfigError
from ponder.eval.question import Question

_NAMES = ("Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kofi")
_THINGS = ("marbles", "stickers", "apples", "books", "coins", "shells", "cards", "pencils")
_FRACTIONS = (Fraction(1, 2), Fraction(1, 3), Fraction(2, 3), Fraction(1, 4), Fraction(3, 4))
_TIMES = {2: "twice as many", 3: "three times as many"}

Step = Callable[[random.Random, Fraction, int, str, str], tuple[Fraction, str, str] | None]
"""(rng, quantity, max_number, name, thing) -> (new quantity, sentence, worked line), or None
when the step would not stay whole and small."""
Made = tuple[Fraction, str, str] | None


def _buy(rng: random.Random, v: Fraction, top: int, name: str, thing: str) -> Made:
    k = rng.randint(1, top)
    return v + k, f"Then {name} buys {k} more {thing}.", f"{v} + {k} = {v + k}"


def _give(rng: random.Random, v: Fraction, top: int, name: str, thing: str) -> Made:
    if v < 2:
        return None
    k = rng.randint(1, min(int(v) - 1, top))
    return v - k, f"Then {name} gives {k} {thing} to a friend.", f"{v} - {k} = {v - k}"


def _give_part(rng: random.Random, v: Fraction, top: int, name: str, thing: str) -> Made:
    del top
    options = [f for f in _FRACTIONS if (v * f).denominator == 1 and 0 < v * f < v]
    if not options:
        return None
    f = rng.choice(options)
    part = v * f
    return (
        v - part,
        f"Then {name} gives away {f} of the {thing}.",
        f"{v} - {f} x {v} = {v} - {part} = {v - part}",
    )


def _multiply(rng: random.Random, v: Fraction, top: int, name: str, thing: str) -> Made:
    k = rng.randint(2, 4)
    if v * k > top * top:
        return None
    how = _TIMES.get(k, f"{k} times as many")
    return v * k, f"Then {name} ends up with {how} {thing} as before.", f"{v} x {k} = {v * k}"


def _share(rng: random.Random, v: Fraction, top: int, name: str, thing: str) -> Made:
    del top
    ways = [k for k in (2, 3, 4, 5) if v > k and (v / k).denominator == 1]
    if not ways:
        return None
    k = rng.choice(ways)
    friends = f"{k - 1} friend{'s' if k > 2 else ''}"
    return (
        v / k,
        f"Then {name} shares the {thing} equally with {friends} and keeps one share.",
        f"{v} / {k} = {v / k}",
    )


_STEPS: tuple[Step, ...] = (_buy, _give, _give_part, _multiply, _share)


def generate(seed: int, index: int, *, steps: int = 3, max_number: int = 100) -> Question:
    """Question `index` of the stream `seed` at the given difficulty."""
    if steps < 1:
        raise ConfigError(f"synthetic questions need --steps >= 1, got {steps}")
    if max_number < 4:
        raise ConfigError(f"synthetic questions need --max-number >= 4, got {max_number}")
    rng = random.Random(f"{seed}/{index}/{steps}/{max_number}")
    name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
    value = Fraction(rng.randint(2, max_number))
    sentences = [f"{name} has {value} {thing}."]
    worked = [f"Start: {value}"]
    for _ in range(steps):
        for step in rng.sample(_STEPS, len(_STEPS)):
            made = step(rng, value, max_number, name, thing)
            if made is not None:
                break
        else:  # buying more is always possible
            made = _buy(rng, value, max_number, name, thing)
        assert made is not None
        value, sentence, line = made
        sentences.append(sentence)
        worked.append(line)
    if rng.random() < 0.3:
        price = rng.randint(2, max(2, min(20, max_number // 5)))
        sentences.append(
            f"Each of the {thing} sells for ${price}. How many dollars does {name} get "
            f"for selling all of them?"
        )
        worked.append(f"{value} x {price} = {value * price}")
        value *= price
    else:
        sentences.append(f"How many {thing} does {name} have now?")
    if value.denominator != 1 or value < 0:
        raise AssertionError(f"the generator produced a non-whole answer {value}")
    return Question(
        f"synthetic-{seed}-{steps}x{max_number}-{index}",
        " ".join(sentences),
        str(value),
        "\n".join(worked),
    )
