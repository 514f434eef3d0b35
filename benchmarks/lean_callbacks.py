"""The lean carrier's status callbacks: signed Twilio status POSTs, pipelined over a few kept-alive connections.

Each callback is the request Twilio sends (form body, ``X-Twilio-Signature`` over the URL and the sorted
parameters, ``I-Twilio-Idempotency-Token``). Callbacks go round-robin to ``concurrency`` connections per
receiver; everything queued for one connection during one turn of the event loop leaves in one write
(HTTP/1.1 pipelining: the receiver answers them in order, one at a time). A 2xx/3xx counts as sent, a 4xx
as failed (Twilio does not retry those), a 5xx or a dropped connection is retried with a short backoff,
up to ``ATTEMPTS`` times.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Coroutine
from typing import Any, Final, cast
from urllib.parse import quote, urlsplit

from engine.providers.twilio import twilio_signature
from engine.providers.twilio_wire import API_VERSION, FORM_CONTENT_TYPE

__all__ = ["ATTEMPTS", "CallbackClient", "Counters"]

log = logging.getLogger(__name__)

ATTEMPTS: Final = 4
BACKOFF: Final = 0.05  # seconds, doubled per attempt
MAX_RESPONSE_HEAD: Final = 64 * 1024


class Counters:
    """What happened to the callbacks (read by ``/_fake/stats``)."""

    __slots__ = ("failed", "scheduled", "sent")

    def __init__(self) -> None:
        self.scheduled = 0  # queued by send_status (each ends sent or failed)
        self.sent = 0
        self.failed = 0


class _Callback:
    __slots__ = ("attempt", "data")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.attempt = 0


_PLAIN = re.compile(rb"[A-Za-z0-9_.~-]*")


def _quote(value: str) -> str:
    """``quote(value, safe='')``, with the values callbacks carry (sids, E.164 numbers, statuses) done in C."""
    raw = value.encode()
    if _PLAIN.fullmatch(raw):
        return value
    if raw[:1] == b"+" and _PLAIN.fullmatch(raw, 1):
        return "%2B" + value[1:]
    return quote(value, safe="")


def _form(params: dict[str, str]) -> bytes:
    """``urlencode(params)``: what Twilio posts."""
    return "&".join([f"{k}={_quote(v)}" for k, v in params.items()]).encode()


class _Connection(asyncio.Protocol):
    """One kept-alive connection to a receiver; responses come back in request order."""

    def __init__(self, receiver: _Receiver) -> None:
        self.receiver = receiver
        self.transport: asyncio.Transport | None = None
        self.queued: list[_Callback] = []  # not yet written
        self.in_flight: deque[_Callback] = deque()  # written, awaiting their responses in order
        self.buf = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses
        self.receiver.dirty(self)

    def flush(self) -> None:
        if self.transport is None or self.closed or not self.queued:
            return
        batch, self.queued = self.queued, []
        self.in_flight.extend(batch)
        self.transport.write(b"".join(cb.data for cb in batch))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_RESPONSE_HEAD:
                    self._abort("response head too long")
                return
            head = bytes(buf[:end]).lower()
            status = int(head[9:12])
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 17)
                length = int(head[i + 17 : j if j >= 0 else len(head)])
            elif status == 204 or status == 304 or status < 200:
                length = 0
            else:  # chunked or read-until-close: not what the engine's webhook answers
                self._abort(f"unframed response {status}")
                return
            total = end + 4 + length
            if len(buf) < total:
                return
            del buf[:total]
            if self.in_flight:
                self.receiver.answered(self.in_flight.popleft(), status)
            if b"\r\nconnection: close" in head:
                self._abort(None)
                return

    def _abort(self, why: str | None) -> None:
        if why is not None:
            log.warning("lean carrier: %s; reconnecting", why)
        if self.transport is not None:
            self.transport.close()
        self.connection_lost(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        lost = [*self.in_flight, *self.queued]
        self.in_flight.clear()
        self.queued = []
        self.receiver.lost(self, lost)


class _Receiver:
    """One host:port that callbacks go to, with its connections."""

    def __init__(self, client: CallbackClient, host: str, port: int) -> None:
        self.client = client
        self.host = host
        self.port = port
        self.conns: list[_Connection | None] = [None] * client.concurrency
        self.next = 0
        self._dirty: set[_Connection] = set()

    def send(self, cb: _Callback) -> None:
        i = self.next
        self.next = (i + 1) % len(self.conns)
        conn = self.conns[i]
        if conn is None or conn.closed:
            conn = self.conns[i] = _Connection(self)
            self.client.spawn(self._connect(conn))
        conn.queued.append(cb)
        if conn.transport is not None:
            self.dirty(conn)

    def dirty(self, conn: _Connection) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush)
        self._dirty.add(conn)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for conn in dirty:
            conn.flush()

    async def _connect(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: conn, self.host, self.port)
        except OSError as exc:
            log.warning("lean carrier: cannot reach %s:%s (%s)", self.host, self.port, exc)
            conn.connection_lost(exc)

    def answered(self, cb: _Callback, status: int) -> None:
        if status < 400:
            self.client.counters.sent += 1
        elif status < 500:
            self.client.counters.failed += 1
        else:
            self.retry(cb)

    def lost(self, conn: _Connection, callbacks: list[_Callback]) -> None:
        self._dirty.discard(conn)
        for cb in callbacks:
            self.retry(cb)

    def retry(self, cb: _Callback) -> None:
        cb.attempt += 1
        if cb.attempt >= ATTEMPTS or self.client.stopped:
            self.client.counters.failed += 1
            return
        asyncio.get_running_loop().call_later(BACKOFF * 2 ** (cb.attempt - 1), self.send, cb)


class CallbackClient:
    """Sends status callbacks for accepted messages; ``concurrency`` connections per receiver."""

    def __init__(self, tokens: dict[str, str], *, concurrency: int = 64) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.tokens = tokens
        self.concurrency = concurrency
        self.counters = Counters()
        self.stopped = False
        self._receivers: dict[str, _Receiver] = {}  # by host[:port] as the URL spells it
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _target(self, url: str) -> tuple[_Receiver, bytes, bytes]:
        """The receiver, request target and Host header of an http:// callback URL."""
        if not url.startswith("http://"):
            raise ValueError(f"the lean carrier only calls http:// URLs, not {url!r}")
        slash = url.find("/", 7)
        netloc, target = (url[7:], "/") if slash < 0 else (url[7:slash], url[slash:])
        receiver = self._receivers.get(netloc)
        if receiver is None:
            parts = urlsplit(url)
            if parts.hostname is None:
                raise ValueError(f"no host in the callback URL {url!r}")
            receiver = self._receivers[netloc] = _Receiver(self, parts.hostname, parts.port or 80)
        return receiver, target.encode(), netloc.encode()

    def send_status(
        self, url: str, account: str, sid: str, to: str, from_: str | None, service: str | None, status: str,
        error_code: int | None = None,
    ) -> None:
        """Queue one status callback for message *sid* to *url*, signed with *account*'s token."""
        params = {
            "MessageSid": sid, "SmsSid": sid, "AccountSid": account, "To": to, "MessageStatus": status,
            "SmsStatus": status, "ApiVersion": API_VERSION,
        }
        if from_ is not None:
            params["From"] = from_
        if service is not None:
            params["MessagingServiceSid"] = service
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        self.counters.scheduled += 1
        try:
            receiver, target, host = self._target(url)
        except ValueError as exc:
            log.warning("%s", exc)
            self.counters.failed += 1
            return
        body = _form(params)
        signature = twilio_signature(self.tokens[account], url, params)
        head = (
            b"POST " + target + b" HTTP/1.1\r\nHost: " + host
            + b"\r\nContent-Type: " + FORM_CONTENT_TYPE.encode()
            + b"\r\nX-Twilio-Signature: " + signature.encode()
            + b"\r\nI-Twilio-Idempotency-Token: " + f"{sid}-{status}".encode()
            + b"\r\nUser-Agent: TwilioProxy/1.1\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        receiver.send(_Callback(head + body))

    def pending(self) -> int:
        """Callbacks not yet answered or given up on."""
        c = self.counters
        return c.scheduled - c.sent - c.failed

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every callback queued so far was answered or given up on (at most *timeout* seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending() > 0 and loop.time() < deadline:
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        self.stopped = True
        for task in list(self._tasks):
            task.cancel()
        for r in self._receivers.values():
            for c in r.conns:
                if c is not None and c.transport is not None:
                    c.transport.close()
