"""A question with its gold answer: what datasets give and the sample bank stores."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    question: str
    answer: str
    """The gold final answer (GSM8K's worked solution reduced to the number after ####)."""
    solution: str = ""
    """A worked solution when the source has one (shown in the report, never to the model)."""

    @property
    def digest(self) -> str:
        """Identifies the text: samples stored under this id must be of this very question
        (a corrected gold answer leaves the samples valid)."""
        return hashlib.sha256(self.question.encode()).hexdigest()[:16]
