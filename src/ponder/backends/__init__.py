"""Backends: the embedded llama.cpp model, any OpenAI-compatible server, a scripted double.

`load_backend(kind, model=..., ...)` builds one by its registered name; each backend module
registers a factory taking a `BackendSpec`.
"""

from ponder.backends.base import (
    Backend,
    Capabilities,
    Completion,
    Generation,
    Message,
    Prompt,
    SamplingParams,
    TextScore,
    TokenLogprob,
)
from ponder.backends.registry import BACKENDS, BackendSpec, load_backend

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendSpec",
    "Capabilities",
    "Completion",
    "Generation",
    "Message",
    "Prompt",
    "SamplingParams",
    "TextScore",
    "TokenLogprob",
    "load_backend",
]
