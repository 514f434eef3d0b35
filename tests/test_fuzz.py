"""Hostile input against the real engine on loopback: fuzzed Carousel API calls and carrier webhooks.

One engine (the aiohttp app :func:`engine.app.run_engine` builds: Carousel API, Twilio status webhooks,
/healthz; no dispatch worker, so nothing but the requests changes the queue) runs in its own thread and
event loop on a fresh database, with an application whose carrier account is the loopback fake carrier.
Hypothesis draws the requests: documented and made-up call names, good, wrong and hostile API keys,
parameter maps for every documented call (unicode, NULs, huge lengths, SQL, CRLF, numbers as strings,
JSON garbage, junk lists, booleans and dates), as query strings, form bodies, multipart bodies, wrong
content types, binary and wrongly compressed bodies, raw malformed HTTP; and status callbacks with
good, forged and malformed signatures, ids and fields.

Checked for every reply: no 5xx (a DID call the carrier turns down, e.g. a country it sells no numbers
in, is the documented 422), no injected header, the API key never
echoed, no server fault logged. Checked against the database after every reply: a request that did not
succeed changed nothing at all, and a successful send added exactly the rows whose (positive) ids it
returned. Regression tests pin the inputs the fuzzing found answered with 500 or stalling the status writer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import hmac
import inspect
import io
import json
import logging
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import quote, quote_plus, urlencode

import aiohttp
import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from engine.api.openapi import CALLS
from engine.app import Runtime, run_engine
from engine.config import Settings
from engine.providers.twilio import twilio_signature, validate_twilio_signature
from engine.store import admin
from engine.store.database import Database
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeCarrier

T = TypeVar("T")

# aiohttp's request.post() spools multipart uploads into SpooledTemporaryFile objects; when a later part
# of the same body is malformed it raises and drops them unclosed (the API closes every upload it gets).
# They never reach the disk under the 1 MiB body limit, so only the ResourceWarning at GC remains.
pytestmark = pytest.mark.filterwarnings("ignore:Unclosed file <tempfile.SpooledTemporaryFile:ResourceWarning")

DID: Final = "+16462000001"
MIN_REQUESTS: Final = 2000
MAX_BIGINT: Final = 2**63 - 1
INJECTED: Final = "X-Injected"
# Loggers whose ERROR records mean a request hit a server fault (a 500 even if nobody could read it).
FAULT_LOGGERS: Final = (
    "engine.api", "engine.inbound", "engine.httpserver", "engine.runtime.batcher", "aiohttp.server", "aiohttp.web",
)
CARRIER_CALLS: Final = frozenset(c.name for c in CALLS if c.carrier)
SEND_CALLS: Final = frozenset({"send_message", "send_messages"})
CALL_PARAMS: Final[dict[str, tuple[str, ...]]] = {c.name: tuple(p.name for p in c.params) for c in CALLS}
ALL_PARAMS: Final = tuple(sorted({name for names in CALL_PARAMS.values() for name in names}))

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
TABLES: Final = (
    "engine_app", "engine_provider", "engine_smsc", "engine_did", "engine_outbound", "engine_tag_did",
    "engine_blacklist", "engine_session", "engine_keyword", "engine_outbox",
)


# ---- the engine under test ------------------------------------------------------------------------


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
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    base_url: str = ""
    key: str = ""
    bare_key: str = ""
    bare_app_id: int = 0
    app_id: int = 0
    provider_id: int = 0
    runtime: Runtime | None = None
    issued: list[int] = field(default_factory=list)  # ids of every message queued so far
    _thread: threading.Thread | None = None
    _db: Database | None = None
    _fake: FakeCarrier | None = None
    _session: aiohttp.ClientSession | None = None
    _stop: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._db is not None
        return self._db.pool

    def start(self) -> None:
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-engine", daemon=True)
        self._thread.start()
        self.run(self._start())

    async def _start(self) -> None:
        self._db = db = await Database.connect(self.dsn, max_size=12)
        self._fake = fake = FakeCarrier(latency=0.0, seed=1)
        await fake.start()
        new = await admin.create_app(db.pool, "fuzz")
        self.key, self.app_id = new.api_key, new.app_id
        self.provider_id = await admin.add_provider(
            db.pool, "fuzz", kind="fake", account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN,
            base_url=fake.base_url,
        )
        await admin.add_dids(db.pool, "fuzz", [DID])
        bare = await admin.create_app(db.pool, "bare")  # no carrier account: 409s
        self.bare_key, self.bare_app_id = bare.api_key, bare.app_id
        settings = Settings(dsn=self.dsn, port=0, request_timeout=5.0)
        self._stop = asyncio.Event()
        ready: asyncio.Future[Runtime] = self.loop.create_future()
        self._task = asyncio.create_task(
            run_engine(settings, self._stop, dispatch=False, db=db, on_ready=ready.set_result)
        )
        waiters: list[asyncio.Future[Any]] = [ready, self._task]
        await asyncio.wait(waiters, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            self._task.result()
        self.runtime = ready.result()
        self.base_url = self.runtime.base_url or ""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    def stop(self) -> None:
        try:
            self.run(self._shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self._thread is not None:
                self._thread.join(30)
            self.loop.close()

    async def _shutdown(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._stop is not None and self._task is not None:
            self._stop.set()
            await asyncio.wait_for(self._task, 30)
        if self._fake is not None:
            await self._fake.stop()
        if self._db is not None:
            await self._db.close()
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not me]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await self.loop.shutdown_asyncgens()

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


@pytest.fixture
def engine(db_dsn: str) -> Iterator[LiveEngine]:
    live = LiveEngine(db_dsn)
    try:
        live.start()
        yield live
    finally:
        live.stop()


@contextlib.contextmanager
def fault_log() -> Iterator[list[logging.LogRecord]]:
    """ERROR records of the server-side loggers while the block runs (from any thread)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # Malformed HTTP and undecodable bodies are client faults: counted and logged at WARNING
            # (engine.httpserver.bad_requests), so any ERROR here is a server fault.
            if record.levelno >= logging.ERROR and record.name.startswith(FAULT_LOGGERS):
                records.append(record)

    handler = Keep(logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)


def describe(records: list[logging.LogRecord]) -> str:
    return "\n".join(f"{r.name}: {r.getMessage()} {r.exc_info[1] if r.exc_info else ''!r}" for r in records[:5])


# ---- hostile values ---------------------------------------------------------------------------------

SQL_INJECTION: Final = (
    "1'; DROP TABLE engine_outbound; --",
    "' OR '1'='1",
    "1; DELETE FROM engine_app; --",
    "\\'; TRUNCATE engine_outbound CASCADE; --",
    "$1",
    "$$; DROP TABLE engine_did; $$",
    "'||pg_sleep(5)||'",
    "\") OR 1=1 --",
    "1) OR (1=1",
    "E'\\x00'",
    "'::text",
    "%s",
    "%(x)s",
    "{0}",
    "2125550100'; UPDATE engine_outbound SET state='delivered'; --",
    "HELLO'; DROP TABLE engine_keyword; --",
)
CRLF: Final = (
    f"a\r\n{INJECTED}: yes",
    f"\r\n{INJECTED}: yes\r\n\r\n<html>",
    "x\nSet-Cookie: a=b",
    f"%0d%0a{INJECTED}:%20yes",
    "\u2028\u2029\u0085",
)
NUMBERS: Final = (
    "0", "-1", "-0", "+1", "1e3", "1.5", "NaN", "inf", "-inf", "99999999999999999999", str(MAX_BIGINT),
    str(MAX_BIGINT + 1), str(-MAX_BIGINT - 2), "0x10", "1_000", "٣", "²", "１２", " 7 ", "00000000000000000001",
    "9" * 5000,
)
JUNK: Final = (
    "", " ", "\t\n", "\x00", "a\x00b", "null", "None", "undefined", "true", "[]", "{}", "{{name}}", "{{", "}}",
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%00", "%", "%%", "%zz", "&", "=", "&&==", "+", "\\", "\ufeff",
    "😀😀😀", "é", "ß", "İ", "\u202e", "\U0010ffff", "<script>alert(1)</script>", "${jndi:ldap://x}", "{{7*7}}",
    "\x1b[31m", "\x7f", ",,,", ", , ,",
)
HOSTILE: Final = SQL_INJECTION + CRLF + NUMBERS + JUNK

huge = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["x", "é", "😀", "9", "1,", "\x00", "a b", "{{n}}", "2125550100,", "'"]),
    st.sampled_from([33, 65, 256, 1601, 4000, 20000]),
)
junk = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=24), huge)

PHONES: Final = (
    "2125550100", "+1(347)264-3707", "13472643707", "212-555-0101", "(646) 200-0001", "+44 20 7946 0958", "12345",
    "+15555550100", "1-800-FLOWERS", "+1 212 555 0102", "2125550103", "+12125550104", "0012125550100",
)
phone = st.one_of(st.sampled_from(PHONES), st.sampled_from(PHONES), junk)
phone_list = st.one_of(
    st.lists(phone, min_size=1, max_size=6).map(",".join),
    st.just(",".join(["2125550100"] * 1001)),
    st.lists(st.sampled_from(PHONES), min_size=1, max_size=4).map(", ".join),
)
body_text = st.one_of(
    st.sampled_from(["hi", "Storytime at 10", "héllo 😀", "(1/2) x", "x" * 1600, "x" * 1601]),
    st.text(min_size=1, max_size=200),
    junk,
)
template_text = st.one_of(
    st.sampled_from(
        ["Hello, {{name}}", "{{a}}{{b}}", "{{ name }}!", "no placeholders", "{{}}", "{{name}", "{{a}}" * 40]
    ),
    body_text,
)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
substitutions = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["name", "a", "b", "", "{{name}}"]),
        st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.floats(), json_value, huge),
        max_size=3,
    ),
    json_value,
)
recipients_json = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(PHONES), st.text(max_size=14)), substitutions, max_size=5).map(
        json.dumps
    ),
    json_value.map(json.dumps),
    st.sampled_from([
        '{"1":', "[", '{"2125550100": {"name": "x"}', '\ufeff{}', "NaN", '{"a": 1e999}', "[" * 2000 + "]" * 2000,
        '{"2125550100": {"name": "' + "x" * 2000 + '"}}', json.dumps({f"212555{i:04d}": {} for i in range(1001)}),
        '{"2125550100": 1}', '{"2125550100": []}', '{"2125550100": {"name": {"deep": 1}}}',
    ]),
    junk,
)
BOOLEANS: Final = ("1", "t", "true", "y", "yes", "0", "f", "false", "n", "no", "TRUE", " Yes ")
boolean = st.one_of(st.sampled_from(BOOLEANS), junk)
DATES: Final = (
    "16:30", "Aug 31", "7/31", "2/9/2007", "2007-09-02T00:30:44Z", "02-09-2007 12:30:44 PM EST",
    "Wednesday, January 10, 2001", "10/12/2008 12:55AM -0500", "10/12/2008 12:55AM —0500", "tomorrow", "now", "today",
    "0001-01-01T00:00:00+0500", "0001-01-01T00:00:00-0500", "9999-12-31T23:59:59-0500", "9999-12-31T23:59:59+0500",
    "0001-01-01 00:00 +14:00", "31/31/2020", "Feb 30", "24:61", "2007-09-02T00:30:44+9999", "12:00 XYZ", "1e9",
    "Thu, 01 Jan 1970 00:00:00 +0000", "2038-01-19T03:14:08Z", "29 Feb 2023", "00:00 -2400", "0000-00-00",
    "9999-12-31T23:59:59.999999Z", "1 1 1 1 1 1 1", "January 1, 10000", "12:00 +2359", "12:00 -23:59:60",
    "Jan 1 0001 00:00:01 +0000", "31-12-9999 23:00 -0100",
)
when = st.one_of(
    st.sampled_from(DATES),
    st.sampled_from(DATES),
    st.datetimes().map(lambda d: d.isoformat()),
    st.builds(
        lambda d, sign, hh, mm: f"{d.isoformat()}{sign}{hh:02d}{mm:02d}",
        st.datetimes(), st.sampled_from("+-"), st.integers(0, 99), st.integers(0, 99),
    ),
    junk,
)
tag_text = st.one_of(st.sampled_from(["kids", "t1", "x" * 255, "x" * 256]), st.text(max_size=20), junk)
KEYWORDS: Final = (
    "HELLO", "books", "Books", "stop", "STOP please", "opt out", "kw_1", "a" * 33, "a" * 32, "  spaced   out  ",
    "-lead", "ünï", "B", "BOOK", "help", "start", "x'; DROP TABLE engine_keyword; --",
)
keyword = st.one_of(st.sampled_from(KEYWORDS), st.sampled_from(KEYWORDS), junk)
mode = st.one_of(st.sampled_from(["0", "1", "2", "-1", "01", " 1 ", "x", ""]), st.sampled_from(NUMBERS))
tags_csv = st.one_of(
    st.lists(st.one_of(st.sampled_from(["news", "vip", "x" * 64, "x" * 65]), st.text(max_size=10)), max_size=22).map(
        ",".join
    ),
    junk,
)
did_number = st.one_of(
    st.sampled_from(["16462000001", "+16462000001", "6462000002", "212", "*", "2*2", "FLOWERS", "+442079460958",
                     "1" * 17, "+1 646 200 0003"]),
    junk,
)
country = st.one_of(st.sampled_from(["US", "CA", "us", "GB", "FR", "USA", "U", "", "1A", "ÜS", "ZZ"]), junk)


def known_id(known: list[int]) -> st.SearchStrategy[str]:
    """One of the ids issued so far, as text. The draw itself never depends on how many there are
    (Hypothesis replays draws), only the mapping from the drawn index does."""
    return st.integers(0, 2**16).map(lambda i: str(known[i % len(known)]) if known else "1")


def ids_csv(known: list[int]) -> st.SearchStrategy[str]:
    one = st.one_of(
        known_id(known),
        known_id(known),
        st.integers(-5, 50).map(str),
        st.sampled_from(NUMBERS),
        junk,
    )
    return st.one_of(
        st.lists(one, min_size=1, max_size=6).map(",".join),
        st.just(",".join(["1"] * 10_001)),
    )


def param_value(name: str, known: list[int]) -> st.SearchStrategy[str]:
    """A value for parameter *name*: mostly plausible, sometimes hostile."""
    plausible: dict[str, st.SearchStrategy[str]] = {
        "phone_number": phone,
        "phone_numbers": phone_list,
        "body": body_text,
        "template": template_text,
        "recipients": recipients_json,
        "action_expected": boolean,
        "auto_subscribe": boolean,
        "on": when,
        "tag": tag_text,
        "message_ids": ids_csv(known),
        "keyword": keyword,
        "mode": mode,
        "auto_subscribe_tags": tags_csv,
        "number": did_number,
        "country": country,
    }
    return st.one_of(plausible.get(name, junk), plausible.get(name, junk), plausible.get(name, junk), junk)


# ---- request strategies ----------------------------------------------------------------------------

CALL_NAMES: Final = tuple(CALL_PARAMS)
BAD_CALLS: Final = (
    "openapi.json", "SEND_MESSAGE", "send_message ", "send_message\x00", "../admin", "..%2f..%2fetc%2fpasswd",
    "%2e%2e", "send_message;drop", "__init__", "calls", "handle", "authenticate", "_smsc", "routes",
    f"send_message\r\n{INJECTED}: yes", "🙂", "x" * 5000, "", "send_message/", "send_message?x=1", "send_message#",
    "send%5Fmessage", "%", "%zz", "/",
)
WRONG_TYPES: Final = (
    "application/json", "text/plain", "application/xml", "application/x-www-form-urlencoded; charset=bogus",
    "application/x-www-form-urlencoded; charset=latin-1", "application/x-www-form-urlencoded; charset=utf-16",
    "application/x-www-form-urlencoded; charset=utf-32", "application/x-www-form-urlencoded; charset=",
    "multipart/form-data", "multipart/form-data; boundary=", "multipart/mixed; boundary=zzz",
    "multipart/form-data; boundary=zzz", "*/*", "garbage", "application/x-www-form-urlencoded;;;;",
    "application/x-www-form-urlencoded; charset=\"utf-8\"", "text/html; charset=utf-8", "",
)
METHODS: Final = ("GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


def api_key_value(engine: LiveEngine) -> st.SearchStrategy[str | None]:
    good = st.just(engine.key)
    return st.one_of(
        good, good, good, good, good,
        st.sampled_from([
            None, engine.bare_key, f"  {engine.key}  ", engine.key.upper(), engine.key[:-1], engine.key + "x",
            hashlib.sha256(engine.key.encode()).hexdigest(), "' OR '1'='1", f"{engine.key}\x00", "",
        ]),
        junk,
    )


def encode_pairs(pairs: list[tuple[str, str]], style: str) -> str:
    if style == "plus":
        return urlencode(pairs, quote_via=quote_plus)
    if style == "raw":  # no escaping at all: '&', '=', '%' and '+' inside values break the fields apart
        return "&".join(f"{k}={v}" for k, v in pairs)
    return urlencode(pairs, quote_via=quote)


def multipart(pairs: list[tuple[str, str]], draw: Callable[[st.SearchStrategy[Any]], Any]) -> tuple[bytes, str]:
    """A hand-made multipart/form-data body, sometimes subtly or grossly broken."""
    boundary = draw(st.sampled_from(["b0undary", "x", "a" * 70, "--", "é"]))
    chunks: list[bytes] = []
    for name, value in pairs:
        flaw = draw(st.sampled_from(["", "", "", "filename", "base64", "bad-base64", "charset", "no-name", "binary",
                                     "quoted-printable", "nested"]))
        head = f'Content-Disposition: form-data; name="{name}"'
        data = value.encode("utf-8", "surrogatepass")
        if flaw == "filename":
            head += '; filename="../../etc/passwd"'
        elif flaw == "no-name":
            head = "Content-Disposition: form-data"
        elif flaw == "base64":
            head += "\r\nContent-Transfer-Encoding: base64"
            data = base64.b64encode(data)
        elif flaw == "bad-base64":
            head += "\r\nContent-Transfer-Encoding: base64"
            data = b"!!not base64!!" + data
        elif flaw == "quoted-printable":
            head += "\r\nContent-Transfer-Encoding: quoted-printable"
            data = b"=ZZ=" + data
        elif flaw == "charset":
            head += "\r\nContent-Type: text/plain; charset=" + draw(st.sampled_from(["bogus", "utf-16", "ascii", ""]))
        elif flaw == "binary":
            head += "\r\nContent-Type: application/octet-stream"
        elif flaw == "nested":
            head += "\r\nContent-Type: multipart/mixed; boundary=inner"
            data = b"--inner\r\n\r\nx\r\n--inner--"
        chunks.append(f"--{boundary}\r\n{head}\r\n\r\n".encode() + data + b"\r\n")
    ending = draw(st.sampled_from([f"--{boundary}--\r\n", f"--{boundary}--\r\n", "", f"--{boundary}", "--"]))
    content_type = draw(st.sampled_from([
        f"multipart/form-data; boundary={boundary}", f'multipart/form-data; boundary="{boundary}"',
        "multipart/form-data; boundary=other", "multipart/form-data",
    ]))
    return b"".join(chunks) + ending.encode(), content_type.encode("utf-8").decode("latin-1")


def with_body(
    draw: Callable[[st.SearchStrategy[Any]], Any], pairs: list[tuple[str, str]], path: str, kind: str,
    call: str | None,
) -> Request:
    """Put *pairs* into a request to *path*: query string, form body, multipart, wrong type, binary, compressed."""
    how = draw(st.sampled_from(["get", "get", "form", "form", "form", "form-no-type", "mixed", "multipart",
                                "wrong-type", "binary", "compressed", "method"]))
    style = draw(st.sampled_from(["quote", "plus", "raw"]))
    headers: list[tuple[str, str]] = []
    if draw(st.integers(0, 9)) == 0:
        headers.append((draw(st.sampled_from(["X-Forwarded-For", "User-Agent", "Referer", "X-Twilio-Signature"])),
                        draw(st.sampled_from(["' OR 1=1 --", "é" * 10, "a" * 4000, "%0d%0aX: y"])).encode()
                        .decode("latin-1")))
    if how == "get":
        query = encode_pairs(pairs, style) if style != "raw" else quote(encode_pairs(pairs, style), safe="&=%+")
        return Request(kind, "GET", f"{path}?{query}", headers=tuple(headers), call=call)
    if how == "method":
        method = draw(st.sampled_from(METHODS))
        return Request(kind, method, f"{path}?{encode_pairs(pairs, 'quote')}", headers=tuple(headers), call=call)
    if how == "mixed":
        cut = draw(st.integers(0, len(pairs)))
        query = encode_pairs(pairs[:cut], "quote")
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        return Request(kind, "POST", f"{path}?{query}", encode_pairs(pairs[cut:], style).encode(), tuple(headers),
                       call=call)
    if how == "multipart":
        body, content_type = multipart(pairs, draw)
        headers.append(("Content-Type", content_type))
        return Request(kind, "POST", path, body, tuple(headers), call=call)
    form = encode_pairs(pairs, style).encode("utf-8", "surrogatepass")
    if how == "form":
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        return Request(kind, "POST", path, form, tuple(headers), call=call)
    if how == "form-no-type":
        return Request(kind, "POST", path, form, tuple(headers), call=call)
    if how == "wrong-type":
        body = draw(st.sampled_from([form, orjson.dumps(dict(pairs)), form.decode().encode("utf-16")]))
        headers.append(("Content-Type", draw(st.sampled_from(WRONG_TYPES))))
        return Request(kind, "POST", path, body, tuple(headers), call=call)
    if how == "binary":
        body = draw(st.one_of(st.binary(max_size=300), st.sampled_from([b"\xff\xfe\xfd", b"\x00" * 100,
                                                                      b"api_key=\xff&body=\xc3"])))
        headers.append(("Content-Type", draw(st.sampled_from(WRONG_TYPES))))
        return Request(kind, "POST", path, body, tuple(headers), call=call)
    encoding = draw(st.sampled_from(["gzip", "deflate", "br", "gzip, gzip", "identity", "x-unknown"]))
    body = draw(st.sampled_from([gzip.compress(form), zlib.compress(form), b"\x1f\x8b\x08garbage", form,
                                 gzip.compress(form)[:-4]]))
    headers += [("Content-Type", "application/x-www-form-urlencoded"), ("Content-Encoding", encoding)]
    return Request(kind, "POST", path, body, tuple(headers), call=call)


GOOD_PHONES: Final = ("2125550100", "+1(347)264-3707", "13472643707", "212-555-0101", "(646) 200-0001", "2125550103")
plain_text = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=120).filter(str.strip)


def good_value(name: str, known: list[int]) -> st.SearchStrategy[str]:
    """A value for parameter *name* that the call should accept (so the write paths get exercised)."""
    good: dict[str, st.SearchStrategy[str]] = {
        "phone_number": st.sampled_from(GOOD_PHONES),
        "phone_numbers": st.lists(st.sampled_from((*GOOD_PHONES, "12345")), min_size=1, max_size=4).map(",".join),
        "body": plain_text,
        "template": st.sampled_from(["Hello, {{name}}", "{{ name }}: {{a}}", "Hi"]),
        "recipients": st.dictionaries(
            st.sampled_from((*GOOD_PHONES, "12345")),
            st.fixed_dictionaries({"name": plain_text, "a": st.one_of(st.integers(-(2**53), 2**53), st.booleans())}),
            min_size=1, max_size=4,
        ).map(json.dumps),
        "action_expected": st.sampled_from(BOOLEANS),
        "auto_subscribe": st.sampled_from(BOOLEANS),
        "on": st.sampled_from(DATES[:12]),
        "tag": st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=40),
        "message_ids": st.lists(known_id(known), min_size=1, max_size=5).map(",".join),
        "keyword": st.sampled_from(["HELLO", "books", "kw_1", "Deals now", "B"]),
        "mode": st.sampled_from(["0", "1"]),
        "auto_subscribe_tags": st.sampled_from(["", "news", "news,vip"]),
        "number": st.sampled_from(["6462000002", "+16462000003", "16462000001"]),
        "country": st.sampled_from(["US", "us", "CA"]),
    }
    return good.get(name, plain_text)


@st.composite
def api_requests(draw: Callable[[st.SearchStrategy[Any]], Any], engine: LiveEngine) -> Request:
    """A call with hostile parts; or (half the time) a good call with at most one hostile part."""
    careful = draw(st.booleans())
    roll = draw(st.integers(0, 9))
    if roll < 3:
        call = draw(st.sampled_from(sorted(SEND_CALLS)))
        segment = quote(call, safe="")
    elif roll < 9 or careful:
        call = draw(st.sampled_from(CALL_NAMES))
        segment = quote(call, safe="")
    else:
        call = draw(st.one_of(st.sampled_from(BAD_CALLS), st.text(max_size=40)))
        segment = quote(call, safe=draw(st.sampled_from(["", "/", "/%.", "%"])))
    documented = CALL_PARAMS.get(call, ())
    pairs: list[tuple[str, str]] = []
    if careful:
        required = {p.name for c in CALLS if c.name == call for p in c.params if p.required}
        required |= {"body", "phone_numbers"} & set(documented)
        for name in documented:
            if name in required or draw(st.integers(0, 9)) < 4:
                pairs.append((name, draw(good_value(name, engine.issued))))
        if pairs and draw(st.integers(0, 2)) == 0:  # poison one of them
            i = draw(st.integers(0, len(pairs) - 1))
            pairs[i] = (pairs[i][0], draw(param_value(pairs[i][0], engine.issued)))
    else:
        for name in documented:
            if draw(st.integers(0, 9)) < 7:
                pairs.append((name, draw(param_value(name, engine.issued))))
        for _ in range(draw(st.integers(0, 2))):
            name = draw(st.one_of(st.sampled_from(ALL_PARAMS), st.sampled_from(["api_key[]", "", "\x00", "API_KEY",
                                                                                "api_key ", *CRLF]),
                                  st.text(max_size=8)))
            pairs.append((name, draw(param_value(name, engine.issued))))
        draw(st.randoms(use_true_random=False)).shuffle(pairs)
    key = engine.key if careful and draw(st.integers(0, 9)) < 9 else draw(api_key_value(engine))
    if key is not None:
        pairs.insert(draw(st.integers(0, len(pairs))), ("api_key", key))
    path = f"/api/{segment}"
    target_call = call if call in CALL_PARAMS else None
    if careful and draw(st.integers(0, 3)) > 0:
        if draw(st.booleans()):
            return Request("api", "GET", f"{path}?{urlencode(pairs)}", call=target_call)
        return Request("api", "POST", path, urlencode(pairs).encode(),
                       (("Content-Type", "application/x-www-form-urlencoded"),), call=target_call)
    return with_body(draw, pairs, path, "api", target_call)


TWILIO_STATUSES: Final = (
    "queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "canceled", "accepted", "scheduled",
    "receiving", "received", "DELIVERED", " delivered ", "deliver ed", "delivered\x00",
)
ERROR_CODES: Final = ("30003", "0", "", "²", "-1", "99999999999", "2147483648", "1e3", "abc", "３０００３", "30003 ")


@st.composite
def webhook_requests(draw: Callable[[st.SearchStrategy[Any]], Any], engine: LiveEngine) -> Request:
    provider = draw(st.one_of(
        st.just(str(engine.provider_id)), st.just(str(engine.provider_id)), st.just(str(engine.provider_id)),
        st.sampled_from(["0", "-1", "99999999999999999999", str(MAX_BIGINT + 1), str(MAX_BIGINT), "٣", "1_0",
                         "+1", f"0{engine.provider_id}", "abc", "%00", "%2e%2e"]),
    ))
    message = draw(st.one_of(
        known_id(engine.issued), known_id(engine.issued), known_id(engine.issued),
        st.sampled_from(["0", "-1", "99999999999999999999", str(MAX_BIGINT + 1), str(-MAX_BIGINT - 2), "1_0", "٣",
                         "1e3", "x", "9" * 5000, "%20"]),
        st.text(alphabet="0123456789abc", min_size=1, max_size=30),
    ))
    query = draw(st.sampled_from(["", "", "", "?a=b", "?MessageStatus=delivered", "?x=%zz"]))
    target = engine.status_url(provider, message, query)
    fields: dict[str, str] = {}
    if draw(st.integers(0, 9)) < 8:
        fields["MessageStatus"] = draw(st.one_of(st.sampled_from(TWILIO_STATUSES), junk))
    if draw(st.booleans()):
        fields["SmsStatus"] = draw(st.one_of(st.sampled_from(TWILIO_STATUSES), junk))
    if draw(st.booleans()):
        fields["ErrorCode"] = draw(st.one_of(st.sampled_from(ERROR_CODES), junk))
    if draw(st.booleans()):
        fields["MessageSid"] = draw(st.one_of(st.just("SM" + "0123456789abcdef" * 2), junk))
    for _ in range(draw(st.integers(0, 2))):
        fields[draw(st.one_of(st.sampled_from(["AccountSid", "To", "From", "ApiVersion", "", "\x00"]),
                              st.text(max_size=8)))] = draw(junk)
    signature_kind = draw(st.sampled_from(["good", "good", "good", "good", "flipped", "random", "empty", "missing",
                                           "other-token", "other-url", "non-ascii", "long"]))
    good = engine.signed(target, fields)
    signature: str | None = {
        "good": good,
        "flipped": good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1],
        "random": draw(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=",
                               min_size=len(good), max_size=len(good))),
        "empty": "",
        "missing": None,
        "other-token": engine.signed(target, fields, token="not-the-token"),
        "other-url": engine.signed(target + "x", fields),
        "non-ascii": "é" * len(good),
        "long": good * 100,
    }[signature_kind]
    request = with_body(draw, list(fields.items()), target, "webhook", None)
    if draw(st.integers(0, 4)) > 0:  # mostly a well-formed form POST, so the signature path is exercised
        request = Request("webhook", "POST", target, urlencode(list(fields.items())).encode(),
                          (("Content-Type", "application/x-www-form-urlencoded"),))
    if signature is not None:
        encoded = signature.encode("utf-8").decode("latin-1")
        request = Request(request.kind, request.method, request.target, request.body,
                          (*request.headers, ("X-Twilio-Signature", encoded)), call=None)
    return request


RAW_LINES: Final = (
    b"Host: x", b"Content-Length: -1", b"Content-Length: 5\r\nContent-Length: 6", b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: chunked, identity", b"X-Twilio-Signature: \xff\xfe", b"Content-Length: 99999999999999999999",
    b"Content-Type: application/x-www-form-urlencoded; charset=\xff", b"NoColonHere", b"Space : before",
    b" folded continuation", b"X-Long: " + b"a" * 9000, b"X-Nul: a\x00b", b"Content-Encoding: gzip",
    b"Expect: 100-continue", b"Content-Length: 0", b"Upgrade: websocket", b"Connection: upgrade",
)


@st.composite
def raw_requests(draw: Callable[[st.SearchStrategy[Any]], Any], engine: LiveEngine) -> Request:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"G\x00T", b"", b"get", b"POST /", b"\xff" * 3]))
    call = draw(st.sampled_from([*CALL_NAMES, "x", ""]))
    target = draw(st.sampled_from([
        f"/api/{call}?api_key={engine.key}&phone_number=2125550100&body=hi%0d%0aX-Injected:%20yes".encode(),
        f"/api/{call}?api_key={engine.key}\r\n{INJECTED}: yes".encode(),
        b"/api/send_message?body=a b&api_key=" + engine.key.encode(),
        "/api/send_mé".encode(), b"/api/../../etc/passwd", b"/api/%2e%2e/%2e%2e/etc/passwd", b"*", b"",
        b"http://evil/api/dids", b"/api/" + b"x" * 9000, b"/api/dids?" + b"%" * 10, b"/webhooks/twilio/status/1/1",
        f"/webhooks/twilio/status/{engine.provider_id}/99999999999999999999".encode(), b"/\x00", b"//api//dids",
    ]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9", b"", b"HTTP/1.1 x",
                                    f"HTTP/1.1\r\n{INJECTED}: yes".encode()]))
    lines = draw(st.lists(st.sampled_from(RAW_LINES), max_size=3))
    body = draw(st.one_of(st.binary(max_size=64), st.just(b"api_key=" + engine.key.encode() + b"&body=x"),
                          st.just(b"5\r\nhello\r\nzz\r\n")))
    if not any(line.lower().startswith((b"content-length", b"transfer-encoding")) for line in lines):
        lines.append(b"Content-Length: %d" % len(body))
    head = b"\r\n".join([method + b" " + target + b" " + version, *lines, b"Connection: close"])
    return Request("raw", raw=head + b"\r\n\r\n" + body)


# ---- checks ------------------------------------------------------------------------------------------


@dataclass
class Tally:
    sent: int = 0
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    positive_ids: int = 0
    carrier_refusals: int = 0  # documented 422s: the (fake) carrier refused a DID operation


def check_reply(engine: LiveEngine, request: Request, reply: Reply, tally: Tally) -> None:
    tally.statuses[(request.call or request.kind, reply.status)] += 1
    names = {name.lower() for name, _ in reply.headers}
    assert INJECTED.lower() not in names and "set-cookie" not in names, (request, reply.headers)
    if "application/json" in dict(reply.headers).get("Content-Type", ""):
        # Our replies never echo an API key (aiohttp's own 400 for a malformed request line quotes it).
        assert engine.key.encode() not in reply.body, request
    if reply.status == 422 and request.call in CARRIER_CALLS:
        # Documented (README, Errors): the carrier refused what was asked, e.g. a country it does not sell in.
        assert reply.json()["error"].startswith("carrier error:"), reply
        tally.carrier_refusals += 1
        return
    assert reply.status < 500, (request, reply)  # zero 5xx, carrier calls included
    content_type = dict(reply.headers).get("Content-Type", "")
    if request.kind == "api" and request.call is not None and request.method in ("GET", "POST"):
        if not content_type.startswith("application/json"):
            # Only aiohttp's own answer to malformed HTTP (e.g. a request line over 8190 bytes) is not ours.
            assert reply.status == 400, (request, reply)
            return
        doc = reply.json()
        assert isinstance(doc, dict)
        if reply.status >= 400:
            assert isinstance(doc.get("error"), str), doc


def check_writes(
    engine: LiveEngine, request: Request, reply: Reply, before: dict[str, Any], after: dict[str, Any], tally: Tally
) -> None:
    """A request that did not succeed changes nothing; a successful send adds exactly the rows of its ids."""
    if reply.status >= 300 or reply.status == 0:
        assert after == before, (request, reply)
        return
    if after["outbound"] == before["outbound"]:
        new: list[int] = []
    else:
        new = sorted(r["id"] for r in engine.fetch("SELECT id FROM engine_outbound WHERE id <> ALL($1::bigint[])",
                                                    engine.issued))
        engine.issued.extend(new)
    assert after["outbound"] == before["outbound"] + len(new)
    if request.kind == "api" and request.call == "opt_in_request" and reply.body:
        assert [int(reply.json()["message_id"])] == new, (request, reply)  # the texted verification code
    elif request.kind == "api" and request.call in SEND_CALLS and reply.body:
        ids = [int(i) for i in reply.json()["message_ids"].split(",")]
        assert all(i in (-1, -2, -3) for i in ids if i <= 0), ids
        assert sorted(i for i in ids if i > 0) == new, (request, reply)
    elif request.kind != "raw":  # (a raw request line can be a good send_message call)
        assert not new, (request, reply)
    tally.positive_ids += len(new)


# ---- the fuzz run --------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_fuzzed_api_and_webhook_requests_never_fail_the_server_or_write_partially(engine: LiveEngine) -> None:
    tally = Tally()
    state = {"before": engine.snapshot()}
    started = time.monotonic()

    @settings(
        max_examples=MIN_REQUESTS + 100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(["api"] * 13 + ["webhook"] * 6 + ["raw"]), label="kind")
        builder = {"api": api_requests, "webhook": webhook_requests, "raw": raw_requests}[kind]
        request = data.draw(builder(engine), label="request")
        before = state["before"]
        reply = engine.send(request)
        tally.sent += 1
        state["before"] = after = engine.snapshot()  # (kept even when a check fails, for the next example)
        check_reply(engine, request, reply, tally)
        check_writes(engine, request, reply, before, after, tally)

    with fault_log() as faults:
        fuzz()
    elapsed = time.monotonic() - started
    print(f"\n{tally.sent} requests in {elapsed:.1f}s; {tally.positive_ids} messages queued; "
          f"{tally.carrier_refusals} carrier refusals")
    for (what, status), n in sorted(tally.statuses.items()):
        print(f"  {what:>20} {status}: {n}")

    assert tally.sent >= MIN_REQUESTS
    assert not faults, describe(faults)
    # The fuzz reached the interesting paths, not only the 4xx ones.
    assert tally.positive_ids > 0
    assert tally.statuses[("webhook", 204)] > 0 and tally.statuses[("webhook", 403)] > 0
    assert engine.fetchval("SELECT count(*) FROM engine_outbound WHERE status_rank > 0") > 0  # callbacks wrote
    assert engine.runtime is not None and engine.runtime.intake is not None
    assert engine.runtime.intake.writer.failures == 0 and len(engine.runtime.intake.writer) == 0
    # The schema is intact and holds exactly what the successful sends reported.
    for table in TABLES:
        assert engine.fetchval("SELECT to_regclass($1)::text", table) == table
    ids = sorted(r["id"] for r in engine.fetch("SELECT id FROM engine_outbound"))
    assert ids == sorted(engine.issued)
    assert engine.fetchval("SELECT count(*) FROM engine_outbound WHERE recipient !~ '^\\+[1-9][0-9]{6,14}$'") == 0
    assert engine.fetchval("SELECT count(*) FROM engine_outbound WHERE app_id <> ALL($1::bigint[])",
                           [engine.app_id, engine.bare_app_id]) == 0
    assert engine.fetchval("SELECT count(*) FROM engine_app") == 2
    health = engine.send(Request("api", "GET", "/healthz"))
    assert health.status == 200


# ---- failed calls change nothing --------------------------------------------------------------------


def failing_calls(engine: LiveEngine) -> list[tuple[str, dict[str, str]]]:
    """Calls with good parts and one bad part, each of which must fail as a whole (4xx)."""
    valid = "2125550100,2125550101,+1(347)264-3707"
    key = engine.key
    return [
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "hi", "on": "not a date"}),
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "hi", "action_expected": "maybe"}),
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "hi", "tag": "x" * 256}),
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "hi", "tag": "a\x00b"}),
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "x" * 1601}),
        ("send_message", {"api_key": key, "phone_numbers": ",".join(["2125550100"] * 1001), "body": "hi"}),
        ("send_message", {"api_key": key + "x", "phone_numbers": valid, "body": "hi"}),
        ("send_message", {"api_key": key, "phone_numbers": valid, "body": "hi", "on": "0001-01-01T00:00:00+0500"}),
        ("send_messages", {"api_key": key, "template": "Hi {{name}}", "recipients": json.dumps(
            {"2125550100": {"name": "a"}, "2125550101": {"name": "b"}, "2125550102": {}})}),
        ("send_messages", {"api_key": key, "template": "Hi {{name}}", "recipients": json.dumps(
            {"2125550100": {"name": "a"}, "2125550101": {"name": "x" * 1600}})}),
        ("send_messages", {"api_key": key, "template": "Hi {{name}}",
                           "recipients": '{"2125550100": {"name": "a"}, "2125550101": {"name": [1]}}'}),
        ("send_messages", {"api_key": key, "template": "Hi", "recipients": '{"2125550100": {}}',
                           "action_expected": "1", "on": "31/31/2020"}),
        ("cancel_messages", {"api_key": key, "message_ids": "1,2,x"}),
        ("delivery_status", {"api_key": key, "message_ids": "1,2,1_000x"}),
        ("blacklist", {"api_key": key, "phone_numbers": ",".join(["2125550100"] * 1001)}),
        ("blacklist", {"api_key": key, "phone_numbers": "2125550100,2125550101\x00"}),
        ("close_sessions", {"api_key": key, "phone_numbers": "2125550100\x00"}),
        ("associate_keyword", {"api_key": key, "keyword": "BOOKS", "mode": "2"}),
        ("associate_keyword", {"api_key": key, "keyword": "BOOKS", "auto_subscribe": "perhaps"}),
        ("associate_keyword", {"api_key": key, "keyword": "BOOKS", "auto_subscribe_tags": ",".join(
            f"t{i}" for i in range(21))}),
        ("associate_keyword", {"api_key": key, "keyword": "BOOKS", "auto_subscribe_tags": "x" * 65}),
        ("dissociate_keyword", {"api_key": engine.bare_key + "?", "keyword": "BOOKS"}),
        ("remove_tag", {"api_key": key, "phone_number": "12345", "tag": "t"}),
        ("add_did", {"api_key": key, "number": "12345"}),
        ("add_did", {"api_key": key, "number": "6462000002", "country": "USA"}),
        ("add_did", {"api_key": engine.bare_key, "number": "6462000002"}),
        ("delete_did", {"api_key": key, "number": "6462000009"}),
        ("find_did", {"api_key": key, "number": "2'; DROP TABLE engine_did; --"}),
    ]


def test_calls_that_fail_change_nothing(engine: LiveEngine) -> None:
    # Some state for the failing calls to spoil: queued messages, a keyword, a session, a blacklisting.
    ok = engine.send(api_post(engine, "send_message", {"api_key": engine.key, "phone_numbers": "2125550100,2125550101",
                                                       "body": "hi", "action_expected": "yes"}))
    assert ok.status == 200, ok
    engine.issued.extend(int(i) for i in ok.json()["message_ids"].split(","))
    for call, params in [("associate_keyword", {"keyword": "BOOKS", "mode": "1"}),
                         ("blacklist", {"phone_number": "2125550199"})]:
        assert engine.send(api_post(engine, call, {"api_key": engine.key, **params})).status == 200
    before = engine.snapshot()
    statuses: list[int] = []
    with fault_log() as faults:
        for call, params in failing_calls(engine):
            for method in ("GET", "POST"):
                reply = engine.send(api_post(engine, call, params, method=method))
                assert 400 <= reply.status < 500, (call, params, reply)
                statuses.append(reply.status)
        failing = refused_callbacks(engine)

        @settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
        @given(data=st.data())
        def poisoned(data: st.DataObject) -> None:
            call, params = data.draw(st.sampled_from(failing_calls(engine)))
            extra = data.draw(st.dictionaries(st.sampled_from(ALL_PARAMS), junk, max_size=2))
            merged = {**extra, **params}  # the poisoned part always wins
            reply = engine.send(api_post(engine, call, merged, method=data.draw(st.sampled_from(["GET", "POST"]))))
            assert 400 <= reply.status < 500, (call, merged, reply)

        poisoned()
    assert engine.snapshot() == before
    assert not faults, describe(faults)
    assert failing > 0
    assert set(statuses) <= {400, 401, 409}


def refused_callbacks(engine: LiveEngine) -> int:
    """Webhooks that must be refused: forged or unknown; none of them may touch the message."""
    mid = engine.issued[0]
    params = {"MessageStatus": "delivered", "MessageSid": "SM" + "1" * 32}
    refused = 0
    for provider, message, signature in [
        (str(engine.provider_id), str(mid), engine.signed(engine.status_url("0", str(mid)), params)),
        (str(engine.provider_id), str(mid), ""),
        ("0", str(mid), engine.signed(engine.status_url("0", str(mid)), params)),
        (str(engine.provider_id + 1), str(mid), engine.signed(engine.status_url(str(engine.provider_id + 1), str(mid)),
                                                             params)),
        ("99999999999999999999", str(mid), "x"),
        (str(engine.provider_id), str(mid), engine.signed(engine.status_url(str(engine.provider_id), str(mid)), params,
                                                          token="wrong")),
    ]:
        target = engine.status_url(provider, message)
        reply = engine.send(Request("webhook", "POST", target, urlencode(params).encode(), (
            ("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", signature))))
        assert 400 <= reply.status < 500, (provider, message, reply)
        refused += 1
    return refused


def api_post(engine: LiveEngine, call: str, params: Mapping[str, str], *, method: str = "POST") -> Request:
    encoded = urlencode(list(params.items()))
    if method == "GET":
        return Request("api", "GET", f"/api/{call}?{encoded}", call=call)
    return Request("api", "POST", f"/api/{call}", encoded.encode(),
                   (("Content-Type", "application/x-www-form-urlencoded"),), call=call)


# ---- oversized bodies, injections ------------------------------------------------------------------


def test_oversized_bodies_are_rejected_with_413_and_change_nothing(engine: LiveEngine) -> None:
    before = engine.snapshot()
    big = "x" * (1024 * 1024 + 10)
    form = urlencode({"api_key": engine.key, "phone_number": "2125550100", "body": big}).encode()
    reply = engine.send(Request("api", "POST", "/api/send_message", form,
                                (("Content-Type", "application/x-www-form-urlencoded"),), call="send_message"))
    assert reply.status == 413 and reply.json()["error"], reply
    body = (b"--b\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\n" + big.encode() + b"\r\n--b--\r\n")
    reply = engine.send(Request("api", "POST", f"/api/send_message?api_key={engine.key}&phone_number=2125550100",
                                body, (("Content-Type", "multipart/form-data; boundary=b"),), call="send_message"))
    assert reply.status == 413, reply
    mid = engine.issued[0] if engine.issued else 1
    target = engine.status_url(str(engine.provider_id), str(mid))
    fields = {"MessageStatus": "delivered", "Padding": big}
    reply = engine.send(Request("webhook", "POST", target, urlencode(fields).encode(), (
        ("Content-Type", "application/x-www-form-urlencoded"), ("X-Twilio-Signature", engine.signed(target, fields)))))
    assert reply.status == 413, reply
    # A query string over the request-line limit is refused before any handler runs.
    reply = engine.send(Request("api", "GET", f"/api/dids?api_key={engine.key}&pad={'x' * 20000}"))
    assert 400 <= reply.status < 500, reply
    assert engine.snapshot() == before


def test_sql_and_header_injection_are_inert(engine: LiveEngine) -> None:
    for text in SQL_INJECTION:
        reply = engine.send(api_post(engine, "send_message", {"api_key": engine.key, "phone_number": "2125550100",
                                                              "body": text, "tag": text}))
        assert reply.status == 200, reply
        (mid,) = (int(i) for i in reply.json()["message_ids"].split(","))
        row = engine.fetch("SELECT body, tag FROM engine_outbound WHERE id = $1", mid)[0]
        assert (row["body"], row["tag"]) == (text, text)  # stored verbatim, never executed
        for call, params in [("associate_keyword", {"keyword": text}), ("blacklist_status", {"phone_numbers": text}),
                             ("delivery_status", {"message_ids": text}), ("remove_tag", {"phone_number": text,
                                                                                        "tag": text})]:
            reply = engine.send(api_post(engine, call, {"api_key": engine.key, **params}))
            assert reply.status in (200, 400), (call, reply)
        reply = engine.send(api_post(engine, "send_message", {"api_key": text, "phone_number": "2125550100",
                                                              "body": "x"}))
        assert reply.status == 401
    for table in TABLES:
        assert engine.fetchval("SELECT to_regclass($1)::text", table) == table
    assert engine.fetchval("SELECT count(*) FROM engine_app") == 2
    assert engine.fetchval("SELECT count(*) FROM engine_outbound WHERE state <> 'queued'") == 0
    # CRLF in parameters, in the call name and in the raw request line never becomes a response header.
    for text in CRLF:
        for request in (
            api_post(engine, "send_message", {"api_key": engine.key, "phone_number": text, "body": text, "tag": text}),
            api_post(engine, "send_message", {"api_key": engine.key, "phone_number": "2125550100", "body": "x",
                                              "on": text}),
            Request("api", "GET", f"/api/{quote(text, safe='')}?api_key={engine.key}"),
            Request("raw", raw=f"GET /api/dids?api_key={engine.key}&x={text} HTTP/1.1\r\nHost: x\r\n"
                    f"Connection: close\r\n\r\n".encode()),
        ):
            reply = engine.send(request)
            assert reply.status < 500, reply
            assert INJECTED.lower() not in {k.lower() for k, _ in reply.headers}, reply
            assert "set-cookie" not in {k.lower() for k, _ in reply.headers}, reply


# ---- regressions: inputs the fuzzing found answered with 500 or poisoning the status writer ------------


def multipart_request(call: str, body: bytes, content_type: str, query: str = "") -> Request:
    return Request("api", "POST", f"/api/{call}{query}", body, (("Content-Type", content_type),), call=call)


def test_known_hostile_inputs_are_client_errors(engine: LiveEngine) -> None:
    key = engine.key
    auth = f"?api_key={key}"
    part = b'--b\r\nContent-Disposition: form-data; name="body"\r\n\r\nhi\r\n'
    upload = b'--b\r\nContent-Disposition: form-data; name="f"; filename="x.txt"\r\n\r\ndata\r\n'
    bad: list[Request] = [
        multipart_request("dids", b"--x--\r\n", "multipart/form-data; boundary=b", auth),  # no starting boundary
        multipart_request("dids", part, "multipart/form-data", auth),  # no boundary parameter
        multipart_request("dids", b'--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n',
                          "multipart/form-data; boundary=b", auth),  # a part without a name
        multipart_request("dids", b'--b\r\nContent-Disposition: form-data; name="\x00"\r\n\r\nx\r\n--b--\r\n',
                          "multipart/form-data; boundary=b", auth),  # a malformed part header
        multipart_request("dids", upload + b'--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n',
                          "multipart/form-data; boundary=b", auth),  # an upload, then a broken part
        multipart_request("dids", b'--b\r\nContent-Disposition: form-data; name="x"\r\n'
                          b"Content-Transfer-Encoding: base64\r\n\r\nA\r\n--b--\r\n",
                          "multipart/form-data; boundary=b", auth),  # bad base64
        multipart_request("dids", b"api_key=x", "application/x-www-form-urlencoded; charset=bogus", auth),
        Request("api", "POST", f"/api/dids{auth}", b"\x1f\x8bgarbage", (
            ("Content-Type", "application/x-www-form-urlencoded"), ("Content-Encoding", "gzip")), call="dids"),
        api_post(engine, "send_message", {"api_key": key, "phone_number": "2125550100", "body": "x",
                                          "on": "0001-01-01T00:00:00+0500"}),
        api_post(engine, "send_message", {"api_key": key, "phone_number": "2125550100", "body": "x",
                                          "on": "9999-12-31T23:59:59-0500"}),
        api_post(engine, "delivery_status", {"api_key": key, "message_ids": "1_000"}),
        api_post(engine, "cancel_messages", {"api_key": key, "message_ids": "١٢"}),
    ]
    before = engine.snapshot()
    with fault_log() as faults:
        for n, request in enumerate(bad):
            reply = engine.send(request)
            assert reply.status == 400, (n, request, reply)
            assert reply.json()["error"], reply
        # Ids beyond bigint cannot exist: left out, like any unknown id.
        for ids in ("99999999999999999999", str(MAX_BIGINT + 1), "9" * 5000, f"{MAX_BIGINT},-{MAX_BIGINT + 5}"):
            reply = engine.send(api_post(engine, "delivery_status", {"api_key": key, "message_ids": ids}))
            assert (reply.status, reply.json()) == (200, {}), reply
            reply = engine.send(api_post(engine, "cancel_messages", {"api_key": key, "message_ids": ids}))
            assert (reply.status, reply.json()) == (200, {"canceled_count": 0}), reply
        # An upload among the fields is ignored (and its temporary file closed); the fields still count.
        reply = engine.send(multipart_request("send_message", upload + part + b"--b--\r\n",
                                              "multipart/form-data; boundary=b", f"{auth}&phone_number=2125550100"))
        assert reply.status == 200, reply
        engine.issued.extend(int(i) for i in reply.json()["message_ids"].split(","))
    assert not faults, describe(faults)
    assert engine.snapshot()["outbound"] == before["outbound"] + 1


def test_signed_callbacks_with_unwritable_values_do_not_stall_the_status_writer(engine: LiveEngine) -> None:
    reply = engine.send(api_post(engine, "send_message", {"api_key": engine.key, "phone_number": "2125550100",
                                                          "body": "hi"}))
    (mid,) = (int(i) for i in reply.json()["message_ids"].split(","))
    provider = str(engine.provider_id)

    def callback(provider_id: str, message_id: str, fields: dict[str, str]) -> Reply:
        target = engine.status_url(provider_id, message_id)
        return engine.send(Request("webhook", "POST", target, urlencode(fields).encode(), (
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Twilio-Signature", engine.signed(target, fields)))))

    with fault_log() as faults:
        # Ids no row can have: 404 (they used to reach the batch and fail it, again and again).
        for provider_id, message_id in [(provider, str(MAX_BIGINT + 1)), (provider, "99999999999999999999"),
                                        (str(MAX_BIGINT + 1), str(mid)), (provider, "٣"), (provider, "-1")]:
            assert callback(provider_id, message_id, {"MessageStatus": "sent"}).status == 404
        # Values the columns cannot hold are dropped, the status itself is written.
        started = time.monotonic()
        for fields in [{"MessageStatus": "sent", "ErrorCode": "²"},
                       {"MessageStatus": "sending", "ErrorCode": "99999999999"},
                       {"MessageStatus": "sent", "MessageSid": "SM\x00" + "0" * 32},
                       {"MessageStatus": "queued", "MessageSid": "S" * 5000}]:
            assert callback(provider, str(mid), fields).status == 204, fields
        assert time.monotonic() - started < 5  # answered after a commit, not after the 10 s ack timeout
        assert callback(provider, str(mid), {"MessageStatus": " Delivered ", "ErrorCode": "30003",
                                             "MessageSid": "SM" + "a" * 32}).status == 204
    assert not faults, describe(faults)
    assert engine.runtime is not None and engine.runtime.intake is not None
    assert engine.runtime.intake.writer.failures == 0
    row = engine.fetch("SELECT status, provider_status, error_code, provider_message_id FROM engine_outbound "
                       "WHERE id = $1", mid)[0]
    assert dict(row) == {"status": 1, "provider_status": "delivered", "error_code": 30003,
                         "provider_message_id": "SM" + "a" * 32}


# ---- webhook signatures and API keys ------------------------------------------------------------------


def test_webhook_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "https://engine.example/webhooks/twilio/status/1/2"
    params = {"MessageStatus": "delivered", "MessageSid": "SM" + "a" * 32}
    good = twilio_signature(DEFAULT_AUTH_TOKEN, url, params)
    assert validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, params, good)
    # Wrong signatures of the same length (differing first, in the middle, last) all fail.
    for i in (0, len(good) // 2, len(good) - 2):
        wrong = good[:i] + ("A" if good[i] != "A" else "B") + good[i + 1 :]
        assert len(wrong) == len(good) and not validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, params, wrong)
    for odd in ("", good[:-1], good + "=", "é" * len(good), "\x00" * len(good), good.lower()):
        assert not validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, params, odd)
    assert not validate_twilio_signature("other-token", url, params, good)
    assert not validate_twilio_signature(DEFAULT_AUTH_TOKEN, url + "?", params, good)
    # The comparison is hmac.compare_digest, not ==.
    assert "hmac.compare_digest" in inspect.getsource(validate_twilio_signature)
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # looked up at call time by engine.providers.twilio
    assert validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, params, good)
    assert not validate_twilio_signature(DEFAULT_AUTH_TOKEN, url, params, good[:-2] + "AA")
    assert len(calls) == 2


def test_api_keys_are_stored_hashed(engine: LiveEngine) -> None:
    rows = engine.fetch("SELECT row_to_json(a)::text AS doc, api_key_hash FROM engine_app a ORDER BY id")
    assert len(rows) == 2
    for row, key in zip(rows, (engine.key, engine.bare_key), strict=True):
        assert key not in row["doc"]
        assert row["api_key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    dump = "".join(r["doc"] for r in engine.fetch(
        "SELECT row_to_json(t)::text AS doc FROM (SELECT * FROM engine_app) t UNION ALL "
        "SELECT row_to_json(p)::text FROM engine_provider p UNION ALL SELECT row_to_json(s)::text FROM engine_smsc s"))
    assert engine.key not in dump and engine.bare_key not in dump
    # The key works; its stored hash does not (a leaked row is not a credential).
    assert engine.send(api_post(engine, "dids", {"api_key": engine.key})).status == 200
    stored = rows[0]["api_key_hash"]
    assert engine.send(api_post(engine, "dids", {"api_key": stored})).status == 401
