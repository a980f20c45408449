"""Answer extraction and equivalence for the math task (math-verify underneath)."""

import pytest

from ponder.tasks import get_task

TASK = get_task("math")

EXTRACTION = [
    ("The answer is 18.", "18"),
    ("So she makes 9 * 2 = $18 every day.\nThe answer is $18.", "18"),
    ("Thus the final answer is: 42", "42"),
    ("The final answer is $\\boxed{42}$.", "42"),
    ("We get \\boxed{\\frac{1}{2}} in the end", "\\frac{1}{2}"),
    ("nested \\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("Janet sells 9 eggs.\n#### 18", "18"),
    ("#### 1,000", "1,000"),
    ("I computed 3 + 4 = 7 and then 7 * 2 = 14", "14"),
    ("The total is -5 degrees", "-5"),
    ("It costs 3.75 dollars", "3.75"),
    ("half is 1/2", "1/2"),
    ("no numbers at all", None),
    ("", None),
    ("The answer is 0.5.", "0.5"),
    ("The answer is 1,234.", "1,234"),
    ("the answer is \\boxed{7}.", "7"),
    ("**The answer is 12.**", "12"),
    ("Answer: the value is 3, so the answer is 5.", "5"),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACTION)
def test_extraction(text: str, expected: str | None) -> None:
    assert TASK.extract(text) == expected


EQUIVALENT = [
    ("1,000", "1000"),
    ("0.5", "1/2"),
    ("0.5", "\\frac{1}{2}"),
    ("\\dfrac{3}{4}", "0.75"),
    ("18", "$18"),
    ("18 dollars", "18"),
    ("18.00", "18"),
    ("-3", "-3.0"),
    ("\\sqrt{2}", "2^{1/2}"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt 3}{2}"),
    ("x = 5", "5"),
    ("(1,2)", "(1, 2)"),
    ("10\\text{ cm}", "10"),
    ("50\\%", "50"),
    ("2\\pi", "2 \\pi"),
    ("1/3", "\\frac{1}{3}"),
]
NOT_EQUIVALENT = [
    ("3", "4"),
    ("-3", "3"),
    ("2,3", "3,2"),
    ("\\pi", "3.14159"),
    ("0.33", "1/3"),
    ("100", "1000"),
    ("1/2", "2"),
    ("17", "71"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_equivalent(a: str, b: str) -> None:
    assert TASK.equivalent(a, b)
    assert TASK.equivalent(b, a)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_not_equivalent(a: str, b: str) -> None:
    assert not TASK.equivalent(a, b)


def test_abstentions_do_not_cluster() -> None:
    labels = TASK.cluster(["18", "18.0", "$18", None, "17", "1/2", "0.5", None])
    assert labels == [0, 0, 0, None, 1, 2, 2, None]


def test_correctness_against_gold() -> None:
    assert TASK.is_correct("1,000", "1000")
    assert not TASK.is_correct(None, "0")


def test_pathological_input_is_fast() -> None:
    import time

    started = time.perf_counter()
    TASK.equivalent("9" * 5000, "(" * 300 + "1" + ")" * 300)
    assert time.perf_counter() - started < 5
