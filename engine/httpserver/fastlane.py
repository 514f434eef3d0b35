"""A fast lane in front of aiohttp: plain HTTP/1.1 for the one request shape a carrier sends by the thousand.

Each connection starts in the lane. A request the lane takes — ``POST`` to a registered path, HTTP/1.1, a
well-formed head, one Content-Length, a URL-encoded body, no Transfer-/Content-Encoding, no Expect — goes to
its handler with the raw body, and the handler answers with the whole response: at once, or once a future is
done (a status callback is answered when its batch is written). Pipelined requests are handled as they arrive,
their answers written in order, as many per write as are ready.

Anything else — another path or method, an odd or malformed head, a handler that declines — is aiohttp's: once
the lane has answered what came before it, the connection is handed over (``transport.set_protocol``) with the
unread bytes, and aiohttp serves it from then on exactly as it serves any connection (its routes, limits and
400s). So the lane never has to reproduce an error path; it only has to recognise the common case exactly.

Timeouts as aiohttp's: a request whose head or body does not arrive within the read timeout gets 408 and the
connection is closed; an idle kept-alive connection is closed after the keep-alive timeout; an answer whose
future is not done within the handler's limit gets the handler's "late" response.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from email.utils import formatdate
from typing import Any, Final, cast

from aiohttp import web

__all__ = ["Answer", "FastHandler", "FastSite", "Later", "plain_response"]

MAX_HEAD: Final = 8 * 1024
MAX_BODY: Final = 64 * 1024
MAX_PIPELINE: Final = 512  # answers waiting on one connection before it stops reading
KEEPALIVE_TIMEOUT: Final = 75.0  # aiohttp's default

# "POST /path HTTP/1.1" with a path of safe characters only (its text is then exactly what aiohttp's path_qs is).
_REQUEST_LINE: Final = re.compile(rb"POST (/[A-Za-z0-9/_.~-]*) HTTP/1\.1")
# Header lines as RFC 9110 spells them (token name, no obs-fold, no control characters but HTAB in values).
_HEADERS: Final = re.compile(rb"(?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*)*")
_FORM_TYPES: Final = frozenset({b"application/x-www-form-urlencoded",
                                b"application/x-www-form-urlencoded; charset=utf-8",
                                b"application/x-www-form-urlencoded;charset=utf-8"})
# The headers the lane looks at (in the lowercased head); any other is ignored.
_FIELDS: Final = frozenset({b"content-length", b"content-type", b"connection", b"transfer-encoding",
                            b"content-encoding", b"expect", b"upgrade"})


class Later:
    """An answer that is ready when *future* is done: *response* (None: the future's result is the response)."""

    __slots__ = ("future", "response")

    def __init__(self, future: asyncio.Future[Any], response: bytes | None) -> None:
        self.future = future
        self.response = response


Answer = bytes | Later
# A handler gets the request's path, its head (as sent and lowercased) and body; None declines it (aiohttp's).
FastHandler = Callable[[bytes, bytes, bytes, bytes], Answer | None]


def header(head: bytes, low: bytes, name: bytes) -> bytes | None:
    """The value of header *name* (given as b"\\r\\nname:", lowercase) in a request head, or None."""
    i = low.find(name)
    if i < 0:
        return None
    j = head.find(b"\r\n", i + 2)
    return head[i + len(name) : j if j >= 0 else len(head)].strip()


_date_second = -1
_date_text = b""


def _date() -> bytes:
    global _date_second, _date_text
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date_text = formatdate(now, usegmt=True).encode()
    return _date_text


def plain_response(status: int, reason: str, text: str = "", *, close: bool = False) -> bytes:
    """A whole HTTP/1.1 response: *text* as text/plain (none for 204)."""
    body = text.encode()
    head = [f"HTTP/1.1 {status} {reason}", "Server: engine", f"Date: {_date().decode()}"]
    if status != 204:
        head += ["Content-Type: text/plain; charset=utf-8", f"Content-Length: {len(body)}"]
    if close:
        head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class _Entry:
    __slots__ = ("answer", "close", "since")

    def __init__(self, answer: Answer, close: bool, since: float) -> None:
        self.answer = answer
        self.close = close
        self.since = since


class _Lane(asyncio.Protocol):
    """One connection, until it is handed over to aiohttp or closed."""

    def __init__(self, site: FastSite) -> None:
        self.site = site
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.queue: deque[_Entry] = deque()
        self.waiting_on: asyncio.Future[Any] | None = None
        self.handing_over = False  # a request for aiohttp is first in buf: hand over once the queue is empty
        self.closing = False  # answer what is queued, then close (Connection: close, EOF, a timeout)
        self.eof = False
        self.paused = False
        self.partial_since: float | None = None
        self.active_at = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None

    # ---- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        self.site.lanes.add(self)
        self.timer = self.loop.call_later(self.site.check_interval, self._check)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.active_at = self.loop.time()
        if not (self.handing_over or self.closing):
            self._parse()
        self._pump()

    def eof_received(self) -> bool:
        self.eof = True
        if not self.handing_over:
            self.closing = True  # no more requests: answer those we have, then close
        self._pump()
        return True  # keep the transport open to write those answers

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        self.transport = None
        self.queue.clear()

    # ---- requests -----------------------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self.buf
        while buf:
            if len(self.queue) >= MAX_PIPELINE:
                if self.transport is not None and not self.paused:
                    self.paused = True
                    self.transport.pause_reading()
                return
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    self.handing_over = True
                elif self.partial_since is None:
                    self.partial_since = self.loop.time()
                return
            head = bytes(buf[:end])
            line_end = head.find(b"\r\n")
            m = _REQUEST_LINE.fullmatch(head, 0, end if line_end < 0 else line_end)
            path = b"" if m is None else m.group(1)
            handler = self.site.handler_for(path) if path else None
            if handler is None:
                self.handing_over = True
                return
            low = head.lower()
            framing = self._framing(head, low, end if line_end < 0 else line_end)
            if framing is None:
                self.handing_over = True
                return
            length, close = framing
            total = end + 4 + length
            if len(buf) < total:
                if self.partial_since is None:
                    self.partial_since = self.loop.time()
                return
            answer = handler(path, head, low, bytes(buf[end + 4 : total]))
            if answer is None:
                self.handing_over = True
                return
            del buf[:total]
            self.partial_since = None
            self.queue.append(_Entry(answer, close, self.loop.time()))
            if close:
                self.closing = True
                return

    @staticmethod
    def _framing(head: bytes, low: bytes, line_end: int) -> tuple[int, bool] | None:
        """(body length, Connection: close) when the head is one the lane serves; None otherwise."""
        if len(head) > MAX_HEAD or not _HEADERS.fullmatch(head, line_end):
            return None
        length = -1
        close = form = False
        # Line by line (the head is well-formed: _HEADERS matched): a name is what precedes the line's first ':'
        # (names are tokens, so the colon follows at once), its value the rest without spaces or tabs around it.
        # (A regex with a lazy value and a lookahead cost ~10 µs a head; this, ~1.)
        for line in low[line_end + 2 :].split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name not in _FIELDS:
                continue
            value = value.strip(b" \t")
            if name == b"content-length":
                if length >= 0 or not value.isdigit() or len(value) > 6:
                    return None
                length = int(value)
            elif name == b"content-type":
                if value not in _FORM_TYPES:
                    return None
                form = True
            elif name == b"connection" and value in (b"keep-alive", b"close"):
                close = value == b"close"
            else:  # Transfer-/Content-Encoding, Expect, Upgrade, an odd Connection: aiohttp's
                return None
        if length < 0 or length > MAX_BODY or not form:
            return None
        return length, close

    # ---- answers ------------------------------------------------------------------------------------
    def _pump(self) -> None:
        while self._write_ready():
            # Reading had stopped on a full queue and resumed: what it had buffered is parsed now.
            self._parse()

    def _write_ready(self) -> bool:
        """Write every answer ready at the head of the queue; True when reading resumed (parse again)."""
        transport = self.transport
        if transport is None:
            return False
        out: list[bytes] = []
        close = False
        queue = self.queue
        while queue:
            entry = queue[0]
            answer = entry.answer
            if isinstance(answer, Later):
                future = answer.future
                if not future.done():
                    if self.waiting_on is not future:
                        self.waiting_on = future
                        future.add_done_callback(self._done)
                    break
                if answer.response is not None:
                    response = answer.response
                elif future.cancelled() or future.exception() is not None:
                    response = self.site.failed
                else:
                    response = future.result()
            else:
                response = answer
            queue.popleft()
            out.append(response)
            if entry.close:
                close = True
                break
        if out:
            transport.write(b"".join(out))
        if close or (self.closing and not queue and not self.handing_over):
            self._close()
            return False
        if self.handing_over and not queue:
            self._hand_over()
            return False
        if self.paused and len(queue) < MAX_PIPELINE // 2:
            self.paused = False
            transport.resume_reading()
            return not (self.handing_over or self.closing)
        return False

    def _done(self, future: asyncio.Future[Any]) -> None:
        if self.waiting_on is future:
            self.waiting_on = None
        self._pump()

    def _hand_over(self) -> None:
        """From now on aiohttp serves this connection, starting with the bytes not read yet."""
        transport = self.transport
        if transport is None:
            return
        self._forget()
        self.transport = None
        if self.paused:
            transport.resume_reading()
        protocol = self.site.fallback()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self.buf:
            protocol.data_received(bytes(self.buf))
        if self.eof:
            protocol.eof_received()

    def _close(self) -> None:
        transport, self.transport = self.transport, None
        self._forget()
        if transport is not None:
            transport.close()

    def _forget(self) -> None:
        self.site.lanes.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _check(self) -> None:
        """Every check_interval: late answers, requests that stopped arriving, idle connections."""
        self.timer = None
        transport = self.transport
        if transport is None:
            return
        now = self.loop.time()
        site = self.site
        if self.queue:
            head = self.queue[0]
            late = isinstance(head.answer, Later) and not head.answer.future.done()
            if late and now - head.since > site.answer_timeout:
                head.answer = site.late
                self._pump()
        elif self.partial_since is not None and now - self.partial_since > site.read_timeout:
            transport.write(site.timed_out)
            self._close()
            return
        elif not self.buf and now - self.active_at > KEEPALIVE_TIMEOUT:
            self._close()
            return
        if self.transport is not None:
            self.timer = self.loop.call_later(site.check_interval, self._check)


class FastSite(web.TCPSite):
    """A TCPSite whose connections go through the lane first; *handlers* maps a path prefix to its handler.

    *late* answers a request whose future is not done after *answer_timeout* seconds; *failed* one whose future
    failed. A lane's 408 after *read_timeout* seconds says what aiohttp's form reader says.
    """

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, handlers: Mapping[bytes, FastHandler],
                 read_timeout: float, answer_timeout: float, late: bytes, failed: bytes) -> None:
        super().__init__(runner, host, port)
        self.handlers = dict(handlers)
        self.read_timeout = read_timeout
        self.answer_timeout = answer_timeout
        self.check_interval = min(1.0, read_timeout / 4)
        self.late = late
        self.failed = failed
        self.timed_out = plain_response(408, "Request Timeout",
                                        f"the request body did not arrive within {read_timeout:g} s", close=True)
        self.lanes: set[_Lane] = set()

    def handler_for(self, path: bytes) -> FastHandler | None:
        for prefix, handler in self.handlers.items():
            if path.startswith(prefix):
                return handler
        return None

    def fallback(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None
        return cast(asyncio.Protocol, server())

    async def start(self) -> None:
        self._runner._reg_site(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Lane(self), self._host, self._port,
                                                backlog=self._backlog, reuse_address=self._reuse_address,
                                                reuse_port=self._reuse_port)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port

    async def stop(self) -> None:
        for lane in list(self.lanes):
            lane._close()
        await super().stop()
