"""The Task interface: strategies and scorers never parse answers themselves.

A task turns a question into a prompt, extracts the final answer from a completion (None
when there is none: the completion abstains), and decides when two answers are
equivalent. Voting clusters equivalent answers with `cluster`.
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

    @abstractmethod
    def prompt(self, question: str) -> tuple[Message, ...]:
        """The chat prompt that asks the model `question`."""

    @abstractmethod
    def extract(self, text: str, *, complete: bool = True) -> str | None:
        """The final answer in a completion, or None when it has none (it abstains).

        `complete` is False for a completion cut off at its token limit: a task should then
        take only an answer the text states explicitly, never a number it stopped on."""

    @abstractmethod
    def equivalent(self, a: str, b: str) -> bool:
        """Whether two extracted answers (or an answer and a gold answer) are the same."""

    def fingerprint(self) -> str:
        """Identifies the prompt this task builds: samples drawn with another never mix."""
        probe = [m.to_dict() for m in self.prompt("<<QUESTION>>")]
        blob = json.dumps([self.name, probe])  # the bank keys of earlier runs depend on it
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def is_correct(self, answer: str | None, gold: str) -> bool:
        return answer is not None and self.equivalent(answer, gold)

    def exact_key(self, answer: str) -> Hashable | None:
        """A value that decides equivalence without `equivalent` when the answer has one
        (equal keys: equivalent; two different keys: not). None by default."""
        return None

    def cluster(self, answers: Sequence[str | None]) -> list[int | None]:
        """Equivalence-class index per answer, numbered by first appearance; None stays None.

        Equal strings and equal `exact_key`s skip the comparison; otherwise an answer is
        compared with one representative per class found so far (two keyed answers never
        need `equivalent`: their keys differ).
        """
        representatives: list[tuple[str, Hashable | None]] = []
        by_string: dict[str, int] = {}
        by_key: dict[Hashable, int] = {}
        labels: list[int | None] = []
        for answer in answers:
            if answer is None:
                labels.append(None)
                continue
            label = by_string.get(answer)
            if label is None:
                key = self.exact_key(answer)
                label = by_key.get(key) if key is not None else None
                if label is None:
                    label = next(
                        (
                            i
                            for i, (rep, rep_key) in enumerate(representatives)
                            if (key is None or rep_key is None) and self.equivalent(answer, rep)
                        ),
                        None,
                    )
                if label is None:
                    label = len(representatives)
                    representatives.append((answer, key))
                if key is not None:
                    by_key.setdefault(key, label)
                by_string[answer] = label
            labels.append(label)
        return labels


TASKS: Registry[type[Task]] = Registry("task", "ponder.tasks", Task)


def get_task(name: str = "math") -> Task:
    return TASKS.get(name)()
