"""The HTTP server's fast lane: pipelined requests answered in order as their futures complete, every other request
handed to aiohttp at a request boundary, aiohttp's timeouts kept; and the status webhook answering exactly as it
does through aiohttp (signed, refused, untracked, unknown account), with the same rows written.

Raw sockets over loopback, so the bytes are exactly what a carrier (or a broken client) sends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import asyncpg
import pytest
from aiohttp import web

from engine.httpserver.fastlane import MAX_PIPELINE, Answer, FastSite, Later, plain_response
from engine.providers.twilio import twilio_signature
from engine.store import outbound
from tests.helpers.engine import add_fake_app, engine_running

OK = plain_response(200, "OK", "fast")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def read_replies(reader: asyncio.StreamReader, count: int, timeout: float = 10.0) -> list[Reply]:
    replies = []
    async with asyncio.timeout(timeout):
        for _ in range(count):
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            replies.append(Reply(int(status_line.split(" ")[1]), headers, body))
    return replies


def post(path: str, body: bytes, *headers: str, content_type: str = "application/x-www-form-urlencoded",
         length: int | None = None, version: str = "HTTP/1.1") -> bytes:
    head = [f"POST {path} {version}", "Host: engine", f"Content-Type: {content_type}",
            f"Content-Length: {len(body) if length is None else length}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Toy:
    """An aiohttp app (route /slow/{n} and /fast/{n} answered by aiohttp) behind a FastSite whose handler answers
    /fast/{n}: at once for even n, after `release` for odd n; n = 0 declines."""

    def __init__(self) -> None:
        self.release: asyncio.Future[None] | None = None
        self.fast_seen: list[bytes] = []
        self.runner: web.AppRunner | None = None
        self.site: FastSite | None = None
        self.port = 0

    def handle(self, path: bytes, head: bytes, low: bytes, body: bytes) -> Answer | None:
        n = int(path.rsplit(b"/", 1)[1])
        if n == 0:
            return None
        self.fast_seen.append(path)
        response = plain_response(200, "OK", f"fast {n} {body.decode()}")
        if n % 2 == 0:
            return response
        assert self.release is not None
        return Later(self.release, response)

    async def aiohttp_route(self, request: web.Request) -> web.Response:
        return web.Response(text=f"aiohttp {request.match_info['n']} {(await request.read()).decode()}")

    async def __aenter__(self) -> Toy:
        self.release = asyncio.get_running_loop().create_future()
        app = web.Application()
        app.router.add_post("/fast/{n}", self.aiohttp_route)
        app.router.add_post("/slow/{n}", self.aiohttp_route)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.site = FastSite(self.runner, "127.0.0.1", 0, handlers={b"/fast/": self.handle}, read_timeout=0.4,
                             answer_timeout=0.6, late=plain_response(503, "Late", "late"),
                             failed=plain_response(500, "Failed", "failed"))
        await self.site.start()
        self.port = self.site.port
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            yield reader, writer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def send_split(writer: asyncio.StreamWriter, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        writer.write(data[i : i + step])
        await writer.drain()


@pytest.mark.parametrize("step", [1, 7, 10_000])
async def test_pipelined_requests_are_answered_in_order_as_their_futures_complete(step: int) -> None:
    async with Toy() as toy, toy.connection() as (reader, writer):
        # 2 (now), 1 (later), 4 (now): nothing may overtake 1.
        await send_split(writer, post("/fast/2", b"a=1") + post("/fast/1", b"b") + post("/fast/4", b""), step)
        await asyncio.sleep(0.1)
        assert len(toy.fast_seen) == 3
        first = await read_replies(reader, 1)
        assert first[0].body == b"fast 2 a=1"
        with pytest.raises(TimeoutError):
            await read_replies(reader, 1, timeout=0.2)
        assert toy.release is not None
        toy.release.set_result(None)
        rest = await read_replies(reader, 2)
        assert [r.body for r in rest] == [b"fast 1 b", b"fast 4 "]
        assert all(r.headers.get("connection") != "close" for r in first + rest)


# (request, whether aiohttp goes on serving the connection after answering it)
DECLINED = [
    pytest.param(post("/slow/1", b"x"), True, id="another-path"),
    pytest.param(post("/fast/0", b"x"), True, id="handler-declines"),
    pytest.param(post("/fast/2", b"x", version="HTTP/1.0"), False, id="http-1.0"),
    pytest.param(post("/fast/2", b"x", "Transfer-Encoding: chunked", length=1), False, id="chunked"),
    pytest.param(post("/fast/2", b"x", "Content-Encoding: identity"), True, id="content-encoding"),
    pytest.param(post("/fast/2", b"x", "Expect: 100-continue"), True, id="expect"),
    pytest.param(post("/fast/2", b"x", content_type="text/plain"), True, id="not-a-form"),
    pytest.param(post("/fast/2", b"x", "Content-Length: 1"), False, id="two-lengths"),
    pytest.param(post("/fast/2", b"x", " folded"), False, id="obs-fold"),
    pytest.param(post("/fast/2?q=1", b"x"), True, id="query"),
    pytest.param(post("/fast/%32", b"x"), True, id="escaped-path"),
]


@pytest.mark.parametrize(("raw", "keeps_serving"), DECLINED)
async def test_a_request_the_lane_does_not_take_goes_to_aiohttp_after_the_answers_before_it(
    raw: bytes, keeps_serving: bool
) -> None:
    async with Toy() as toy, toy.connection() as (reader, writer):
        assert toy.release is not None
        writer.write(post("/fast/1", b"first") + raw + post("/fast/4", b"after"))
        await writer.drain()
        await asyncio.sleep(0.1)
        assert toy.fast_seen == [b"/fast/1"]  # nothing from the declined request on was taken by the lane
        toy.release.set_result(None)
        assert (await read_replies(reader, 1))[0].body == b"fast 1 first"
        rest = b""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                while chunk := await reader.read(65536):
                    rest += chunk
        # aiohttp answered the declined request (its own answer, maybe a 400) and, when it keeps the connection,
        # /fast/4 through its own route.
        assert rest.startswith(b"HTTP/1."), rest
        assert (b"aiohttp 4 after" in rest) is keeps_serving, rest
        assert toy.fast_seen == [b"/fast/1"]


async def test_a_body_that_stops_arriving_gets_408_and_the_connection_closes() -> None:
    async with Toy() as toy, toy.connection() as (reader, writer):
        writer.write(post("/fast/2", b"ab", length=100))
        await writer.drain()
        reply = (await read_replies(reader, 1, timeout=5))[0]
        assert reply.status == 408 and reply.headers["connection"] == "close"
        assert reply.body == b"the request body did not arrive within 0.4 s"
        assert await reader.read() == b""


async def test_an_answer_not_ready_in_time_gets_the_late_response_and_connection_close_is_kept() -> None:
    async with Toy() as toy, toy.connection() as (reader, writer):
        writer.write(post("/fast/3", b"") + post("/fast/2", b"", "Connection: close") + post("/fast/4", b""))
        await writer.drain()
        replies = await read_replies(reader, 2, timeout=5)
        assert [(r.status, r.body) for r in replies] == [(503, b"late"), (200, b"fast 2 ")]
        assert await reader.read() == b""  # closed after the Connection: close request; /fast/4 never read
        assert toy.fast_seen == [b"/fast/3", b"/fast/2"]


async def test_a_flood_of_pipelined_requests_stops_reading_until_answers_drain() -> None:
    count = MAX_PIPELINE * 2 + 5
    async with Toy() as toy, toy.connection() as (reader, writer):
        assert toy.release is not None
        writer.write(b"".join(post(f"/fast/{2 * i + 1}", b"") for i in range(count)))
        await writer.drain()
        await asyncio.sleep(0.2)
        assert len(toy.fast_seen) == MAX_PIPELINE  # reading paused: the rest waits in the socket
        toy.release.set_result(None)
        replies = await read_replies(reader, count)
        assert [r.body for r in replies] == [f"fast {2 * i + 1} ".encode() for i in range(count)]


async def test_eof_after_requests_still_gets_their_answers() -> None:
    async with Toy() as toy, toy.connection() as (reader, writer):
        assert toy.release is not None
        writer.write(post("/fast/1", b"") + post("/fast/2", b""))
        writer.write_eof()
        await asyncio.sleep(0.05)
        toy.release.set_result(None)
        assert [r.body for r in await read_replies(reader, 2)] == [b"fast 1 ", b"fast 2 "]
        assert await reader.read() == b""


# ---- the status webhook: the same answers and writes with the lane on and off ---------------------------------


def callback(base: str, provider_id: int, message_id: int, status: str, *, token: str = "fake-token",
             extra: dict[str, str] | None = None, signature: str | None = None) -> bytes:
    path = f"/webhooks/twilio/status/{provider_id}/{message_id}"
    form = {"MessageSid": f"SM{message_id:032x}", "AccountSid": "AC" + "0" * 32, "MessageStatus": status,
            **(extra or {})}
    sig = signature if signature is not None else twilio_signature(token, base + path, form)
    return post(path, urlencode(form).encode(), f"X-Twilio-Signature: {sig}")


Case = Callable[[str, int, list[int]], bytes]
CASES: list[tuple[str, Case, int]] = [
    ("delivered", lambda b, p, ids: callback(b, p, ids[0], "delivered"), 204),
    ("undelivered-with-code", lambda b, p, ids: callback(b, p, ids[1], "undelivered", extra={"ErrorCode": "30003"}),
     204),
    ("untracked-status", lambda b, p, ids: callback(b, p, ids[2], "accepted-ish"), 204),
    ("bad-signature", lambda b, p, ids: callback(b, p, ids[2], "delivered", signature="nope"), 403),
    ("wrong-token", lambda b, p, ids: callback(b, p, ids[2], "failed", token="other"), 403),
    ("unknown-account", lambda b, p, ids: callback(b, 999, ids[2], "delivered"), 403),
    ("bad-id", lambda b, p, ids: callback(b, p, 0, "delivered"), 404),
    ("bad-utf8", lambda b, p, ids: post(f"/webhooks/twilio/status/{p}/{ids[2]}", b"MessageStatus=\xff"), 400),
]


@pytest.mark.parametrize("fast_lane", [True, False], ids=["lane", "aiohttp"])
async def test_status_webhook_answers_and_writes_the_same_through_the_lane_and_aiohttp(
    pool: asyncpg.Pool, db_dsn: str, fast_lane: bool
) -> None:
    app = await add_fake_app(pool, "http://127.0.0.1:9")
    ids = await outbound.queue(pool, app.app_id, [outbound.NewMessage(f"+1212555000{i}", "hi") for i in range(3)])
    async with engine_running(db_dsn, dispatch=False, fast_lane=fast_lane) as run:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(run.base_url.rsplit(":", 1)[1]))
        try:
            got, servers = [], []
            for _name, make, _want in CASES:  # one kept-alive connection, one request at a time
                writer.write(make(run.base_url, app.provider_id, ids))
                await writer.drain()
                reply = (await read_replies(reader, 1))[0]
                got.append(reply.status)
                servers.append(reply.headers["server"])
                if reply.headers.get("connection") == "close":
                    break
        finally:
            writer.close()
    assert got == [want for _name, _make, want in CASES]
    # The lane answered until the first request it does not take (an id out of range); aiohttp from then on.
    lane = ["engine"] * 6 if fast_lane else []
    assert [s == "engine" for s in servers] == [True] * len(lane) + [False] * (len(CASES) - len(lane))
    rows = {r["id"]: r for r in await pool.fetch(
        "SELECT id, state, provider_status, error_code, provider_message_id FROM engine_outbound")}
    assert (rows[ids[0]]["state"], rows[ids[0]]["provider_message_id"]) == ("delivered", f"SM{ids[0]:032x}")
    assert (rows[ids[1]]["state"], rows[ids[1]]["error_code"]) == ("undelivered", 30003)
    assert rows[ids[2]]["state"] == "queued" and rows[ids[2]]["provider_status"] is None
    assert run.runtime.intake is not None and run.runtime.intake.rejected == 3


async def test_a_burst_of_first_callbacks_reads_the_account_token_once(
    pool: asyncpg.Pool, db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first callbacks of an account after a start all wait for one read of its token (each read it before)."""
    import engine.inbound.signed as signed
    from engine.store.inbound import auth_token as real

    reads: list[int] = []

    async def counted(p: asyncpg.Pool, provider_id: int) -> str | None:
        reads.append(provider_id)
        await asyncio.sleep(0.05)  # the burst arrives while the read is under way
        return await real(p, provider_id)

    monkeypatch.setattr(signed, "auth_token", counted)
    app = await add_fake_app(pool, "http://127.0.0.1:9")
    ids = await outbound.queue(pool, app.app_id, [outbound.NewMessage(f"+1212555{i:04d}", "hi") for i in range(40)])
    async with engine_running(db_dsn, dispatch=False) as run:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(run.base_url.rsplit(":", 1)[1]))
        try:
            writer.write(b"".join(callback(run.base_url, app.provider_id, i, "delivered") for i in ids))
            await writer.drain()
            replies = await read_replies(reader, len(ids))
        finally:
            writer.close()
    assert [r.status for r in replies] == [204] * len(ids)
    assert reads == [app.provider_id]
    states = await pool.fetch("SELECT state FROM engine_outbound WHERE id = ANY($1::bigint[])", ids)
    assert [r["state"] for r in states] == ["delivered"] * len(ids)
