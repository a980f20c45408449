"""Python functions from a signature and a docstring (HumanEval), verified by running them.

The question is the start of a Python file: imports, maybe helper functions, and the
signature and docstring of the function to write, the *entry point* (the last function the
question defines). The gold answer is a test program that raises when the function is wrong
(HumanEval's `check(candidate)` and a call of it on the entry point).

**Extraction.** The code of the last fenced block that defines the entry point (else the
last block; else the whole text when it is Python), closed blocks only for a completion cut
off at its token limit. A completion that repeats the signature replaces the question's stub
(the question's imports and helpers stay before it); one that gives only the body is
appended to the question as HumanEval's completions are. The answer is that whole program,
so it runs on its own; the completion abstains (None) when there is no code, when the
program does not parse, or when it does not define the entry point.

**Equivalence: functional consensus** (CodeT, Chen et al. 2022; FunCoder, Chen et al. 2024).
Two programs are the same answer when they behave the same on the question's probe inputs:
the arguments of the docstring's examples (`>>> f(1)`, `f(1) == 2`, `f(1) ➞ 2`, "Input:
a = 1"), topped up to `MIN_PROBES` with inputs made from the signature's types when the
docstring has fewer. A program's canonical value is its behaviour: per probe, the value it
returns (normalised: floats to 12 significant digits, `2.0` as `2`, sets and dicts sorted)
or the type of the exception it raises. It is computed from the program alone (the probes
are the question's), so equivalence is transitive and `cluster` does not depend on the order
of the answers. A program that fails before any probe runs (it raises on import, it never
ends) is its own class: failing the same way is no agreement. The probes run in the sandbox
(`ponder.sandbox`), every distinct program once, in parallel, cached.

**Correctness** runs the hidden tests after the program in the sandbox; it passes when the
program runs to its end. The docstring's examples with their outputs are the *public*
tests, scored by the `public-tests` scorer; the hidden ones by `unit-tests` (the oracle).
"""

from __future__ import annotations

import ast
import hashlib
import math
import re
import textwrap
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from ponder.core import Message
from ponder.sandbox import Limits, Outcome, Sandbox
from ponder.tasks.base import TASKS, Task

SYSTEM_PROMPT = (
    "You are an expert Python programmer. Complete the Python function the user gives. "
    "Reply with the whole function, its signature and the imports it needs included, in one "
    "```python code block."
)
MIN_PROBES = 3
"""Probe inputs per question: the docstring's examples, topped up from the signature."""
MAX_PROBES = 12
PROBE_SECONDS = 1.0
"""Wall time one probe call may take inside the program's run (then: 'timeout')."""
LIMITS = Limits(cpu_seconds=5.0, wall_seconds=10.0)
MAX_VALUE_CHARS = 2_000
"""A longer normalised value is compared by its hash."""

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)
_ARROW = re.compile(r"^\s*(?:==>|==|=>|->|➞|→|should return|returns?|=)\s*(.+?)\s*$")
_INPUT = re.compile(r"^\s*Input\s*:\s*(.+?)\s*$", re.IGNORECASE | re.MULTILINE)
_FOR = re.compile(
    r"^\s*For\s+(.+?),?\s+the output should be\s+(.+?)\s*$", re.IGNORECASE | re.MULTILINE
)
"""HumanEval's "For lst = [1,2,3] the output should be 14"."""
_OUTPUT = re.compile(r"^\s*Output\s*:\s*(.+?)\s*$", re.IGNORECASE)

_VALUES: dict[str, list[Any]] = {
    "int": [0, 1, 2, 5, -3, 10, 17, 100],
    "float": [0.0, 1.5, -2.25, 3.0, 10.75],
    "str": ["", "a", "abc", "Hello World", "aaBB cc", "racecar"],
    "bool": [True, False],
    "list[int]": [[], [1], [1, 2, 3], [3, -1, 2, 2, 0], [5, 4, 3, 2, 1]],
    "list[float]": [[], [1.0], [1.0, 2.5, 3.0], [0.5, -1.5, 3.25, 2.0]],
    "list[str]": [[], ["a"], ["abc", "b", "ab"], ["hello", "world", "", "a"]],
}


@dataclass(frozen=True, slots=True)
class Example:
    """A call from the docstring: its arguments (Python source of a tuple) and, when the
    docstring shows it, the value it should return (Python source)."""

    args: str
    expected: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """What a question says: the entry point, the stub's line span, examples and probes."""

    prompt: str
    entry: str | None
    stub: tuple[int, int] | None
    """First and last line (1-based) of the entry point's stub in the prompt."""
    examples: tuple[Example, ...]
    probes: tuple[str, ...]
    """Argument tuples (Python source) to run each candidate on."""


def parse_problem(prompt: str) -> Problem:
    """The entry point, its examples and the probe inputs of a question."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return Problem(prompt, None, None, (), ())
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    if not functions:
        return Problem(prompt, None, None, (), ())
    entry = functions[-1]
    start = min([entry.lineno, *(d.lineno for d in entry.decorator_list)])
    stub = (start, entry.end_lineno or entry.lineno)
    params = [a.arg for a in (*entry.args.posonlyargs, *entry.args.args)]
    examples = _examples(ast.get_docstring(entry) or "", entry.name, params)
    probes = list(dict.fromkeys(e.args for e in examples))[:MAX_PROBES]
    if len(probes) < MIN_PROBES:
        for made in _generated(entry, examples):
            if made not in probes:
                probes.append(made)
            if len(probes) >= MIN_PROBES:
                break
    return Problem(prompt, entry.name, stub, tuple(examples), tuple(probes))


def _literal(source: str) -> Any:
    """The value of a Python literal's source (ValueError when it is not one)."""
    try:
        return ast.literal_eval(source.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ValueError(source) from None


def _call_args(text: str, start: int) -> tuple[str, int] | None:
    """The argument source of the call whose '(' is at `start`, and where the call ends."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        c = text[i]
        if quote:
            if c == quote and text[i - 1] != "\\":
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None


def _as_args(source: str, params: Sequence[str]) -> str | None:
    """Call arguments (positional or `name = value`) as the source of a literal tuple in the
    signature's order; None when they are not literals."""
    try:
        call = ast.parse(f"_f({source})", mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(call, ast.Call):
        return None
    try:
        values = [ast.literal_eval(a) for a in call.args]
        named = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    rest = [p for p in params[len(values) :]]
    if set(named) - set(rest) or len(named) != len(call.keywords):
        return None
    values += [named[p] for p in rest if p in named]
    if len(values) != len(call.args) + len(named):
        return None
    return repr(tuple(values))


def _examples(doc: str, name: str, params: Sequence[str]) -> list[Example]:
    """The example calls of a docstring, with the values they show."""
    found: list[Example] = []
    lines = doc.splitlines()
    for number, line in enumerate(lines):
        for match in re.finditer(rf"(?<![\w.]){re.escape(name)}\s*(?=\()", line):
            call = _call_args(line, match.end())
            if call is None:
                continue
            args = _as_args(call[0], params)
            if args is None:
                continue
            expected = None
            arrow = _ARROW.match(line[call[1] :])
            if arrow:
                expected = _expected(arrow.group(1))
            elif line.lstrip().startswith(">>>"):
                expected = _shown(lines[number + 1 :])
            found.append(Example(args, expected))
    for match in _FOR.finditer(doc):
        parts = match.group(1).split(",")
        for end in range(len(parts), 0, -1):  # "N = 1000, the sum of digits will be 1"
            args = _as_args(",".join(parts[:end]), params)
            if args is not None:
                found.append(Example(args, _expected(match.group(2))))
                break
    for match in _INPUT.finditer(doc):
        args = _as_args(match.group(1), params)
        after = doc[match.end() :].lstrip("\n").splitlines()
        shown = _OUTPUT.match(after[0]) if after else None
        if args is not None:
            found.append(Example(args, _expected(shown.group(1)) if shown else None))
    return found


def _expected(text: str) -> str | None:
    """A shown value: the literal that starts `text`, unless an operator or a word follows
    it (`1 + 9 = 10` shows 10, the value after its last `=`)."""
    text = text.strip().rstrip(".,;")
    if "=" in text and _parses_literal(text.rsplit("=", 1)[1]):
        text = text.rsplit("=", 1)[1].strip()
    for end in range(len(text), 0, -1):
        rest = text[end:].lstrip()
        if rest and not rest.startswith(("#", "(", ",", ";", ".")):
            continue
        try:
            return repr(_literal(text[:end]))
        except ValueError:
            continue
    return None


def _parses_literal(text: str) -> bool:
    try:
        _literal(text)
    except ValueError:
        return False
    return True


def _shown(rest: Sequence[str]) -> str | None:
    """What a doctest shows after `>>> call`: the lines up to a blank one or the next
    prompt; none at all means None was returned."""
    shown = []
    for line in rest:
        if not line.strip() or line.lstrip().startswith(">>>"):
            break
        shown.append(line.strip())
    if not shown:
        return "None"
    return _expected(" ".join(shown))


_NAMED = {
    **dict.fromkeys(("s", "string", "text", "txt", "word", "sentence"), "str"),
    **dict.fromkeys(("n", "k", "m", "x", "y"), "int"),
    **dict.fromkeys(("lst", "arr", "array", "l", "numbers", "nums"), "list[int]"),
}
"""Types guessed from a parameter's name when neither an annotation nor an example says."""


def _kind(annotation: ast.expr | None) -> str | None:
    if annotation is None:
        return None
    text = ast.unparse(annotation).replace("List[", "list[").replace("typing.", "")
    text = re.sub(r"^Optional\[(.*)\]$", r"\1", text)
    return text if text in _VALUES else None


def _generated(entry: ast.FunctionDef | ast.AsyncFunctionDef, examples: Sequence[Example]):
    """Argument tuples from the signature's types (or the examples' types when it has no
    annotations), deterministic."""
    params = [*entry.args.posonlyargs, *entry.args.args]
    if not params:
        return
    kinds = [_kind(p.annotation) for p in params]
    if None in kinds and examples:
        first = _literal(examples[0].args)
        seen = [_kind_of(v) for v in first] if len(first) == len(params) else []
        kinds = [k or (seen[i] if i < len(seen) else None) for i, k in enumerate(kinds)]
    if None in kinds and not examples:
        kinds = [k or _NAMED.get(p.arg) for k, p in zip(kinds, params, strict=True)]
    if None in kinds:
        return
    pools = [_VALUES[k] for k in kinds if k is not None]
    for j in range(max(len(p) for p in pools)):
        yield repr(tuple(pool[(j + i) % len(pool)] for i, pool in enumerate(pools)))


def _kind_of(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | str):
        return type(value).__name__
    if isinstance(value, list) and value:
        inner = {_kind_of(v) for v in value}
        kind = f"list[{inner.pop()}]" if len(inner) == 1 else None
        return kind if kind in _VALUES else None
    return None


def fenced_code(text: str, *, complete: bool = True) -> list[str]:
    """The code of each fenced block, in order (an unclosed last block only when the text
    is complete: cut off at the token limit, it is unfinished)."""
    blocks = []
    for match in _FENCE.finditer(text):
        closed = text[match.end() - 3 : match.end()] == "```"
        if closed or complete:
            blocks.append(match.group(1))
    return blocks


def _defines(tree: ast.Module, name: str) -> bool:
    return any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name for n in tree.body
    )


def _is_body(code: str) -> bool:
    """Whether a block is a function's body (indented, or defining nothing of its own)
    rather than code beside the function (helpers without the entry point)."""
    first = next((line for line in code.splitlines() if line.strip()), "")
    if first[:1] in (" ", "\t"):
        return True
    tree = _parses(code)
    return tree is not None and not any(
        isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) for n in tree.body
    )


def _parses(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


HARNESS = """

def __ponder_probe__(entry, probes, seconds, longest):
    import math as _math
    import signal as _signal
    import re as _re
    import hashlib as _hashlib

    def _norm(v, depth=0):
        if depth > 30:
            return "..."
        if isinstance(v, bool) or v is None:
            return repr(v)
        if isinstance(v, float):
            if _math.isnan(v) or _math.isinf(v):
                return repr(v)
            if v == int(v) and abs(v) < 1e15:
                return str(int(v))
            return format(v, ".12g")
        if isinstance(v, int):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(_norm(x, depth + 1) for x in v) + "]"
        if isinstance(v, tuple):
            return "(" + ", ".join(_norm(x, depth + 1) for x in v) + ",)"
        if isinstance(v, (set, frozenset)):
            return "{" + ", ".join(sorted(_norm(x, depth + 1) for x in v)) + "}"
        if isinstance(v, dict):
            items = sorted(_norm(k, depth + 1) + ": " + _norm(x, depth + 1) for k, x in v.items())
            return "{" + ", ".join(items) + "}"
        return _re.sub(r" at 0x[0-9a-fA-F]+", "", type(v).__name__ + ":" + repr(v))

    def _same(a, b):
        if isinstance(a, float) or isinstance(b, float):
            try:
                return _math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
            except TypeError:
                return False
        return a == b

    class _Late(BaseException):
        pass

    def _late(signum, frame):
        raise _Late()

    _signal.signal(_signal.SIGALRM, _late)
    function = globals().get(entry)
    out = []
    for args, shows, expected in probes:
        _signal.setitimer(_signal.ITIMER_REAL, seconds)
        try:
            value = function(*args)
            shown = "=" + _norm(value)
            passed = bool(_same(value, expected)) if shows else None
        except _Late:
            shown, passed = "timeout", False if shows else None
        except BaseException as exc:
            shown, passed = "!" + type(exc).__name__, False if shows else None
        finally:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
        if len(shown) > longest:
            shown = "#" + _hashlib.sha256(shown.encode()).hexdigest()
        out.append([shown, passed])
    __ponder_report__(out)
"""


class CodeTask(Task):
    """Python functions (see the module docstring). Bound to a question by
    `for_question`; unbound, it compares programs by their code."""

    default_scorer = "public-tests"
    default_process_scorer = None

    def __init__(
        self,
        system_prompt: str = SYSTEM_PROMPT,
        *,
        sandbox: Sandbox | None = None,
        problem: Problem | None = None,
    ) -> None:
        self.system_prompt = system_prompt
        self.sandbox = sandbox or Sandbox(LIMITS)
        self.problem = problem

    def for_question(self, question: str) -> CodeTask:
        """This task for one question, sharing the sandbox (and its cache)."""
        bound = type(self).__new__(type(self))
        bound.__dict__.update(self.__dict__)
        bound.problem = parse_problem(question)
        return bound

    def prompt(self, question: str) -> tuple[Message, ...]:
        code = question.strip("\n")
        user = f"Complete the following Python function.\n\n```python\n{code}\n```"
        return (Message("system", self.system_prompt), Message("user", user))

    # -- extraction -------------------------------------------------------------------

    def extract(self, text: str, *, complete: bool = True) -> str | None:
        entry = self.problem.entry if self.problem else None
        blocks = fenced_code(text, complete=complete)
        if not blocks and complete and _parses(text) is not None and text.strip():
            blocks = [text]
        chosen = None
        for code in reversed(blocks):
            tree = _parses(textwrap.dedent(code))
            if tree is not None and (entry is None or _defines(tree, entry)):
                chosen = textwrap.dedent(code)
                break
        if chosen is None and blocks and entry is not None and _is_body(blocks[-1]):
            return self._program_of_body(blocks[-1])
        if chosen is None:
            return None
        return self._program(chosen)

    def _program(self, code: str) -> str | None:
        """The runnable program of a candidate that defines the entry point itself."""
        code = code.strip("\n") + "\n"
        problem = self.problem
        if problem is None or problem.stub is None:
            return code
        lines = problem.prompt.splitlines()
        first, last = problem.stub
        preamble = "\n".join(lines[: first - 1] + lines[last:]).strip("\n")
        program = f"{preamble}\n\n\n{code}" if preamble else code
        return program if _parses(program) is not None else None

    def _program_of_body(self, code: str) -> str | None:
        """A candidate that gives only the body: the question, then the body indented."""
        problem = self.problem
        if problem is None or problem.entry is None:
            return None
        body = textwrap.dedent(code).strip("\n")
        if not body:
            return None
        program = problem.prompt.rstrip("\n") + "\n" + textwrap.indent(body, "    ") + "\n"
        tree = _parses(program)
        return program if tree is not None and _defines(tree, problem.entry) else None

    # -- behaviour --------------------------------------------------------------------

    def probe_program(self, answer: str) -> str | None:
        """The program that runs `answer` on the probes (None: nothing to probe)."""
        problem = self.problem
        if problem is None or problem.entry is None or not problem.probes:
            return None
        expected = {e.args: e.expected for e in problem.examples if e.expected is not None}
        rows = "".join(
            f"\n    ({a}, {a in expected}, {expected.get(a, 'None')})," for a in problem.probes
        )
        call = (
            f"__ponder_probe__({problem.entry!r}, [{rows}\n], {PROBE_SECONDS!r}, {MAX_VALUE_CHARS})"
        )
        return f"{answer.rstrip()}\n{HARNESS}\n{call}\n"

    def behaviour(self, answers: Sequence[str]) -> list[Outcome | None]:
        """Each answer's run on the probes (None: no probes), distinct ones in parallel."""
        programs = [self.probe_program(a) for a in answers]
        todo = [p for p in programs if p is not None]
        ran = iter(self.sandbox.run_many(todo)) if todo else iter(())
        return [None if p is None else next(ran) for p in programs]

    def canonical(self, answer: str) -> Hashable:
        outcome = self.behaviour([answer])[0]
        if outcome is None:
            tree = _parses(answer)
            return ("code", ast.dump(tree) if tree is not None else answer)
        if not outcome.passed or not outcome.reports:
            digest = hashlib.sha256(answer.encode()).hexdigest()
            return ("failed", digest)
        return ("behaviour", tuple(shown for shown, _ in outcome.reports[-1]))

    def cluster(self, answers: Sequence[str | None]) -> list[int | None]:
        """As `Task.cluster`, after running every distinct answer on the probes at once."""
        distinct = list(dict.fromkeys(a for a in answers if a is not None))
        if len(distinct) > 1:
            self.behaviour(distinct)
        elif distinct:
            return [None if a is None else 0 for a in answers]
        return super().cluster(answers)

    def public_tests(self, answers: Sequence[str | None]) -> list[float]:
        """The share of the docstring's examples (with their values) each answer passes; NaN
        when the question shows none, 0 for an answer that abstains or fails to run."""
        problem = self.problem
        shown = problem is not None and any(e.expected is not None for e in problem.examples)
        if not shown:
            return [math.nan] * len(answers)
        present = [a for a in answers if a is not None]
        outcomes = dict(zip(present, self.behaviour(present), strict=True))
        scores = []
        for answer in answers:
            outcome = outcomes.get(answer) if answer is not None else None
            if outcome is None or not outcome.passed or not outcome.reports:
                scores.append(0.0)
                continue
            verdicts = [passed for _, passed in outcome.reports[-1] if passed is not None]
            scores.append(sum(verdicts) / len(verdicts) if verdicts else 0.0)
        return scores

    # -- correctness ------------------------------------------------------------------

    def test_program(self, answer: str, tests: str) -> str:
        return f"{answer.rstrip()}\n\n\n{tests.strip()}\n"

    def run_tests(self, answers: Sequence[str | None], tests: str) -> list[Outcome | None]:
        """Each answer's run with `tests` after it (None for an answer that abstains)."""
        programs = [None if a is None else self.test_program(a, tests) for a in answers]
        ran = iter(self.sandbox.run_many([p for p in programs if p is not None]))
        return [None if p is None else next(ran) for p in programs]

    def is_correct(self, answer: str | None, gold: str) -> bool:
        if answer is None:
            return False
        outcome = self.run_tests([answer], gold)[0]
        return outcome is not None and outcome.passed


TASKS.register("code")(CodeTask)
