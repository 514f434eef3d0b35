"""Malformed requests: counted, and logged at WARNING at most once per peer per interval, never as ERRORs.

aiohttp's request handler logs every request its parser refuses (a bad request line, a header line too
long, data after ``Connection: close``, ...) and every body it cannot decode while draining it at ERROR,
with a traceback: 3,000 hostile requests left ~2,000 tracebacks in the log. :class:`BadRequestLog` is
the logger the engine hands aiohttp instead (``RequestHandler``'s documented ``logger`` argument, so
no aiohttp internals are patched). It recognises those client faults by their exception, counts them in
``engine_http_bad_requests_total{reason}`` and passes everything else through to ``aiohttp.server``
unchanged, so a real server fault still logs with its traceback.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from engine.logsafe import redact
from engine.metrics import LoopCounter

__all__ = ["BadRequestLog", "client_fault"]

log = logging.getLogger(__name__)

MAX_PEERS: Final = 10_000  # peers remembered for rate limiting; a flood from more forgets the oldest
_MAX_DETAIL: Final = 200


def client_fault(exc: BaseException | None) -> str | None:
    """The kind of client fault *exc* is (its class name, a bounded set), or None for anything else."""
    if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:  # the parser refused the request
        return type(exc).__name__
    if isinstance(exc, web.RequestPayloadError):  # a body that cannot be decoded, met while draining it
        return type(exc).__name__
    return None


def _exception(exc_info: Any) -> BaseException | None:
    """The exception a logging call's ``exc_info`` argument refers to."""
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    return sys.exception() if exc_info else None


def _detail(exc: BaseException) -> str:
    """One short line: aiohttp's messages span lines (a caret under the bad byte) and may echo the request."""
    text = getattr(exc, "message", None) or str(exc)
    return redact(" ".join(str(text).split()))[:_MAX_DETAIL]


class BadRequestLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger with client faults counted and rate-limited per peer (see the module doc)."""

    def __init__(
        self,
        counter: LoopCounter,
        *,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(logger or logging.getLogger("aiohttp.server"), {})
        self.counter = counter
        self.interval = interval
        self.clock = clock
        self._peers: dict[str, tuple[float, int]] = {}  # peer -> (when last logged, faults not logged since)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        """Count and rate-limit client faults; pass every other record through unchanged."""
        exc = _exception(kwargs.get("exc_info"))
        reason = client_fault(exc)
        if reason is None or exc is None:
            super().log(level, msg, *args, **kwargs)
            return
        self.counter.labels(reason).inc()
        if level >= logging.WARNING:  # aiohttp keeps some at DEBUG (TLS spoken to a plain port): so do we
            # aiohttp's message for a refused request is "Error handling request from %s" % request.remote.
            peer = args[0] if len(args) == 1 and isinstance(args[0], str) else "an unknown peer"
            self._warn(peer, reason, exc)

    def _warn(self, peer: str, reason: str, exc: BaseException) -> None:
        now = self.clock()
        last = self._peers.get(peer)
        if last is not None and now - last[0] < self.interval:
            self._peers[peer] = (last[0], last[1] + 1)
            return
        if last is None and len(self._peers) >= MAX_PEERS:
            self._forget(now)
        self._peers[peer] = (now, 0)
        skipped = last[1] if last is not None else 0
        more = f" [{skipped} more from it not logged since its last warning]" if skipped else ""
        log.warning("malformed HTTP request from %s refused (%s: %s)%s", peer, reason, _detail(exc), more)

    def _forget(self, now: float) -> None:
        """Make room: drop peers not logged within the interval, or everyone if all are recent."""
        stale = [p for p, (when, _) in self._peers.items() if now - when >= self.interval]
        for peer in stale:
            del self._peers[peer]
        if len(self._peers) >= MAX_PEERS:
            self._peers.clear()
