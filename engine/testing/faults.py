"""Fault injection: make the next create requests fail with an HTTP error, or hang before answering.

Failures answer before anything else (even authentication), like a carrier front end that is down;
hangs hold the reply after the whole request arrived, like a slow carrier, so the message is still
created when the client has given up, which is what makes a timeout ambiguous.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from engine.testing.wire import error

__all__ = ["Fault", "Faults"]

_DEFAULT_CODES: Final = {429: 20429, 500: 20500, 503: 20503}
_DEFAULT_MESSAGES: Final = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass(slots=True)
class Fault:
    """A pending injected failure (or hang) for the next ``remaining`` create requests."""

    remaining: int
    status: int = 0
    retry_after: float | None = None
    code: int | None = None
    seconds: float = 0.0


def _take(faults: deque[Fault]) -> Fault | None:
    """Use up one request of the oldest pending fault."""
    if not faults:
        return None
    fault = faults[0]
    fault.remaining -= 1
    if fault.remaining <= 0:
        faults.popleft()
    return fault


class Faults:
    """Pending failures and hangs, each used up request by request in the order injected."""

    def __init__(self) -> None:
        self._failures: deque[Fault] = deque()
        self._hangs: deque[Fault] = deque()

    def inject(self, status: int, count: int, retry_after: float | None = None, code: int | None = None) -> None:
        """Make the next ``count`` create requests fail with HTTP ``status`` (429 adds Retry-After)."""
        if not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if count < 1:
            raise ValueError("count must be >= 1")
        self._failures.append(Fault(remaining=count, status=status, retry_after=retry_after, code=code))

    def hang(self, count: int, seconds: float) -> None:
        """Make the next ``count`` create requests wait ``seconds`` before answering (timeout tests)."""
        if count < 1:
            raise ValueError("count must be >= 1")
        self._hangs.append(Fault(remaining=count, seconds=seconds))

    def clear(self) -> None:
        """Drop every pending failure and hang."""
        self._failures.clear()
        self._hangs.clear()

    def failure(self) -> web.Response | None:
        """The injected error reply for this request, or None (the common case: one deque check)."""
        fault = _take(self._failures)
        if fault is None:
            return None
        status = fault.status
        code = fault.code if fault.code is not None else _DEFAULT_CODES.get(status, status * 100)
        headers = None
        if fault.retry_after is not None:
            headers = {"Retry-After": format(fault.retry_after, "g")}
        elif status == 429:
            headers = {"Retry-After": "1"}
        return error(status, code, _DEFAULT_MESSAGES.get(status, "Injected fault"), headers)

    @property
    def hangs_pending(self) -> bool:
        """True when some request is still to hang (checked before awaiting :meth:`wait_hang`)."""
        return bool(self._hangs)

    async def wait_hang(self, stopping: asyncio.Event) -> bool:
        """Sleep for an injected hang; True when *stopping* cut it short and the request should answer 503."""
        hang = _take(self._hangs)
        if hang is None:
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(hang.seconds):
                await stopping.wait()
        return stopping.is_set()
