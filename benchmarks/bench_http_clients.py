"""Async HTTP clients on the carrier hot path: client-process CPU µs per request, requests/s, connections opened.

One Twilio-format create-message POST per request (Basic auth, a 173-byte pre-encoded form body, a 723-byte
JSON reply with status 201), C requests in flight over HTTP/1.1 keep-alive to one loopback aiohttp server.

Every measured run is its own process (``run`` below) on uvloop; the server is another process (``serve``) for
the whole benchmark. A run makes its client, sends a warm-up (which opens the connections), then times N requests:
CPU is ``time.process_time()`` of the client process over that window (all its threads: the Rust clients do
their I/O on Tokio threads), so the server's work is not in it. Clients alternate in rounds (A B C A B C ...) and
the table shows each one's median (and min-max) over the rounds.

The server counts the connections it accepted; a client that keeps connections alive opens about min(C, its pool
size) of them for the whole run (warm-up included). ``--probe`` also checks, once per client, how it reports a
refused connection, a connect timeout, a read timeout, a truncated body and a connection dropped before the reply
(and whether it re-sent the POST: a duplicate SMS).

    python -m benchmarks.bench_http_clients [--requests N] [--concurrency C] [--rounds R] [--clients a,b]
                                            [--probe] [--release-dates] [--json]

Clients other than aiohttp are imported lazily; a client whose package is missing is skipped with a note.
``--release-dates`` asks PyPI's JSON API for each package's upload date (a few look-ups; off by default).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import importlib.metadata
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from benchmarks.processes import free_port

PATH = "/2010-04-01/Accounts/AC123/Messages.json"
AUTHORIZATION = "Basic " + base64.b64encode(b"AC123:0123456789abcdef0123456789abcdef").decode()
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
HEADERS: dict[str, str] = {
    "Authorization": AUTHORIZATION,
    "Content-Type": FORM_CONTENT_TYPE,
    "Accept": "application/json",
}
FORM_BODY = (
    b"To=%2B12125550123&From=%2B16465550100&Body=Your+code+is+482913.+It+expires+in+10+minutes."
    b"&StatusCallback=http%3A%2F%2F127.0.0.1%3A8080%2Fwebhooks%2Ftwilio%2Fstatus%2F1%2F123"
)
_SID = "SM" + "0123456789abcdef" * 2
REPLY = json.dumps(
    {
        "account_sid": "AC123",
        "api_version": "2010-04-01",
        "body": "Your code is 482913. It expires in 10 minutes.",
        "date_created": "Thu, 30 Jul 2015 20:12:31 +0000",
        "date_sent": None,
        "date_updated": "Thu, 30 Jul 2015 20:12:31 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": "+16465550100",
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": _SID,
        "status": "queued",
        "subresource_uris": {"media": f"/2010-04-01/Accounts/AC123/Messages/{_SID}/Media.json"},
        "to": "+12125550123",
        "uri": f"/2010-04-01/Accounts/AC123/Messages/{_SID}.json",
    },
    separators=(", ", ": "),
).encode()


def log(msg: str) -> None:
    """Progress goes to stderr: stdout is reserved for the result."""
    sys.stderr.write(f"[bench-http] {msg}\n")
    sys.stderr.flush()


def run_uvloop(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a project dependency on Linux
        return asyncio.run(coro)
    return uvloop.run(coro)


# ---- the server (its own process) ------------------------------------------------------------------------------


async def _serve(port: int) -> None:
    from aiohttp import web

    stats = {"connections": 0, "requests": 0, "bad_requests": 0, "stats_requests": 0}

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "POST" and request.path == PATH:
            body = await request.read()
            stats["requests"] += 1
            headers = request.headers
            if (
                body != FORM_BODY
                or headers.get("Authorization") != AUTHORIZATION
                or headers.get("Content-Type") != FORM_CONTENT_TYPE
            ):
                stats["bad_requests"] += 1
            return web.Response(status=201, body=REPLY, content_type="application/json")
        if request.path == "/stats":
            # urllib opens one connection per stats request: the caller subtracts them from "connections".
            stats["stats_requests"] += 1
            return web.json_response({**stats, "cpu_s": time.process_time()})
        return web.Response(status=404)

    server = web.Server(handle)

    def protocol_factory() -> asyncio.BaseProtocol:
        stats["connections"] += 1  # one call per accepted connection
        return server()

    loop = asyncio.get_running_loop()
    await loop.create_server(protocol_factory, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    await asyncio.Event().wait()  # until the parent terminates this process


def server_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
        return doc


@contextmanager
def server_process(port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_http_clients", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("benchmark server did not start")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- the clients -------------------------------------------------------------------------------------------------

Send = Callable[[], Awaitable[tuple[int, int]]]


@dataclass
class Adapter:
    send: Send
    close: Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float
    total: float


# As the engine's TwilioClient: total 15 s, connect 5 s (a read timeout, where a client has one, at 15 s).
BENCH_TIMEOUTS = Timeouts(connect=5.0, read=15.0, total=15.0)
# Short ones for --probe (whole seconds: rnet takes integers).
PROBE_TIMEOUTS = Timeouts(connect=1.0, read=1.0, total=3.0)


@dataclass(frozen=True)
class AioOpts:
    """How one aiohttp variant is set up; the defaults are a stock ``ClientSession()``."""

    limit: int | None = None  # None: aiohttp's default TCPConnector (limit=100); -1: the concurrency; 0: no limit
    url_object: bool = False  # a pre-built yarl.URL instead of a str
    # stock (session default: total 300 s), request (a prebuilt object per call), session, connect (session: connect
    # only, no total), connect_read (session: connect and sock_read, no total), none
    timeout: str = "stock"
    skip_auto_headers: bool = False  # no User-Agent, no Accept-Encoding
    auto_decompress: bool = True
    headers: str = "dict"  # dict (per request), cimultidict (a prebuilt CIMultiDict per request), session
    dummy_cookie_jar: bool = False


ENGINE = AioOpts(limit=-1, url_object=True, timeout="request")  # what engine/providers/twilio.py does today
TUNED = AioOpts(
    limit=0,
    url_object=True,
    timeout="session",
    skip_auto_headers=True,
    auto_decompress=False,
    headers="session",
    dummy_cookie_jar=True,
)
AIOHTTP_VARIANTS: dict[str, AioOpts] = {
    "aiohttp": AioOpts(),
    "aiohttp-engine": ENGINE,
    "aiohttp-engine+limit0": replace(ENGINE, limit=0),
    "aiohttp-engine+limit100": replace(ENGINE, limit=100),
    "aiohttp-engine+str_url": replace(ENGINE, url_object=False),
    "aiohttp-engine+session_timeout": replace(ENGINE, timeout="session"),
    "aiohttp-engine+connect_timeout_only": replace(ENGINE, timeout="connect"),
    "aiohttp-engine+connect_read_timeout": replace(ENGINE, timeout="connect_read"),
    "aiohttp-engine+no_timeout": replace(ENGINE, timeout="none"),
    "aiohttp-engine+skip_auto_headers": replace(ENGINE, skip_auto_headers=True),
    "aiohttp-engine+no_decompress": replace(ENGINE, auto_decompress=False),
    "aiohttp-engine+cimultidict": replace(ENGINE, headers="cimultidict"),
    "aiohttp-engine+session_headers": replace(ENGINE, headers="session"),
    "aiohttp-engine+dummy_cookie_jar": replace(ENGINE, dummy_cookie_jar=True),
    "aiohttp-tuned": TUNED,
    "aiohttp-tuned+connect_read_timeout": replace(TUNED, timeout="connect_read"),
}


def _aiohttp_adapter(opts: AioOpts, url: str, concurrency: int, to: Timeouts) -> Adapter:
    import aiohttp
    from multidict import CIMultiDict
    from yarl import URL

    timeout = aiohttp.ClientTimeout(total=to.total, connect=to.connect)
    if to is PROBE_TIMEOUTS:
        timeout = aiohttp.ClientTimeout(total=to.total, connect=to.connect, sock_read=to.read)
    kwargs: dict[str, Any] = {"auto_decompress": opts.auto_decompress}
    if opts.limit is not None:
        limit = concurrency if opts.limit < 0 else opts.limit
        kwargs["connector"] = aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300)
    if opts.timeout == "session":
        kwargs["timeout"] = timeout
    elif opts.timeout == "connect":
        kwargs["timeout"] = aiohttp.ClientTimeout(connect=to.connect)
    elif opts.timeout == "connect_read":
        kwargs["timeout"] = aiohttp.ClientTimeout(connect=to.connect, sock_read=to.read)
    elif opts.timeout == "none":
        kwargs["timeout"] = aiohttp.ClientTimeout()
    if opts.skip_auto_headers:
        kwargs["skip_auto_headers"] = ("User-Agent", "Accept-Encoding")
    if opts.headers == "session":
        kwargs["headers"] = HEADERS
    if opts.dummy_cookie_jar:
        kwargs["cookie_jar"] = aiohttp.DummyCookieJar()
    session = aiohttp.ClientSession(**kwargs)
    target: str | URL = URL(url) if opts.url_object else url
    headers: dict[str, str] | CIMultiDict[str] | None = HEADERS
    if opts.headers == "cimultidict":
        headers = CIMultiDict(HEADERS)
    elif opts.headers == "session":
        headers = None
    per_request: dict[str, Any] = {"timeout": timeout} if opts.timeout == "request" else {}

    async def send() -> tuple[int, int]:
        async with session.post(target, data=FORM_BODY, headers=headers, **per_request) as resp:
            body = await resp.read()
            return resp.status, len(body)

    return Adapter(send, session.close)


def _httpx_adapter(url: str, concurrency: int, to: Timeouts) -> Adapter:
    httpx: Any = importlib.import_module("httpx")
    client = httpx.AsyncClient(
        http1=True,
        http2=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=httpx.Timeout(to.total, connect=to.connect, read=to.read),
    )

    async def send() -> tuple[int, int]:
        resp = await client.post(url, content=FORM_BODY, headers=HEADERS)
        return int(resp.status_code), len(resp.content)

    return Adapter(send, client.aclose)


def _aiosonic_adapter(url: str, concurrency: int, to: Timeouts) -> Adapter:
    aiosonic: Any = importlib.import_module("aiosonic")
    pools: Any = importlib.import_module("aiosonic.pools")
    timeouts: Any = importlib.import_module("aiosonic.timeout")
    connector = aiosonic.TCPConnector(
        # max_conn_requests defaults to 1000 (a connection is replaced after 1000 requests): keep them instead.
        pool_configs={":default": pools.PoolConfig(size=concurrency, max_conn_requests=None)},
        timeouts=timeouts.Timeouts(sock_connect=to.connect, sock_read=to.read, request_timeout=to.total),
    )
    client = aiosonic.HTTPClient(connector=connector)

    async def send() -> tuple[int, int]:
        resp = await client.post(url, data=FORM_BODY, headers=HEADERS)
        body = await resp.content()
        return int(resp.status_code), len(body)

    return Adapter(send, client.aclose)


def _niquests_adapter(url: str, concurrency: int, to: Timeouts) -> Adapter:
    niquests: Any = importlib.import_module("niquests")
    session = niquests.AsyncSession(
        pool_connections=1,
        pool_maxsize=concurrency,
        disable_http2=True,
        disable_http3=True,
        timeout=(to.connect, to.read),
    )
    session.trust_env = False

    async def send() -> tuple[int, int]:
        resp = await session.post(url, data=FORM_BODY, headers=HEADERS)
        return int(resp.status_code), len(resp.content)

    return Adapter(send, session.close)


def _rnet_adapter(url: str, concurrency: int, to: Timeouts) -> Adapter:
    rnet: Any = importlib.import_module("rnet")
    client = rnet.Client(
        http1_only=True,
        allow_redirects=False,
        cookie_store=False,
        no_proxy=True,
        timeout=round(to.total),
        connect_timeout=round(to.connect),
        read_timeout=round(to.read),
        pool_max_idle_per_host=concurrency,
    )

    async def send() -> tuple[int, int]:
        resp = await client.post(url, body=FORM_BODY, headers=HEADERS)
        body = await resp.bytes()
        return int(resp.status), len(body)

    async def close() -> None:
        return None  # rnet's Client has no close(): its pool goes with the object

    return Adapter(send, close)


def _pyreqwest_adapter(url: str, concurrency: int, to: Timeouts) -> Adapter:
    client_mod: Any = importlib.import_module("pyreqwest.client")
    client = (
        client_mod.ClientBuilder()
        .http1_only()
        .no_proxy()
        .follow_redirects(False)
        .timeout(timedelta(seconds=to.total))
        .connect_timeout(timedelta(seconds=to.connect))
        .read_timeout(timedelta(seconds=to.read))
        .pool_max_idle_per_host(concurrency)
        .build()
    )

    async def send() -> tuple[int, int]:
        resp = await client.post(url).headers(HEADERS).body_bytes(FORM_BODY).build().send()
        body = await resp.bytes()
        return int(resp.status), len(body)

    return Adapter(send, client.close)


def _engine_http1_adapter(url: str, concurrency: int, to: Timeouts) -> Adapter:
    """The engine's own client of the create call (engine/providers/http1.py), as TwilioClient uses it: the whole
    request (head with its prebuilt headers, and the form) written at once on a kept-alive connection."""
    from yarl import URL

    from engine.providers.http1 import Http1Pool, host_header

    target = URL(url)
    head = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    data = (f"POST {target.raw_path} HTTP/1.1\r\nHost: {host_header(target)}\r\n{head}"
            f"Content-Length: {len(FORM_BODY)}\r\n\r\n").encode() + FORM_BODY
    pool: Http1Pool | None = None

    async def send() -> tuple[int, int]:
        nonlocal pool
        if pool is None:  # it binds to the running loop
            pool = Http1Pool(url, limit=concurrency, connect_timeout=to.connect, read_timeout=to.read)
        reply = await pool.request(data)
        return reply.status, len(reply.body)

    async def close() -> None:
        if pool is not None:
            await pool.close()

    return Adapter(send, close)


@dataclass(frozen=True)
class ClientSpec:
    module: str  # what must be importable
    dist: str  # the distribution whose version is reported
    make: Callable[[str, int, Timeouts], Adapter]


def _aio(opts: AioOpts) -> Callable[[str, int, Timeouts], Adapter]:
    return lambda url, concurrency, to: _aiohttp_adapter(opts, url, concurrency, to)


CLIENTS: dict[str, ClientSpec] = {
    name: ClientSpec("aiohttp", "aiohttp", _aio(o)) for name, o in AIOHTTP_VARIANTS.items()
}
CLIENTS |= {
    "httpx": ClientSpec("httpx", "httpx", _httpx_adapter),
    "aiosonic": ClientSpec("aiosonic", "aiosonic", _aiosonic_adapter),
    "niquests": ClientSpec("niquests", "niquests", _niquests_adapter),
    "rnet": ClientSpec("rnet", "rnet", _rnet_adapter),
    "pyreqwest": ClientSpec("pyreqwest", "pyreqwest", _pyreqwest_adapter),
    "engine-http1": ClientSpec("httptools", "httptools", _engine_http1_adapter),
}


# ---- one measured run (its own process) ---------------------------------------------------------------------------


@dataclass
class Outcome:
    ok: int = 0
    errors: int = 0
    first_error: str = ""


async def drive(send: Send, n: int, concurrency: int) -> Outcome:
    """*n* requests through *concurrency* workers; each must come back 201 with the whole reply."""
    out = Outcome()
    remaining = n
    expected = len(REPLY)

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                status, size = await send()
            except Exception as exc:
                out.errors += 1
                out.first_error = out.first_error or f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
                continue
            if status == 201 and size == expected:
                out.ok += 1
            else:
                out.errors += 1
                out.first_error = out.first_error or f"status {status}, {size} bytes"

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return out


async def _run(name: str, port: int, n: int, concurrency: int, warmup: int) -> dict[str, Any]:
    adapter = CLIENTS[name].make(f"http://127.0.0.1:{port}{PATH}", concurrency, BENCH_TIMEOUTS)
    try:
        warm = await drive(adapter.send, warmup, concurrency)
        before = server_stats(port)
        cpu0, t0 = time.process_time(), time.perf_counter()
        out = await drive(adapter.send, n, concurrency)
        cpu1, t1 = time.process_time(), time.perf_counter()
        after = server_stats(port)
    finally:
        await adapter.close()
    served = after["requests"] - before["requests"]
    return {
        "cpu_us": (cpu1 - cpu0) / n * 1e6,
        "rps": n / (t1 - t0),
        "server_cpu_us": (after["cpu_s"] - before["cpu_s"]) / max(served, 1) * 1e6,
        "errors": out.errors + warm.errors,
        "first_error": out.first_error or warm.first_error,
        "threads": len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else None,
    }


# ---- probes: how a client reports trouble (its own process, once per client) ---------------------------------------


async def _raw_server(reply: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> Any:
    """A throwaway asyncio server that reads one request head and then does *reply*; counts the requests."""
    seen = {"requests": 0}
    pending: set[asyncio.Task[Any]] = set()

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        pending.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            seen["requests"] += 1
            await reply(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            pending.discard(task)

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen, pending


async def _never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """No reply: wait until the client gives up and hangs up (bounded)."""
    with suppress(TimeoutError):
        await asyncio.wait_for(reader.read(), 15)


async def _drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    return None  # close without a reply


async def _truncate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 600\r\n\r\n" + REPLY[:100])
    await writer.drain()


async def _attempt(send: Send) -> str:
    began = time.perf_counter()
    try:
        status, size = await asyncio.wait_for(send(), 8)
    except Exception as exc:
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        detail = " ".join(str(exc).split())[:70]
        return f"raised {kind} after {time.perf_counter() - began:.1f}s ({detail})"
    return f"returned status {status}, {size} bytes"


def _backlogged_listener() -> tuple[int, list[socket.socket]]:
    """A port whose accept queue is full, so a new connection's SYN goes unanswered: a connect timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held = [listener]
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        with suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        held.append(s)
    time.sleep(0.1)
    return port, held


async def _probe(name: str) -> dict[str, Any]:
    make = CLIENTS[name].make
    results: dict[str, Any] = {}

    async def once(label: str, port: int) -> None:
        adapter = make(f"http://127.0.0.1:{port}{PATH}", 4, PROBE_TIMEOUTS)
        try:
            results[label] = await _attempt(adapter.send)
        finally:
            await adapter.close()

    await once("refused", free_port())
    port, held = _backlogged_listener()
    try:
        await once("connect_timeout", port)
    finally:
        for s in held:
            s.close()
    for label, reply in (("read_timeout", _never), ("truncated_body", _truncate), ("dropped", _drop)):
        server, port, seen, pending = await _raw_server(reply)
        try:
            await once(label, port)
            if seen["requests"] != 1:
                results[label] += f" [the server got the POST {seen['requests']} times]"
        finally:
            server.close()
            for _ in range(50):  # let the handlers see the client hang up
                if not pending:
                    break
                await asyncio.sleep(0.1)
    return results


# ---- the driver ---------------------------------------------------------------------------------------------------


def _subprocess_json(args: list[str], timeout: float) -> tuple[dict[str, Any] | None, str]:
    cmd = [sys.executable, "-m", "benchmarks.bench_http_clients", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f}s"
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return None, tail[0][:300]
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc, ""


def release_info(dist: str, version: str) -> dict[str, Any]:
    """Upload date of *version*, the newest stable version and the newest upload of any version (PyPI JSON API)."""
    info: dict[str, Any] = {}
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{dist}/json", timeout=10) as resp:
            project = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        return {"release_error": type(exc).__name__}
    releases: dict[str, list[dict[str, Any]]] = project.get("releases") or {}
    mine = [f["upload_time_iso_8601"] for f in releases.get(version, [])]
    if mine:
        info["released"] = min(mine)[:10]
    info["latest"] = project.get("info", {}).get("version")
    uploads = [f["upload_time_iso_8601"] for files in releases.values() for f in files]
    if uploads:
        newest = max(uploads)
        info["last_upload"] = newest[:10]
        info["last_upload_version"] = next(
            v for v, files in releases.items() if any(f["upload_time_iso_8601"] == newest for f in files)
        )
    return info


@dataclass
class Row:
    name: str
    dist: str
    version: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)
    bad_requests: int = 0
    note: str = ""
    probe: dict[str, Any] = field(default_factory=dict)
    release: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"client": self.name, "dist": self.dist, "version": self.version, **self.release}
        if self.note:
            doc["note"] = self.note
        if self.runs:
            cpu = [r["cpu_us"] for r in self.runs]
            doc |= {
                "cpu_us_median": round(statistics.median(cpu), 1),
                "cpu_us_min": round(min(cpu), 1),
                "cpu_us_max": round(max(cpu), 1),
                "rps_median": round(statistics.median(r["rps"] for r in self.runs)),
                "server_cpu_us_median": round(statistics.median(r["server_cpu_us"] for r in self.runs), 1),
                "connections": self.connections,
                "errors": sum(r["errors"] for r in self.runs),
                "bad_requests": self.bad_requests,
                "threads": self.runs[-1]["threads"],
                "rounds": len(self.runs),
            }
            first_error = next((r["first_error"] for r in self.runs if r["first_error"]), "")
            if first_error:
                doc["first_error"] = first_error
        if self.probe:
            doc["probe"] = self.probe
        return doc


def _rows(names: list[str], release_dates: bool) -> list[Row]:
    rows = []
    for name in names:
        spec = CLIENTS[name]
        row = Row(name, spec.dist, "")
        if importlib.util.find_spec(spec.module) is None:
            row.note = f"skipped: {spec.module} is not installed"
        else:
            row.version = importlib.metadata.version(spec.dist)
            if release_dates:
                row.release = release_info(spec.dist, row.version)
        rows.append(row)
    return rows


def _one_run(row: Row, args: argparse.Namespace, port: int) -> None:
    before = server_stats(port)
    run_args = ["run", row.name, "--port", str(port), "--requests", str(args.requests)]
    run_args += ["--concurrency", str(args.concurrency), "--warmup", str(args.warmup)]
    result, error = _subprocess_json(run_args, timeout=300)
    after = server_stats(port)
    if result is None:
        row.note = f"skipped: {error}"
        return
    # Each stats request (urllib: one connection each) between the two readings is not the client's.
    stats_conns = after["stats_requests"] - before["stats_requests"]
    row.connections.append(after["connections"] - before["connections"] - stats_conns)
    row.bad_requests += after["bad_requests"] - before["bad_requests"]
    row.runs.append(result)
    log(
        f"{row.name}: {result['cpu_us']:.1f} µs CPU/request, {result['rps']:.0f} req/s, "
        f"{row.connections[-1]} connections, {result['errors']} errors"
    )


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    names = args.clients.split(",") if args.clients else list(CLIENTS)
    unknown = [n for n in names if n not in CLIENTS]
    if unknown:
        raise SystemExit(f"unknown client(s): {', '.join(unknown)}; known: {', '.join(CLIENTS)}")
    rows = _rows(names, args.release_dates)
    load_before = os.getloadavg()[0]
    port = free_port()
    with server_process(port):
        for rnd in range(args.rounds):
            log(f"round {rnd + 1}/{args.rounds}")
            for row in rows:
                if not row.note:
                    _one_run(row, args, port)
    if args.probe:
        for row in rows:
            if not row.note and row.name in PROBED:
                log(f"probing {row.name}")
                probe, error = _subprocess_json(["probe", row.name], timeout=120)
                row.probe = probe if probe is not None else {"error": error}
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "warmup": args.warmup,
        "rounds": args.rounds,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # other work on the machine skews it
        "results": [row.summary() for row in rows],
    }


PROBED = {"aiohttp-engine", "httpx", "aiosonic", "niquests", "rnet", "pyreqwest"}


def print_table(doc: dict[str, Any]) -> None:
    print(
        f"N={doc['requests']} requests, C={doc['concurrency']} in flight, {doc['rounds']} rounds, "
        f"Python {doc['python']}, {doc['cpus']} CPUs, load average {doc['loadavg_1min']} (start, end); "
        "CPU = client process time per request"
    )
    head = (
        f"{'client':38} {'version':>9} {'released':>10} {'CPU µs/req':>10} {'(min-max)':>13} "
        f"{'req/s':>7} {'srv µs':>6} {'conns':>11} {'errors':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in doc["results"]:
        if "cpu_us_median" not in r:
            print(f"{r['client']:38} {r['version'] or '-':>9}  {r.get('note', '')}")
            continue
        conns = "/".join(str(c) for c in sorted(set(r["connections"])))
        span = f"{r['cpu_us_min']:.0f}-{r['cpu_us_max']:.0f}"
        print(
            f"{r['client']:38} {r['version']:>9} {r.get('released', '?'):>10} {r['cpu_us_median']:>10.1f} "
            f"{span:>13} {r['rps_median']:>7} {r['server_cpu_us_median']:>6.0f} {conns:>11} "
            f"{r['errors'] + r['bad_requests']:>6}"
        )
    packages = {r["dist"]: r for r in doc["results"] if r.get("version")}
    if any("released" in r or "release_error" in r for r in packages.values()):
        print("\npackages (PyPI): installed version, its upload date; newest stable; newest upload of any version")
        for dist, r in packages.items():
            print(
                f"  {dist:10} {r['version']:>9} {r.get('released', '?'):>10}   newest {r.get('latest', '?'):>9}"
                f"   last upload {r.get('last_upload', r.get('release_error', '?'))} ({r.get('last_upload_version')})"
            )
    probes = [r for r in doc["results"] if r.get("probe")]
    if probes:
        print("\nprobes (1 s connect/read timeouts):")
        for r in probes:
            print(f"  {r['client']}:")
            for label, what in r["probe"].items():
                print(f"    {label:16} {what}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_http_clients", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=None, help="untimed requests first (default 2 x concurrency)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default="", help=f"comma-separated, of: {', '.join(CLIENTS)}")
    parser.add_argument("--probe", action="store_true", help="check error reporting once per client")
    parser.add_argument("--release-dates", action="store_true", help="ask PyPI for each package's release date")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve")
    serve.add_argument("--port", type=int, required=True)
    run = sub.add_parser("run")
    run.add_argument("client", choices=list(CLIENTS))
    run.add_argument("--port", type=int, required=True)
    run.add_argument("--requests", type=int, default=20_000)
    run.add_argument("--concurrency", type=int, default=256)
    run.add_argument("--warmup", type=int, default=512)
    probe = sub.add_parser("probe")
    probe.add_argument("client", choices=list(CLIENTS))
    args = parser.parse_args(argv)

    if args.command == "serve":
        run_uvloop(_serve(args.port))
    elif args.command == "run":
        print(json.dumps(run_uvloop(_run(args.client, args.port, args.requests, args.concurrency, args.warmup))))
    elif args.command == "probe":
        print(json.dumps(run_uvloop(_probe(args.client))))
    else:
        if args.warmup is None:
            args.warmup = 2 * args.concurrency
        doc = benchmark(args)
        if args.json:
            print(json.dumps(doc))
        else:
            print_table(doc)


if __name__ == "__main__":
    main()
