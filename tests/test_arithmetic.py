"""The rule-based arithmetic checker on true, false and tricky claims."""

from __future__ import annotations

import gc
import time

import pytest

from ponder.scorers import SCORERS, build_scorer
from ponder.scorers.arithmetic import NEUTRAL, claims, find_claims, score_text
from ponder.scorers.base import Attempt

TRUE = [
    "48 / 2 = 24",
    "$5 x 3 = $15",
    "5 × 3 = 15",
    "12 ÷ 4 = 3",
    "20% of 50 is 10",
    "15% of $80 = $12",
    "25 percent of 80 = 20",
    "1,200 + 300 = 1500",
    "$1,234.50 + $100 = $1,334.50",
    "(2 + 3) * 4 = 20",
    "2 + 3 * 4 = 14",
    "7 - 10 = -3",
    "-4 * -2 = 8",
    "So 16 - 3 - 4 = 9 eggs.",
    "It costs $2.50 * 4 = $10.00.",
    "3/4 = 0.75",
    "50% = 0.5",
    "0.1 + 0.2 = 0.3",
    "10 / 3 = 3.33",
    "10 / 3 = 3.3",
    "2/3 = 0.67",
    "2/3 = 0.66",  # truncated to the shown precision
    "1/3 = 33.33%",
    "10/3 ≈ 3",
    "2^3 = 8",
    "3² = 9",
    "2(3 + 4) = 14",
    "24 = 48 / 2",
    "3 times 4 = 12",
    "5 apples * 3 = 15 apples",
    "5 + 3 apples = 8",
    "1) 48/2 = 24",
    r"\[ \text{Eggs left} = 16 - 3 - 4 = 9 \]",
    r"\( 4 \times 9 = 36 \)",
    r"\frac{1}{2} \cdot 10 = 5",
    r"3 \text{ eggs/day} - 4 \text{ eggs/day} = -1 \text{ egg/day}",
    r"\$1{,}200 \div 4 = \$300",
    "10 – 3 = 7",  # en dash as minus
    # remainders: a whole division
    "7 / 2 = 3 remainder 1",
    "7 ÷ 2 = 3 R 1",
    "17 / 5 = 3 with a remainder of 2",
    "20 / 6 = 3 remainder 2",
    "(20 + 3) / 4 = 5 remainder 3",
    # mixed numbers without "and"
    "3 1/2 + 1 = 4 1/2",
    "2 3/4 + 1 1/4 = 4",
    "3 1/2 * 2 = 7",
    "1 and 1/4 + 1 = 2 1/4",
    # operands shown rounded: the result may differ within their rounding
    "3 * $33.33 = $100",
    "3 * 33.33 = 99.99",
    "33.33 * 3 = 100.00",
    "6 * 16.67 = 100",
    "0.33 * 3 = 1",
    "3.33 * 3 = 10",
    # operators in words
    "10 divided by 2 = 5",
    "12 multiplied by 3 = 36",
    "3 plus 4 = 7",
    "10 minus 4 = 6",
    "half of 10 is 5",
    "twice 15 is 30",
    "double 6 = 12",
    "$10/hour * 8 hours = $80",
    "He works 8 hours at $15/hour, so 8 * 15 = $120/day",
]

FALSE = [
    "48 / 2 = 25",
    "$5 x 3 = $16",
    "20% of 50 is 12",
    "1,200 + 300 = 1,600",
    "10 / 3 = 3.4",
    "10/3 = 3",  # a whole number must be exact
    "2/3 = 0.68",
    "2 + 3 * 4 = 20",
    "7 - 10 = 3",
    r"\( 4 \times 9 = 35 \)",
    "2^10 = 1000",
    "Janet sells 9 * $2 = $20 worth of eggs.",
    "7 / 2 = 3 remainder 2",
    "20 / 6 = 2 remainder 8",  # a remainder below the divisor
    "3 1/2 + 1 = 4",
    "3 * 33.33 = 100.02",  # within 33.33's rounding only 99.975..100.005
    "3 * 33.33 = 101",
    "2.5 * 4 = 11",
    "10 / 3.0 = 3",  # 3.0 may stand for 2.95..3.05, and 10 / 3.05 is still 3.28
    "10 divided by 2 = 4",
    "3 plus 4 = 8",
    "half of 10 is 6",
    "$10/hour * 8 hours = $90",
]

CASES = [
    *((text, [True]) for text in TRUE),
    *((text, [False]) for text in FALSE),
    # chains: each "=" is a claim; a middle part may continue a running total
    ("2 + 3 = 5 + 1 = 6", [True, True]),
    ("2 + 3 = 6 + 1 = 7", [False, True]),
    (r"2 \times 9 + 2 \times 36 = 18 + 72 = 90", [True, True]),
    ("12 * 3 = 36, 36 + 4 = 40", [True, True]),  # a comma and a space do not join numbers
    ("12 * 2 = 24\nthen 24 + 6 = 31", [True, False]),
    ("In week 2 earnings = 5 * 3 = 15", [True]),  # "2 earnings" is not "2 ="
    ("Step 2 (3 + 4) = 7", [True]),  # "2 (" is a label, "2(" multiplies
    # the last "=" of a chain is checked against the computation
    ("5 + 3 = 8 = 10", [True, False]),
    ("5 + 3 = 8 = 8.0", [True, True]),
    ("2 + 3 = 5 + 1 = 6 = 7", [True, True, False]),
    ("7 / 2 = 3.5 remainder 0", []),  # a remainder goes with a whole quotient
    ("4 * 5 = 20 = 21 = 20", [True, False, True]),
    ("10 / 4 = 2.5 = 2.50", [True, True]),
    # a clock time is not a number
    ("2:30 + 3 = 5:30", []),
    ("10:30 - 2 = 8:30", []),
    ("From 9:00 AM to 5:00 PM is 8 hours", []),
    ("She leaves at 7:15, and 3 * 5 = 15", [True]),
    # a remainder after anything but one whole division is not checked
    ("2 + 21 / 4 = 7 remainder 1", []),
    ("12 24/2 = 12", [True]),  # an improper fraction after a number is no mixed number
    # as the bank's samples write them (Qwen2.5-Coder-0.5B on GSM8K)
    ("   - 3 dozen donuts = 3 * 12 = 36 donuts", [True]),  # a bullet, not a minus
    ("   - $5,000 \\times 0.025 = $1250", [False]),
    ("\\[ d_3 = 0.30 \\times 180 = 54 \\]", [True]),  # a subscript, not "3 = 0.30 * 180"
    (
        "\\[ \\text{Distance}_1 = 3 \\text{ hours} \\times 40 \\text{ mph} = 120 \\text{ mi} \\]",
        [True],
    ),
    ("\\[ x - \\frac{7}{6} = \\frac{3}{6}x - \\frac{7}{6} \\]", []),  # algebra
    # nothing to check
    ("x = 5", []),
    ("She has 3 apples and 4 pears.", []),
    ("1/0 = 5", []),
    ("24 = 24", []),
    ("The answer is 18.", []),
    ("2 is 5 * 3", []),  # "is" after a bare number is prose, not "="
    ("Call 555-1234 on 2024-01-05.", []),
    ("2 ** 1000 = 5", []),  # exponent too large to check: skipped, never evaluated
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_claims(text: str, expected: list[bool]) -> None:
    assert claims(text) == expected, find_claims(text)


def test_the_table_is_big_enough() -> None:
    assert len(TRUE) + len(FALSE) >= 30 and len(CASES) >= 60


@pytest.mark.parametrize(
    "step",
    [
        "2:30 + 3 = 5:30, and 7 / 2 = 3 remainder 1; $10/hour * 8 hours = $80. ",
        "5 + 3 = 8 = 10 and 3 1/2 + 1 = 4 1/2 so 3 * $33.33 = $100 then half of 10 is 5 ",
        "with a remainder of " * 3 + "12 divided by " * 3,
        "9" * 30 + " ",
    ],
)
def test_long_texts_are_read_in_linear_time(step: str) -> None:
    """Four times the text takes about four times as long (quadratic work would take 16
    times): a ratio, so a busy machine slows both sides alike; each side is the best of three
    runs. The reader's own work is linear; Python's cyclic garbage collector is not (its
    passes grow with the objects alive), so it is paused while the reader is timed."""

    def best(repeats: int) -> float:
        times = []
        for _ in range(3):
            gc.disable()
            try:
                started = time.perf_counter()
                found = claims(step * repeats)
                times.append(time.perf_counter() - started)
            finally:
                gc.enable()
            assert len(found) == repeats * len(claims(step))
        return min(times)

    claims(step * 10)  # warm-up
    short, long = best(500), best(2_000)
    assert long < 8 * short, (short, long)
    assert long < 10.0, long  # and nowhere near a hang


def test_no_eval_and_no_floats() -> None:
    assert claims("__import__('os').system('true') = 0") == []
    assert claims("0.1 + 0.2 = 0.30000000000000004") == [False]  # exact, not binary floats
    assert claims("1/3 + 1/3 + 1/3 = 1") == [True]
    long = " + ".join(["1"] * 200) + " = 200"
    assert claims(long) == []  # too long to be a claim worth parsing


def test_step_scores() -> None:
    assert score_text("no claims here") == NEUTRAL
    assert score_text("2 + 2 = 4 and 3 + 3 = 7") == 0.5
    assert score_text("2 + 2 = 4 and 3 + 3 = 6 and 1 + 1 = 3") == pytest.approx(2 / 3)
    scorer = build_scorer("arithmetic")
    assert scorer.process and scorer.outcome and scorer.score_range == (0.0, 1.0)
    batch = scorer.score(
        [
            Attempt("q", ("2 + 2 = 5\n\n", "3 * 3 = 9\n\n")),  # judges the last step only
            Attempt("q", ("2 + 2 = 5\n\n",)),
            Attempt("q", ()),
        ]
    )
    assert batch.scores == (1.0, 0.0, NEUTRAL)
    assert batch.usage.decoded_tokens == 0  # no model
    assert SCORERS.canonical("calc") == "arithmetic"
