"""Backends: the embedded llama.cpp model, any OpenAI-compatible server, a scripted double.

`load_backend(kind, model=..., ...)` builds one by its registered name from a `BackendSpec`.
The values they exchange (prompts, sampling parameters, completions) live in `ponder.core`.
"""

from ponder.backends.base import Backend, BackendSpec, Capabilities
from ponder.backends.registry import BACKENDS, load_backend

__all__ = ["BACKENDS", "Backend", "BackendSpec", "Capabilities", "load_backend"]
