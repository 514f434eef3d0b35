"""The lean carrier client (engine/providers/http1.py) over real loopback sockets: every way a send can fail is
"never sent" or "maybe sent", exactly as the aiohttp path classifies it; answers in every framing are read;
connections are kept alive, capped, and never reused when they cannot be trusted; TLS works.

Raw asyncio servers play the carrier where a broken one is needed (the bytes are exactly what it sends).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from engine.providers import OutboundRequest, SendResult
from engine.providers.http1 import Http1Pool, MaybeSent, NotSent
from engine.providers.twilio import TwilioClient
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeCarrier

OK_BODY = b'{"sid":"SMabc","status":"queued"}'


def answer(body: bytes = OK_BODY, *headers: bytes, status: bytes = b"201 Created") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + b"".join(h + b"\r\n" for h in headers)
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawCarrier:
    """A TCP server running *script* for every connection; counts connections and requests read."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.url = ""

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        body = await reader.readexactly(length)
        self.requests += 1
        return head + body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.script(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> RawCarrier:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def request(i: int = 1) -> OutboundRequest:
    return OutboundRequest(message_id=i, to="+12125550100", from_="+16462000001", body=f"hi {i}",
                           status_callback="http://127.0.0.1:9/webhooks/twilio/status/1/1")


@asynccontextmanager
async def client(url: str, *, limit: int = 4, timeout: float = 2.0,
                 connect_timeout: float | None = None) -> AsyncIterator[TwilioClient]:
    async with aiohttp.ClientSession() as session:
        c = TwilioClient(session, account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN, base_url=url,
                         timeout=timeout, connect_timeout=connect_timeout, http1_limit=limit)
        try:
            yield c
        finally:
            await c.close()


def never_sent(r: SendResult) -> bool:
    return not r.ok and r.retryable and not r.ambiguous


def maybe_sent(r: SendResult) -> bool:
    return not r.ok and r.retryable and r.ambiguous


async def test_sends_through_kept_alive_connections_to_the_fake_carrier() -> None:
    async with FakeCarrier(latency=0, callbacks="none") as fake, client(fake.base_url or "", limit=3) as c:
        results = await asyncio.gather(*(c.send(request(i)) for i in range(30)))
        assert all(r.ok and r.provider_status == "queued" for r in results)
        assert len({r.provider_message_id for r in results}) == 30 == fake.accepted
        assert {rec.body for rec in fake.records} == {f"hi {i}" for i in range(30)}
        again = await c.send(request(99))
        assert again.ok
        assert c._pool is not None and c._pool.count <= 3  # capped, and reused rather than reopened


async def test_connection_refused_is_never_sent() -> None:
    async with RawCarrier(lambda r, w: asyncio.sleep(0)) as raw:
        url = raw.url
    async with client(url) as c:  # the port is closed now
        r = await c.send(request())
    assert never_sent(r) and "NotSent" in (r.error_message or "")


async def test_a_connect_that_hangs_is_never_sent() -> None:
    # A listener that never accepts, its queue full: the kernel drops further SYNs, so a connect hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        await asyncio.sleep(0.1)
        async with client(f"http://127.0.0.1:{port}", connect_timeout=0.2) as c:
            r = await c.send(request())
        assert never_sent(r) and "within 0.2 s" in (r.error_message or ""), r
    finally:
        for sock in [*fillers, listener]:
            sock.close()


async def test_silence_after_the_request_is_maybe_sent_and_a_full_pool_is_never_sent() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        await asyncio.sleep(5)

    async with RawCarrier(silent) as raw, client(raw.url, limit=1, timeout=0.6, connect_timeout=0.2) as c:
        first = asyncio.create_task(c.send(request(1)))
        await asyncio.sleep(0.05)
        second = await c.send(request(2))  # the only connection is busy: waits 0.2 s for it, never writes
        assert never_sent(second) and "no connection free" in (second.error_message or "")
        r = await first
        assert maybe_sent(r) and "no answer for 0.6 s" in (r.error_message or "")
        assert raw.requests == 1


ANSWERS_THAT_BREAK = [
    pytest.param(b"", id="closed-without-answer"),
    pytest.param(b"HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{\"sid\"", id="closed-mid-body"),
    pytest.param(b"HTTP/1.1 201 Crea", id="closed-mid-head"),
    pytest.param(b"SMTP ready\r\n\r\n", id="not-http"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab", id="two-lengths"),
]


@pytest.mark.parametrize("reply", ANSWERS_THAT_BREAK)
async def test_a_request_written_without_a_whole_answer_is_maybe_sent(reply: bytes) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        writer.write(reply)
        await writer.drain()

    async with RawCarrier(script) as raw, client(raw.url) as c:
        r = await c.send(request())
        assert maybe_sent(r), r
        assert raw.requests == 1


async def send_begun(c: TwilioClient, req: OutboundRequest) -> SendResult:
    """The sender's task-free way: begin_send writes at once, the answer future, then finish_send."""
    flight = c.begin_send(req)
    assert flight is not None
    await asyncio.wait([flight.answer])
    return c.finish_send(flight)


@pytest.mark.parametrize("reply", [pytest.param(answer(), id="whole-answer"), *ANSWERS_THAT_BREAK])
async def test_a_request_begun_on_an_idle_connection_is_classified_as_send_does(reply: bytes) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        writer.write(answer())  # the first request on each connection: a whole answer, kept alive
        await writer.drain()
        await raw.read_request(reader)
        writer.write(reply)
        await writer.drain()
        if reply == answer():
            await asyncio.sleep(5)

    async with RawCarrier(script) as raw, client(raw.url, limit=1) as c:
        assert c.begin_send(request(1)) is None  # no connection yet: nothing is written, send() opens one
        assert raw.requests == 0
        assert (await c.send(request(1))).ok
        r = await send_begun(c, request(2))
        assert raw.requests == 2 and raw.connections == 1
        assert c._pool is not None
        if reply == answer():
            assert r.ok and r.provider_message_id == "SMabc"
            assert len(c._pool.idle) == 1  # back in the pool, reused
            return
        assert maybe_sent(r), r
        assert c._pool.idle == []  # a connection that broke is never reused
        assert (await c.send(request(3))).ok and raw.connections == 2


async def test_silence_after_a_begun_request_is_maybe_sent() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        writer.write(answer())
        await writer.drain()
        await raw.read_request(reader)
        await asyncio.sleep(5)

    async with RawCarrier(script) as raw, client(raw.url, limit=1, timeout=0.6) as c:
        assert (await c.send(request(1))).ok
        r = await send_begun(c, request(2))
        assert maybe_sent(r) and "no answer for 0.6 s" in (r.error_message or ""), r
        assert raw.requests == 2


FRAMINGS = [
    pytest.param(answer(), id="content-length"),
    pytest.param(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + OK_BODY[:16] + b"\r\n"
                 + b"%x\r\n" % (len(OK_BODY) - 16) + OK_BODY[16:] + b"\r\n0\r\n\r\n", id="chunked"),
    pytest.param(b"HTTP/1.1 201 Created\r\nConnection: close\r\n\r\n" + OK_BODY, id="until-close"),
    pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(), id="interim-100"),
    pytest.param(b"HTTP/1.0 201 Created\r\nContent-Length: %d\r\n\r\n" % len(OK_BODY) + OK_BODY, id="http-1.0"),
]


@pytest.mark.parametrize("reply", FRAMINGS)
async def test_answers_are_read_in_every_framing_and_split_anywhere(reply: bytes) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await raw.read_request(reader)
            for i in range(0, len(reply), 5):
                writer.write(reply[i : i + 5])
                await writer.drain()
            if b"close" in reply or b"HTTP/1.0" in reply:
                return

    async with RawCarrier(script) as raw, client(raw.url) as c:
        for i in range(3):
            r = await c.send(request(i))
            assert r.ok and r.provider_message_id == "SMabc", r
        reused = b"close" not in reply and b"HTTP/1.0" not in reply
        assert raw.connections == (1 if reused else 3)


async def test_429_and_5xx_keep_their_meaning() -> None:
    replies = [answer(b'{"code": 20429, "message": "Too Many Requests"}', b"Retry-After: 7",
                      status=b"429 Too Many Requests"),
               answer(b"<html>bad gateway</html>", status=b"502 Bad Gateway"),
               answer(b'{"code": 21211, "message": "invalid To"}', status=b"400 Bad Request")]

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in replies:
            await raw.read_request(reader)
            writer.write(reply)

    async with RawCarrier(script) as raw, client(raw.url) as c:
        throttled, bad_gateway, invalid = [await c.send(request(i)) for i in range(3)]
    assert never_sent(throttled) and throttled.retry_after == 7.0 and throttled.http_status == 429
    assert never_sent(bad_gateway) and bad_gateway.http_status == 502
    assert not invalid.retryable and invalid.error_code == 21211


async def test_a_connection_the_carrier_closed_while_idle_is_not_reused() -> None:
    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await raw.read_request(reader)
        writer.write(answer())
        await writer.drain()
        await asyncio.sleep(0.05)  # then closes (keep-alive timeout on the carrier's side)

    async with RawCarrier(one_then_close) as raw, client(raw.url) as c:
        assert (await c.send(request(1))).ok
        await asyncio.sleep(0.2)
        assert (await c.send(request(2))).ok  # a new connection, not a write into the closed one
        assert raw.connections == 2


async def test_an_idle_connection_past_keepalive_is_replaced() -> None:
    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await raw.read_request(reader)
            writer.write(answer())

    async with RawCarrier(keep) as raw:
        pool = Http1Pool(raw.url, limit=2, connect_timeout=1.0, read_timeout=1.0, keepalive=0.1)
        data = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        assert (await pool.request(data)).status == 201
        assert (await pool.request(data)).status == 201
        assert raw.connections == 1
        await asyncio.sleep(0.2)
        assert (await pool.request(data)).status == 201
        assert raw.connections == 2
        await pool.close()
        with pytest.raises(NotSent):
            await pool.request(data)


async def test_a_cancelled_request_does_not_leave_its_connection_in_the_pool() -> None:
    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await raw.read_request(reader)
            await asyncio.sleep(0.3)
            writer.write(answer())

    async with RawCarrier(slow) as raw:
        pool = Http1Pool(raw.url, limit=1, connect_timeout=1.0, read_timeout=2.0)
        data = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        task = asyncio.create_task(pool.request(data))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        reply = await pool.request(data)  # its place came back; a fresh connection, not the one with a stale answer
        assert reply.status == 201 and raw.connections == 2
        await pool.close()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_with_the_carriers_certificate_checked() -> None:
    async def keep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(answer())
        writer.close()

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _self_signed(Path(tmp))
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        server = await asyncio.start_server(keep, "127.0.0.1", 0, ssl=server_ctx)
        url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        try:
            trusting = ssl.create_default_context(cafile=str(cert))
            pool = Http1Pool(url, limit=1, connect_timeout=2.0, read_timeout=2.0, ssl_context=trusting)
            data = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
            assert (await pool.request(data)).body == OK_BODY
            await pool.close()
            default = Http1Pool(url, limit=1, connect_timeout=2.0, read_timeout=2.0)  # does not know that CA
            with pytest.raises(NotSent, match="certificate"):
                await default.request(data)
            await default.close()
        finally:
            server.close()


def test_exceptions_are_distinct() -> None:
    assert not issubclass(NotSent, MaybeSent) and not issubclass(MaybeSent, NotSent)
