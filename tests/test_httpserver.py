"""The engine's HTTP server under hostile input: unreadable bodies, malformed requests, bodies that never come.

Real HTTP over loopback (raw sockets, so the bytes are exactly what a broken or hostile client sends), plus
unit tests of the per-peer rate limit on an injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from yarl import URL

from engine.httpserver.bad_requests import MAX_PEERS, BadRequestLog
from engine.metrics import Metrics
from engine.store import admin
from tests.helpers.engine import engine_running

API = "/api/dids"
WEBHOOK = "/webhooks/twilio/status/1/1"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def exchange(base_url: str, data: bytes, *, timeout: float = 10.0) -> Reply:
    """Send raw bytes on a fresh connection; the parsed reply (status 0 when the server sent nothing)."""
    url = URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
    except asyncio.IncompleteReadError as exc:
        return Reply(0, {}, exc.partial)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return Reply(int(status_line.split(" ")[1]), headers, body)


def post(path: str, body: bytes, *headers: str, length: int | None = None) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: engine", "Content-Type: application/x-www-form-urlencoded",
            f"Content-Length: {len(body) if length is None else length}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


@dataclass
class Served:
    base_url: str
    api_key: str
    metrics: Metrics


@pytest.fixture
async def served(pool: asyncpg.Pool, db_dsn: str) -> AsyncIterator[Served]:
    app = await admin.create_app(pool, "lib")
    async with engine_running(db_dsn, read_timeout=0.5) as run:
        assert run.runtime.base_url is not None
        yield Served(run.runtime.base_url, app.api_key, run.runtime.metrics)


async def bad_request_counts(base_url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/metrics") as resp:
        text = await resp.text()
    prefix = 'engine_http_bad_requests_total{reason="'
    return {line[len(prefix):].split('"')[0]: float(line.split(" ")[-1])
            for line in text.splitlines() if line.startswith(prefix)}


# ---- (a) bodies that cannot be decoded ---------------------------------------------------------------

FORM = b"phone_number=2125550100&body=hi"
UNDECODABLE = [
    pytest.param(b"\x1f\x8bgarbage", "gzip", id="bad-gzip"),
    pytest.param(FORM, "gzip", id="plain-labelled-gzip"),
    pytest.param(zlib.compress(FORM)[:5] + b"\x00" * 8, "deflate", id="corrupt-deflate"),
]


@pytest.mark.parametrize(("body", "encoding"), UNDECODABLE)
async def test_an_undecodable_body_gets_a_clean_400_from_the_api_and_the_webhook_without_an_error_log(
    served: Served, caplog: pytest.LogCaptureFixture, body: bytes, encoding: str
) -> None:
    api = await exchange(served.base_url, post(f"{API}?api_key={served.api_key}", body,
                                               f"Content-Encoding: {encoding}"))
    assert api.status == 400, api
    assert orjson.loads(api.body) == {"error": "the request body cannot be read (bad encoding or incomplete)"}
    assert api.headers["connection"] == "close"
    hook = await exchange(served.base_url, post(WEBHOOK, body, f"Content-Encoding: {encoding}"))
    assert (hook.status, hook.body) == (400, b"the request body cannot be read (bad encoding or incomplete)")
    await asyncio.sleep(0.1)  # what aiohttp does after the answer (draining the body) happens on its own task
    assert errors(caplog) == []


async def test_a_body_ignored_by_its_handler_and_undecodable_is_counted_not_logged_as_an_error(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    reply = await exchange(served.base_url, post("/healthz", b"\x1f\x8bgarbage", "Content-Encoding: gzip"))
    assert reply.status == 405  # GET only: the handler never reads the body, aiohttp drains it and fails
    await asyncio.sleep(0.1)
    assert errors(caplog) == []
    assert (await bad_request_counts(served.base_url)).get("RequestPayloadError") == 1


# ---- (b) malformed requests: counted, one WARNING per peer per interval, no tracebacks ----------------

MALFORMED = [
    b"GET / HTTP/1.1\r\nHost: engine\r\n\r\n" + b"GARBAGE /x HTTP/1.1\r\n\r\n",  # a bad method after a good request
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: engine\r\n\r\n",  # request line too long
    b"GET /healthz HTTP/1.1\r\nHost: engine\r\nX-Long: " + b"b" * 9000 + b"\r\n\r\n",  # header line too long
    b"GET /healthz HTTP/1.1\r\nHost: engine\r\nConnection: close\r\n\r\nleftover",  # data after Connection: close
    b"GET /healthz HTTP/1.1\r\nHost: engine\r\nX-Bad\x00Name: 1\r\n\r\n",  # invalid header name
    b"POST /api/dids HTTP/1.1\r\nHost: engine\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # bad chunk size
    b"GET /healthz HTTP/9.9\r\nHost: engine\r\n\r\n",  # unsupported version
    b"GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\nHost: engine\r\n\r\nx",  # two lengths
]


async def test_malformed_requests_are_counted_and_logged_once_per_peer_without_a_traceback(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    rounds = 5
    for _ in range(rounds):
        for raw in MALFORMED:
            reply = await exchange(served.base_url, raw)
            assert reply.status in (0, 400, 200), (raw[:60], reply)  # (0: the server closed before answering)
    await asyncio.sleep(0.1)
    assert errors(caplog) == []
    warnings = [r for r in caplog.records if r.name == "engine.httpserver.bad_requests"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one peer, 127.0.0.1, within a minute
    assert warnings[0].levelno == logging.WARNING and warnings[0].exc_info is None
    assert warnings[0].getMessage().startswith("malformed HTTP request from 127.0.0.1 refused (")
    counts = await bad_request_counts(served.base_url)
    assert sum(counts.values()) == rounds * len(MALFORMED), counts
    assert counts["LineTooLong"] == 2 * rounds


async def test_secrets_in_a_malformed_request_line_stay_out_of_the_warning(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    await exchange(served.base_url, b"GET /api/dids?api_key=s3cret HTTP/9.9\r\nHost: engine\r\n\r\n")
    await exchange(served.base_url, b"GET /api/dids?api_key=s3cret&" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
    assert "s3cret" not in caplog.text


# ---- (c) a body that never arrives -------------------------------------------------------------------


@pytest.mark.parametrize("path", [API, WEBHOOK])
async def test_a_promised_body_that_never_arrives_gets_408_after_the_read_timeout(
    served: Served, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    # 100 bytes promised, 2 sent, the connection left open: without a read timeout this waits forever.
    reply = await exchange(served.base_url, post(path, b"ab", length=100), timeout=5.0)
    assert reply.status == 408 and reply.headers["connection"] == "close"
    assert b"did not arrive within 0.5 s" in reply.body
    assert errors(caplog) == []


async def test_a_client_that_leaves_mid_body_is_not_a_server_error(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    url = URL(served.base_url)
    for path in (API, WEBHOOK):
        _, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(post(path, b"ab", length=100))
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    await asyncio.sleep(0.2)
    assert errors(caplog) == []


# ---- BadRequestLog, on an injected clock ----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused(log: BadRequestLog, peer: str | None, exc: BaseException | None = None) -> None:
    """What aiohttp's RequestHandler.handle_error does for a request its parser refused."""
    log.exception("Error handling request from %s", peer, exc_info=exc or BadHttpMessage("bad"))


def test_one_warning_per_peer_per_interval_with_the_count_of_those_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    metrics, clock = Metrics(), Clock()
    log = BadRequestLog(metrics.http_bad_requests, interval=60.0, clock=clock)
    for _ in range(3):
        refused(log, "10.0.0.1")
        refused(log, "10.0.0.2", LineTooLong(b"x" * 100, 8190))
    clock.now += 59.9
    refused(log, "10.0.0.1")
    clock.now += 0.1
    refused(log, "10.0.0.1")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "malformed HTTP request from 10.0.0.1 refused (BadHttpMessage: bad)",
        "malformed HTTP request from 10.0.0.2 refused (LineTooLong: Got more than 8190 bytes when reading: "
        + "b'" + "x" * 100 + "'.)",
        "malformed HTTP request from 10.0.0.1 refused (BadHttpMessage: bad) [3 more from it not logged since its "
        "last warning]",
    ]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records)
    assert metrics.http_bad_requests.labels("BadHttpMessage").value == 5
    assert metrics.http_bad_requests.labels("LineTooLong").value == 3


def test_server_faults_and_debug_records_pass_through(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    metrics = Metrics()
    log = BadRequestLog(metrics.http_bad_requests, clock=Clock())
    try:
        raise RuntimeError("a handler bug")
    except RuntimeError:
        log.exception("Error handling request from %s", "10.0.0.1")  # exc_info=True: the current exception
    log.exception("Unhandled exception", exc_info=ZeroDivisionError("boom"))
    log.debug("Error handling request from %s", "10.0.0.3", exc_info=BadHttpMessage("TLS on a plain port"))
    log.exception("Unhandled exception", exc_info=web.RequestPayloadError("Can not decode content-encoding"))
    assert [(r.name, r.levelno, bool(r.exc_info)) for r in caplog.records] == [
        ("aiohttp.server", logging.ERROR, True),
        ("aiohttp.server", logging.ERROR, True),
        ("engine.httpserver.bad_requests", logging.WARNING, False),  # the payload error; its peer is unknown
    ]
    assert "from an unknown peer" in caplog.records[-1].getMessage()
    # The DEBUG one (aiohttp's choice for non-HTTP traffic) is counted but stays quiet.
    assert metrics.http_bad_requests.labels("BadHttpMessage").value == 1
    assert metrics.http_bad_requests.labels("RequestPayloadError").value == 1


def test_the_peer_table_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    clock = Clock()
    log = BadRequestLog(Metrics().http_bad_requests, clock=clock)
    for i in range(MAX_PEERS):
        refused(log, f"peer-{i}")
    refused(log, "peer-0")  # remembered: within its interval, not logged
    assert len(caplog.records) == MAX_PEERS
    clock.now += 1
    refused(log, "one-more")  # the table is full of recent peers: it is emptied to make room
    refused(log, "peer-0")  # forgotten, so logged again although its interval is not over
    assert len(caplog.records) == MAX_PEERS + 2
