"""The lean benchmark carrier: Twilio's create-message call and its status callbacks at a fraction of the cost of
the regular fake carrier (:mod:`engine.testing`), so a benchmark measures the sender, not its load generator.

A plain ``asyncio.Protocol`` HTTP/1.1 responder (run it under uvloop): keep-alive, pipelined requests answered
in order, bodies framed by Content-Length (chunked bodies are refused with 411). It speaks the same wire format
as the regular fake for what a sender uses:

- ``POST /2010-04-01/Accounts/{sid}/Messages.json``: HTTP Basic auth (401 with Twilio's 20003 otherwise, 404 for
  another account's URL), a URL-encoded form, Twilio's 400s for a missing To / From+MessagingServiceSid / Body,
  and a 201 JSON answer with ``sid`` and ``status`` "queued"; every accepted message ends "delivered";
- its final status callback (mode "final") to the form's StatusCallback, signed with X-Twilio-Signature
  (:mod:`benchmarks.lean_callbacks`), or none (mode "none");
- ``GET /2010-04-01/Accounts/{sid}.json`` and the control endpoints the benchmarks read: ``GET /_fake/stats``,
  ``GET /_fake/messages``, ``POST /_fake/reset``.

No fault injection, no number market, no inbound texts: the Twilio SDK contract tests run against the regular
fake. ``python -m benchmarks.lean_carrier --port 0`` prints ``lean carrier listening on URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any, Final, Literal, cast
from urllib.parse import unquote_to_bytes

import orjson

from benchmarks.lean_callbacks import CallbackClient
from engine.providers.twilio import API_VERSION, basic_authorization
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

__all__ = ["LeanCarrier", "main"]

MAX_HEAD: Final = 64 * 1024
MAX_BODY: Final = 1024 * 1024
_ACCOUNTS: Final = f"/{API_VERSION}/Accounts/".encode()
_MESSAGES: Final = b"/Messages.json"
_REASONS: Final = {200: b"OK", 201: b"Created", 400: b"Bad Request", 401: b"Unauthorized", 404: b"Not Found",
                   405: b"Method Not Allowed", 411: b"Length Required", 413: b"Payload Too Large"}
Mode = Literal["final", "none"]


def _response(status: int, body: bytes, extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
            % (status, _REASONS.get(status, b"Error"), len(body), extra)) + body


def _error(status: int, code: int, message: str, extra: bytes = b"") -> bytes:
    doc = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
           "status": status}
    return _response(status, orjson.dumps(doc), extra)


def _header(head: bytes, low: bytes, name: bytes) -> bytes | None:
    """The value of header *name* (lowercase, as b"\\r\\nname:") in a request head; None when absent."""
    i = low.find(name)
    if i < 0:
        return None
    j = head.find(b"\r\n", i + 2)
    return head[i + len(name) : j if j >= 0 else len(head)].strip()


class _Record:
    """One accepted message (fields kept as they came; decoded only when ``/_fake/messages`` is read)."""

    __slots__ = ("body", "from_", "service", "sid", "t", "to", "validity")

    def __init__(self, t: float, sid: str, from_: str | None, to: str, body: bytes, service: str | None,
                 validity: bytes | None) -> None:
        self.t, self.sid, self.from_, self.to, self.body = t, sid, from_, to, body
        self.service, self.validity = service, validity

    def doc(self) -> dict[str, Any]:
        return {"t": self.t, "sid": self.sid, "from": self.from_, "to": self.to,
                "body": _unquote(self.body), "final_status": "delivered",
                "error_code": None, "validity_period": int(self.validity) if self.validity else None}


def _unquote(raw: bytes) -> str:
    """``unquote_plus`` of a form value (UTF-8, undecodable bytes replaced, as the regular fake reads forms)."""
    raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    return raw.decode("utf-8", "replace")


def _text(raw: bytes | None) -> str | None:
    if not raw:
        return None
    if raw.startswith(b"%2B") and raw[3:].isdigit():  # an E.164 number: the common case
        return "+" + raw[3:].decode()
    return _unquote(raw)


class LeanCarrier:
    """The carrier's state: accounts, accepted messages, counters and the callback client."""

    def __init__(self, accounts: Mapping[str, str] | None = None, *, callbacks: Mode = "final",
                 concurrency: int = 64) -> None:
        if callbacks not in ("final", "none"):
            raise ValueError(f"callbacks must be 'final' or 'none', not {callbacks!r}")
        self.tokens = dict(accounts if accounts is not None else {DEFAULT_ACCOUNT_SID: DEFAULT_AUTH_TOKEN})
        self._by_header = {basic_authorization(sid, tok).encode(): sid for sid, tok in self.tokens.items()}
        self.mode: Mode = callbacks
        self.callbacks = CallbackClient(self.tokens, concurrency=concurrency)
        self.records: list[_Record] = []
        self.accepted = 0
        self.rejected = 0
        self._prefix = os.urandom(8).hex()
        self._serial = 0
        self._date_second = -1
        self._date = ""
        self._server: asyncio.Server | None = None
        self.base_url: str | None = None

    # ---- lifecycle ---------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Http(self), host, port, backlog=1024)
        bound = self._server.sockets[0].getsockname()
        self.base_url = f"http://{bound[0]}:{bound[1]}"
        return self.base_url

    async def stop(self) -> None:
        await self.callbacks.close()
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    def stats(self) -> dict[str, int]:
        c = self.callbacks.counters
        return {"accepted": self.accepted, "rejected": self.rejected, "callbacks_sent": c.sent,
                "callbacks_failed": c.failed}

    def reset(self) -> None:
        self.records.clear()
        self.accepted = self.rejected = 0
        c = self.callbacks.counters
        c.scheduled -= c.sent + c.failed
        c.sent = c.failed = 0

    # ---- requests ----------------------------------------------------------------------------------
    def handle(self, method: bytes, target: bytes, auth: bytes | None, body: bytes) -> bytes:
        """The whole response to one request."""
        if target.startswith(_ACCOUNTS):
            rest = target[len(_ACCOUNTS) :]
            if rest.endswith(_MESSAGES) and method == b"POST":
                reply = self._create(rest[: -len(_MESSAGES)], auth, body)
                if not reply.startswith(b"HTTP/1.1 201"):
                    self.rejected += 1
                return reply
            if rest.endswith(b".json") and b"/" not in rest and method == b"GET":
                sid = self._account(rest[:-5], auth)
                if isinstance(sid, bytes):
                    return sid
                return _response(200, orjson.dumps({
                    "sid": sid, "friendly_name": "Lean benchmark carrier", "status": "active", "type": "Full",
                    "uri": f"/{API_VERSION}/Accounts/{sid}.json"}))
        elif target == b"/_fake/stats" and method == b"GET":
            return _response(200, orjson.dumps(self.stats()))
        elif target == b"/_fake/messages" and method == b"GET":
            return _response(200, orjson.dumps([r.doc() for r in self.records]))
        elif target == b"/_fake/reset" and method == b"POST":
            self.reset()
            return _response(200, b'{"ok":true}')
        return _error(404, 20404, f"The requested resource {target.decode('latin-1')} was not found")

    def _account(self, sid_in_url: bytes, auth: bytes | None) -> str | bytes:
        """The caller's account sid, or the error response (401 bad credentials, 404 another account's URL)."""
        account = self._by_header.get(auth) if auth is not None else None
        if account is None:
            return _error(401, 20003, "Authenticate", b'WWW-Authenticate: Basic realm="Twilio API"\r\n')
        if account.encode() != sid_in_url:
            return _error(404, 20404, "The requested resource was not found")
        return account

    def _create(self, sid_in_url: bytes, auth: bytes | None, body: bytes) -> bytes:
        account = self._account(sid_in_url, auth)
        if isinstance(account, bytes):
            return account
        form: dict[bytes, bytes] = {}
        for pair in body.split(b"&"):
            name, _, value = pair.partition(b"=")
            form[name] = value
        to = _text(form.get(b"To"))
        from_ = _text(form.get(b"From"))
        service = _text(form.get(b"MessagingServiceSid"))
        raw_body = form.get(b"Body")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if from_ is None and service is None:
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.")
        if not raw_body:
            return _error(400, 21602, "Message body is required.")
        now = time.time()
        self._serial += 1
        sid = f"SM{self._prefix}{self._serial:016x}"
        self.records.append(_Record(now, sid, from_, to, raw_body, service, form.get(b"ValidityPeriod")))
        self.accepted += 1
        callback = form.get(b"StatusCallback")
        if callback and self.mode == "final":
            self.callbacks.send_status(_unquote(callback), account, sid, to, from_,
                                       service, "delivered")
        second = int(now)
        if second != self._date_second:
            self._date_second = second
            self._date = formatdate(second).replace("-0000", "+0000")
        return _response(201, orjson.dumps({
            "account_sid": account, "api_version": API_VERSION, "body": _unquote(raw_body),
            "date_created": self._date, "date_sent": None, "date_updated": self._date, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": from_, "messaging_service_sid": service,
            "num_media": "0", "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid,
            "status": "queued", "to": to, "uri": f"/{API_VERSION}/Accounts/{account}/Messages/{sid}.json",
        }))


class _Http(asyncio.Protocol):
    """One client connection: requests parsed as they arrive, answers written in order, one write per read."""

    def __init__(self, carrier: LeanCarrier) -> None:
        self.carrier = carrier
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        out: list[bytes] = []
        close = False
        while not close:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    out.append(_error(431, 400, "Request header too large"))
                    close = True
                break
            head = bytes(buf[:end])
            low = head.lower()
            line_end = head.find(b"\r\n")
            method, _, rest = (head if line_end < 0 else head[:line_end]).partition(b" ")
            target, _, version = rest.partition(b" ")
            if _header(head, low, b"\r\ntransfer-encoding:") is not None:
                out.append(_error(411, 400, "Content-Length required"))
                close = True
                break
            length_raw = _header(head, low, b"\r\ncontent-length:")
            length = int(length_raw) if length_raw and length_raw.isdigit() else 0
            if length > MAX_BODY:
                out.append(_error(413, 400, "Request body too large"))
                close = True
                break
            total = end + 4 + length
            if len(buf) < total:
                break
            body = bytes(buf[end + 4 : total])
            del buf[:total]
            connection = _header(head, low, b"\r\nconnection:")
            close = (connection is not None and connection.lower() == b"close") or version == b"HTTP/1.0"
            out.append(self.carrier.handle(method, target, _header(head, low, b"\r\nauthorization:"), body))
        if self.transport is None:
            return
        if out:
            self.transport.write(b"".join(out))
        if close:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int, *, callbacks: Mode, concurrency: int) -> None:
    carrier = LeanCarrier(callbacks=callbacks, concurrency=concurrency)
    url = await carrier.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"lean carrier listening on {url}", flush=True)
    try:
        await stop.wait()
    finally:
        await carrier.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lean_carrier", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--callbacks", choices=["final", "none"], default="final")
    parser.add_argument("--concurrency", type=int, default=64, help="connections per callback receiver")
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(serve(args.host, args.port, callbacks=args.callbacks, concurrency=args.concurrency))


if __name__ == "__main__":
    main(sys.argv[1:])
