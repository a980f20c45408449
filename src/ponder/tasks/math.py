"""Math word problems and competition math: GSM8K, MATH-500, AIME.

Extraction reads the final-answer statement: the last `\\boxed{...}` (nested braces
included), else the last "The answer is ..." (or "Final answer: ..."), else GSM8K's
`#### ...`, else the last quantity in the text that does not label a list item (`4. ...`).
A statement is tidied into the value it states: LaTeX delimiters, currency signs, bold marks
and trailing punctuation go; an equation (`x = 4`, `20% of 50 = 10`) keeps the value after
its last `=`; a phrase in words ("18 dollars per day", "that she has 5 apples") keeps its
first quantity; a statement in words without a number is an answer only when it is short
(`No money`, not "the total revenue from selling the eggs"). Quantities are read whole:
`2.5 million` is 2500000, `3 1/2` and `3 and 1/2` are mixed numbers, `10:30 AM` is a clock
time. The completion abstains (None) when its final statement gives no usable number: a
compound measure ("5 hours and 30 minutes", "5 feet 6 inches": which unit the question
wants is not known here) or an expression left unevaluated ("20% of 50"); and when it only
repeats the prompt's placeholder (`The answer is N.`), its last number is no answer either.
A completion cut off at its token limit (`complete=False`) answers only with a statement it
finished (a closed box, a marked sentence or `####` line that ends before the text does):
the number it stopped on is not its answer.

Equivalence rests on one canonical value per answer, computed from that answer alone
(`canonical_value`), so it is transitive and voting does not depend on sample order:

* a plain number (`1,000`, `-0.5`, `3/4`, `\\frac{3}{4}`, `3 1/2`, `$18`, `18 dollars`) is
  its exact `Fraction`;
* a percentage is the number of percent: `50%`, `50.0%`, `50\\%` and `50 percent` are all
  50, not 0.5. A question that asks for a percentage has the percent as its gold answer
  (GSM8K's "What percentage ...?" has gold `25`, not `0.25`), so `25%` is right there and
  votes with `25`, while `0.25` is another answer;
* a clock time is its minutes after midnight (`10:30`, `10:30 AM` and `10:30am` agree;
  `10:30 PM` is 22:30): never a number, so `10:30` is not 10;
* a list of numbers (`(1, 2)`, `[1,2)`, `2, 3`) keeps its brackets and order;
* text (`Evelyn`, `\\text{No money}`) is its lower-cased letters without spacing: math-verify
  would read "Evelyn" as a product of six symbols;
* anything else goes to math-verify's LaTeX parser: an expression without free symbols
  that evaluates to a rational (`\\sqrt{4}`, `\\log_2 8`) is that Fraction, another real
  constant (`2\\sqrt{3}`, `\\pi`) is its value to 20 significant digits, and an expression in
  symbols is its sympy form (rational functions in lowest terms: `(x+1)^2` and `x^2+2x+1`
  agree).

Two symbolic answers (expressions in symbols, sets, equations) whose forms still differ are
compared by math-verify's `verify` as well (`joined`; `cluster` applies it with union-find
over classes), unless their values at a fixed generic point differ: then they surely differ,
and verify (~10 ms a pair) is not asked. Numbers, times, lists and text are decided by their
canonical value alone. `is_correct` is the same equivalence against the gold answer
(math-verify's gold-first order for the symbolic comparison).

math-verify's own timeouts use SIGALRM, which only works in the main thread, and ponder
calls it from worker threads (server, eval), so they are off. Instead the inputs are
bounded: answers longer than `MAX_ANSWER_CHARS` are compared as strings only, and parsed
expressions that sympy could not evaluate quickly (power towers, huge exponents or
factorials, sums, integrals, limits) are compared as strings only too.
"""

from __future__ import annotations

import cmath
import logging
import re
from collections.abc import Hashable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import sympy
from math_verify import LatexExtractionConfig, parse, verify

from ponder.core import Message
from ponder.sandbox import Limits, Sandbox
from ponder.tasks.base import TASKS, Task

logging.getLogger("math_verify").setLevel(logging.ERROR)
logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)

MAX_TEXT_CHARS = 20_000
"""Only the end of a longer completion is searched for its answer (regexes stay linear)."""
MAX_ANSWER_CHARS = 200
"""Longer answers are compared as strings: sympy can take seconds on them."""
MAX_MARKERS = 50
"""Only the last "The answer is" phrases of a completion are read."""
MAX_ANSWER_WORDS = 3
"""A final statement in words with no number is an answer ("Evelyn", "No money") only when
it is this short: a sentence ("the total revenue from selling the eggs") is not."""
MAX_EXPONENT = 1_000
MAX_NODES = 400
MAX_CANCEL_EXPONENT = 8
"""Rational functions are brought to lowest terms only with small powers: expanding
`(x+1)^1000` takes seconds."""
_PROBE_POINT = tuple(
    sympy.Float(v, 30) for v in ("0.5772156649", "-1.3247179572", "2.7182818285", "0.3183098862")
)
"""Where two symbolic answers are evaluated before math-verify is asked whether they are
equal: a point no textbook answer is singular at."""
DIGITS = 20
"""Significant digits that identify an irrational constant."""

SYSTEM_PROMPT = (
    "Solve the math problem step by step. Separate the steps with a blank line. "
    "Show each calculation. End with a final line of the form 'The answer is N.', "
    "where N is the final answer only."
)
PROGRAM_PROMPT = (
    "Solve the math problem by writing a Python program. Think about the steps, then write "
    "the program in one ```python code block. The program must compute the answer and "
    "print only the final answer, a number."
)
"""Program of Thoughts / PAL: the model writes the computation, the sandbox does it."""
PROGRAM_LIMITS = Limits(cpu_seconds=5.0, wall_seconds=10.0, memory_bytes=1024 * 1024 * 1024)
_PYTHON_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
PLACEHOLDER = "N"
"""The prompt's stand-in for the answer: a model that repeats it has not answered."""

_DIGITS = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+"
_MAGNITUDES = {
    "hundred": 100, "thousand": 1_000, "million": 10**6, "billion": 10**9, "trillion": 10**12
}  # fmt: skip
_MAGNITUDE_WORDS = "|".join(_MAGNITUDES)
_NUMBER_PART = rf"""(?P<sign2>(?<![\w)])-)?\$?(?P<number>{_DIGITS})(?:\s*/\s*(?P<over>\d+))?
    (?P<percent>\s*(?:%|percent\b))?(?:\s+(?P<magnitude>{_MAGNITUDE_WORDS})\b)?"""
_NUMBER = re.compile(_NUMBER_PART, re.IGNORECASE | re.VERBOSE)
_QUANTITY = re.compile(
    rf"""(?P<clock>(?<![\d.,:])\d{{1,2}}:\d{{2}}(?![\d:])(?:\s*[ap]\.?m\b\.?)?
          | (?<![\d.,:])\d{{1,2}}\s*[ap]\.?m\b\.?)
      | (?P<sign>(?<![\w)])-)?\$?(?P<whole>\d+)(?:\s+and)?\s+(?P<top>\d+)\s*/\s*(?P<bottom>\d+)
        (?![\d.,/])
      | {_NUMBER_PART}""",
    re.IGNORECASE | re.VERBOSE,
)
"""A quantity as a sentence states it: a clock time (`10:30`, `10:30 AM`, `7 pm`), a mixed
number (`3 1/2`, `3 and 1/2`), or a number, fraction or percentage with an optional
magnitude (`2.5 million`)."""
_UNIT_GROUPS = (
    "hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s|days?|weeks?|months?|years?",
    "feet|foot|ft|inch(?:es)?|in|yards?|miles?",
    "pounds?|lbs?|ounces?|oz",
    "dollars?|cents?",
)
_COMPOUND = re.compile(
    "|".join(
        rf"(?<![\d.,])(?:{_DIGITS})\s*(?:{units})\b"
        rf"(?:\s*,?\s*(?:and\s+)?(?:{_DIGITS})\s*(?:{units})\b)+"
        for units in _UNIT_GROUPS
    ),
    re.IGNORECASE,
)
"""A measure in two units ("5 hours and 30 minutes", "5 feet 6 inches", "3 dollars and 50
cents"): no single number is its value."""
_COMPOUND_REACH = 60
_UNIT = re.compile(
    rf"(?<=[\d}}])\s*\\(?:text|mathrm|mbox)\{{\s*(?!(?:{_MAGNITUDE_WORDS})\b)[A-Za-z][^{{}}]*\}}$"
)
"""A unit after a number (`10\\text{ cm}`), but not a magnitude (`2.5\\text{ million}`)."""
_CLOSING = {")": "(", "]": "[", "}": "{"}
_CODE = re.compile(r'"|(?<![\\\w^_])\{[A-Za-z_]\w*(?::[^{}]*)?\}')
"""A quote or an f-string field (`{total_eggs}`, `{x:.2f}`; not LaTeX's `\\frac{x}{2}`,
`x^{n}`): the statement is code."""
_LABEL_END = re.compile(r"[.):][ \t]+\S")
_OF = re.compile(r"\s+of\s+(?:the\s+)?\$?\d", re.IGNORECASE)
_ANSWER_IS = re.compile(
    r"(?:final|the)\s+answer\s*(?:is|:|=|would be|will be)|^\W*answer\s*\**\s*:",
    re.IGNORECASE | re.MULTILINE,
)
_SAID = re.compile(rf"\s*\**:?\s*([^\n]{{1,{MAX_ANSWER_CHARS}}}?)(?:\.\s|\.?\s*$|\n)", re.MULTILINE)
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z]{2,}")
_TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_MATH_WORDS = frozenset({"sqrt", "pi", "sin", "cos", "tan", "log", "ln", "exp"})
_EQUALS = re.compile(r"=|≈|\\approx")
_EQUATION_LIST = re.compile(
    r"(?:,|;|\bor\b|\band\b|\\text\{\s*(?:or|and)\s*\})\s*[A-Za-z](?:_\{?\w+\}?)?\s*$"
)
"""The end of a middle part of `x = 2 or x = 3`, `a = 1, b = 2`: a list of equations, whose
every part matters."""
_EXACT = re.compile(rf"(-?)({_DIGITS})")
_FRACTION = re.compile(r"(-?)(?:(\d+)/(\d+)|\\[dt]?frac\{(\d+)\}\{(\d+)\}|\\[dt]?frac(\d)(\d))")
_MIXED = re.compile(
    r"(-?)(\d+)(?:\s+and\s+|\s+|\s*(?=\\))(?:(\d+)\s*/\s*(\d+)|\\[dt]?frac\{(\d+)\}\{(\d+)\})"
)
_PERCENT = re.compile(r"(.+?)\s*(?:%|percent)", re.IGNORECASE)
_CLOCK = re.compile(r"(\d{1,2})(?::(\d{2}))?(?::\d{2})?\s*(?:([ap])\.?m\.?)?", re.IGNORECASE)
_SEQUENCE = re.compile(r"(\(|\[|\\\{|)([^()\[\]{}]*,[^()\[\]{}]*)(\)|\]|\\\}|)")
_SEPARATOR = re.compile(r",(?!\d{3}(?!\d))")
"""A comma between list items, not one between thousands (`(1,000, 2)` has two items)."""
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_CONFIG = (LatexExtractionConfig(),)
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


@dataclass(frozen=True, slots=True)
class Reading:
    """What a final-answer statement says."""

    answer: str | None
    """The value it states, tidied; None when it states none."""
    decides: bool
    """Whether it settles the completion's answer: a statement with an unusable value
    (`5 hours and 30 minutes`) makes the completion abstain, while one that says nothing
    ("...check that the answer is correct") leaves earlier statements to decide."""

    placeholder: bool = False
    """It repeats the prompt's `N`: if no other statement answers, the completion abstains
    (its last number is no answer either)."""


_SILENT = Reading(None, decides=False)
_UNUSABLE = Reading(None, decides=True)
_PLACEHOLDER = Reading(None, decides=False, placeholder=True)


def _quantity_text(match: re.Match[str]) -> str:
    """A quantity as an answer: its digits, a magnitude multiplied out."""
    found = match.groupdict()
    if found.get("clock"):
        return re.sub(r"\s+", " ", found["clock"]).strip().rstrip(".")
    if found.get("whole"):
        sign = "-" if found["sign"] else ""
        return f"{sign}{found['whole']} {found['top']}/{found['bottom']}"
    sign = "-" if found["sign2"] else ""
    number = found["number"] + (f"/{found['over']}" if found["over"] else "")
    if found["magnitude"]:
        value = exact_value(number)
        if value is not None:
            number = _decimal(value * _MAGNITUDES[found["magnitude"].lower()])
    return f"{sign}{number}{'%' if found['percent'] else ''}"


def _decimal(value: Fraction) -> str:
    """A non-negative Fraction in decimal digits when it has a short expansion, else `a/b`."""
    for places in range(13):
        scaled = value * 10**places
        if scaled.denominator == 1:
            whole, rest = divmod(scaled.numerator, 10**places)
            return f"{whole}.{rest:0{places}d}" if places else str(whole)
    return f"{value.numerator}/{value.denominator}"


def _quantities(text: str) -> list[re.Match[str]]:
    """The quantities in `text`, in order. What looks like a clock time but is not one
    (`25:99`, `13 pm`) and a mixed number whose fraction is not proper (`3 4/2`) are read
    as the numbers they hold."""
    found: list[re.Match[str]] = []
    for match in _QUANTITY.finditer(text):
        clock, whole = match.group("clock"), match.group("whole")
        not_clock = clock is not None and clock_minutes(clock) is None
        improper = whole is not None and int(match.group("top")) >= int(match.group("bottom"))
        if not_clock or improper:
            found.extend(_NUMBER.finditer(text, match.start(), match.end()))
        else:
            found.append(match)
    return found


def _in_compound(text: str, match: re.Match[str]) -> bool:
    """Whether the quantity is part of a compound measure (searched near it only, so the
    cost does not grow with the text)."""
    start = max(0, match.start() - _COMPOUND_REACH)
    window = text[start : match.end() + _COMPOUND_REACH]
    at = match.start() - start
    return any(m.start() <= at < m.end() for m in _COMPOUND.finditer(window))


def _has_words(text: str) -> bool:
    """Whether `text` has words other than LaTeX commands and function names."""
    return any(w.lower() not in _MATH_WORDS for w in _WORD.findall(_COMMAND.sub(" ", text)))


def _unbalanced_end(answer: str) -> str:
    """Without closing brackets that close nothing: `[The answer is 12].` states 12."""
    while answer and answer[-1] in _CLOSING:
        opening = _CLOSING[answer[-1]]
        if answer.count(opening) >= answer.count(answer[-1]):
            break
        answer = answer[:-1].rstrip().rstrip(".,;:").rstrip()
    return answer


def read_statement(statement: str) -> Reading:
    """The value a final-answer statement (a box's content, the rest of "The answer is")
    states, without decoration: delimiters, currency, bold, units in words."""
    answer = last_boxed(statement) or statement  # "The answer is \\boxed{18}."
    answer = answer.replace("\u2212", "-").replace("\u00a0", " ")
    answer = re.sub(r"\\[()\[\]]|\\?\$|\*\*", "", answer)
    answer = answer.replace("\\%", "%").replace("\\!", "").replace("{,}", ",")
    answer = re.sub(r"^\\(?:text|textbf|mathrm|mbox)\{(.*)\}$", r"\1", answer.strip())
    answer = _UNIT.sub("", answer)
    answer = _unbalanced_end(answer.strip().strip("*").strip().rstrip(".,;:").strip())
    parts = _EQUALS.split(answer)
    if len(parts) > 1 and not any(_EQUATION_LIST.search(p) for p in parts[1:-1]):
        answer = parts[-1].strip()  # "x = 4", "20% of 50 = 10": the value
    if not answer or _CODE.search(answer):
        return _SILENT  # `print(f"The answer is {total}.")`: a template in code
    if answer == PLACEHOLDER:
        return _PLACEHOLDER
    plain = _TEXT_COMMAND.sub(r" \1 ", answer)
    if "\\" in plain or not _has_words(plain) or len(_EQUALS.split(answer)) > 1:
        return Reading(answer, decides=True)  # math, or a list of equations: kept whole
    # a phrase in words: its first quantity is the answer, if it is one number
    quantities = _quantities(plain)
    if not quantities:  # an answer in words ("Evelyn"), unless it is a sentence
        short = len(plain.split()) <= MAX_ANSWER_WORDS
        return Reading(answer if short else None, decides=False)
    first = quantities[0]
    if _in_compound(plain, first):
        return _UNUSABLE
    share = not first.group("clock") and (first.group("percent") or first.group("over"))
    if share and _OF.match(plain, first.end()):
        return _UNUSABLE  # "20% of 50": an expression, not its value
    return Reading(_quantity_text(first), decides=True)


def tidy(answer: str) -> str | None:
    """The value a final-answer statement states, or None when it states no usable one."""
    return read_statement(answer).answer


def extract_answer(text: str, *, complete: bool = True) -> str | None:
    """The final answer of a completion, or None when it abstains. A completion cut off at
    its token limit (`complete=False`) only answers with a statement it finished: a closed
    box, a marked sentence that ends before the text does, a `####` line."""
    text = text[-MAX_TEXT_CHARS:]
    boxed = last_boxed(text)
    placeholder = False
    if boxed is not None:
        reading = read_statement(boxed)
        if reading.decides or reading.answer:
            return reading.answer
        placeholder = reading.placeholder
    in_words = None
    for marker in reversed(list(_ANSWER_IS.finditer(text))[-MAX_MARKERS:]):
        said = _SAID.match(text, marker.end())
        if said is None or (not complete and said.end() == len(text)):
            continue
        reading = read_statement(said.group(1))
        if reading.decides and (reading.answer is None or re.search(r"[\d\\]", reading.answer)):
            return reading.answer
        # "...check that the answer is correct" after "The answer is 18." says nothing
        in_words = in_words or reading.answer
        placeholder = placeholder or reading.placeholder
    if in_words or placeholder:
        return in_words
    hashes = [m for m in _HASHES.finditer(text) if complete or m.end() < len(text)]
    if hashes:
        return tidy(hashes[-1].group(1))
    if not complete:
        return None
    plain = text.replace("\u2212", "-")
    last = next((q for q in reversed(_quantities(plain)) if not _is_label(plain, q)), None)
    if last is None or _in_compound(plain, last):
        return None
    return _quantity_text(last)


def _is_label(text: str, match: re.Match[str]) -> bool:
    """Whether a number labels a list item or a step (`4. The final answer is the sum:`)."""
    line = text.rfind("\n", 0, match.start()) + 1
    before = text[line : match.start()].strip(" \t*#").lower()
    return before in ("", "step") and _LABEL_END.match(text, match.end()) is not None


@lru_cache(maxsize=65536)
def exact_value(answer: str) -> Fraction | None:
    """The exact value of a plain number (`1,000`, `-0.5`, `3/4`, `\\frac{3}{4}`, `3 1/2`,
    `3\\frac{1}{2}`, `$5`); a percentage is its number of percent (`5.0%` is 5). Else None."""
    text = answer.strip().replace("$", "")
    if len(text) > MAX_ANSWER_CHARS:
        return None
    percent = _PERCENT.fullmatch(text)
    if percent:
        text = percent.group(1).strip()
    exact = _EXACT.fullmatch(text)
    if exact:
        value = Fraction(exact.group(2).replace(",", ""))
        return -value if exact.group(1) else value
    fraction = _FRACTION.fullmatch(text)
    if fraction:
        sign, *numbers = fraction.groups()
        top, bottom = (int(n) for n in numbers if n is not None)
        return None if bottom == 0 else Fraction(-top if sign else top, bottom)
    mixed = _MIXED.fullmatch(text)
    if mixed:
        sign, whole, *numbers = mixed.groups()
        top, bottom = (int(n) for n in numbers if n is not None)
        if not 0 < top < bottom:
            return None  # `3 4/2` is not a mixed number
        value = int(whole) + Fraction(top, bottom)
        return -value if sign else value
    return None


def clock_minutes(answer: str) -> int | None:
    """Minutes after midnight of a clock time (`10:30`, `10:30 AM`, `7 pm`), else None."""
    clock = _CLOCK.fullmatch(answer.strip())
    if clock is None:
        return None
    hour, minute, half = clock.groups()
    if (minute is None and half is None) or int(minute or 0) >= 60:
        return None
    hour_of_day = int(hour)
    if half:
        if not 1 <= hour_of_day <= 12:
            return None
        hour_of_day = hour_of_day % 12 + (12 if half.lower() == "p" else 0)
    elif hour_of_day >= 24:
        return None
    return hour_of_day * 60 + int(minute or 0)


def _normal(answer: str) -> str:
    answer = _TEXT_COMMAND.sub(r"\1", answer)
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


def _small(number: sympy.Basic, bound: int = MAX_EXPONENT) -> bool:
    if any(
        isinstance(n, (sympy.Pow, sympy.factorial, sympy.factorial2))
        for n in sympy.preorder_traversal(number)
    ):
        return False
    try:
        return abs(float(number)) <= bound  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return False


@lru_cache(maxsize=65536)
def _parsed(answer: str) -> tuple[Any, ...]:
    """math-verify's parse of an answer as LaTeX; () when it cannot be compared safely.

    Its plain-text parser is not used: it reads the last number it finds (`6 - 5i` as 5,
    `10:30` as 10), which suits a whole completion, not an answer already extracted."""
    if len(answer) > MAX_ANSWER_CHARS:
        return ()
    try:
        found = parse(f"${answer}$", extraction_config=_CONFIG, parsing_timeout=None)  # type: ignore[arg-type]
    except Exception:  # latex2sympy raises on odd input: not comparable
        return ()
    return tuple(found) if found and all(_tame(x) for x in found) else ()


def _exact_floats(expr: Any) -> Any:
    """`expr` with its decimals as the exact rationals they show (2.5 is 5/2)."""
    floats = {f: sympy.Rational(str(f)) for f in expr.atoms(sympy.Float)}
    return expr.xreplace(floats) if floats else expr


def _constant_key(expr: sympy.Expr) -> Hashable | None:
    """A constant's canonical value: a Fraction when it is rational, else its value to
    `DIGITS` significant digits; None when sympy cannot evaluate it."""
    if isinstance(expr, sympy.Rational):
        return Fraction(int(expr.p), int(expr.q))
    try:
        real, imaginary = sympy.N(expr, DIGITS + 10).as_real_imag()
        if not (real.is_finite and imaginary.is_finite):
            return ("infinite", sympy.srepr(expr))  # oo, -oo, zoo
        tiny = sympy.Float(10) ** -(DIGITS + 5) * max(1, abs(real))
        if abs(imaginary) < tiny:
            # a rational that sympy left unevaluated (log_2 8): small denominators only,
            # an irrational is never this close to one
            near = Fraction(str(real)).limit_denominator(10**6)
            if abs(real - sympy.Rational(near.numerator, near.denominator)) < tiny:
                return near
            return ("real", str(sympy.Float(real, DIGITS)))
        return ("complex", str(sympy.Float(real, DIGITS)), str(sympy.Float(imaginary, DIGITS)))
    except (TypeError, ValueError, ArithmeticError, AttributeError):
        return None


def _symbolic_form(expr: Any) -> str:
    """A sympy form of a symbolic answer: rational functions in lowest terms when their
    powers are small."""
    try:
        if isinstance(expr, sympy.Expr):
            expr = expr.doit()
            powers = [p.exp for p in expr.atoms(sympy.Pow) if p.exp.is_number]
            if all(_small(p, MAX_CANCEL_EXPONENT) for p in powers):
                expr = sympy.cancel(expr)
    except (TypeError, ValueError, ArithmeticError, AttributeError, sympy.PolynomialError):
        pass  # the parsed form is a form too
    return sympy.srepr(expr)


def _sequence_key(text: str) -> Hashable | None:
    """A list of plain numbers with its brackets, in order (`(1, 2)`, `[1,2)`, `2, 3`), or
    a set of them (`\\{2, 1\\}`)."""
    sequence = _SEQUENCE.fullmatch(text.replace("\\left", "").replace("\\right", "").strip())
    if sequence is None:
        return None
    opening, items, closing = sequence.groups()
    values = [exact_value(item) for item in _SEPARATOR.split(items)]
    if len(values) < 2 or any(v is None for v in values):
        return None
    if opening == "\\{":  # a set: order and repeats do not count
        return ("set", tuple(sorted(set(values))))  # type: ignore[type-var]
    return ("list", opening, closing, tuple(values))


def _tidied(answer: str) -> str:
    """The value an answer states, or the answer itself when it states none usable."""
    return tidy(answer) or answer.strip()


@lru_cache(maxsize=65536)
def canonical_value(answer: str) -> Hashable:
    """The one value an answer stands for (see the module docstring for the rules)."""
    tidied = _tidied(answer)
    if len(tidied) > MAX_ANSWER_CHARS:
        return ("text", tidied)
    exact = exact_value(tidied)
    if exact is not None:
        return exact
    minutes = clock_minutes(tidied)
    if minutes is not None:
        return ("time", minutes)
    sequence = _sequence_key(tidied)
    if sequence is not None:
        return sequence
    if _has_words(_TEXT_COMMAND.sub(r" \1 ", tidied)):
        return ("text", _normal(tidied))
    percent = _PERCENT.fullmatch(tidied)
    parsed = _parsed(percent.group(1) if percent else tidied)
    if not parsed or isinstance(parsed[0], str):  # nothing math-verify could read
        return ("text", _normal(tidied))
    expr = _exact_floats(parsed[0]) if isinstance(parsed[0], sympy.Basic) else parsed[0]
    if isinstance(expr, sympy.Expr) and expr.is_number:
        key = _constant_key(expr)
        if key is not None:
            return key
    return ("symbolic", _symbolic_form(expr))


@lru_cache(maxsize=65536)
def _probe(answer: str) -> complex | None:
    """The value of a symbolic expression at a fixed generic point (each symbol, in name
    order, gets one of `_PROBE_POINT`); None when it is no expression or has no value
    there."""
    parsed = _parsed(_tidied(answer))
    expr = parsed[0] if parsed else None
    if not isinstance(expr, sympy.Expr) or len(expr.free_symbols) > len(_PROBE_POINT):
        return None
    symbols = sorted(expr.free_symbols, key=str)
    try:
        value = complex(expr.evalf(30, subs=dict(zip(symbols, _PROBE_POINT, strict=False))))
    except (TypeError, ValueError, ArithmeticError, AttributeError):
        return None
    return value if cmath.isfinite(value) else None


def _apart(a: str, b: str) -> bool:
    """Whether two symbolic answers surely differ: their values at the probe point do (two
    forms of one expression agree there up to rounding)."""
    first, second = _probe(a), _probe(b)
    if first is None or second is None:
        return False
    return abs(first - second) > 1e-9 * max(1.0, abs(first), abs(second))


def _symbolic(answer: str) -> bool:
    key = canonical_value(answer)
    return isinstance(key, tuple) and key[0] == "symbolic"


@lru_cache(maxsize=65536)
def _verified(gold: str, pred: str) -> bool:
    """math-verify's judgement of two symbolic answers, the gold (or first) one first."""
    left, right = _parsed(gold), _parsed(pred)
    if not left or not right:
        return False
    try:
        return bool(verify(list(left), list(right), timeout_seconds=None))  # type: ignore[arg-type]
    except Exception:  # math-verify raises on exotic sympy objects: not equal
        return False


def program_of(text: str) -> str | None:
    """The program a completion wrote: its Python blocks (closed ones) up to the last one
    that prints, joined (a later block may use what an earlier one defined); None when no
    block prints."""
    blocks = [m.group(1) for m in _PYTHON_BLOCK.finditer(text)]
    last = max((i for i, b in enumerate(blocks) if "print(" in b), default=None)
    return None if last is None else "\n".join(blocks[: last + 1])


def without_programs(text: str) -> str:
    """The completion's words: its Python blocks removed."""
    return _PYTHON_BLOCK.sub("\n", text)


def program_answer(sandbox: Sandbox, program: str) -> str | None:
    """What a program prints, read as a final answer (None when it fails or prints none)."""
    outcome = sandbox.run(program)
    if not outcome.passed or not outcome.stdout.strip():
        return None
    return extract_answer(outcome.stdout.strip()[-MAX_TEXT_CHARS:])


@TASKS.register("math")
class MathTask(Task):
    """Math answers read from the text. With `programs`, a completion that writes a Python
    program (a fenced block that prints) is answered by running it in the sandbox: its
    printed result is the answer, whatever output the text claims for it (models invent
    one), and a program that fails abstains. Registered as `math` (chain of thought,
    programs not run), `math-exec` (the same prompt, programs run) and `math-program` (a
    prompt that asks for a program, run)."""

    default_scorer = "mean-logprob"
    default_process_scorer = "arithmetic"

    def __init__(
        self,
        system_prompt: str = SYSTEM_PROMPT,
        *,
        programs: bool = False,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.system_prompt = system_prompt
        self.programs = programs
        self.sandbox = sandbox or (Sandbox(PROGRAM_LIMITS) if programs else None)

    def prompt(self, question: str) -> tuple[Message, ...]:
        return (Message("system", self.system_prompt), Message("user", question.strip()))

    def extract(self, text: str, *, complete: bool = True) -> str | None:
        if self.sandbox is not None:
            program = program_of(text[-MAX_TEXT_CHARS:])
            if program is not None:
                return program_answer(self.sandbox, program)
        return extract_answer(text, complete=complete)

    def canonical(self, answer: str) -> Hashable:
        return canonical_value(answer)

    def joined(self, a: str, b: str) -> bool:
        """Two symbolic answers (expressions in symbols, sets, equations) whose forms differ
        may still be equal: math-verify decides (in a fixed order, so the answer is
        symmetric) unless their values at the probe point differ. Numbers, times, lists and
        text never are."""
        if not (_symbolic(a) and _symbolic(b)) or _apart(a, b):
            return False
        first, second = sorted((_tidied(a), _tidied(b)))
        return _verified(first, second)

    def is_correct(self, answer: str | None, gold: str) -> bool:
        if answer is None:
            return False
        if canonical_value(answer) == canonical_value(gold):
            return True
        if not (_symbolic(answer) and _symbolic(gold)) or _apart(answer, gold):
            return False
        return _verified(_tidied(gold), _tidied(answer))


@TASKS.register("math-exec")
class MathExecTask(MathTask):
    """Chain-of-thought prompt; the programs completions write anyway are run."""

    def __init__(self, system_prompt: str = SYSTEM_PROMPT, *, sandbox: Sandbox | None = None):
        super().__init__(system_prompt, programs=True, sandbox=sandbox)


@TASKS.register("math-program")
class MathProgramTask(MathTask):
    """A prompt that asks for a program (PAL, Program of Thoughts); programs are run."""

    default_process_scorer = None

    def __init__(self, system_prompt: str = PROGRAM_PROMPT, *, sandbox: Sandbox | None = None):
        super().__init__(system_prompt, programs=True, sandbox=sandbox)
