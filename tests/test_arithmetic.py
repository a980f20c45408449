"""The rule-based arithmetic checker on true, false and tricky claims."""

import pytest

from ponder.scorers import build_scorer
from ponder.scorers.arithmetic import NEUTRAL, claims, evaluate, score_text
from ponder.scorers.base import Attempt

CASES = [
    ("48 / 2 = 24", [True]),
    ("48 / 2 = 25", [False]),
    ("$5 x 3 = $15", [True]),
    ("$5 x 3 = $16", [False]),
    ("5 × 3 = 15", [True]),
    ("12 ÷ 4 = 3", [True]),
    ("20% of 50 is 10", [True]),
    ("20% of 50 is 12", [False]),
    ("15% of $80 = $12", [True]),
    ("1,200 + 300 = 1500", [True]),
    ("1,200 + 300 = 1,600", [False]),
    ("10 / 3 = 3.33", [True]),
    ("10 / 3 = 3.3", [True]),
    ("10 / 3 = 3.4", [False]),
    ("10/3 = 3", [False]),
    ("(2 + 3) * 4 = 20", [True]),
    ("2 + 3 * 4 = 14", [True]),
    ("2 + 3 * 4 = 20", [False]),
    ("7 - 10 = -3", [True]),
    ("-4 * -2 = 8", [True]),
    ("So 16 - 3 - 4 = 9 eggs.", [True]),
    ("It costs $2.50 * 4 = $10.00.", [True]),
    ("3/4 = 0.75", [True]),
    ("50% = 0.5", [True]),
    ("0.1 + 0.2 = 0.3", [True]),
    ("2 + 3 = 5 + 1 = 6", [False, True]),
    ("12 * 2 = 24\nthen 24 + 6 = 31", [True, False]),
    ("x = 5", []),
    ("She has 3 apples and 4 pears.", []),
    ("1/0 = 5", []),
    ("24 = 24", []),
    ("The answer is 18.", []),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_claims(text: str, expected: list[bool]) -> None:
    assert claims(text) == expected


def test_exact_fractions_not_floats() -> None:
    assert evaluate("1/3 + 1/3 + 1/3") == 1
    assert evaluate("0.1 + 0.2") * 10 == 3
    with pytest.raises(ValueError):
        evaluate("__import__('os')")
    with pytest.raises(ValueError):
        evaluate("2 +")


def test_step_scores() -> None:
    assert score_text("no claims here") == NEUTRAL
    assert score_text("2 + 2 = 4 and 3 + 3 = 7") == 0.5
    scorer = build_scorer("arithmetic")
    batch = scorer.score(
        [
            Attempt("q", ("2 + 2 = 5\n\n", "3 * 3 = 9\n\n")),  # judges the last step only
            Attempt("q", ("2 + 2 = 5\n\n",)),
        ]
    )
    assert batch.scores == (1.0, 0.0)
