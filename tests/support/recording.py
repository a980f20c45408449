"""A scripted backend that keeps what it was asked, to check what strategies report."""

from __future__ import annotations

from collections.abc import Sequence

from ponder.backends.scripted import ScriptedBackend
from ponder.core import (
    Generation,
    Prompt,
    SamplingParams,
    TextScore,
    TokenCallback,
    TokenWatch,
)
from ponder.usage import Usage


class Recording(ScriptedBackend):
    """Keeps every generation it answers and adds up the usage of all its calls."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.generations: list[Generation] = []
        self.spent = Usage()

    @property
    def sizes(self) -> list[int]:
        """Samples per prefix of each call (`n`)."""
        return [len(g.groups[0]) if g.groups else 0 for g in self.generations]

    async def acontinue(
        self,
        prompt: Prompt,
        prefixes: Sequence[str],
        params: SamplingParams = SamplingParams(),
        *,
        n: int = 1,
        on_tokens: TokenCallback | None = None,
        watch: TokenWatch | None = None,
    ) -> Generation:
        generation = await super().acontinue(
            prompt, prefixes, params, n=n, on_tokens=on_tokens, watch=watch
        )
        self.generations.append(generation)
        self.spent += generation.usage
        return generation

    async def ascore(self, prompt: Prompt, continuation: str) -> TextScore:
        scored = await super().ascore(prompt, continuation)
        self.spent += scored.usage
        return scored
