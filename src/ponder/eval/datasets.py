"""Questions with gold answers: the shipped benchmarks, any JSONL file, or fresh synthetic ones.

Shipped (gzip JSONL under `ponder/data/`, copied from public sources; licenses in the
README): `gsm8k` (test, 1319), `gsm8k-train` (7473), `math500` (500), `aime24` (30).
`synthetic` generates multi-step arithmetic word problems on the fly (see `synthetic.py`).
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ponder.errors import DataError, UnknownNameError


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    question: str
    answer: str


@dataclass(frozen=True, slots=True)
class _Builtin:
    file: str
    question: str
    answer: str
    gsm8k_answer: bool = False
    """The answer field holds GSM8K's worked solution ending in `#### N`."""


BUILTIN = {
    "gsm8k": _Builtin("gsm8k_test.jsonl.gz", "question", "answer", gsm8k_answer=True),
    "gsm8k-train": _Builtin("gsm8k_train.jsonl.gz", "question", "answer", gsm8k_answer=True),
    "math500": _Builtin("math500.jsonl.gz", "problem", "answer"),
    "aime24": _Builtin("aime24.jsonl.gz", "problem", "answer"),
}
DATASETS = (*BUILTIN, "synthetic")

OnBadLine = Literal["stop", "skip"]


def load_questions(
    dataset: str,
    *,
    limit: int | None = None,
    offset: int = 0,
    question_field: str | None = None,
    answer_field: str | None = None,
    on_bad_line: OnBadLine = "stop",
    seed: int = 0,
    steps: int = 3,
    max_number: int = 100,
    warnings: list[str] | None = None,
) -> list[Question]:
    """The questions of a named dataset or of a JSONL path, `offset`/`limit` applied."""
    if dataset == "synthetic":
        from ponder.eval.synthetic import generate

        count = limit if limit is not None else 100
        return [
            generate(seed, offset + i, steps=steps, max_number=max_number) for i in range(count)
        ]
    if dataset in BUILTIN:
        spec = BUILTIN[dataset]
        resource = importlib.resources.files("ponder") / "data" / spec.file
        with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
            rows = list(_rows(lines, spec.file, on_bad_line, warnings))
        q_field, a_field = question_field or spec.question, answer_field or spec.answer
        name, gsm8k = dataset, spec.gsm8k_answer
    else:
        path = Path(dataset)
        if not path.is_file():
            raise UnknownNameError(
                f"no dataset {dataset!r}: use one of {', '.join(DATASETS)} or a JSONL file path"
            )
        with path.open(encoding="utf-8") as lines:
            rows = list(_rows(lines, str(path), on_bad_line, warnings))
        q_field, a_field = question_field or "question", answer_field or "answer"
        name, gsm8k = path.stem, False
    selected = rows[offset : None if limit is None else offset + limit]
    questions = []
    for line, row in selected:
        for wanted in (q_field, a_field):
            if wanted not in row:
                raise DataError(
                    f"{name} line {line} has no field {wanted!r} (fields: {', '.join(row)}); "
                    "set --question-field / --answer-field"
                )
        answer = str(row[a_field])
        if gsm8k or "####" in answer:
            answer = answer.split("####")[-1].strip()
        ident = str(row.get("id", row.get("unique_id", f"{name}-{line}")))
        questions.append(Question(ident, str(row[q_field]), answer))
    return questions


def _rows(
    lines: Any, source: str, on_bad_line: OnBadLine, warnings: list[str] | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            message = f"{source}:{number}: malformed JSONL line ({exc})"
            if on_bad_line == "stop":
                raise DataError(message + "; fix it or pass --on-bad-line skip") from None
            if warnings is not None:
                warnings.append(message + "; skipped")
            continue
        yield number, row
