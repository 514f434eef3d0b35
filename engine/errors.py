"""The engine's error hierarchy: one module, so the API and CLI can map them to codes and messages."""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(EngineError):
    """Settings or flags are invalid."""


class NotFound(EngineError):
    """A named object (application, DID, provider) does not exist."""


class Conflict(EngineError):
    """The object is not in a state that allows the operation (e.g. resuming a job that is done, resending to a
    phone that opted out); *reason*, when given, is a short machine-readable word."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidInput(EngineError):
    """A caller-supplied value is invalid; the message names the parameter. *details*: the individual problems
    when there are many (e.g. the invalid rows of a job's CSV), for a caller that wants them all."""

    def __init__(self, param: str, message: str, details: list[dict[str, object]] | None = None) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.details = details


class ProviderError(EngineError):
    """A carrier refused or failed an account operation (number search, purchase, release).

    ``status`` is the carrier's HTTP status (None for network trouble), ``code`` its error code.
    """

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
