"""The Task interface: strategies and scorers never parse answers themselves.

A task turns a question into a prompt, extracts the final answer from a completion (None
when there is none: the completion abstains), and decides when two answers are
equivalent. Equivalence rests on one canonical value per answer (`canonical`), computed
from that answer alone, so it is transitive; a task may also join, pair by pair, answers
whose canonical values cannot show that they are the same (`joined`). Voting clusters
equivalent answers with `cluster`, whose partition does not depend on the order of the
answers.

A task whose answers only mean something with their question (code: a function is run on
inputs taken from its question's docstring) binds itself to it with `for_question`; every
front end asks for answers through the bound task. Math needs no binding.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from typing import ClassVar

from ponder.core import Message
from ponder.registry import Registry


class Task(ABC):
    name: ClassVar[str] = "task"
    """Set by the registry."""
    default_scorer: ClassVar[str | None] = None
    """The outcome scorer a strategy that needs one gets when none is named: one that costs
    no extra model call."""
    default_process_scorer: ClassVar[str | None] = None
    """The same for step-level search."""

    def for_question(self, question: str) -> Task:
        """This task for one question: what extracts, compares and clusters its answers
        (itself by default: answers that mean the same whatever the question)."""
        del question
        return self

    @abstractmethod
    def prompt(self, question: str) -> tuple[Message, ...]:
        """The chat prompt that asks the model `question`."""

    @abstractmethod
    def extract(self, text: str, *, complete: bool = True) -> str | None:
        """The final answer in a completion, or None when it has none (it abstains).

        `complete` is False for a completion cut off at its token limit: a task should then
        take only an answer the text states explicitly, never a number it stopped on."""

    @abstractmethod
    def canonical(self, answer: str) -> Hashable:
        """The one value an extracted (or gold) answer stands for, computed from that answer
        alone: answers with equal canonical values are equivalent."""

    def joined(self, a: str, b: str) -> bool:
        """Whether two answers whose canonical values differ are equivalent all the same
        (say, two forms of one expression that no canonical form brings together). Must be
        symmetric; `cluster` asks it of one representative per pair of classes. None by
        default."""
        return False

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two extracted answers (or an answer and a gold answer) are the same."""
        return self.canonical(a) == self.canonical(b) or self.joined(a, b)

    def fingerprint(self) -> str:
        """Identifies the prompt this task builds: samples drawn with another never mix."""
        probe = [m.to_dict() for m in self.prompt("<<QUESTION>>")]
        blob = json.dumps([self.name, probe])  # the bank keys of earlier runs depend on it
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def is_correct(self, answer: str | None, gold: str) -> bool:
        return answer is not None and self.equivalent(answer, gold)

    def cluster(self, answers: Sequence[str | None]) -> list[int | None]:
        """Equivalence-class index per answer, numbered by first appearance; None stays None.

        Answers are grouped by canonical value; then classes are merged (union-find) when
        `joined` holds for their representatives, the least answer string of each class.
        Neither step looks at the order of the answers, so reordering them only renumbers
        the classes. A subset of the answers is clustered as its share of the whole is,
        except where `joined` is not transitive (a chain a~b~c merges a and c only when b
        is present).
        """
        classes: dict[Hashable, list[str]] = {}
        for answer in dict.fromkeys(a for a in answers if a is not None):
            classes.setdefault(self.canonical(answer), []).append(answer)
        keys = list(classes)
        representatives = [min(classes[k]) for k in keys]
        parent = list(range(len(keys)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i in range(len(keys)):
            for j in range(i + 1, len(keys)):
                if root(i) != root(j) and self.joined(representatives[i], representatives[j]):
                    parent[max(root(i), root(j))] = min(root(i), root(j))
        group = {answer: root(i) for i, k in enumerate(keys) for answer in classes[k]}
        numbers: dict[int, int] = {}
        return [None if a is None else numbers.setdefault(group[a], len(numbers)) for a in answers]


TASKS: Registry[type[Task]] = Registry("task", "ponder.tasks", Task)


def get_task(name: str = "math") -> Task:
    return TASKS.get(name)()
