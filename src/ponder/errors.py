"""Typed errors. Every message says what the user should change.

The CLI prints a `PonderError` on one line and exits 2; the server maps each class to an
HTTP status through `http_status`.
"""

from __future__ import annotations


class PonderError(Exception):
    """Base class of every error ponder raises on purpose."""

    http_status = 500


class ConfigError(PonderError, ValueError):
    """A bad argument or option: the caller has to change its input."""

    http_status = 400


class UnknownNameError(ConfigError, KeyError):
    """A name (strategy, scorer, backend, model, dataset) that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class BudgetError(ConfigError):
    """The requested work does not fit the budget that was given."""


class ContextOverflowError(ConfigError):
    """A prompt (plus prefix) longer than the model's context window."""


class ModelError(PonderError):
    """A model file that is missing, corrupt or cannot be loaded."""


class UnsupportedError(PonderError):
    """The backend cannot do what was asked (e.g. logprobs, scoring a text)."""

    http_status = 400


class BackendError(PonderError):
    """A backend failed while serving a request."""

    http_status = 502


class BackendUnavailableError(BackendError):
    """The server could not be reached (refused, DNS, dropped connection)."""


class BackendTimeoutError(BackendError):
    """The backend did not answer within its timeout."""

    http_status = 504


class UpstreamError(BackendError):
    """The upstream server answered with an error status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ScorerError(PonderError):
    """A scorer failed (reward endpoint down, malformed reply, NaN score)."""

    http_status = 502


class DataError(PonderError):
    """A dataset or sample bank that is missing, malformed, locked or corrupt."""

    http_status = 400


class Cancelled(PonderError):
    """The caller went away; the work was stopped on purpose."""

    http_status = 499
