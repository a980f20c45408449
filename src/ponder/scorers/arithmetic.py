"""A rule-based arithmetic checker: no model, exact fractions, no `eval`.

It finds the arithmetic claims in a step and scores the step by the share that hold:

* `48 / 2 = 24`, `$5 x 3 = $15`, `5 × 3 = 15`, `1,200 + 300 = 1500`, `(2 + 3) * 4 = 20`;
* chains: `2 + 3 = 5 + 1 = 6` (each `=` is a claim; a middle part that continues a running
  total, like `5 + 1` after `2 + 3`, may start with the value just reached);
* percentages: `20% of 50 is 10`, `25 percent of 80 = 20`, `50% = 0.5`;
* units and LaTeX, as small models write them: `5 apples * 3 = 15`,
  `\\text{Total} = 4 \\times 9 = 36`, `\\frac{1}{2} \\cdot 10 = 5`, `2^3 = 8`.

Each side is evaluated exactly with `fractions.Fraction` by a small recursive-descent parser.
A claim needs an operation on at least one side (`x = 5` or `24 = 24` claims nothing). A value
shown with decimals (or as a percentage, or after `≈`) may be rounded or truncated to the
shown precision (`10 / 3 = 3.33`, `2/3 = 0.66`); a whole number must be exact (`10/3 = 3` is
false). Division by zero or anything unparsable is not a claim.

Score in [0, 1]: the fraction of claims that hold. A step with no claim scores 0.5
(`NEUTRAL`): nothing to check is neither evidence for nor against it, and ranking such a step
between a right and a wrong calculation keeps prose steps alive in a search. As a process
scorer it judges the last step of the attempt; as an outcome scorer, the whole answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer

NEUTRAL = 0.5

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
_MIXED = re.compile(r"\b(\d+)\s+and\s+(\d+)\s*/\s*(\d+)\b")
"""A mixed number, `1 and 1/4`."""

_TOKEN = re.compile(
    r"""(?P<num>[$€£]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|[$€£]?\.\d+)(?P<pct>\s?%)?
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

    def parse(self) -> Fraction:
        value = self.expr()
        if self.at != len(self.tokens):
            raise ValueError("trailing tokens")
        return value

    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take().text
            right = self.term()
            value = value + right if op == "+" else value - right
        return value

    def term(self) -> Fraction:
        value = self.unary()
        while self.peek() in ("*", "×", "·", "/", "÷") or self.glued_parenthesis():
            op = "*" if self.peek() == "(" else self.take().text
            right = self.unary()
            if op in ("/", "÷"):
                if right == 0:
                    raise ZeroDivisionError
                value /= right
            else:
                value *= right
        return value

    def unary(self) -> Fraction:
        if self.peek() == "-":
            self.take()
            return -self.unary()
        return self.power()

    def power(self) -> Fraction:
        base = self.atom()
        if self.peek() in ("^", "**"):
            self.take()
            exponent = self.unary()
            if exponent.denominator != 1 or abs(exponent) > _MAX_EXPONENT:
                raise ValueError("only small whole exponents")
            if base == 0 and exponent < 0:
                raise ZeroDivisionError
            return base ** int(exponent)
        return base

    def atom(self) -> Fraction:
        if self.at >= len(self.tokens):
            raise ValueError("expected a number")
        token = self.take()
        if token.kind == "num":
            return token.value
        if token.text == "(":
            value = self.expr()
            if self.peek() != ")":
                raise ValueError("unbalanced parentheses")
            self.take()
            return value
        raise ValueError(f"expected a number, got {token.text!r}")


def _plain(text: str) -> str:
    text = _LATEX_WORD.sub(r" \1 ", text)
    for _ in range(4):  # nested fractions, innermost first
        text, count = _LATEX_FRAC.subn(r"((\1)/(\2))", text)
        if not count:
            break
    text = _LATEX_THOUSANDS.sub(",", text)
    for latex, plain in _LATEX_SYMBOLS.items():
        text = text.replace(latex, plain)
    text = _MIXED.sub(r"(\1+\2/\3)", text)
    return _LATEX_OTHER.sub("\n", text)


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
        if kind in ("num", "pct"):
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


@dataclass(slots=True)
class _Run:
    """A stretch of arithmetic split at its equals signs."""

    parts: list[list[_Tok]] = field(default_factory=lambda: [[]])
    signs: list[str] = field(default_factory=list)
    after_word: bool = False
    """It began right after a word: in `S + 143 = ...` the `+` joins a variable."""


class _Reader:
    """Reads the tokens into runs, taking words in context:

    * `x`/`times` after a value multiply; `of` after a percentage or a fraction multiplies
      (`20% of 50`, `2/3 of 60`); `percent` makes a percentage; `is`/`equals` after an
      operation is an equals sign;
    * up to three words after a value are its unit (`20 total gnomes - 12 gnomes = 8`)
      when the arithmetic goes on after them;
    * a single letter glued to a number is a variable (`6W / 6`, `11x+15`): that part is
      algebra, not arithmetic, and is not checked;
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
        glued = not token.spaced and prev is not None and prev.kind == "num"
        times = word in _TIMES_WORDS and _is_value(prev)
        if glued and len(word) == 1 and not (times and nxt is not None and not nxt.spaced):
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


def _value(part: Sequence[_Tok]) -> Fraction | None:
    if not part or len(part) > _MAX_PART_TOKENS:
        return None
    try:
        return _Parser(part).parse()
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


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


def _holds(value: Fraction, shown: Sequence[_Tok], approximate: bool) -> bool:
    """Whether `shown` (one side of the claim) equals `value` to the precision it shows.

    A lone percentage may also be the number of percent (`100 - 50 = 50%`)."""
    target = _value(shown)
    if target is None:
        return False
    ulps = [t.ulp for t in shown if t.kind == "num" and t.ulp is not None]
    ulp = min(ulps) if ulps else (Fraction(1) if approximate else None)
    if _close(value, target, ulp):
        return True
    lone_percent = len(shown) == 1 and shown[0].text.endswith("%")
    return lone_percent and _close(value / 100, target, ulp)


def find_claims(text: str) -> list[Claim]:
    """Every arithmetic claim in `text`, in order, with whether it holds."""
    found: list[Claim] = []
    for run in _Reader(text).read():
        parts = [_first(run.parts[0], run.after_word), *run.parts[1:-1], _last(run.parts[-1])]
        values = [_value(p) for p in parts]
        for i in range(len(parts) - 1):
            left, right = parts[i], parts[i + 1]
            lv, rv = values[i], values[i + 1]
            if lv is None or rv is None or not (_has_operation(left) or _has_operation(right)):
                continue
            approximate = run.signs[i] == "≈"
            shown = right if _has_operation(left) or not _has_operation(right) else left
            value = lv if shown is right else rv
            holds = _holds(value, shown, approximate)
            last = i + 1 == len(parts) - 1
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

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        found = [claims(a.steps[-1] if a.steps else "") for a in attempts]
        return ScoreBatch(
            tuple(sum(c) / len(c) if c else NEUTRAL for c in found),
            informative=tuple(bool(c) for c in found),
        )
