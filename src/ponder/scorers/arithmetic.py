"""A rule-based arithmetic checker: no model, exact fractions, no `eval`.

It finds the arithmetic claims in a step (`48 / 2 = 24`, `$5 x 3 = $15`, `5 × 3 = 15`,
`2 + 3 = 5 + 1 = 6`, `20% of 50 is 10`), evaluates each side with a small recursive-descent
parser over `fractions.Fraction`, and scores the step by the share of claims that hold.
A right-hand side shown with d decimals may be rounded (|error| <= 0.5 * 10^-d); a whole
number must be exact. A step with no claim is neutral: 0.5. Range [0, 1].

As a process scorer it judges the last step; as an outcome scorer, every claim of the answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from ponder.scorers.base import SCORERS, Attempt, ScoreBatch, Scorer

NEUTRAL = 0.5

_ARITH = r"[\d$€£.,%()\s+\-*/x×÷·^]"
_CHAIN = re.compile(rf"{_ARITH}+(?:=\s*{_ARITH}+)+")
_PERCENT_OF = re.compile(
    r"(\d+(?:\.\d+)?)\s*%\s+of\s+\$?(\d[\d,]*(?:\.\d+)?)\s+(?:is|=|equals)\s+\$?(\d[\d,]*(?:\.\d+)?)",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?%?|\.\d+%?|[+\-*/x×÷·()^]")


class _Parser:
    """expr := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*;
    factor := '-' factor | number | '(' expr ')'."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.at = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> Fraction:
        value = self.factor()
        while self.peek() in ("*", "x", "×", "·", "/", "÷"):
            op = self.take()
            right = self.factor()
            if op in ("/", "÷"):
                if right == 0:
                    raise ZeroDivisionError
                value /= right
            else:
                value *= right
        return value

    def factor(self) -> Fraction:
        token = self.peek()
        if token == "-":
            self.take()
            return -self.factor()
        if token == "(":
            self.take()
            value = self.expr()
            if self.peek() != ")":
                raise ValueError("unbalanced")
            self.take()
            return value
        if token is None or not (token[0].isdigit() or token[0] == "."):
            raise ValueError(f"expected a number, got {token!r}")
        self.take()
        percent = token.endswith("%")
        value = Fraction(token.rstrip("%").replace(",", ""))
        return value / 100 if percent else value


def evaluate(text: str) -> Fraction:
    """The exact value of an arithmetic expression (currency signs and spaces ignored)."""
    cleaned = re.sub(r"[$€£\s]", "", text)
    if not cleaned or len(cleaned) > 200:
        raise ValueError("no expression")
    tokens = _TOKEN.findall(cleaned)
    if "".join(tokens) != cleaned:
        raise ValueError("not arithmetic")
    parser = _Parser(tokens)
    value = parser.expr()
    if parser.peek() is not None:
        raise ValueError("trailing tokens")
    return value


def _decimals(text: str) -> int:
    match = re.search(r"\.(\d+)", text)
    return len(match.group(1)) if match else 0


def _holds(left: Fraction, right: Fraction, shown: str) -> bool:
    places = _decimals(shown)
    if places == 0:
        return left == right
    return abs(left - right) <= Fraction(1, 2 * 10**places)


def _has_operator(text: str) -> bool:
    return bool(re.search(r"\d\s*[+\-*/x×÷·]\s*-?[\d(.$]|%", text.strip().lstrip("-")))


def _value(part: str) -> Fraction | None:
    try:
        return evaluate(part)
    except (ValueError, ZeroDivisionError, ArithmeticError):
        return None


def claims(text: str) -> list[bool]:
    """Whether each arithmetic claim in `text` holds, in order of appearance."""
    results: list[bool] = []
    for match in _PERCENT_OF.finditer(text):
        rate, base, shown = match.groups()
        value = Fraction(rate) / 100 * Fraction(base.replace(",", ""))
        results.append(_holds(value, Fraction(shown.replace(",", "")), shown))
    for match in _CHAIN.finditer(text):
        parts = [p.strip().rstrip(".,") for p in match.group(0).split("=")]
        values = [_value(part) for part in parts]
        for i in range(len(parts) - 1):
            left, right = values[i], values[i + 1]
            if left is None or right is None:
                continue
            lop, rop = _has_operator(parts[i]), _has_operator(parts[i + 1])
            if lop or rop:  # "x = 5" or "5 = 5" claims nothing checkable
                results.append(_holds(left, right, parts[i + 1] if lop else parts[i]))
    return results


def score_text(text: str) -> float:
    found = claims(text)
    return sum(found) / len(found) if found else NEUTRAL


@SCORERS.register("arithmetic", aliases=("arith", "calc"))
class ArithmeticChecker(Scorer):
    name = "arithmetic"
    summary = "share of the step's arithmetic claims that hold (exact fractions; 0.5 if none)"
    score_range = (0.0, 1.0)
    process = True

    async def ascore(self, attempts: Sequence[Attempt]) -> ScoreBatch:
        return ScoreBatch(
            tuple(score_text(a.steps[-1] if len(a.steps) > 1 else a.text) for a in attempts)
        )
