"""Math word problems and competition math: GSM8K, MATH-500, AIME.

Answers are extracted in this order: the last `\\boxed{...}`, the last "The answer is ...",
GSM8K's `#### ...`, else the last number in the text. Equivalence is decided by
math-verify (parse both sides, then verify), so `1,000` = `1000`, `0.5` = `1/2` =
`\\frac{1}{2}`, `$18` = `18 dollars` = `18`. math-verify's own timeouts use SIGALRM, which
only works in the main thread; ponder calls it from worker threads (server, eval), so those
timeouts are off and inputs are capped in length instead.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from ponder.backends.base import Message
from ponder.tasks.base import TASKS, Task

logging.getLogger("math_verify").setLevel(logging.ERROR)

MAX_ANSWER_CHARS = 200
"""Longer "answers" are not parsed by math-verify (sympy can take seconds on them)."""

SYSTEM_PROMPT = (
    "Solve the math problem step by step. Separate the steps with a blank line. "
    "Show each calculation. End with a final line of the form 'The answer is N.', "
    "where N is the final answer only."
)

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?(?:/\d+)?%?|-?\.\d+")
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer)\s*(?:is|:|=)\s*:?\s*(.+?)(?:\.\s|\.?\s*$|\n)",
    re.IGNORECASE,
)
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
_CONFIG = (LatexExtractionConfig(), ExprExtractionConfig())


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


def _clean(answer: str) -> str | None:
    answer = answer.strip().strip("*").strip()
    answer = re.sub(r"^\$+|\$+$", "", answer).strip()  # LaTeX math delimiters
    answer = answer.rstrip(".").strip()
    return answer or None


def extract_answer(text: str) -> str | None:
    boxed = last_boxed(text)
    if boxed is not None:
        return _clean(boxed)
    said = _ANSWER_IS.findall(text)
    if said:
        inner = last_boxed(said[-1])
        answer = _clean(inner if inner is not None else said[-1])
        if answer:
            return answer
    hashes = _HASHES.findall(text)
    if hashes:
        return _clean(hashes[-1])
    numbers = _NUMBER.findall(text)
    if numbers:
        return _clean(numbers[-1].replace("$", ""))
    return None


@lru_cache(maxsize=65536)
def _parsed(answer: str) -> tuple[Any, ...]:
    text = answer[:MAX_ANSWER_CHARS]
    # Bare LaTeX such as \sqrt{2} must sit inside math delimiters for math-verify; plain
    # text ("18 dollars") parses best as it is.
    forms = [f"${text}$", text] if ("\\" in text or "{" in text) else [text, f"${text}$"]
    for form in forms:
        found = parse(form, extraction_config=_CONFIG, parsing_timeout=None)  # type: ignore[arg-type]
        if found:
            return tuple(found)
    return ()


def _normal(answer: str) -> str:
    return re.sub(r"\s+|\\[,!;: ]|\\text\{[^}]*\}|\$|,", "", answer).lower()


@lru_cache(maxsize=65536)
def answers_equivalent(a: str, b: str) -> bool:
    if a == b or _normal(a) == _normal(b):
        return True
    left, right = _parsed(a), _parsed(b)
    if not left or not right:
        return False
    try:
        return bool(verify(list(left), list(right), timeout_seconds=None))  # type: ignore[arg-type]
    except Exception:  # math-verify raises on exotic sympy objects: not equal
        return False


@TASKS.register("math")
class MathTask(Task):
    name = "math"

    def __init__(self, system_prompt: str = SYSTEM_PROMPT) -> None:
        self.system_prompt = system_prompt

    def prompt(self, question: str) -> tuple[Message, ...]:
        return (Message("system", self.system_prompt), Message("user", question.strip()))

    def extract(self, text: str) -> str | None:
        return extract_answer(text)

    def equivalent(self, a: str, b: str) -> bool:
        return answers_equivalent(a, b)
