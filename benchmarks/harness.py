"""Shared pieces of the throughput benchmarks, used as ``from benchmarks import harness as h``.

Here: a PostgreSQL server, fresh databases, filling the queue, polling the database and reading the carrier's own
record, the workload (recipients, DIDs) and figures from it. Child processes (:mod:`benchmarks.processes`) and
CPU and memory accounting (:mod:`benchmarks.resources`) live in their own modules; their names are re-exported
here so every benchmark reaches all of the harness as ``h.<name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson

from benchmarks.processes import (
    CARRIERS,
    Children,
    EngineProcs,
    children,
    free_port,
    layout,
    log,
    read_url_line,
    spawn_engine,
    start_carrier,
    stop_process,
    wait_http,
)
from benchmarks.resources import (
    CpuWindow,
    cpu_seconds,
    machine_busy,
    machine_info,
    postgres_pid,
    process_name,
    rss_mb,
    tree_cpu,
    tree_cpu_delta,
    vm_hwm_mb,
)
from db.embedded import EmbeddedPostgres

__all__ = [
    "CARRIERS",
    "POLL_S",
    "Children",
    "CpuWindow",
    "EngineProcs",
    "carrier_get",
    "children",
    "cpu_seconds",
    "did_numbers",
    "free_port",
    "fresh_database",
    "insert_dids_sql",
    "insert_messages_sql",
    "latency_figures",
    "layout",
    "log",
    "machine_busy",
    "machine_info",
    "percentile",
    "postgres_pid",
    "postgres_server",
    "process_name",
    "read_url_line",
    "recipients",
    "rss_mb",
    "spawn_engine",
    "start_carrier",
    "stop_process",
    "tree_cpu",
    "tree_cpu_delta",
    "vm_hwm_mb",
    "wait_all_final",
    "wait_first_accept",
    "wait_http",
    "with_database",
]

_counter = itertools.count()
POLL_S = 0.25  # how often the benchmark polls the database for "all final"


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@asynccontextmanager
async def postgres_server(dsn: str | None) -> AsyncIterator[str]:
    """*dsn* (an admin database on the server to use), or an embedded server in a temporary directory."""
    if dsn:
        yield dsn
        return
    tmp = Path(tempfile.mkdtemp(prefix="engine-bench-pg-"))
    server = EmbeddedPostgres(tmp / "pgdata")
    started = await asyncio.to_thread(server.start)
    try:
        yield started
    finally:
        await asyncio.to_thread(server.stop)
        # A large scenario leaves gigabytes of tables and WAL: nothing of a benchmark's server is kept.
        await asyncio.to_thread(shutil.rmtree, tmp, True)


@asynccontextmanager
async def fresh_database(server_dsn: str, prefix: str) -> AsyncIterator[str]:
    """CREATE DATABASE for one round (dropped afterwards); yields its DSN (not yet migrated)."""
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
        # Flush the previous rounds' dirty pages now, so a checkpoint (its writes and the full-page images
        # after it) does not land inside this round; either side gets the same clean start.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    try:
        yield with_database(server_dsn, name)
    finally:
        conn = await asyncpg.connect(server_dsn)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


async def carrier_get(base_url: str, what: str) -> Any:
    async with aiohttp.ClientSession() as s, s.get(f"{base_url}/_fake/{what}") as r:
        return orjson.loads(await r.read())


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of *values*; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


async def wait_all_final(
    conn: asyncpg.Connection, count_sql: str, total: int, procs: Sequence[asyncio.subprocess.Process],
    timeout: float,
) -> None:
    """Poll *count_sql* (counts final rows) until it reaches *total*; fail if a child dies or time runs out."""
    deadline = time.monotonic() + timeout
    last = -1
    next_log = time.monotonic() + 5
    while True:
        done: int = await conn.fetchval(count_sql)
        if done >= total:
            return
        now = time.monotonic()
        for p in procs:
            if p.returncode is not None:
                raise RuntimeError(f"a benchmark process exited ({p.returncode}) with {done}/{total} final")
        if now > deadline:
            raise RuntimeError(f"timed out with {done}/{total} messages final")
        if now >= next_log and done != last:
            log(f"  {done}/{total} final")
            last = done
            next_log = now + 5
        # Each poll is a full scan of the table (the benchmark's cost, on the shared cores, for either side):
        # poll gently. The end time comes from max(final_at), not from when this poll saw it.
        await asyncio.sleep(POLL_S)


def recipients(count: int, seed: int = 5) -> list[tuple[str, str]]:
    """(recipient, body) pairs: valid NANP mobile-looking numbers and short GSM texts."""
    rng = random.Random(seed)
    areas = ["212", "312", "415", "617", "646", "718", "202", "303", "404", "512"]
    out = []
    for i in range(count):
        to = f"+1{rng.choice(areas)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        out.append((to, f"Reminder {i}: your hold is ready at Main Library until Friday."))
    return out


def did_numbers(count: int) -> list[str]:
    """*count* distinct valid sender numbers."""
    return [f"+1646{200 + i // 10000:03d}{i % 10000:04d}" for i in range(count)]


def latency_figures(created: dict[str, float], accepted: dict[str, float]) -> dict[str, float]:
    """p50/p99 of carrier accept time minus row creation time, in milliseconds, matched by sid."""
    lat = [(accepted[sid] - t) * 1000 for sid, t in created.items() if sid in accepted]
    return {
        "queue_to_carrier_p50_ms": round(percentile(lat, 50), 1),
        "queue_to_carrier_p99_ms": round(percentile(lat, 99), 1),
    }


# ---- fast fills for the paced and backlog scenarios (SQL set operations, not submit_many) ----------

_DIDS_SQL = """
INSERT INTO engine_did (smsc_id, number, limit_per_min, burst)
SELECT $1, '+1646' || lpad((200 + i / 10000)::text, 3, '0') || lpad((i % 10000)::text, 4, '0'), $3, $4
FROM generate_series(0, $2 - 1) AS i
"""
_MESSAGES_SQL = """
INSERT INTO engine_outbound (app_id, recipient, body)
SELECT $1, '+1212' || (2000000 + i)::text,
       'Reminder ' || i || ': your hold is ready at Main Library until Friday.'
FROM generate_series(0, $2 - 1) AS i
"""


async def insert_dids_sql(conn: asyncpg.Connection, smsc_id: int, count: int, *, limit_per_min: int = 60,
                          burst: int = 1) -> None:
    """*count* DIDs (the numbers `did_numbers` gives) in one INSERT … SELECT generate_series."""
    if count > 100_000:
        raise ValueError("at most 100,000 DIDs (+1646 200..209 xxxx)")
    await conn.execute(_DIDS_SQL, smsc_id, count, limit_per_min, burst)


async def insert_messages_sql(conn: asyncpg.Connection, app_id: int, count: int) -> None:
    """*count* queued messages, due now, to distinct recipients (+1212 2xx xxxx), in one INSERT … SELECT."""
    if count > 8_000_000:
        raise ValueError("at most 8,000,000 distinct recipients")
    await conn.execute(_MESSAGES_SQL, app_id, count)
    await conn.execute("ANALYZE engine_outbound")


async def wait_first_accept(carrier_url: str, procs: Sequence[asyncio.subprocess.Process], timeout: float) -> float:
    """Poll the carrier's stats until it has accepted something; returns the local time.time() seen then."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(f"{carrier_url}/_fake/stats") as r:
                stats = orjson.loads(await r.read())
            if stats["accepted"] > 0:
                return time.time()
            for p in procs:
                if p.returncode is not None:
                    raise RuntimeError(f"a benchmark process exited ({p.returncode}) before the first send")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no message reached the carrier within {timeout}s")
            await asyncio.sleep(0.02)
