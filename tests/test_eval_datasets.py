"""The shipped datasets, JSONL files with their bad lines, and the synthetic generator."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest

from ponder.errors import ConfigError, DataError, UnknownNameError
from ponder.eval.datasets import OnBadLine, load_dataset
from ponder.eval.generator import generate


def test_shipped_datasets_load_offline_with_stable_ids() -> None:
    gsm8k = load_dataset("gsm8k", limit=3)
    first = gsm8k.questions[0]
    assert first.answer == "18" and "Janet" in first.question and first.id == "gsm8k-1"
    assert "####" in first.solution and "####" not in first.answer
    assert len(load_dataset("gsm8k").questions) == 1319
    assert len(load_dataset("gsm8k-train", offset=7000).questions) == 473
    assert load_dataset("gsm8k", offset=2, limit=1).questions[0] == gsm8k.questions[2]
    math500 = load_dataset("math500", limit=5)
    assert len(math500.questions) == 5 and math500.questions[0].id == "math500-1"
    assert len(load_dataset("aime24").questions) == 30


def test_jsonl_with_a_field_mapping(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"q": "1+1?", "a": 2}\n\n{"q": "2+2?", "a": "4", "id": "four"}\n')
    data = load_dataset(str(path), question_field="q", answer_field="a")
    assert data.name == "mine.jsonl"
    assert [(q.id, q.answer) for q in data.questions] == [("mine.jsonl-1", "2"), ("four", "4")]
    with pytest.raises(DataError, match=r"mine\.jsonl:1 has no field 'question'.*--question-field"):
        load_dataset(str(path))
    with pytest.raises(DataError, match=r"no field 'gold'.*--answer-field"):
        load_dataset(str(path), question_field="q", answer_field="gold")


def test_a_malformed_line_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"question": "1+1?", "answer": "2"}\n{"question": oops}\n[1, 2]\n'
        '{"question": "3+3?", "answer": "6"}\n'
    )
    with pytest.raises(DataError, match=r"bad\.jsonl:2: malformed JSON.*--on-bad-line skip"):
        load_dataset(str(path))
    data = load_dataset(str(path), on_bad_line=OnBadLine.skip)
    assert [q.answer for q in data.questions] == ["2", "6"]
    assert len(data.skipped) == 2
    assert "bad.jsonl:2" in data.skipped[0] and "bad.jsonl:3: a JSON list" in data.skipped[1]


def test_missing_and_unknown_datasets_and_bad_rows(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'gsm8k'"):
        load_dataset("gsm9k")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="is not a file"):
        load_dataset(str(tmp_path))
    dup = tmp_path / "dup.jsonl"
    dup.write_text(
        '{"id": 1, "question": "a", "answer": 1}\n{"id": 1, "question": "b", "answer": 2}\n'
    )
    with pytest.raises(DataError, match=r"dup\.jsonl:2 repeats the id '1' of line 1"):
        load_dataset(str(dup))
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"question": "", "answer": 1}\n')
    with pytest.raises(DataError, match="non-empty text"):
        load_dataset(str(empty))
    with pytest.raises(DataError, match="--offset 5000 skips all"):
        load_dataset("aime24", offset=5000)
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not UTF-8"):
        load_dataset(str(binary))


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "true", "false", '"  "', "null"])
def test_a_gold_answer_must_be_a_finite_number_or_text(tmp_path: Path, bad: str) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(f'{{"question": "q", "answer": {bad}}}\n')
    with pytest.raises(DataError, match="finite number or non-empty text"):
        load_dataset(str(rows))


def test_a_seeded_random_sample_of_questions() -> None:
    first = load_dataset("gsm8k", limit=5)
    assert first.selection == "the first 5" and first.questions[0].id == "gsm8k-1"
    picked = load_dataset("gsm8k", sample=20, seed=3)
    again = load_dataset("gsm8k", sample=20, seed=3)
    other = load_dataset("gsm8k", sample=20, seed=4)
    ids = [q.id for q in picked.questions]
    assert ids == [q.id for q in again.questions] != [q.id for q in other.questions]
    assert len(set(ids)) == 20 and picked.selection == "20 at random (data seed 3)"
    numbers = [int(i.split("-")[1]) for i in ids]
    assert numbers == sorted(numbers) and numbers[-1] > 100  # file order, spread over the file
    with pytest.raises(DataError, match="not both"):
        load_dataset("gsm8k", sample=3, limit=3)
    with pytest.raises(DataError, match="use --limit"):
        load_dataset("synthetic", sample=3)


def _evaluate(expression: str) -> Fraction:
    """An independent check of a worked line: numbers, fractions, + - x / left to right,
    with x and / binding tighter."""
    tokens = expression.split()
    values: list[Fraction] = []
    operators: list[str] = []
    for token in tokens:
        if token in "+-x/":
            operators.append(token)
            continue
        value = Fraction(token)
        if operators and operators[-1] in "x/":
            op = operators.pop()
            value = values.pop() * value if op == "x" else values.pop() / value
        values.append(value)
    total = values[0]
    for op, value in zip(operators, values[1:], strict=True):
        total = total + value if op == "+" else total - value
    return total


@pytest.mark.parametrize(("steps", "max_number"), [(1, 10), (3, 100), (6, 1000)])
def test_synthetic_answers_are_exact(steps: int, max_number: int) -> None:
    for index in range(60):
        q = generate(5, index, steps=steps, max_number=max_number)
        lines = q.solution.splitlines()
        value = Fraction(lines[0].removeprefix("Start: "))
        assert value <= max_number
        for line in lines[1:]:
            parts = line.split(" = ")  # "58 - 1/2 x 58 = 58 - 29 = 29": every part is equal
            assert Fraction(parts[0].split()[0]) == value  # a step starts where the last ended
            results = {_evaluate(part) for part in parts}
            assert len(parts) >= 2 and len(results) == 1
            value = results.pop()
        assert str(value) == q.answer and value.denominator == 1 and value >= 0
        assert q.question.count("Then ") == steps


def test_synthetic_is_seeded_and_the_difficulty_knobs_work() -> None:
    assert generate(3, 7, steps=4) == generate(3, 7, steps=4)
    assert generate(3, 7) != generate(3, 8) and generate(3, 7) != generate(4, 7)
    data = load_dataset("synthetic", limit=5, offset=10, seed=2, steps=2, max_number=20)
    assert data.questions[0] == generate(2, 10, steps=2, max_number=20)
    assert data.name == "synthetic-2x20-seed2" and len(data.questions) == 5

    def largest(max_number: int) -> float:
        numbers = [
            int(x)
            for i in range(40)
            for x in re.findall(r"\d+", generate(0, i, max_number=max_number).question)
        ]
        return max(numbers)

    assert largest(10) <= 10 < largest(1000)
    with pytest.raises(ConfigError, match="--steps"):
        generate(0, 0, steps=0)
    with pytest.raises(ConfigError, match="--max-number"):
        generate(0, 0, max_number=2)
