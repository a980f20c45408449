"""Clustering answers for voting: one canonical value per answer, so the partition does not
depend on the order of the samples, and a subset is clustered as its share of the whole."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from ponder.tasks import get_task

TASK = get_task("math")

FAMILIES = [
    ["50", "50%", "50.0%", "50\\%", "0.5", "1/2", "\\frac{1}{2}", "50 percent", "5", "5%"],
    ["5", "5%", "5.0%", "$5", "5.00", "18", "18 dollars", "1,000", "1000", "-3", "-3.0"],
    ["3 1/2", "3.5", "7/2", "3\\frac{1}{2}", "3", "1", "1/2", "3 and 1/2"],
    ["10:30", "10:30 AM", "10:30 PM", "22:30", "10", "30", "1030"],
    ["2\\sqrt{3}", "\\sqrt{12}", "3.464", "\\sqrt{4}", "2", "\\log_2 8", "3"],
    ["x^2+2x+1", "(x+1)^2", "x + 1", "\\frac{x^2 - 1}{x - 1}", "1"],
    ["(1, 2)", "(1,2)", "[1,2)", "2", "2,3", "3,2", "\\{3, 2\\}", "\\{2,3\\}"],
    ["Evelyn", "\\text{Evelyn}", "Levyne", "(C)", "\\text{(C)}", "C"],
]
POOL = sorted({a for family in FAMILIES for a in family})
# answers drawn from one or two families at a time, so that related spellings meet
ANSWERS = st.lists(st.sampled_from(FAMILIES), min_size=1, max_size=2).flatmap(
    lambda families: st.lists(
        st.one_of(st.none(), *(st.sampled_from(f) for f in families)), max_size=16
    )
)


def partition(answers: Sequence[str | None], labels: Sequence[int | None]) -> set[frozenset]:
    """The classes as sets of answer strings (abstentions left out)."""
    classes: dict[int, set[str]] = {}
    for answer, label in zip(answers, labels, strict=True):
        assert (answer is None) == (label is None)
        if answer is not None and label is not None:
            classes.setdefault(label, set()).add(answer)
    return {frozenset(c) for c in classes.values()}


@settings(max_examples=300, deadline=None)
@given(ANSWERS, st.randoms(use_true_random=False))
def test_partition_does_not_depend_on_order(answers: list[str | None], rng) -> None:
    shuffled = list(answers)
    rng.shuffle(shuffled)
    assert partition(answers, TASK.cluster(answers)) == partition(shuffled, TASK.cluster(shuffled))


@settings(max_examples=300, deadline=None)
@given(ANSWERS, st.data())
def test_a_subset_is_clustered_as_its_share_of_the_whole(answers: list[str | None], data) -> None:
    keep = data.draw(st.lists(st.booleans(), min_size=len(answers), max_size=len(answers)))
    subset = [a for a, k in zip(answers, keep, strict=True) if k]
    whole = partition(answers, TASK.cluster(answers))
    restricted = {c & set(subset) for c in whole} - {frozenset()}
    assert partition(subset, TASK.cluster(subset)) == restricted


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FAMILIES).flatmap(lambda f: st.lists(st.sampled_from(f), min_size=3)))
def test_equivalence_is_an_equivalence(answers: list[str]) -> None:
    a, b, c = answers[:3]
    assert TASK.equivalent(a, a)
    assert TASK.equivalent(a, b) == TASK.equivalent(b, a)
    if TASK.equivalent(a, b) and TASK.equivalent(b, c):
        assert TASK.equivalent(a, c)


def test_labels_are_numbered_by_first_appearance() -> None:
    answers = [None, "7", "3 1/2", "7.0", None, "3.5", "x"]
    assert TASK.cluster(answers) == [None, 0, 1, 0, None, 1, 2]
    assert TASK.cluster([]) == []
    assert TASK.cluster([None, None]) == [None, None]


def test_classes_the_canonical_value_cannot_see_are_joined_by_math_verify() -> None:
    answers = ["\\sin(2x)", "x + 1", "2\\sin x\\cos x", "\\sin^2 x + \\cos^2 x + x", "1"]
    assert TASK.canonical(answers[0]) != TASK.canonical(answers[2])  # sympy keeps them apart
    labels = TASK.cluster(answers)
    assert labels == [0, 1, 0, 1, 2]  # verify proves them equal; a number is never joined
    assert TASK.cluster(answers[::-1]) == [0, 1, 2, 1, 2]
    # lowest terms need no verify
    assert TASK.canonical("\\frac{x^2 - 1}{x - 1}") == TASK.canonical("x + 1")
