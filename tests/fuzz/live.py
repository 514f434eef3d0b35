"""The engine under fuzz: its HTTP side on loopback in a thread and event loop of its own (the tests and
Hypothesis stay synchronous), one application on the fake carrier and one without a carrier account."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import asyncpg
import orjson
import pytest
from yarl import URL

from engine.app import Runtime
from engine.providers.twilio import twilio_signature
from engine.store import admin
from engine.testing import DEFAULT_AUTH_TOKEN
from tests.helpers.engine import add_fake_app, carrier, engine_running
from tests.helpers.loops import LoopThread

T = TypeVar("T")

DID: Final = "+16462000001"

# aiohttp's request.post() spools multipart uploads into SpooledTemporaryFile objects; when a later part
# of the same body is malformed it raises and drops them unclosed (the API closes every upload it gets).
# They never reach the disk under the 1 MiB body limit, so only the ResourceWarning at GC remains.
UNCLOSED_SPOOL: Final = pytest.mark.filterwarnings(
    "ignore:Unclosed file <tempfile.SpooledTemporaryFile:ResourceWarning"
)

# What a failed request must leave exactly as it was (the outbox only by count: its deliverer runs).
SNAPSHOT_SQL: Final = """
SELECT
  (SELECT count(*) FROM engine_outbound) AS outbound,
  (SELECT md5(coalesce(string_agg(concat_ws('|', id, app_id, recipient, md5(body), tag, send_at, state, status,
                                            status_rank, provider_status, error_code, provider_message_id),
                                  ',' ORDER BY id), ''))
   FROM engine_outbound) AS outbound_rows,
  (SELECT md5(coalesce(string_agg(concat_ws('|', app_id, phone), ',' ORDER BY app_id, phone), ''))
   FROM engine_blacklist) AS blacklist,
  (SELECT md5(coalesce(string_agg(concat_ws('|', app_id, phone, expires_at), ',' ORDER BY app_id, phone), ''))
   FROM engine_session) AS sessions,
  (SELECT md5(coalesce(string_agg(concat_ws('|', id, app_id, keyword, mode, auto_subscribe,
                                            auto_subscribe_tags::text), ',' ORDER BY id), ''))
   FROM engine_keyword) AS keywords,
  (SELECT md5(coalesce(string_agg(concat_ws('|', id, smsc_id, number), ',' ORDER BY id), ''))
   FROM engine_did) AS dids,
  (SELECT md5(coalesce(string_agg(concat_ws('|', app_id, recipient, tag, did_id), ',' ORDER BY app_id, recipient,
                                  tag), ''))
   FROM engine_tag_did) AS tag_dids,
  (SELECT md5(coalesce(string_agg(concat_ws('|', id, name, api_key_hash, smsc_id), ',' ORDER BY id), ''))
   FROM engine_app) AS apps,
  (SELECT count(*) FROM engine_outbox) AS outbox
"""


@dataclass(frozen=True)
class Request:
    """One HTTP request: through the aiohttp client (target, body, headers) or as raw bytes."""

    kind: str  # api | webhook | raw
    method: str = "GET"
    target: str = "/"  # path and query, already percent-encoded
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    raw: bytes | None = None
    call: str | None = None  # the API call, when the target names a documented one


@dataclass(frozen=True)
class Reply:
    status: int  # 0: the server closed the connection without answering (raw requests only)
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class LiveEngine:
    """The real engine's HTTP side on loopback, in its own thread and event loop (tests stay synchronous)."""

    dsn: str
    base_url: str = ""
    key: str = ""
    bare_key: str = ""
    bare_app_id: int = 0
    app_id: int = 0
    provider_id: int = 0
    runtime: Runtime | None = None
    issued: list[int] = field(default_factory=list)  # ids of every message queued so far
    _thread: LoopThread = field(default_factory=lambda: LoopThread("fuzz-engine"))
    _stack: contextlib.AsyncExitStack | None = None
    _session: aiohttp.ClientSession | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return self._thread.run(coro, timeout)

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.runtime is not None
        return self.runtime.db.pool

    def start(self) -> None:
        self._thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        self._stack = stack = contextlib.AsyncExitStack()
        fake = await stack.enter_async_context(carrier())
        running = await stack.enter_async_context(engine_running(self.dsn, dispatch=False, request_timeout=5.0))
        self.runtime, self.base_url = running.runtime, running.base_url
        app = await add_fake_app(self.pool, fake.base_url or "", name="fuzz", numbers=[DID])
        self.key, self.app_id, self.provider_id = app.api_key, app.app_id, app.provider_id
        bare = await admin.create_app(self.pool, "bare")  # no carrier account: 409s
        self.bare_key, self.bare_app_id = bare.api_key, bare.app_id
        self._session = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        )

    def stop(self) -> None:
        """Close the client, stop the engine and the carrier, then the loop (failing on unhandled exceptions)."""
        try:
            if self._stack is not None:
                self.run(self._stack.aclose())
        finally:
            self._thread.stop()

    # ---- requests ----

    def send(self, request: Request) -> Reply:
        return self.run(self._send(request))

    async def _send(self, request: Request) -> Reply:
        if request.raw is not None:
            return await self._send_raw(request.raw)
        assert self._session is not None
        skip = () if any(k.lower() == "content-type" for k, _ in request.headers) else ("Content-Type",)
        data: bytes | io.BytesIO | None = request.body
        if request.body is not None and len(request.body) > 65536:
            data = io.BytesIO(request.body)  # aiohttp warns about sending a large bytes object in one go
        try:
            async with self._session.request(
                request.method, URL(self.base_url + request.target, encoded=True), data=data,
                headers=list(request.headers), skip_auto_headers=skip, allow_redirects=False,
            ) as resp:
                body = await resp.read()
                return Reply(resp.status, tuple(resp.headers.items()), body)
        except aiohttp.ClientResponseError as exc:
            # The server answered (e.g. 400 for a request line over 8190 bytes) in a way the client
            # did not like (e.g. it closed before reading the whole request); the status is what counts.
            return Reply(exc.status, tuple((exc.headers or {}).items()), b"")

    async def _send_raw(self, data: bytes) -> Reply:
        url = URL(self.base_url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            writer.write(data)
            await writer.drain()
            try:
                head = await asyncio.wait_for(reader.read(65536), 10)
            except (ConnectionError, TimeoutError):
                head = b""
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        status_line, _, rest = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return Reply(0, (), head)
        header_block, _, body = rest.partition(b"\r\n\r\n")
        headers = tuple(
            (name.decode("latin-1").strip(), value.decode("latin-1").strip())
            for line in header_block.split(b"\r\n")
            if b":" in line
            for name, _, value in [line.partition(b":")]
        )
        return Reply(int(parts[1]), headers, body)

    # ---- the database ----

    def snapshot(self) -> dict[str, Any]:
        return self.run(self._snapshot())

    async def _snapshot(self) -> dict[str, Any]:
        return dict(await self.pool.fetchrow(SNAPSHOT_SQL))

    def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async def go() -> list[asyncpg.Record]:
            rows: list[asyncpg.Record] = await self.pool.fetch(sql, *args)
            return rows

        return self.run(go())

    def fetchval(self, sql: str, *args: object) -> Any:
        return self.run(self.pool.fetchval(sql, *args))

    # ---- what a good request looks like ----

    def status_url(self, provider: str, message: str, query: str = "") -> str:
        return f"/webhooks/twilio/status/{quote(provider, safe='%')}/{quote(message, safe='%')}{query}"

    def signed(self, target: str, params: Mapping[str, str], token: str = DEFAULT_AUTH_TOKEN) -> str:
        """The X-Twilio-Signature the carrier would send for a POST of *params* to *target*."""
        return twilio_signature(token, self.base_url + str(URL(target, encoded=True)), params)


def api_post(call: str, params: Mapping[str, str], *, method: str = "POST") -> Request:
    """A well-formed call: a form POST, or a GET with the parameters in the query string."""
    encoded = urlencode(list(params.items()))
    if method == "GET":
        return Request("api", "GET", f"/api/{call}?{encoded}", call=call)
    return Request("api", "POST", f"/api/{call}", encoded.encode(),
                   (("Content-Type", "application/x-www-form-urlencoded"),), call=call)
