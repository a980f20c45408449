"""The code task on real sandboxed runs: extraction, the docstring's examples and probes,
functional-consensus clustering, hidden tests, the scorers, the datasets, the strategies and
the eval on code (scripted backend: no model)."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from ponder.backends.scripted import ScriptedBackend, ScriptedRequest
from ponder.core import SamplingParams
from ponder.errors import ConfigError, DataError, UnknownNameError
from ponder.eval import EvalConfig, Evaluation
from ponder.eval.datasets import load_dataset
from ponder.scorers.base import Attempt, build_scorer
from ponder.server.routing import route
from ponder.server.schemas import PonderField
from ponder.strategies.spec import StrategySpec
from ponder.tasks import get_task
from ponder.tasks.code import CodeTask, parse_problem

PROMPT = '''from typing import List


def add_all(numbers: List[int], extra: int) -> int:
    """Sum the numbers, then add extra.
    >>> add_all([1, 2, 3], 1)
    7
    >>> add_all([], 5)
    5
    """
'''
GOLD = """

def check(candidate):
    assert candidate([1, 2, 3], 1) == 7
    assert candidate([], 5) == 5
    assert candidate([10, -10], 0) == 0
    assert candidate([4], 4) == 8


check(add_all)
"""
RIGHT = "def add_all(numbers, extra):\n    return sum(numbers) + extra\n"
RIGHT_TOO = (
    "def add_all(numbers, extra):\n    total = extra\n    for n in numbers:\n"
    "        total += n\n    return total\n"
)
OVERFIT = "def add_all(numbers, extra):\n    return 7 if numbers else 5\n"
WRONG = "def add_all(numbers, extra):\n    return sum(numbers) + 1\n"  # right on one example


PONDER = [sys.executable, "-m", "ponder.cli"]


def fenced(code: str) -> str:
    return f"Here is the function.\n\n```python\n{code}```\n\nIt sums the list."


@pytest.fixture(scope="module")
def task() -> CodeTask:
    return get_task("code").for_question(PROMPT)  # type: ignore[return-value]


def test_the_problem_is_read_from_the_prompt() -> None:
    problem = parse_problem(PROMPT)
    assert problem.entry == "add_all"
    assert [(e.args, e.expected) for e in problem.examples] == [
        ("([1, 2, 3], 1)", "7"),
        ("([], 5)", "5"),
    ]
    assert len(problem.probes) == 3  # the two examples, one made from the signature


def test_examples_in_humaneval_s_other_formats() -> None:
    doc = '''def f(arr, k):
    """Examples:
    f([1, 2], 3) == 6
    f([0], 1) ➞ 1
    for f([5], 2) => 10
    f([2], 2) -> 4.0
    f([1], 9) == 1 + 9 = 10

    Example 1:
        Input: arr = [3, 4], k = 2
        Output: 14
    For arr = [1, 1], k = 1 the output should be 2
    """
'''
    examples = [(e.args, e.expected) for e in parse_problem(doc).examples]
    assert examples == [
        ("([1, 2], 3)", "6"),
        ("([0], 1)", "1"),
        ("([5], 2)", "10"),
        ("([2], 2)", "4.0"),
        ("([1], 9)", "10"),
        ("([1, 1], 1)", "2"),
        ("([3, 4], 2)", "14"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        fenced(RIGHT),
        fenced("from typing import List\n\n" + RIGHT),
        fenced("    return sum(numbers) + extra\n"),  # the body alone
        RIGHT,  # no fence: the reply is code
        "First a draft:\n```python\nx = 1\n```\nThen:\n" + fenced(RIGHT),
        "```py\n" + RIGHT + "```",
    ],
    ids=["fenced", "imports", "body", "bare", "two-blocks", "py"],
)
def test_a_program_is_extracted_whole(task: CodeTask, text: str) -> None:
    answer = task.extract(text)
    assert answer is not None and "def add_all" in answer
    assert answer.startswith("from typing import List")  # the prompt's imports come first
    assert answer.count("def add_all") == 1  # the stub is replaced, not kept
    assert task.is_correct(answer, GOLD)


@pytest.mark.parametrize(
    "text",
    ["I cannot do that.", fenced("def other(x):\n    return x\n"), fenced("def add_all(:\n")],
    ids=["no code", "no entry point", "syntax error"],
)
def test_no_usable_program_abstains(task: CodeTask, text: str) -> None:
    assert task.extract(text) is None


def test_a_cut_off_block_is_no_answer(task: CodeTask) -> None:
    text = "```python\ndef add_all(numbers, extra):\n    return sum(numbers) + extra\n"
    assert task.extract(text, complete=False) is None
    assert task.extract(text, complete=True) is not None


def test_programs_that_behave_alike_cluster_in_any_order(task: CodeTask) -> None:
    answers = [task.extract(fenced(c)) for c in (RIGHT, WRONG, RIGHT_TOO, None, OVERFIT)]
    answers[3] = None
    labels = task.cluster(answers)
    assert labels[0] == labels[2] and len({labels[0], labels[1], labels[4]}) == 3
    assert labels[3] is None
    for order in itertools.permutations(range(5)):
        permuted = task.cluster([answers[i] for i in order])
        groups = {frozenset(order[j] for j in range(5) if permuted[j] == c) for c in set(permuted)}
        original = {frozenset(i for i in range(5) if labels[i] == c) for c in set(labels)}
        assert groups == original


def test_programs_that_fail_never_agree(task: CodeTask) -> None:
    broken = [
        task.extract(fenced("import nothing_here\n" + RIGHT)),
        task.extract(fenced("import nothing_there\n" + RIGHT)),
    ]
    assert all(broken) and task.cluster(broken) == [0, 1]
    hangs = task.extract(fenced("def add_all(numbers, extra):\n    while True:\n        pass\n"))
    assert hangs is not None
    shown = task.canonical(hangs)
    assert shown[0] == "behaviour" and set(shown[1]) == {"timeout"}  # per probe


def test_hidden_tests_decide_correctness(task: CodeTask) -> None:
    assert task.is_correct(task.extract(fenced(RIGHT)), GOLD)
    assert not task.is_correct(task.extract(fenced(OVERFIT)), GOLD)  # passes the examples only
    assert not task.is_correct(task.extract(fenced(WRONG)), GOLD)
    assert not task.is_correct(None, GOLD)
    exits = task.extract(fenced("import sys\nsys.exit(0)\n" + RIGHT))
    assert not task.is_correct(exits, GOLD)  # leaving before the tests is no pass


def test_public_and_unit_test_scorers() -> None:
    public = build_scorer("public-tests")
    texts = [fenced(RIGHT), fenced(OVERFIT), fenced(WRONG), "no code"]
    batch = public.score([Attempt(PROMPT, (t,)) for t in texts])
    assert batch.scores[:2] == (1.0, 1.0) and batch.scores[2] == 0.5 and batch.scores[3] == 0.0
    unit = build_scorer("unit-tests", gold=GOLD)
    assert unit.score([Attempt(PROMPT, (t,)) for t in texts]).scores == (1.0, 0.0, 0.0, 0.0)
    bare = "def f(x):\n    return x\n"
    nothing = public.score([Attempt(bare, (fenced(bare),))])
    assert math.isnan(nothing.scores[0]) and nothing.informative == (False,)


def test_the_hidden_tests_cannot_select() -> None:
    with pytest.raises(ConfigError, match="evaluation only"):
        StrategySpec("best-of-n", scorer="unit-tests", task="code")
    assert StrategySpec("best-of-n", task="code").scorer == "public-tests"


def _rule(replies: list[str]):
    def reply(request: ScriptedRequest) -> str:
        assert request.params.seed is not None
        return replies[(request.params.seed + request.index) % len(replies)]

    return reply


def test_strategies_run_on_code_unchanged() -> None:
    replies = [fenced(WRONG), fenced(RIGHT), fenced(OVERFIT), fenced(RIGHT_TOO), fenced(WRONG)]
    replies.append(fenced(RIGHT.replace("numbers", "xs")))
    backend = ScriptedBackend(lambda r: replies[r.index % len(replies)])
    sampling = SamplingParams(max_tokens=64, seed=0)
    vote = StrategySpec("self-consistency", samples=6, task="code", sampling=sampling)
    result = vote.build(backend).run(PROMPT, backend)
    task = get_task("code").for_question(PROMPT)
    assert result.trace.votes[0].count == 3  # three programs that add alike, in three forms
    assert task.is_correct(result.answer, GOLD)
    picked = StrategySpec("best-of-n", samples=5, task="code", sampling=sampling)
    best = picked.build(backend).run(PROMPT, backend)
    assert best.candidates[best.chosen].scores["public-tests"] == 1.0


@pytest.fixture
def code_jsonl(tmp_path: Path) -> Path:
    double = 'def double(x: int) -> int:\n    """Twice x.\n    >>> double(2)\n    4\n    """\n'
    rows = [
        {"task_id": "t/0", "prompt": PROMPT, "entry_point": "add_all",
         "test": GOLD.split("check(add_all)")[0],
         "canonical_solution": "    return sum(numbers) + extra\n"},
        {"task_id": "t/1", "prompt": double,
         "tests": ["assert double(3) == 6", "assert double(0) == 0"]},
    ]  # fmt: skip
    path = tmp_path / "code.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_a_jsonl_code_dataset(code_jsonl: Path) -> None:
    dataset = load_dataset(str(code_jsonl))
    assert dataset.task == "code" and [q.id for q in dataset.questions] == ["t/0", "t/1"]
    first, second = dataset.questions
    assert first.answer.rstrip().endswith("check(add_all)")
    assert second.answer == "assert double(3) == 6\nassert double(0) == 0"
    task = get_task("code")
    for question in dataset.questions:
        bound = task.for_question(question.question)
        assert bound.is_correct(bound.extract(fenced(question.solution)), question.answer) or (
            not question.solution
        )


def test_bad_code_rows_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": PROMPT, "test": "assert True", "entry_point": "nope"}))
    with pytest.raises(DataError, match="entry point must be the last function"):
        load_dataset(str(path))
    path.write_text(json.dumps({"prompt": PROMPT, "test": ""}))
    with pytest.raises(DataError, match="tests"):
        load_dataset(str(path))


def test_humaneval_ships_and_its_solutions_pass() -> None:
    dataset = load_dataset("humaneval")
    assert len(dataset.questions) == 164 and dataset.task == "code"
    assert dataset.questions[0].id == "HumanEval/0"
    task = get_task("code")
    for question in dataset.questions[:8]:
        bound = task.for_question(question.question)
        answer = bound.extract(fenced(question.solution))
        assert bound.is_correct(answer, question.answer), question.id
        stub = bound.extract(fenced(question.question + "    pass\n"))
        assert not bound.is_correct(stub, question.answer)


def test_the_eval_on_code_reports_pass_at_k_consensus_and_the_public_tests_flaws(
    code_jsonl: Path, tmp_path: Path
) -> None:
    replies = [fenced(RIGHT), fenced(OVERFIT), fenced(WRONG), fenced("    return x * 2\n")]
    config = EvalConfig(
        dataset=str(code_jsonl), n=4, strategies=["self-consistency", "best-of-n"],
        bank=tmp_path / "bank.sqlite", sampling=SamplingParams(max_tokens=64),
    )  # fmt: skip
    evaluation = Evaluation(config)
    assert evaluation.task_name == "code"
    summary = evaluation.run(ScriptedBackend(_rule(replies)))
    rows = {(r["strategy"], r["k"]): r for r in summary.rows}
    assert ("pass@k", 4) in rows and ("best-of-n[public-tests]", 4) in rows
    assert rows[("pass@k", 4)]["accuracy"] == pytest.approx(1.0)
    verifier = next(v for v in summary.verifiers if v["scorer"] == "public-tests")
    assert verifier["scorer"] == "public-tests"
    assert summary.meta["task"] == "code"
    with pytest.raises(ConfigError, match="needs the 'code' task"):
        Evaluation(EvalConfig(dataset=str(code_jsonl), task="math", bank=tmp_path / "b2.sqlite"))


def test_solve_and_eval_take_a_task_on_the_command_line(tmp_path: Path, code_jsonl: Path) -> None:
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([fenced(RIGHT), fenced(WRONG), fenced(RIGHT_TOO)]))
    common = ["--backend", "scripted", "--model", str(replies)]
    solved = subprocess.run(
        [*PONDER, "solve", PROMPT, "--task", "code", "-n", "3", "--json", *common],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert solved.returncode == 0, solved.stderr
    answer = json.loads(solved.stdout)["answer"]
    assert get_task("code").for_question(PROMPT).is_correct(answer, GOLD)
    wrong = subprocess.run(
        [*PONDER, "eval", "--dataset", str(code_jsonl), "--task", "math", *common],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert wrong.returncode == 2 and "needs the 'code' task" in wrong.stderr


def test_the_server_takes_a_task_in_the_ponder_field() -> None:
    field = PonderField.model_validate({"strategy": "self-consistency", "task": "code"})
    chosen = route("qwen", field, SamplingParams(), 0, max_n=16, max_tokens=4096, scorer_options={})
    assert chosen.spec is not None and chosen.spec.task == "code"
    with pytest.raises(UnknownNameError, match="unknown task"):
        route(
            "qwen", PonderField.model_validate({"strategy": "greedy", "task": "poetry"}),
            SamplingParams(), 0, max_n=16, max_tokens=4096, scorer_options={},
        )  # fmt: skip
