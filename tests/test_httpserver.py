"""The engine's HTTP server under hostile input: unreadable bodies, bodies that never come.

Real HTTP over loopback (raw sockets, so the bytes are exactly what a broken or hostile client sends).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import orjson
import pytest
from yarl import URL

from engine.metrics import Metrics
from engine.store import admin
from tests.harness import engine_running

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
