"""The Task interface: strategies and scorers never parse answers themselves.

A task turns a question into a prompt, extracts the final answer from a completion (None
when there is none: the completion abstains), and decides when two answers are
equivalent. Voting clusters equivalent answers with `cluster`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from ponder.backends.base import Message
from ponder.registry import Registry

TASKS: Registry[type[Task]] = Registry("task", "ponder.tasks")


class Task(ABC):
    name: str = "task"

    @abstractmethod
    def prompt(self, question: str) -> tuple[Message, ...]:
        """The chat prompt that asks the model `question`."""

    @abstractmethod
    def extract(self, text: str) -> str | None:
        """The final answer in a completion, or None when it has none."""

    @abstractmethod
    def equivalent(self, a: str, b: str) -> bool:
        """Whether two extracted answers (or an answer and a gold answer) are the same."""

    def is_correct(self, answer: str | None, gold: str) -> bool:
        return answer is not None and self.equivalent(answer, gold)

    def cluster(self, answers: Sequence[str | None]) -> list[int | None]:
        """Equivalence-class index per answer, numbered by first appearance; None stays None.

        Each answer is compared with one representative per class found so far, and equal
        strings skip the comparison.
        """
        representatives: list[str] = []
        by_string: dict[str, int] = {}
        labels: list[int | None] = []
        for answer in answers:
            if answer is None:
                labels.append(None)
                continue
            label = by_string.get(answer)
            if label is None:
                label = next(
                    (i for i, rep in enumerate(representatives) if self.equivalent(answer, rep)),
                    None,
                )
                if label is None:
                    label = len(representatives)
                    representatives.append(answer)
                by_string[answer] = label
            labels.append(label)
        return labels


def get_task(name: str = "math") -> Task:
    return TASKS.get(name)()
