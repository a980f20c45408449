"""Math word problems and competition math: GSM8K, MATH-500, AIME.

Extraction, in this order: the last `\\boxed{...}` (nested braces included), the last
"The answer is ..." (or "Final answer: ..."), GSM8K's `#### ...`, else the last number in
the text. The extracted text is tidied: LaTeX delimiters, currency signs, bold marks and
trailing punctuation go; `x = 4` keeps the right-hand side; a phrase in words ("18 dollars
per day", "that she has 5 apples") keeps its first number.

Equivalence: plain numbers (`1,000`, `0.5`, `-3`, `1/2`, `\\frac{1}{2}`) are compared
exactly as fractions; anything else goes to math-verify (parse both, then verify), which
also decides the odd cases: `50%` equals both `50` and `0.5` under its rules.

math-verify's own timeouts use SIGALRM, which only works in the main thread, and ponder
calls it from worker threads (server, eval), so they are off. Instead the inputs are
bounded: answers longer than `MAX_ANSWER_CHARS` are compared as strings only, and parsed
expressions that sympy could not evaluate quickly (power towers, huge exponents or
factorials, sums, integrals, limits) are compared as strings only too.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from functools import lru_cache
from typing import Any

import sympy
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from ponder.core import Message
from ponder.tasks.base import TASKS, Task

logging.getLogger("math_verify").setLevel(logging.ERROR)
logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)

MAX_TEXT_CHARS = 20_000
"""Only the end of a longer completion is searched for its answer (regexes stay linear)."""
MAX_ANSWER_CHARS = 200
"""Longer answers are compared as strings: sympy can take seconds on them."""
MAX_MARKERS = 50
"""Only the last "The answer is" phrases of a completion are read."""
MAX_EXPONENT = 1_000
MAX_NODES = 400

SYSTEM_PROMPT = (
    "Solve the math problem step by step. Separate the steps with a blank line. "
    "Show each calculation. End with a final line of the form 'The answer is N.', "
    "where N is the final answer only."
)

_NUMBER = re.compile(r"(?:(?<![\w)])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?%?|-?\.\d+")
_ANSWER_IS = re.compile(
    r"(?:final|the)\s+answer\s*(?:is|:|=|would be|will be)|^\W*answer\s*\**\s*:",
    re.IGNORECASE | re.MULTILINE,
)
_SAID = re.compile(rf"\s*\**:?\s*([^\n]{{1,{MAX_ANSWER_CHARS}}}?)(?:\.\s|\.?\s*$|\n)", re.MULTILINE)
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z]{2,}")
_LEFT_SIDE = re.compile(r"\s*(?:[A-Za-z](?:_\{?\w+\}?)?|[\d\s.,+\-*/()^]+)\s*")
"""What may stand left of "=" in an answer whose right side is the value: a variable or
arithmetic. "x = 2 or x = 3" keeps both sides."""
_MATH_WORDS = frozenset({"sqrt", "pi", "sin", "cos", "tan", "log", "ln", "exp"})
_EXACT = re.compile(r"-?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")
_EXACT_FRACTION = re.compile(r"(-?)(?:(\d+)/(\d+)|\\[dt]?frac\{(\d+)\}\{(\d+)\})")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_CONFIG = (LatexExtractionConfig(), ExprExtractionConfig())
_UNSAFE = (sympy.Sum, sympy.Product, sympy.Integral, sympy.Limit, sympy.Derivative)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), nested braces included."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i].strip() or None
    return None


def tidy(answer: str) -> str | None:
    """The answer without decoration: delimiters, currency, bold, units in words."""
    answer = answer.replace("\u2212", "-").replace("\u00a0", " ")
    answer = re.sub(r"\\[()\[\]]|\\?\$|\*\*", "", answer)
    answer = answer.replace("\\%", "%").replace("\\!", "").replace("{,}", ",")
    answer = re.sub(r"^\\(?:text|textbf|mathrm|mbox)\{(.*)\}$", r"\1", answer.strip())
    answer = re.sub(r"(?<=\d)\s*\\(?:text|mathrm|mbox)\{[^{}]*\}$", "", answer)
    answer = answer.strip().strip("*").strip().rstrip(".,;:").strip()
    parts = answer.split("=")
    if len(parts) > 1 and "," not in answer and all(_LEFT_SIDE.fullmatch(p) for p in parts[:-1]):
        answer = parts[-1].strip()  # "x = 4", "5 + 3 = 8": the value
    if "\\" not in answer and any(
        w.lower() not in _MATH_WORDS for w in _WORD.findall(answer)
    ):  # a phrase in words: its first number is the answer
        number = _NUMBER.search(answer)
        if number:
            answer = number.group(0)
    return answer or None


def extract_answer(text: str, *, complete: bool = True) -> str | None:
    """The final answer of a completion. A completion cut off at its token limit
    (`complete=False`) only answers with a marked answer (boxed, "The answer is", ####):
    the number it happened to stop on is not its answer."""
    text = text[-MAX_TEXT_CHARS:]
    boxed = last_boxed(text)
    if boxed is not None:
        return tidy(boxed)
    in_words = None
    for marker in reversed(list(_ANSWER_IS.finditer(text))[-MAX_MARKERS:]):
        said = _SAID.match(text, marker.end())
        answer = tidy(said.group(1)) if said else None
        if answer and re.search(r"[\d\\]", answer):
            return answer
        # "...check that the answer is correct" after "The answer is 18." says nothing
        in_words = in_words or answer
    if in_words:
        return in_words
    hashes = _HASHES.findall(text)
    if hashes:
        return tidy(hashes[-1])
    if not complete:
        return None
    numbers = _NUMBER.findall(text.replace("\u2212", "-"))
    if numbers:
        return tidy(numbers[-1])
    return None


@lru_cache(maxsize=65536)
def exact_value(answer: str) -> Fraction | None:
    """The exact value of a plain number (`1,000`, `-0.5`, `3/4`, `\\frac{3}{4}`), else None."""
    text = answer.strip().replace("$", "")
    if len(text) > MAX_ANSWER_CHARS:
        return None
    if _EXACT.fullmatch(text):
        return Fraction(text.replace(",", ""))
    fraction = _EXACT_FRACTION.fullmatch(text)
    if fraction:
        sign, num, den, lnum, lden = fraction.groups()
        top, bottom = int(num or lnum), int(den or lden)
        if bottom == 0:
            return None
        return Fraction(-top if sign else top, bottom)
    return None


def _normal(answer: str) -> str:
    answer = re.sub(r"\\(?:text|mathrm|mbox)\{([^{}]*)\}", r"\1", answer)
    answer = _THOUSANDS.sub("", answer)
    return re.sub(r"\s+|\\[,!;: ]|\$", "", answer).lower()


def _tame(expr: Any) -> bool:
    """Whether sympy can evaluate `expr` quickly (no towers, huge powers, sums...)."""
    if isinstance(expr, str):
        return True
    if isinstance(expr, sympy.MatrixBase):
        return len(expr) <= MAX_NODES and all(_tame(e) for e in expr)
    if not isinstance(expr, sympy.Basic):
        return False
    for count, node in enumerate(sympy.preorder_traversal(expr)):
        if count > MAX_NODES or isinstance(node, _UNSAFE):
            return False
        if isinstance(node, sympy.Pow) and node.exp.is_number and not _small(node.exp):
            return False
        if isinstance(node, (sympy.factorial, sympy.factorial2, sympy.binomial)) and not all(
            _small(arg) for arg in node.args if arg.is_number
        ):
            return False
    return True


def _small(number: sympy.Basic) -> bool:
    if any(
        isinstance(n, (sympy.Pow, sympy.factorial, sympy.factorial2))
        for n in sympy.preorder_traversal(number)
    ):
        return False
    try:
        return abs(float(number)) <= MAX_EXPONENT  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False


@lru_cache(maxsize=65536)
def _parsed(answer: str) -> tuple[Any, ...]:
    """math-verify's parse of an answer; () when it cannot be compared safely."""
    if len(answer) > MAX_ANSWER_CHARS:
        return ()
    # Bare LaTeX such as \sqrt{2} must sit inside math delimiters for math-verify; plain
    # text ("18 dollars") parses best as it is.
    latex = "\\" in answer or "{" in answer
    forms = [f"${answer}$", answer] if latex else [answer, f"${answer}$"]
    for form in forms:
        try:
            found = parse(form, extraction_config=_CONFIG, parsing_timeout=None)  # type: ignore[arg-type]
        except Exception:  # latex2sympy raises on odd input: not comparable
            return ()
        if found:
            return tuple(found) if all(_tame(x) for x in found) else ()
    return ()


@lru_cache(maxsize=65536)
def _verified(gold: str, pred: str) -> bool:
    left, right = _parsed(gold), _parsed(pred)
    if not left or not right:
        return False
    try:
        return bool(verify(list(left), list(right), timeout_seconds=None))  # type: ignore[arg-type]
    except Exception:  # math-verify raises on exotic sympy objects: not equal
        return False


def same_answer(gold: str, pred: str) -> bool:
    """Whether `pred` equals `gold` (math-verify is asymmetric: the gold answer goes first)."""
    if gold == pred:
        return True
    exact_gold, exact_pred = exact_value(gold), exact_value(pred)
    if exact_gold is not None and exact_pred is not None:
        return exact_gold == exact_pred
    if _normal(gold) == _normal(pred):
        return True
    return _verified(gold, pred)


def answers_equivalent(a: str, b: str) -> bool:
    """Symmetric equivalence of two model answers."""
    first, second = sorted((a, b))
    return same_answer(first, second)


@TASKS.register("math")
class MathTask(Task):
    default_scorer = "mean-logprob"
    default_process_scorer = "arithmetic"

    def __init__(self, system_prompt: str = SYSTEM_PROMPT) -> None:
        self.system_prompt = system_prompt

    def prompt(self, question: str) -> tuple[Message, ...]:
        return (Message("system", self.system_prompt), Message("user", question.strip()))

    def extract(self, text: str, *, complete: bool = True) -> str | None:
        return extract_answer(text, complete=complete)

    def equivalent(self, a: str, b: str) -> bool:
        return answers_equivalent(a, b)

    def is_correct(self, answer: str | None, gold: str) -> bool:
        return answer is not None and same_answer(gold, answer)

    def exact_key(self, answer: str) -> Fraction | None:
        """Plain numbers are grouped by exact value, and compared by math-verify only with
        the classes that are not plain numbers (fast for 64 answers)."""
        return exact_value(answer)
