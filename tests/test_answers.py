"""Answer extraction and equivalence for the math task (math-verify underneath)."""

from __future__ import annotations

import random
import threading
import time

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
    ("The answer is 7, I think \\boxed{9}", "9"),  # a box beats the phrase
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
    ("The answer is \u22125.", "-5"),  # unicode minus
    ("The answer is \\$18.", "18"),
    ("so it is 18,", "18"),  # a trailing comma is punctuation, not a digit group
    ("The answer is 18 dollars per day.", "18"),
    ("The answer is that she has 5 apples.", "5"),
    ("The answer is x = 4.", "4"),
    ("The answer is 5 + 3 = 8.", "8"),
    ("\\boxed{x_1 = 7}", "7"),
    ("\\boxed{x = 2 \\text{ or } x = 3}", "x = 2 \\text{ or } x = 3"),
    ("x = 3 and y = 4. The answer is (3, 4).", "(3, 4)"),
    ("The answer is 50%.", "50%"),
    ("The answer is:\n\n\\[\n\\boxed{12}\n\\]", "12"),
    ("The answer is \\(\\boxed{8}\\).", "8"),
    ("Final Answer: 12", "12"),
    ("The answer is \\text{(C)}.", "(C)"),
    ("The answer is 10\\text{ cm}.", "10"),
    ("from 2-5 we get 3-1", "1"),  # a hyphen between numbers is not a minus sign
    ("she pays $1,200.50 in total", "1,200.50"),
    ("The answer is 3.5 hours.", "3.5"),
    ("The answer is 2\\sqrt{3}.", "2\\sqrt{3}"),
    ("\\boxed{x^2 + 1} and more text 7", "x^2 + 1"),
    ("The answer is 18. Let me check that the answer is correct.", "18"),
    ("So the final answer is Evelyn.", "Evelyn"),
]


# Final sentences of real samples (Qwen2.5-Coder-0.5B on GSM8K test questions, the
# gsm100 bank), copied as written, with the answer each one states (None: it states none).
FROM_THE_BANK = [
    # the answer is a description, a code template or the prompt's placeholder: no answer
    ("# The answer is the final answer only", None),
    ("# The answer is the final number of downloads", None),
    ("# The answer is the time Carla actually has to wait", None),
    ("# The answer is the amount of feed needed in the final meal", None),
    ("# The answer is the initial number of vacuum cleaners", None),
    ("- The answer is the total monthly salary.", None),
    (
        "# The answer is the total cost divided by the total revenue, rounded to the nearest "
        "whole number",
        None,
    ),
    ("6. **The answer is the total distance covered by both trains in two days:**", None),
    (
        "4. The final answer is the sum of the distances traveled in the first, second, and "
        "third days:",
        None,
    ),  # and "4." labels a list item
    ('print(f"The answer is {total_feed} cups of feed.")', None),
    ('print("The answer is S$ " + str(total_cost))', None),
    ('print(f"The answer is {total_dollars_made}.")', None),
    ('print("The answer is", additional_glasses_needed)', None),
    (
        "Now, let's verify this with a final line of the form 'The answer is N.', where N is "
        "the final answer only.",
        None,
    ),
    ("5. **Show the answer:**", None),  # "5." labels a list item
    (
        "Step 6: The answer is \\(12 \\text{ eggs} \\div 12 \\text{ eggs/dozen} = 1 "
        "\\text{ dozen}\\).",
        "1",
    ),
    ("The answer is N.", None),
    ("3. Provide the answer in the final form: The answer is N.", None),
    ("- The final answer is \\( \\boxed{N} \\).", None),
    (
        "8. **Output the final answer:**\n   - The final answer is \\( \\boxed{N} \\).\n\n"
        "(Note: The final answer is the total revenue from selling the eggs, and it will be "
        "calculated based on the provided data.)",
        None,
    ),
    ("The answer is $36.\nThe answer is N.", "36"),  # the template echoed after the answer
    ("Therefore, the answer is:\n[The answer is 12].", "12"),  # was "12]"
    # the value after the last "="
    ("- The answer is \\(230\\) miles + \\(300\\) miles = \\(530\\) miles.", "530"),
    ("   - Total distance = 80 miles (first train) + 150 miles (second train) = 230 miles.", "230"),
    ("- Total profit = $125 + $96 = $121.50\n\nThe answer is 121.50.", "121.50"),
    # boxes with words and units
    ("Therefore, the answer is \\(\\boxed{\\text{The answer is -80 minutes}}\\).", "-80"),
    ("The answer is:\n\\[\n\\boxed{140 \\text{ minutes}}\n\\]", "140"),
    ("The answer is \\(\\boxed{120 \\text{ miles/day}}\\).", "120"),
    (
        "The distance covered by each train in the two days is \\(\\boxed{90 \\text{ miles}}\\).",
        "90",
    ),
    ("The answer is \\(\\boxed{\\text{No}}\\).", "No"),
    ("Therefore, the answer is:\n\\[ \\boxed{\\text{No money}} \\]", "No money"),
    ("The final answer is \\(\\boxed{21.76P}\\).", "21.76P"),
    ("- Profit = -$11,210\n\nTherefore, the answer is \\boxed{-11210}.", "-11210"),
    # percentages
    (
        "The percentage of the entire students enrolled in hip-hop dance is "
        "\\(\\boxed{70.00\\%}\\).",
        "70.00%",
    ),
    ("Thus, the answer is:\n\\[\n\\boxed{0\\%}\n\\]", "0%"),
    ("   - Profit is $68.95%\n\n8. **The answer is:**\n   The answer is $68.95.", "68.95"),
    # sentences around the answer
    (
        "The answer is 0 cups, which means Wendi needs to give her chickens 0 cups of feed in "
        "the final meal of the day.",
        "0",
    ),
    ("The answer is 2780 miles.", "2780"),
    ("The final answer is: The answer is 35000.\n```", "35000"),
    (
        "The answer to the math problem is \\(\\boxed{80}\\), which means it takes Carla "
        "\\(\\boxed{80}\\) minutes to download the file.",
        "80",
    ),
    (
        "```output\nThe answer is 375.0 cups of feed.\n```\nWendi needs to give her chickens a "
        "total of \\(\\boxed{375}\\) cups of feed in the final meal of the day.",
        "375",
    ),
    (
        "The answer is: The distance John is from home at the end of those 4 hours is "
        "\\(\\boxed{900}\\).",
        "900",
    ),
    (
        "6. **The answer is the total distance covered by both trains in two days:**\n"
        "   - The answer is \\(230\\) miles + \\(300\\) miles = \\(530\\) miles.\n\n"
        "The final answer is \\(\\boxed{530}\\).",
        "530",
    ),
    ("Since Carlos cannot start earning money ...:\n\\[\n\\boxed{1}\n\\]", "1"),
]

# Quantities as sentences state them (constructed): the whole quantity, or no answer.
QUANTITIES = [
    ("The answer is 20% of 50 = 10.", "10"),
    ("The answer is 20% of 50.", None),  # an expression left unevaluated
    ("The answer is 2.5 million.", "2500000"),
    ("The answer is $1.2 billion dollars.", "1200000000"),
    ("\\boxed{2.5 \\text{ million}}", "2500000"),
    ("So the company earns 3 thousand dollars", "3000"),
    ("The answer is 5 hours and 30 minutes.", None),  # 5.5 hours or 330 minutes?
    ("It takes 2 hours 15 minutes in all", None),
    ("The answer is 5 feet 6 inches.", None),
    ("The answer is 5 hours and 30 minutes = 330 minutes.", "330"),
    ("The answer is 3 1/2 cups.", "3 1/2"),
    ("She ran 2 and 3/4 miles", "2 3/4"),
    ("\\boxed{3\\frac{1}{2}}", "3\\frac{1}{2}"),
    ("The answer is 10:30 AM.", "10:30 AM"),
    ("He arrives at 10:30.", "10:30"),
    ("The train leaves at 7 pm", "7 pm"),
    ("The answer is 5.0%.", "5.0%"),
    ("The answer is 50 percent.", "50%"),
    ("The answer is 10/3 ≈ 3.33.", "3.33"),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACTION + FROM_THE_BANK + QUANTITIES)
def test_extraction(text: str, expected: str | None) -> None:
    assert TASK.extract(text) == expected


def test_the_bank_table_is_big_enough() -> None:
    assert len(FROM_THE_BANK) >= 38 and len(QUANTITIES) >= 15


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # real samples cut off by max_tokens (their endings)
        ("14. The cost of the fourteenth glass is $0.60 \\times 0.000734 = $0.00031", None),
        (
            "```output\n-24.0\n```\nThe initial number of vacuum cleaners Melanie had is "
            "\\(\\boxed{-",
            None,
        ),
        ("```output\n102.0\n```\nThe percentage ... is \\(\\boxed{10", None),
        (
            "\\text{Number of years needed} = -1\n   \\]\n\nSince Carlos cannot plant a negative "
            "number of years, it will take him",
            None,
        ),
        ("Thus, the answer is \\(\\boxed{40\\%}\\).", "40%"),  # a closed box is stated
        ("```output\n21000\n```\nJill's annual salary is \\(\\boxed{21000}\\).", "21000"),
        # constructed: a marked sentence or a #### line must end before the text does
        ("So 12 + 3 = 15.\nThe answer is 15. Now let me double", "15"),
        ("So 12 + 3 = 15.\nThe answer is 1", None),
        ("So 12 + 3 = 15.\n#### 1", None),
        ("#### 15\nand more", "15"),
        ("So 12 + 3 = 15.", None),  # its last number is not its answer
    ],
)
def test_a_truncated_sample_answers_only_with_a_finished_statement(
    text: str, expected: str | None
) -> None:
    assert TASK.extract(text, complete=False) == expected


def test_a_complete_sample_may_answer_with_its_last_number() -> None:
    assert TASK.extract("14. The cost is $0.60 \\times 0.000734 = $0.00031") == "0.00031"
    assert TASK.extract("So 12 + 3 = 15.\nThe answer is 1") == "1"


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
    ("50%", "50"),  # a percentage is its number of percent (GSM8K's gold for "what percent")
    ("5%", "5.0%"),
    ("50 percent", "50%"),
    ("12.5\\%", "25/2"),
    ("2\\pi", "2 \\pi"),
    ("1/3", "\\frac{1}{3}"),
    ("\u22125", "-5"),
    ("1,234,567", "1234567"),
    ("5/10", "1/2"),
    ("\\frac12", "0.5"),
    ("1.000", "1"),
    ("\\text{(C)}", "(C)"),
    ("3 1/2", "3.5"),  # mixed numbers
    ("3 and 1/2", "7/2"),
    ("3\\frac{1}{2}", "3.5"),
    ("-2 1/4", "-2.25"),
    ("2.5 million", "2500000"),
    ("10:30", "10:30 AM"),  # clock times
    ("10:30 PM", "22:30"),
    ("7 pm", "19:00"),
    ("\\log_2 8", "3"),  # a constant sympy leaves unevaluated
    ("\\sqrt{4}", "2"),
    ("2\\sqrt{3}", "\\sqrt{12}"),
    ("(x+1)^2", "x^2 + 2x + 1"),  # one rational function in lowest terms
    ("\\sin^2 x + \\cos^2 x", "\\cos^2 x + \\sin^2 x"),
    ("\\{2, 1\\}", "\\{1,2\\}"),  # a set
    ("(1,000, 2)", "(1000,2)"),
    ("\\text{Evelyn}", "evelyn"),
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
    ("1,2", "12"),  # not a thousands separator
    ("\\text{A}", "\\text{B}"),
    ("1e3", "1001"),
    ("50%", "0.5"),  # one canonical value per answer: 50% is 50, so not 0.5 (50 is not 0.5)
    ("10:30", "10"),  # math-verify reads 10:30 as 10
    ("10:30", "1030"),
    ("10:30 AM", "10:30 PM"),
    ("3 1/2", "1"),  # and 3 1/2 as 1/2 or 1
    ("3 1/2", "3"),
    ("6 - 5i", "5"),  # and 6 - 5i as 5
    ("(1, 2)", "2"),
    ("(1,2)", "[1,2)"),
    ("(3,2)", "(5,4)"),  # as intervals both would be empty
    ("Evelyn", "Levyne"),  # as products of symbols they would be equal
    ("\\pi", "3.14"),
    ("2\\sqrt{3}", "3.464"),
    ("N", "n + 1"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_equivalent(a: str, b: str) -> None:
    assert TASK.equivalent(a, b)
    assert TASK.equivalent(b, a)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_not_equivalent(a: str, b: str) -> None:
    assert not TASK.equivalent(a, b)
    assert not TASK.equivalent(b, a)


def test_equivalence_is_transitive_for_percentages() -> None:
    # before: 50% = 50 and 50% = 0.5 but 50 != 0.5, so the clusters followed sample order
    assert TASK.cluster(["50%", "50", "0.5"]) == [0, 0, 1]
    assert TASK.cluster(["0.5", "50%", "50"]) == [0, 1, 1]
    assert TASK.cluster(["50", "0.5", "50%"]) == [0, 1, 0]


def test_cluster_groups_equivalent_spellings_and_skips_abstentions() -> None:
    labels = TASK.cluster(["18", "18.0", "$18", None, "17", "1/2", "0.5", None, "\\frac{1}{2}"])
    assert labels == [0, 0, 0, None, 1, 2, 2, None, 2]
    # a LaTeX answer joins the class of the plain number that came first
    assert TASK.cluster(["0.75", "\\dfrac{3}{4}", "3/4", "x = 0.75"]) == [0, 0, 0, 0]


def test_correctness_against_gold() -> None:
    assert TASK.is_correct("1,000", "1000")
    assert TASK.is_correct("x = 5", "5")
    assert not TASK.is_correct(None, "0")
    assert not TASK.is_correct("17", "18")
    # "What percentage ...?": GSM8K's gold is the number of percent
    assert TASK.is_correct("25%", "25")
    assert TASK.is_correct("25.0\\%", "25")
    assert not TASK.is_correct("0.25", "25")
    assert not TASK.is_correct("25%", "0.25")
    assert TASK.is_correct("3 1/2", "3.5")
    assert not TASK.is_correct("10:30", "10")
    assert TASK.is_correct("x^2+2x+1", "(x+1)^2")
    assert TASK.is_correct("\\frac{x+2}{3}", "\\frac{x}{3} + \\frac{2}{3}")


def test_cluster_of_64_answers_is_fast() -> None:
    rng = random.Random(0)
    pool = ["18", "18.00", "$18", "17", "1/2", "0.5", "\\frac{1}{2}", "50%", "2\\sqrt{3}", None]
    answers = [rng.choice(pool) for _ in range(64)] + [str(i) for i in range(64)]
    TASK.cluster(["1/3", "x = 2"])  # math-verify's first call imports and builds its parsers
    started = time.perf_counter()
    labels = TASK.cluster(answers)
    assert time.perf_counter() - started < 1.0
    assert len(labels) == 128
    assert labels[answers.index("18")] == labels[answers.index("$18")]


def test_distinct_symbolic_answers_cluster_without_a_verify_per_pair() -> None:
    # 64 different polynomials: 2016 pairs, each of which math-verify would take ~10 ms on;
    # their values at a probe point tell them apart first
    answers = [f"x^{{{i % 5 + 1}}} + {i} x" for i in range(64)]
    started = time.perf_counter()
    labels = TASK.cluster(answers)
    assert time.perf_counter() - started < 10.0
    assert labels == list(range(64))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("9" * 5000, "(" * 300 + "1" + ")" * 300),
        ("10^{10^{10}}", "5"),  # sympy would evaluate the tower for ever
        ("2^{2^{2^{2^{2}}}}", "3"),
        ("10^{1000000}", "10^{1000000}+1"),
        ("(10^{9})!", "1"),
        ("\\sum_{i=1}^{10^{12}} i", "5"),
    ],
)
def test_pathological_answers_are_fast_and_not_equal(a: str, b: str) -> None:
    started = time.perf_counter()
    assert not TASK.equivalent(a, b)
    assert time.perf_counter() - started < 5


def test_equivalence_works_in_worker_threads() -> None:
    # math-verify's own timeout uses SIGALRM, which raises outside the main thread
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(TASK.equivalent("\\sqrt{4}", "2")))
    thread.start()
    thread.join(timeout=30)
    assert results == [True]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the answer is " * 20_000 + "\nThe answer is 7.", "7"),
        ("the answer is x" * 20_000, "x"),
        ("The answer is 18" + " and so on" * 1_000, "18"),
        ("Answer: " * 30_000, None),
    ],
)
def test_long_completions_are_searched_quickly(text: str, expected: str | None) -> None:
    started = time.perf_counter()
    assert TASK.extract(text) == expected
    assert time.perf_counter() - started < 0.5
