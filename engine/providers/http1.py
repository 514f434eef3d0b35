"""A lean HTTP/1.1 client for the carrier's create call: kept-alive connections, one request on each at a time.

The dispatch worker sends every message through it (:class:`~engine.providers.twilio.TwilioClient` ``pool=``):
about a third of aiohttp's client cost per request, and every way a request can fail lands in exactly one of
two exceptions, which is what at-most-once delivery needs to know:

- :class:`NotSent` -- nothing of the request left this process: the name did not resolve, the connection was
  refused or did not open within the connect timeout (TLS handshake included), or no connection of the pool
  became free within it;
- :class:`MaybeSent` -- writing had begun, and no complete answer came: the connection closed or broke, the
  carrier fell silent for the read timeout (no byte for that long), or its answer was not HTTP. The carrier may
  have created the message.

Answers are parsed by httptools (llhttp): Content-Length, chunked and close-delimited bodies, 1xx skipped. A
connection is reused only after a complete answer that allows it, and not after it idled longer than
``keepalive`` seconds (a server may close an idle connection at any moment; a request written into one it
already closed would end ambiguous).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Final, cast

import httptools
from yarl import URL

from engine.frozen import fast_init

__all__ = ["KEPT_HEADERS", "Http1Pool", "InFlight", "MaybeSent", "NotSent", "Reply", "host_header"]

MAX_HEAD: Final = 64 * 1024
MAX_BODY: Final = 8 * 1024 * 1024
KEPT_HEADERS: Final = ("retry-after", "content-length", "transfer-encoding", "content-type", "location")
_KEPT: Final = {name.encode(): name for name in KEPT_HEADERS} | {
    name.title().encode(): name for name in KEPT_HEADERS}


def host_header(url: URL) -> str:
    """The Host header for *url*: host[:port], the port left out when it is the scheme's, IPv6 in brackets."""
    value: str | None = url.host_port_subcomponent
    if value is None:
        raise ValueError(f"no host in {url}")
    return value


class NotSent(Exception):
    """The request never left: retrying it cannot duplicate anything."""


class MaybeSent(Exception):
    """The request was written, or partly, and no complete answer came: it may have been acted on."""


@fast_init
@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]  # those in KEPT_HEADERS (lowercase names); the first of repeated headers
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection; :meth:`send` writes a request and returns the future of its answer."""

    def __init__(self, pool: Http1Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.answer: asyncio.Future[Reply] | None = None
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.head_done = False
        self.keep_alive = False
        self.closed = False
        self.last_read = 0.0
        self.idle_since = 0.0

    # ---- a request ------------------------------------------------------------------------------------
    def send(self, data: bytes) -> asyncio.Future[Reply]:
        assert self.transport is not None and self.answer is None
        self.answer = answer = self.loop.create_future()
        self.headers = {}
        self.body = []
        self.size = 0
        self.head_done = False
        self.keep_alive = False
        self.last_read = self.loop.time()
        self.pool._busy(self)
        self.transport.write(data)
        return answer

    def _fail(self, exc: MaybeSent) -> None:
        answer, self.answer = self.answer, None
        self.pool.busy.discard(self)
        self._close()
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    # ---- asyncio.Protocol -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.last_read = self.loop.time()
        if self.answer is None:  # bytes nobody asked for: this connection cannot be trusted any more
            self._close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(MaybeSent("the answer switched protocols"))
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # a callback's own exception (a limit below) comes wrapped
            self._fail(cause if isinstance(cause, MaybeSent) else MaybeSent(f"the answer is not HTTP/1.1: {exc}"))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost settles the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
        self.pool.busy.discard(self)
        answer, self.answer = self.answer, None
        self.pool._lost(self)
        if answer is None or answer.done():
            return
        if self.head_done and self._close_delimited():  # the body ran to the end of the connection
            answer.set_result(self._reply())
            return
        why = f": {exc}" if exc is not None else ""
        answer.set_exception(MaybeSent(f"the connection closed before the whole answer arrived{why}"))

    # ---- httptools callbacks --------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.headers = {}
        self.body = []
        self.size = 0
        self.head_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.size += len(name) + len(value)
        if self.size > MAX_HEAD:
            raise MaybeSent("the answer's head is too long")
        key = _KEPT.get(name) or _KEPT.get(name.lower())
        if key is not None and key not in self.headers:
            self.headers[key] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.head_done = True
        self.size = 0

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > MAX_BODY:
            raise MaybeSent("the answer's body is too long")
        self.body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
            return
        self.keep_alive = self.parser.should_keep_alive()
        answer, self.answer = self.answer, None
        self.pool.busy.discard(self)
        if answer is not None and not answer.done():
            answer.set_result(self._reply())

    # ---- helpers --------------------------------------------------------------------------------------
    def _reply(self) -> Reply:
        return Reply(self.parser.get_status_code(), self.headers, b"".join(self.body))

    def _close_delimited(self) -> bool:
        h = self.headers
        return "content-length" not in h and "chunked" not in h.get("transfer-encoding", "").lower()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def reusable(self) -> bool:
        return not self.closed and self.keep_alive and self.answer is None and self.transport is not None


class InFlight:
    """A request written at once on an idle kept-alive connection (:meth:`Http1Pool.begin`), without a task: its
    ``answer`` is done once the reply is in (or MaybeSent); then :meth:`reply`."""

    __slots__ = ("answer", "conn", "pool")

    def __init__(self, pool: Http1Pool, conn: _Connection, answer: asyncio.Future[Reply]) -> None:
        self.pool = pool
        self.conn = conn
        self.answer = answer

    def reply(self) -> Reply:
        """Once ``answer`` is done: the reply, or its MaybeSent raised; the connection goes back to the pool (or is
        closed) exactly as :meth:`Http1Pool.request` leaves it."""
        answer, conn = self.answer, self.conn
        if answer.cancelled() or (
            (exc := answer.exception()) is not None and not isinstance(exc, MaybeSent)
        ):
            conn._close()  # as request() does on anything but a reply or MaybeSent
        self.pool._release(conn)
        return answer.result()


class Http1Pool:
    """Up to *limit* kept-alive connections to the origin of *base_url* (http or https)."""

    def __init__(self, base_url: str, *, limit: int, connect_timeout: float, read_timeout: float,
                 keepalive: float = 15.0, ssl_context: ssl.SSLContext | None = None) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.host = url.host
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.tls: ssl.SSLContext | None = None
        if url.scheme == "https":
            self.tls = ssl_context or ssl.create_default_context()
        self.host_header = host_header(url)
        self.limit = limit
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self.loop = asyncio.get_running_loop()
        self.idle: list[_Connection] = []
        self.count = 0  # open or opening
        self.waiting: deque[asyncio.Future[_Connection | None]] = deque()
        self.closed = False
        # Connections awaiting an answer; one sweep every read_timeout/8 (at most 1 s) fails those silent for the
        # read timeout (not a timer per request: they cost more than the rest of the request's bookkeeping).
        self.busy: set[_Connection] = set()
        self.sweep_every = min(1.0, read_timeout / 8)
        self._sweeper: asyncio.TimerHandle | None = None

    async def request(self, data: bytes) -> Reply:
        """Send one whole request (head and body, as bytes) and read its answer; NotSent or MaybeSent."""
        conn = self._idle_connection() or await self._acquire()
        try:
            reply = await conn.send(data)
        except MaybeSent:
            self._release(conn)
            raise
        except BaseException:  # cancelled while waiting: the answer would arrive on a connection nobody reads
            conn._close()
            self._release(conn)
            raise
        self._release(conn)
        return reply

    def begin(self, data: bytes) -> InFlight | None:
        """Write one whole request now on an idle kept-alive connection; None when there is none (nothing was
        written: use :meth:`request`, which may wait for or open one)."""
        conn = self._idle_connection()
        if conn is None:
            return None
        try:
            answer = conn.send(data)
        except BaseException:  # as request(): a connection in an unknown state is not used again
            conn._close()
            self._release(conn)
            raise
        return InFlight(self, conn, answer)

    async def close(self) -> None:
        self.closed = True
        if self._sweeper is not None and not self.busy:  # requests still out keep their read timeout
            self._sweeper.cancel()
            self._sweeper = None
        for conn in self.idle:
            conn._close()
        self.idle.clear()
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(NotSent("the client was closed"))

    # ---- the pool -------------------------------------------------------------------------------------
    def _busy(self, conn: _Connection) -> None:
        self.busy.add(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.sweep_every, self._sweep)

    def _sweep(self) -> None:
        """The read timeout counts from the last byte received (as aiohttp's sock_read does)."""
        self._sweeper = None
        now = self.loop.time()
        for conn in [c for c in self.busy if now - c.last_read >= self.read_timeout]:
            conn._fail(MaybeSent(f"no answer for {self.read_timeout:g} s after the request was sent"))
        if self.busy:
            self._sweeper = self.loop.call_later(self.sweep_every, self._sweep)

    def _idle_connection(self) -> _Connection | None:
        """A kept-alive connection ready for a request (the common case, without a coroutine); None: _acquire."""
        if self.closed:
            return None  # _acquire says why
        now = self.loop.time()
        while self.idle:
            conn = self.idle.pop()
            if conn.reusable and now - conn.idle_since < self.keepalive:
                return conn
            conn._close()
        return None

    async def _acquire(self) -> _Connection:
        if self.closed:
            raise NotSent("the client was closed")
        conn = self._idle_connection()
        if conn is not None:
            return conn
        if self.count >= self.limit:
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self.waiting.append(waiter)
            try:
                async with asyncio.timeout(self.connect_timeout):
                    handed = await waiter
            except BaseException as exc:
                if not waiter.done():
                    waiter.cancel()
                elif not waiter.cancelled() and waiter.exception() is None:  # handed over as we gave up: pass on
                    given = waiter.result()
                    if given is None:
                        self._give_back_place()
                    else:
                        self._release(given)
                if isinstance(exc, TimeoutError):
                    raise NotSent(f"no connection free within {self.connect_timeout:g} s") from None
                raise
            if handed is not None:
                return handed
            # A connection closed: its place is ours (count already includes it).
        else:
            self.count += 1
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, protocol = await self.loop.create_connection(
                    lambda: _Connection(self), self.host, self.port, ssl=self.tls,
                    server_hostname=self.host if self.tls is not None else None,
                )
        except TimeoutError:
            self._give_back_place()
            raise NotSent(f"no connection to {self.host_header} within {self.connect_timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            self._give_back_place()
            raise NotSent(f"cannot connect to {self.host_header}: {exc}") from None
        except BaseException:
            self._give_back_place()
            raise
        return protocol

    def _release(self, conn: _Connection) -> None:
        if not conn.reusable or self.closed:
            conn._close()  # _lost gives its place back once it is gone
            return
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = self.loop.time()
        self.idle.append(conn)

    def _lost(self, conn: _Connection) -> None:
        """A connection closed (by either side): its place goes to a waiter, or back to the pool."""
        if conn in self.idle:
            self.idle.remove(conn)
        self._give_back_place()

    def _give_back_place(self) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # it opens a connection of its own in this place
                return
        self.count -= 1
