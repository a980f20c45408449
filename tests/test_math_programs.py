"""Program-aided math on real sandboxed runs: a completion's program answers, its invented
output never does; the program prompt keeps its own bank run; program agreement."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ponder.backends.scripted import ScriptedBackend
from ponder.core import SamplingParams
from ponder.eval import EvalConfig, Evaluation
from ponder.eval.bank import SampleBank
from ponder.scorers.base import Attempt, build_scorer
from ponder.strategies.spec import StrategySpec
from ponder.tasks import get_task

INVENTED = (
    "Janet sells 16 - 3 - 4 eggs.\n```python\neggs = 16 - 3 - 4\nprint(eggs * 2)\n```\n"
    "Output: 20\nThe answer is 20."
)
SPLIT = "```python\nprice = 2\n```\nThen\n```python\nprint(9 * price)\n```\nThe answer is 18."
FAILING = "```python\nprint(1 / 0)\n```\nThe answer is 7."
WORDS = "She sells 9 eggs at $2, so the answer is 18."


def test_the_program_answers_not_the_output_the_text_claims() -> None:
    chain, runs = get_task("math"), get_task("math-exec")
    assert chain.extract(INVENTED) == "20"  # chain of thought reads the text
    assert runs.extract(INVENTED) == "18"  # the program, run, prints 18
    assert runs.extract(SPLIT) == "18"  # blocks run together, in order
    assert runs.extract(FAILING) is None  # a failing program abstains: 7 was never computed
    assert runs.extract(WORDS) == "18"  # no program: the text answers
    # a block that prints nothing is no program: the text answers
    assert runs.extract("```python\nx = 3\n```\nThe answer is 3.") == "3"


def test_the_program_prompt_is_a_task_of_its_own() -> None:
    chain, runs, program = (get_task(n) for n in ("math", "math-exec", "math-program"))
    assert chain.prompt("q") == runs.prompt("q") != program.prompt("q")
    assert "program" in program.prompt("q")[0].content
    assert len({chain.fingerprint(), runs.fingerprint(), program.fingerprint()}) == 3
    assert chain.fingerprint() == "fdb09d733ee1"  # earlier banks stay valid


def test_program_agreement() -> None:
    scorer = build_scorer("program-agreement")
    texts = [INVENTED, SPLIT, FAILING, WORDS, "```python\nprint(5)\n```\nno statement here"]
    batch = scorer.score([Attempt("q", (t,)) for t in texts])
    assert batch.scores[:3] == (0.0, 1.0, 0.0)
    assert math.isnan(batch.scores[3]) and batch.informative[3] is False
    assert batch.informative[4] is False or batch.scores[4] == 1.0
    spec = StrategySpec("best-of-n", samples=2, scorer="program-agreement", task="math-program")
    assert spec.scorer == "program-agreement"


def test_a_program_run_never_mixes_with_a_chain_of_thought_run(tmp_path: Path) -> None:
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"question": "Eggs?", "answer": "18"}) + "\n")
    backend = ScriptedBackend([INVENTED])
    bank = tmp_path / "bank.sqlite"
    results = {}
    for task in ("math", "math-program"):
        config = EvalConfig(
            dataset=str(data), n=2, task=task, strategies=["self-consistency"], bank=bank,
            sampling=SamplingParams(max_tokens=64), new_run=True,
        )  # fmt: skip
        summary = Evaluation(config).run(backend)
        results[task] = {(r["strategy"], r["k"]): r["accuracy"] for r in summary.rows}
        assert summary.meta["task"] == task
    assert results["math"][("self-consistency", 2)] == 0.0  # the invented 20
    assert results["math-program"][("self-consistency", 2)] == 1.0  # the executed 18
    with SampleBank(bank) as store:
        assert len(store.runs()) == 2
