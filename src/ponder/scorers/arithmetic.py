"""A rule-based arithmetic checker: no model, exact fractions, no `eval`.

It finds the arithmetic claims in a step and scores the step by the share that hold:

* `48 / 2 = 24`, `$5 x 3 = $15`, `5 × 3 = 15`, `1,200 + 300 = 1500`, `(2 + 3) * 4 = 20`;
* chains: `2 + 3 = 5 + 1 = 6` (each `=` is a claim; a middle part that continues a running
  total, like `5 + 1` after `2 + 3`, may start with the value just reached). A value that
  follows a value is checked against the last computation: `5 + 3 = 8 = 10` claims
  `5 + 3 = 10` too, which is false;
* percentages: `20% of 50 is 10`, `25 percent of 80 = 20`, `50% = 0.5`;
* words: `10 divided by 2 = 5`, `3 plus 4`, `10 minus 4`, `3 times 4`, `half of 10 is 5`,
  `twice 15 is 30`; rates: `$10/hour * 8 hours = $80` (the `/hour` is a unit);
* whole divisions with a remainder: `7 / 2 = 3 remainder 1` (`R 1`, `with a remainder of 1`)
  holds when 7 = 3 * 2 + 1 and 0 <= 1 < 2;
* mixed numbers: `3 1/2 + 1 = 4 1/2`, `1 and 1/4` (a proper fraction after a whole number);
* units and LaTeX, as small models write them: `5 apples * 3 = 15`,
  `\\text{Total} = 4 \\times 9 = 36`, `\\frac{1}{2} \\cdot 10 = 5`, `2^3 = 8`.

Each side is evaluated exactly with `fractions.Fraction` by a small recursive-descent parser.
A claim needs an operation on at least one side (`x = 5` or `24 = 24` claims nothing). A
clock time (`2:30`, `5:30 PM`) is not a number: arithmetic on times is not checked.

Precision. A result shown with decimals (or as a percentage, or after `≈`) may be rounded or
truncated to the shown precision (`10 / 3 = 3.33`, `2/3 = 0.66`); a whole number must be
exact (`10/3 = 3` is false). An operand shown with decimals stands for any value that rounds
to it (`33.33` for [33.325, 33.335], as when 100/3 is carried forward): the result may be
anything those values give, by interval arithmetic, provided it is shown no more precisely
than the coarsest rounded operand. So `3 * $33.33 = $100` holds (3 * 33.333... = 100), while
`3 * 33.33 = 100.02` and `0.1 + 0.2 = 0.30000000000000004` (more digits than the operands
have) are false. Whole numbers (and whole percentages) are exact operands. Division by zero
or anything unparsable is not a claim.

Score in [0, 1]: the fraction of claims that hold. A step with no claim scores 0.5
(`NEUTRAL`): nothing to check is neither evidence for nor against it, and ranking such a step
between a right and a wrong calculation keeps prose steps alive in a search. As a process
scorer it judges the last step of the attempt; as an outcome scorer, the whole answer.

Probability. A score of 1 is not a certainty that the solution ends right: a confirmed
calculation can still answer the wrong question. `probability` maps the score to odds against
an unchecked path measured on gsm8k-train (`benchmarks/bench_particle_clip.py`, 40 questions x
8 samples of the small model, 2,106 prefixes): a path whose checked steps all hold ended right
1.82 times as often as one with nothing checked, a path with a refuted step 0.17 times as
often. So 1 -> odds 1.8 (p = 0.64), 0.5 -> odds 1 (p = 0.5), 0 -> odds 0.17 (p = 0.15),
log-odds linear in between. Particle filtering weighs particles by these odds, so a confirmed
particle is drawn 1.8 times as often as an unchecked one, not 10^6 times.

The reading is linear in the text: one tokenizing pass, a bounded look-ahead per word, and
parts of at most `_MAX_PART_TOKENS` tokens.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer

NEUTRAL = 0.5
CONFIRMED_ODDS = 1.8
"""P(right | every checked step holds) / P(right | nothing checked), measured on gsm8k-train."""
REFUTED_ODDS = 0.17
"""P(right | a checked step fails) / P(right | nothing checked), measured on gsm8k-train."""

_MAX_EXPONENT = 64
_MAX_DIGITS = 40
_MAX_PART_TOKENS = 80

# LaTeX that small models put around their arithmetic, rewritten into plain text first.
_LATEX_WORD = re.compile(r"\\(?:text|mathrm|textbf|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_SYMBOLS = {
    r"\times": " × ", r"\cdot": " × ", r"\ast": " × ", r"\div": " ÷ ", r"\approx": " ≈ ",
    r"\left": " ", r"\right": " ", r"\$": "$", r"\%": "%", r"{,}": ",",
    r"\[": "\n", r"\]": "\n", r"\(": " ", r"\)": " ", "²": "^2", "³": "^3",
    "−": "-", "–": "-", "⋅": "×", "∗": "×",
}  # fmt: skip
_LATEX_THOUSANDS = re.compile(r"(?<=\d)\\[,;: ](?=\d{3}\b)")
_LATEX_OTHER = re.compile(r"\\[A-Za-z]+|\\.")
_SUBSCRIPT = re.compile(r"(?<=[A-Za-z}])_(?:\{[^{}]*\}|[A-Za-z0-9])")
"""`d_2`, `\\text{Distance}_1`, `x_{12}`: part of a name, not a number."""
_BULLET = re.compile(r"^[ \t]*[-*•][ \t]+", re.MULTILINE)
"""A list bullet (`- 3 dozen = 36`): not a minus sign."""
_MIXED = re.compile(r"(?<![\d.,/])(\d+)\s+(?:and\s+)?(\d+)\s*/\s*(\d+)(?![\d.,/])")
"""A mixed number, `3 1/2` or `1 and 1/4` (a proper fraction after a whole number)."""

_TOKEN = re.compile(
    r"""(?P<clock>(?<![\d.,:])\d{1,2}:\d{2}(?![\d:])(?:\s*[ap]\.?m\b\.?)?)
      | (?P<num>[$€£]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|[$€£]?\.\d+)(?P<pct>\s?%)?
      | (?P<op>\*\*|[-+*/×÷·^(){}])
      | (?P<eq>==?|≈)
      | (?P<word>[A-Za-z]+)
      | (?P<space>[ \t]+)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)

_OPERATORS = {"+", "-", "*", "/", "×", "÷", "·", "^", "**", "%"}
_TIMES_WORDS = {"x", "times"}
_EQUALS_WORDS = {"is", "equals", "equal", "makes"}
_OPERATOR_WORDS = {"plus": "+", "minus": "-"}
_BY_WORDS = {"divided": "÷", "multiplied": "×"}
"""`divided by`, `multiplied by`."""
_MULTIPLE_WORDS = {
    "half": Fraction(1, 2), "twice": Fraction(2), "double": Fraction(2), "triple": Fraction(3)
}  # fmt: skip
"""`half of 10`, `twice 15`: a factor before the number."""
_REMAINDER_WORDS = {"remainder", "r"}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: Literal["num", "op", "eq", "word"]
    text: str
    value: Fraction = Fraction(0)
    ulp: Fraction | None = None
    """For a number shown with decimals or as a percentage: its last shown place."""
    spaced: bool = False
    """Whitespace before it (`2(3)` multiplies, `Step 2 (3 + 4)` does not)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """One `left = right` found in a text, and whether it holds."""

    left: str
    right: str
    holds: bool


@dataclass(frozen=True, slots=True)
class _Bounded:
    """A value, and the interval it lies in when the numbers it was computed from are the
    rounded values they are shown as (`33.33` stands for anything in [33.325, 33.335])."""

    value: Fraction
    low: Fraction
    high: Fraction
    grain: Fraction = Fraction(0)
    """The coarsest last shown place among the rounded numbers (0: all exact)."""

    @staticmethod
    def exact(value: Fraction) -> _Bounded:
        return _Bounded(value, value, value)

    @staticmethod
    def of(token: _Tok) -> _Bounded:
        if token.ulp is None or "." not in token.text:
            return _Bounded.exact(token.value)  # a whole number (or whole percent) is exact
        half = token.ulp / 2
        return _Bounded(token.value, token.value - half, token.value + half, token.ulp)

    def __add__(self, other: _Bounded) -> _Bounded:
        return _Bounded(
            self.value + other.value,
            self.low + other.low,
            self.high + other.high,
            max(self.grain, other.grain),
        )

    def __sub__(self, other: _Bounded) -> _Bounded:
        return self + -other

    def __neg__(self) -> _Bounded:
        return _Bounded(-self.value, -self.high, -self.low, self.grain)

    def __mul__(self, other: _Bounded) -> _Bounded:
        ends = [a * b for a in (self.low, self.high) for b in (other.low, other.high)]
        grain = max(self.grain, other.grain)
        return _Bounded(self.value * other.value, min(ends), max(ends), grain)

    def __truediv__(self, other: _Bounded) -> _Bounded:
        if other.value == 0:
            raise ZeroDivisionError
        value = self.value / other.value
        if other.low <= 0 <= other.high:
            return _Bounded.exact(value)  # unbounded: no tolerance at all
        inverse = _Bounded(1 / other.value, 1 / other.high, 1 / other.low, other.grain)
        product = self * inverse
        return _Bounded(value, product.low, product.high, product.grain)

    def __pow__(self, exponent: int) -> _Bounded:
        if exponent < 0:
            return _Bounded.exact(Fraction(1)) / self ** (-exponent)
        low, high = sorted((self.low**exponent, self.high**exponent))
        if exponent % 2 == 0 and self.low < 0 < self.high:
            low = Fraction(0)
        return _Bounded(self.value**exponent, low, high, self.grain)


class _Parser:
    """expr := term (('+'|'-') term)*
    term := unary (('*'|'/'|implicit before '(') unary)*
    unary := '-' unary | power
    power := atom (('^'|'**') unary)?
    atom := number | '(' expr ')'"""

    def __init__(self, tokens: Sequence[_Tok]) -> None:
        self.tokens, self.at = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.at].text if self.at < len(self.tokens) else None

    def take(self) -> _Tok:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def glued_parenthesis(self) -> bool:
        return self.peek() == "(" and not self.tokens[self.at].spaced

    def parse(self) -> _Bounded:
        value = self.expr()
        if self.at != len(self.tokens):
            raise ValueError("trailing tokens")
        return value

    def expr(self) -> _Bounded:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take().text
            right = self.term()
            value = value + right if op == "+" else value - right
        return value

    def term(self) -> _Bounded:
        value = self.unary()
        while self.peek() in ("*", "×", "·", "/", "÷") or self.glued_parenthesis():
            op = "*" if self.peek() == "(" else self.take().text
            right = self.unary()
            value = value / right if op in ("/", "÷") else value * right
        return value

    def unary(self) -> _Bounded:
        if self.peek() == "-":
            self.take()
            return -self.unary()
        return self.power()

    def power(self) -> _Bounded:
        base = self.atom()
        if self.peek() in ("^", "**"):
            self.take()
            exponent = self.unary().value
            if exponent.denominator != 1 or abs(exponent) > _MAX_EXPONENT:
                raise ValueError("only small whole exponents")
            if base.value == 0 and exponent < 0:
                raise ZeroDivisionError
            return base ** int(exponent)
        return base

    def atom(self) -> _Bounded:
        if self.at >= len(self.tokens):
            raise ValueError("expected a number")
        token = self.take()
        if token.kind == "num":
            return _Bounded.of(token)
        if token.text == "(":
            value = self.expr()
            if self.peek() != ")":
                raise ValueError("unbalanced parentheses")
            self.take()
            return value
        raise ValueError(f"expected a number, got {token.text!r}")


def _plain(text: str) -> str:
    text = _SUBSCRIPT.sub("", text)
    text = _BULLET.sub("\n", text)
    text = _LATEX_WORD.sub(r" \1 ", text)
    for _ in range(4):  # nested fractions, innermost first
        text, count = _LATEX_FRAC.subn(r"((\1)/(\2))", text)
        if not count:
            break
    text = _LATEX_THOUSANDS.sub(",", text)
    for latex, plain in _LATEX_SYMBOLS.items():
        text = text.replace(latex, plain)
    text = _MIXED.sub(_mixed, text)
    return _LATEX_OTHER.sub("\n", text)


def _mixed(match: re.Match[str]) -> str:
    whole, top, bottom = match.groups()
    if not 0 < int(top) < int(bottom):
        return match.group(0)  # `2 4/2` is two numbers, not a mixed number
    return f"({whole}+{top}/{bottom})"


def _number(match: re.Match[str], spaced: bool) -> _Tok:
    shown = match.group("num")
    digits = shown.lstrip("$€£").replace(",", "")
    if len(digits) > _MAX_DIGITS:
        raise ValueError("number too long")
    value = Fraction(digits)
    places = len(digits.partition(".")[2])
    ulp: Fraction | None = Fraction(1, 10**places) if places else None
    if match.group("pct"):
        value /= 100
        ulp = (ulp or Fraction(1)) / 100
    return _Tok("num", match.group(0).strip(), value, ulp, spaced)


def _tokens(text: str) -> list[_Tok | None]:
    """Arithmetic tokens; None marks a break (punctuation, a line end)."""
    out: list[_Tok | None] = []
    spaced = True
    for match in _TOKEN.finditer(_plain(text)):
        kind = match.lastgroup
        if kind == "space":
            spaced = True
            continue
        if kind == "clock":
            out.append(None)  # a time of day is not a number: `2:30 + 3 = 5:30` is no claim
        elif kind in ("num", "pct"):
            try:
                out.append(_number(match, spaced))
            except ValueError:
                out.append(None)
        elif kind == "op":
            symbol = {"{": "(", "}": ")"}.get(match.group(0), match.group(0))
            out.append(_Tok("op", symbol, spaced=spaced))
        elif kind == "eq":
            out.append(_Tok("eq", match.group(0), spaced=spaced))
        elif kind == "word":
            out.append(_Tok("word", match.group(0).lower(), spaced=spaced))
        else:
            out.append(None)
        spaced = False
    return out


def _has_operation(part: Sequence[_Tok]) -> bool:
    for i, token in enumerate(part):
        if token.kind == "op" and token.text in _OPERATORS:
            return True
        if token.kind == "num" and token.text.endswith("%"):
            return True
        if token.text == "(" and not token.spaced and i and part[i - 1].text != "(":
            return True  # 2(15), (5)(3)
    return False


def _is_value(token: _Tok | None) -> bool:
    return token is not None and (token.kind == "num" or token.text == ")")


def _starts_value(token: _Tok | None) -> bool:
    return token is not None and (token.kind in ("num", "word") or token.text == "(")


@dataclass(slots=True)
class _Run:
    """A stretch of arithmetic split at its equals signs."""

    parts: list[list[_Tok]] = field(default_factory=lambda: [[]])
    signs: list[str] = field(default_factory=list)
    after_word: bool = False
    """It began right after a word: in `S + 143 = ...` the `+` joins a variable."""
    remainder: Fraction | None = None
    """The remainder stated after the last part: `7 / 2 = 3 remainder 1`."""


class _Reader:
    """Reads the tokens into runs, taking words in context:

    * `x`/`times` after a value multiply; `of` after a percentage or a fraction multiplies
      (`20% of 50`, `2/3 of 60`); `percent` makes a percentage; `is`/`equals` after an
      operation is an equals sign;
    * `plus`, `minus`, `divided by` and `multiplied by` after a value are operators;
      `half (of)`, `twice`, `double` and `triple` before a number multiply it;
    * `remainder 1` (`R 1`, `with a remainder of 1`) after the last part of a run makes
      the claim a whole division with a remainder;
    * up to three words after a value are its unit (`20 total gnomes - 12 gnomes = 8`)
      when the arithmetic goes on after them, and so is a word glued after a slash
      (`$10/hour * 8 hours`: a rate, not a division);
    * a single letter glued to a number or a bracket is a variable (`6W / 6`, `11x+15`,
      `(3/6)x`), and so is `x` before an operator: that part is algebra, not arithmetic,
      and is not checked;
    * a subscript is part of a name (`d_2 = 3 * 60`), a bullet at the start of a line is
      no minus sign (`- 3 dozen = 36`);
    * any other word ends the run.
    """

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.runs: list[_Run] = []
        self.run = _Run()

    def read(self) -> list[_Run]:
        i = 0
        while i < len(self.tokens):
            i = self.step(i)
        self.flush()
        return self.runs

    def flush(self, *, after_word: bool = False) -> None:
        if len(self.run.parts) > 1:
            self.runs.append(self.run)
        self.run = _Run(after_word=after_word)

    def peek(self, at: int) -> _Tok | None:
        return self.tokens[at] if at < len(self.tokens) else None

    def step(self, i: int) -> int:
        token, part = self.tokens[i], self.run.parts[-1]
        prev = part[-1] if part else None
        if token is None:
            self.flush()
        elif token.kind == "num":
            if prev is not None and prev.kind == "num":
                self.flush()  # "16,000 0": two numbers side by side are not arithmetic
            self.run.parts[-1].append(token)
        elif token.kind == "op":
            part.append(token)
        elif token.kind == "eq":
            self.equals(token.text, part)
        else:
            return self.word(i, token, part, prev)
        return i + 1

    def equals(self, sign: str, part: list[_Tok]) -> None:
        if part:
            self.run.parts.append([])
            self.run.signs.append(sign)
        else:
            self.flush(after_word=self.run.after_word)  # "Total = 3 + 4": no left side

    def word(self, i: int, token: _Tok, part: list[_Tok], prev: _Tok | None) -> int:
        word, nxt = token.text, self.peek(i + 1)
        glued = not token.spaced and _is_value(prev)
        # `x` multiplies a value by a value (`5 x 3`, `2 x (3 + 1)`); before an operator it
        # is a variable (`\\frac{3}{6}x - 7`)
        times = word in _TIMES_WORDS and _is_value(prev) and _starts_value(nxt)
        operand = prev is None or (prev.kind == "op" and prev.text != ")")
        if prev is not None and prev.kind == "num" and len(self.run.parts) > 1:
            remainder = self.remainder(i)
            if remainder is not None:  # 7 / 2 = 3 remainder 1
                self.run.remainder, end = remainder
                self.flush(after_word=True)
                return end
        if _is_value(prev) and word in _OPERATOR_WORDS:
            part.append(_Tok("op", _OPERATOR_WORDS[word], spaced=True))
        elif _is_value(prev) and word in _BY_WORDS and nxt is not None and nxt.text == "by":
            part.append(_Tok("op", _BY_WORDS[word], spaced=True))
            return i + 2
        elif operand and word in _MULTIPLE_WORDS:
            factor = _Tok("num", word, _MULTIPLE_WORDS[word], spaced=True)
            part.extend((factor, _Tok("op", "×", spaced=True)))
            return i + 2 if nxt is not None and nxt.text == "of" else i + 1
        elif self.rate(token, part, prev):
            part.pop()  # $10/hour: the unit of a rate, not a division
            end = self.unit_end(i, part)
            if end is None:
                self.flush(after_word=True)
                return i + 1
            return end
        elif glued and len(word) == 1 and not (times and nxt is not None and not nxt.spaced):
            self.run.parts[-1] = []  # 6W / 6, 11x + 15: algebra
            self.flush(after_word=True)
        elif times or (word == "of" and prev is not None and _fraction_or_percent(part)):
            part.append(_Tok("op", "×"))
        elif word == "percent" and prev is not None and prev.kind == "num":
            ulp = (prev.ulp or Fraction(1)) / 100
            part[-1] = _Tok("num", prev.text + "%", prev.value / 100, ulp, prev.spaced)
        elif word in _EQUALS_WORDS and _has_operation(part):
            self.run.parts.append([])
            self.run.signs.append("=")
        elif _is_value(prev) and (end := self.unit_end(i, part)) is not None:
            return end
        else:
            self.flush(after_word=True)
        return i + 1

    def rate(self, token: _Tok, part: Sequence[_Tok], prev: _Tok | None) -> bool:
        """Whether `token` is the unit of a rate glued to a number: `$10/hour`."""
        return (
            prev is not None
            and prev.text == "/"
            and not prev.spaced
            and not token.spaced
            and len(part) > 1
            and part[-2].kind == "num"
        )

    def remainder(self, i: int) -> tuple[Fraction, int] | None:
        """A remainder stated at `i` (`remainder 1`, `R 1`, `with a remainder of 1`): its
        value and the index past it."""
        at = i
        if self.text_at(at) == "with":
            at += 2 if self.text_at(at + 1) == "a" else 1
            if self.text_at(at) != "remainder":
                return None
        elif self.text_at(at) not in _REMAINDER_WORDS:
            return None
        at += 2 if self.text_at(at + 1) == "of" else 1
        number = self.peek(at)
        if number is None or number.kind != "num" or number.ulp is not None:
            return None
        return number.value, at + 1

    def text_at(self, at: int) -> str | None:
        token = self.peek(at)
        return None if token is None else token.text

    def unit_end(self, i: int, part: Sequence[_Tok]) -> int | None:
        """Past a unit starting at `i` when the arithmetic goes on after it, else None."""
        at, words = i, 0
        while (token := self.peek(at)) is not None and token.kind == "word" and words < 3:
            if token.text in _TIMES_WORDS and words:
                return at
            if token.text in _EQUALS_WORDS and words:
                break
            at, words = at + 1, words + 1
            slash, after = self.peek(at), self.peek(at + 1)
            if (
                slash is not None
                and slash.text == "/"
                and after is not None
                and after.kind == "word"
            ):
                at += 2  # eggs/day
        token = self.peek(at)
        if token is None:
            return None
        if token.kind == "op" and token.text not in ("(", ")"):
            return at
        equals = token.kind == "eq" or (token.kind == "word" and token.text in _EQUALS_WORDS)
        return at if equals and _has_operation(part) else None


def _fraction_or_percent(part: Sequence[_Tok]) -> bool:
    return part[-1].text.endswith("%") or any(t.text in ("/", "÷") for t in part)


def _bounded(part: Sequence[_Tok]) -> _Bounded | None:
    if not part or len(part) > _MAX_PART_TOKENS:
        return None
    try:
        return _Parser(part).parse()
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def _value(part: Sequence[_Tok]) -> Fraction | None:
    bounded = _bounded(part)
    return None if bounded is None else bounded.value


def _division(part: Sequence[_Tok]) -> tuple[Fraction, Fraction] | None:
    """Dividend and divisor of a part that is one division (`7 / 2`, `(20 + 3) ÷ 4`)."""
    depth, split = 0, None
    for i, token in enumerate(part):
        depth += {"(": 1, ")": -1}.get(token.text, 0)
        if depth == 0 and token.kind == "op" and i:
            if token.text in ("+", "-") or split is not None:
                return None  # `2 + 21 / 4`, `36 / 5 * 2`: not one division
            if token.text in ("/", "÷"):
                split = i
    if split is None:
        return None
    dividend, divisor = _value(part[:split]), _value(part[split + 1 :])
    return None if dividend is None or divisor is None else (dividend, divisor)


def _divides(left: Sequence[_Tok], quotient: Fraction, remainder: Fraction) -> bool | None:
    """Whether `left = quotient remainder r` holds; None when `left` is no whole division."""
    division = _division(left)
    if division is None:
        return None
    dividend, divisor = division
    wholes = (dividend, divisor, quotient, remainder)
    if divisor == 0 or any(n.denominator != 1 for n in wholes):
        return None
    return dividend == quotient * divisor + remainder and 0 <= remainder < abs(divisor)


def _first(part: list[_Tok], after_word: bool) -> list[_Tok]:
    """The left end of a run, if it is arithmetic: without a list label (`1) 48 / 2`,
    `Step 2 (3 + 4)`) or a stray bracket; nothing when it continues a variable (`S + 143`,
    `x - 12`)."""
    if not part:
        return part
    head = part[0]
    binary = head.kind == "op" and head.text not in ("(", "-")
    joins = head.text == "-" and len(part) > 1 and part[1].spaced
    if after_word and (binary or joins):
        return []
    if _value(part) is not None:
        return part
    if head.text == "(":
        return part[1:]
    if head.kind == "num" and len(part) > 1 and part[1].text == ")":
        return part[2:]
    if head.kind == "num" and len(part) > 1 and part[1].text == "(" and part[1].spaced:
        return part[1:]  # a label before a bracket: `Step 2 (3 + 4) = 7`
    return part


def _last(part: list[_Tok]) -> list[_Tok]:
    """The right end of a run, without a stray closing bracket."""
    if _value(part) is None and part and part[-1].text == ")":
        return part[:-1]
    return part


def _close(value: Fraction, target: Fraction, ulp: Fraction | None) -> bool:
    if value == target:
        return True
    if ulp is None:
        return False
    rounded = abs(value - target) * 2 <= ulp
    truncated = abs(target) == (abs(value) // ulp) * ulp and (value < 0) == (target < 0)
    return rounded or truncated


def _accepted(target: Fraction, ulp: Fraction | None) -> tuple[Fraction, Fraction]:
    """The values a shown result may stand for: itself if whole, else anything it rounds
    or truncates."""
    if ulp is None:
        return target, target
    low, high = target - ulp / 2, target + ulp / 2
    if target > 0:
        high = target + ulp
    elif target < 0:
        low = target - ulp
    return low, high


def _holds(value: _Bounded, shown: Sequence[_Tok], approximate: bool) -> bool:
    """Whether `shown` (one side of the claim) equals `value` to the precision it shows.

    A lone percentage may also be the number of percent (`100 - 50 = 50%`). When `value`
    was computed from rounded numbers and `shown` is no more precise than the coarsest of
    them, `shown` may be any value those numbers allow (`3 * 33.33 = 100`)."""
    target = _value(shown)
    if target is None:
        return False
    ulps = [t.ulp for t in shown if t.kind == "num" and t.ulp is not None]
    ulp = min(ulps) if ulps else (Fraction(1) if approximate else None)
    if _close(value.value, target, ulp):
        return True
    lone_percent = len(shown) == 1 and shown[0].text.endswith("%")
    if lone_percent and _close(value.value / 100, target, ulp):
        return True
    if value.grain and (ulp or Fraction(1)) >= value.grain:
        low, high = _accepted(target, ulp)
        return value.low <= high and low <= value.high
    return False


def find_claims(text: str) -> list[Claim]:
    """Every arithmetic claim in `text`, in order, with whether it holds."""
    found: list[Claim] = []
    for run in _Reader(text).read():
        parts = [_first(run.parts[0], run.after_word), *run.parts[1:-1], _last(run.parts[-1])]
        values = [_bounded(p) for p in parts]
        computed: int | None = None  # the latest part with an operation: the chain's value
        for i in range(len(parts) - 1):
            left, right = parts[i], parts[i + 1]
            lv, rv = values[i], values[i + 1]
            if lv is None or rv is None:
                continue
            operation = _has_operation(left), _has_operation(right)
            if operation[0]:
                computed = i
            approximate = run.signs[i] == "≈"
            last = i + 1 == len(parts) - 1
            if last and run.remainder is not None:
                holds = _divides(left, rv.value, run.remainder)
                if holds is not None:
                    shown = f"{_show(right)} remainder {run.remainder}"
                    found.append(Claim(_show(left), shown, holds))
                continue
            if not any(operation):
                if computed is not None:  # "5 + 3 = 8 = 10": the chain ends on 10
                    holds = _holds(values[computed], right, approximate)  # type: ignore[arg-type]
                    found.append(Claim(_show(parts[computed]), _show(right), holds))
                continue
            shown = right if operation[0] or not operation[1] else left
            value = lv if shown is right else rv
            holds = _holds(value, shown, approximate)
            if not holds and not last and right[0].kind == "num" and len(right) > 1:
                holds = _holds(lv, right[:1], approximate)  # "2 + 3 = 5 + 1 = 6"
            found.append(Claim(_show(left), _show(right), holds))
    return found


def _show(part: Sequence[_Tok]) -> str:
    return " ".join(t.text for t in part)


def claims(text: str) -> list[bool]:
    """Whether each arithmetic claim in `text` holds, in order of appearance."""
    return [c.holds for c in find_claims(text)]


def score_text(text: str) -> float:
    found = claims(text)
    return sum(found) / len(found) if found else NEUTRAL


@SCORERS.register("arithmetic", aliases=("arith", "calc"))
class ArithmeticChecker(Scorer):
    summary = "share of the step's arithmetic claims that hold (exact fractions; 0.5 if none)"
    score_range = (0.0, 1.0)
    outcome = True
    process = True

    @classmethod
    def probability(cls, score: float) -> float:
        """The share of claims that hold as a probability, calibrated (see the module)."""
        if math.isnan(score):
            return math.nan
        share = min(max(score, 0.0), 1.0)
        if share >= NEUTRAL:
            log_odds = (share - NEUTRAL) / (1.0 - NEUTRAL) * math.log(CONFIRMED_ODDS)
        else:
            log_odds = (NEUTRAL - share) / NEUTRAL * math.log(REFUTED_ODDS)
        return 1.0 / (1.0 + math.exp(-log_odds))

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        found = [claims(a.steps[-1] if a.steps else "") for a in attempts]
        return ScoreBatch(
            tuple(sum(c) / len(c) if c else NEUTRAL for c in found),
            informative=tuple(bool(c) for c in found),
        )
