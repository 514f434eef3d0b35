"""The operator console's pages on a big database: server time per page, measured over real HTTP.

Fills a fresh database (embedded PostgreSQL in a temporary directory, or ENGINE_DSN's server in a new database)
with a history the size of a busy deployment: --rows messages (default 2,000,000; --rows 10000000 for the issue's
ten million), of which --hour were handed to the carrier in the last hour and 1 % are still open; MOs, blacklist
entries and opt-out records in proportion; delivered and dead-lettered callbacks. Then serves the console alone
(as ``engine serve`` mounts it), logs in, and requests every page --repeat times in turn, reporting each one's
median and p95 wall time (client side, loopback) in milliseconds. The overview's pages share one reading of the
figures for a few seconds; the reading itself is timed apart, uncached.

    python -m benchmarks.bench_console [--rows N] [--hour N] [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg

from benchmarks.harness import fresh_database, postgres_server
from db.migrate import migrate
from engine.app import start_http
from engine.config import Settings
from engine.console import Console
from engine.console.passwords import hash_password
from engine.console.server import MOUNT
from engine.store import admin, operators, tracking
from engine.store import console as console_store
from engine.store.database import MAX_ID

PAGES = (
    ("overview", "/console/"),
    ("overview live", "/console/overview/live"),
    ("overview json", "/console/api/overview.json"),
    ("inbound", "/console/inbound"),
    ("conversation", "/console/inbound/phone?phone=%2B13472000042"),
    ("consent record", "/console/inbound/consent"),
    ("consent of a phone", "/console/inbound/consent?phone=%2B17182000042"),
    ("blacklist", "/console/inbound/blacklist"),
    ("blacklist search", "/console/inbound/blacklist?q=%2B1718200"),
    ("apps", "/console/apps"),
    ("app", "/console/apps/lib"),
    ("carrier", "/console/carrier"),
    ("numbers", "/console/carrier/lib-smsc"),
    ("jobs", "/console/jobs"),
    ("jobs live", "/console/jobs/live"),
    ("running job", "/console/jobs/30"),
    ("messages", "/console/messages"),
    ("messages of a phone", "/console/messages?phone=%2B13472000042"),
    ("messages of a job", "/console/messages?job_id=30"),
    ("messages, failed", "/console/messages?status=2"),
    ("messages of a phone, delivered", "/console/messages?app=lib&phone=%2B13472000042&status=1"),
)


async def message_pages(pool: asyncpg.Pool) -> tuple[tuple[str, str], ...]:
    """The Messages pages that name a moment or a message of the filled history: a page halfway down the list (its
    cursor at the middle of the history), one day's messages a quarter of the way back, a failure's page and its
    live part."""
    now = datetime.now(UTC)
    oldest = await pool.fetchval("SELECT min(created_at) FROM engine_outbound WHERE app_id = "
                                 "(SELECT id FROM engine_app WHERE name = 'lib')")
    deep = tracking.encode_cursor(oldest + (now - oldest) / 2, MAX_ID)
    day = oldest + (now - oldest) * 3 / 4
    failed = await pool.fetchval("SELECT max(id) FROM engine_outbound WHERE state = 'undelivered'")
    window = urlencode({"since": day.isoformat(), "until": (day + timedelta(days=1)).isoformat()})
    return (
        ("messages, halfway down", f"/console/messages?cursor={deep}"),
        ("messages of a day", f"/console/messages?{window}"),
        ("message", f"/console/message/{failed}"),
        ("message, live part", f"/console/message/{failed}/live"),
    )


async def fill(pool: asyncpg.Pool, rows: int, hour: int) -> None:
    """The history, in a few set-based statements (then ANALYZE, as autovacuum would)."""
    await admin.create_app(pool, "lib")
    await admin.create_app(pool, "crm")
    await admin.add_dids(pool, "lib", [f"+1646200{i:04d}" for i in range(50)])
    app_id = await pool.fetchval("SELECT id FROM engine_app WHERE name = 'lib'")
    first_did = await pool.fetchval("SELECT min(id) FROM engine_did")
    older = rows - hour
    # Older history: one message a second going back; the last hour: `hour` messages spread over it.
    await pool.execute(
        "INSERT INTO engine_outbound (app_id, recipient, body, state, status, sending_at, created_at, did_id, "
        "segments) SELECT $1, '+1347' || (2000000 + g % 1000000)::text, 'Your hold is ready at Main Library', "
        "'delivered', 1, now() - make_interval(secs => 3600 + g), now() - make_interval(secs => 3600 + g), "
        "$2 + (g % 50), 1 FROM generate_series(1, $3::int) g", app_id, first_did, older)
    await pool.execute(
        "INSERT INTO engine_outbound (app_id, recipient, body, state, status, sending_at, created_at, did_id, "
        "segments) SELECT $1, '+1347' || (2000000 + g % 1000000)::text, 'Storytime is at 10', "
        "CASE WHEN g % 100 = 0 THEN 'queued' WHEN g % 50 = 0 THEN 'undelivered' WHEN g % 7 = 0 THEN 'sent' "
        "ELSE 'delivered' END, 1, CASE WHEN g % 100 = 0 THEN NULL ELSE now() - make_interval(secs => g * 3600.0 / $3) "
        "END, now() - make_interval(secs => g * 3600.0 / $3), $2 + (g % 50), 1 FROM generate_series(1, $3::int) g",
        app_id, first_did, hour)
    side = max(1000, rows // 20)
    await pool.execute(
        "INSERT INTO engine_inbound (message_sid, phone, to_number, body, params, state, app_id, outcome, received_at) "
        "SELECT 'SM' || g, '+1347' || (2000000 + g % 1000000)::text, '+16462000000', 'When is storytime?', '{}', "
        "'done', $1, 'routed', now() - make_interval(secs => g) FROM generate_series(1, $2::int) g", app_id, side)
    await pool.execute(
        "INSERT INTO engine_blacklist (app_id, phone, reason, created_at) SELECT $1, '+1' || (7182000000 + g)::text, "
        "'keyword', now() - make_interval(secs => g) FROM generate_series(1, $2::int) g", app_id, side)
    await pool.execute(
        "INSERT INTO engine_consent_event (app_id, phone, action, source, keyword, created_at) "
        "SELECT $1, '+1' || (7182000000 + g)::text, 'opt_out', 'keyword', 'STOP', now() - make_interval(secs => g) "
        "FROM generate_series(1, $2::int) g", app_id, side)
    await pool.execute(
        "INSERT INTO engine_outbox (app_id, type, payload, state, last_error) SELECT $1, 'delivery_report', '{}', "
        "CASE WHEN g % 1000 = 0 THEN 'dead' ELSE 'delivered' END, CASE WHEN g % 1000 = 0 THEN 'HTTP 503' END "
        "FROM generate_series(1, $2::int) g", app_id, side * 4)
    # Jobs: 29 finished ones of 1,000 messages, then one running with `side` messages, half of them still queued.
    await pool.execute(
        "INSERT INTO engine_job (app_id, source, name, template, total, state, created_at, finished_at) "
        "SELECT $1, 'csv', 'notices-' || g || '.csv', 'Hi {{name}}', 1000, 'done', now() - make_interval(days => g), "
        "now() - make_interval(days => g) + interval '1 minute' FROM generate_series(29, 1, -1) g", app_id)
    await pool.execute(
        "INSERT INTO engine_job (app_id, source, name, template, total, state) "
        "VALUES ($1, 'csv', 'overdue.csv', 'Your book is overdue', $2, 'running')", app_id, side)
    await pool.execute(
        "INSERT INTO engine_outbound (app_id, recipient, body, state, status, sending_at, created_at, did_id, "
        "segments, job_id) SELECT $1, '+1347' || (3000000 + g)::text, 'Hi there', 'delivered', 1, "
        "now() - make_interval(days => j.id::int), now() - make_interval(days => j.id::int), $2, 1, j.id "
        "FROM engine_job j, generate_series(1, 1000) g WHERE j.state = 'done'", app_id, first_did)
    await pool.execute(
        "INSERT INTO engine_outbound (app_id, recipient, body, state, status, sending_at, created_at, did_id, "
        "segments, job_id) SELECT $1, '+1347' || (4000000 + g)::text, 'Your book is overdue', "
        "CASE WHEN g % 2 = 0 THEN 'queued' ELSE 'delivered' END, CASE WHEN g % 2 = 0 THEN 0 ELSE 1 END, "
        "CASE WHEN g % 2 = 0 THEN NULL ELSE now() - make_interval(secs => g / 100.0) END, now() - interval '1 hour', "
        "$2, 1, (SELECT id FROM engine_job WHERE state = 'running') FROM generate_series(1, $3::int) g",
        app_id, first_did, side)
    for table in ("engine_job", "engine_outbound", "engine_inbound", "engine_blacklist", "engine_consent_event",
                  "engine_outbox"):
        await pool.execute(f"VACUUM ANALYZE {table}")


async def measure(pool: asyncpg.Pool, repeat: int) -> dict[str, dict[str, float]]:
    import aiohttp

    await operators.create_operator(pool, "bench", hash_password("benchmark password"))
    settings = Settings(port=0)
    console = Console(pool, settings)
    runner, base = await start_http(settings, console.routes(), None, {MOUNT: console.app()})
    pages = PAGES + await message_pages(pool)
    timings: dict[str, list[float]] = {name: [] for name, _ in pages}
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            async with session.get(base + "/console/login") as page:
                token = (await page.text()).split('name="csrf_token" value="')[1].split('"')[0]
            form = {"name": "bench", "password": "benchmark password", "csrf_token": token}
            async with session.post(base + "/console/login", data=form, allow_redirects=False) as resp:
                assert resp.status == 303, resp.status
            for round_ in range(repeat + 1):  # the first round warms the caches and the prepared statements
                for name, path in pages:
                    started = time.perf_counter()
                    async with session.get(base + path, allow_redirects=False) as resp:
                        body = await resp.read()
                        assert resp.status == 200, (path, resp.status)
                    if path.startswith("/console/messages"):  # a list page that found nothing would prove nothing
                        assert b"<tr data-message=" in body, path
                    if round_:
                        timings[name].append((time.perf_counter() - started) * 1000)
        # The overview's pages share one reading for a few seconds (however many browsers poll): time the reading
        # itself too, uncached, as the first browser after a quiet spell waits for it.
        timings["overview reading, uncached"] = []
        for _ in range(repeat):
            started = time.perf_counter()
            await console_store.overview(pool)
            timings["overview reading, uncached"].append((time.perf_counter() - started) * 1000)
    finally:
        await runner.cleanup()
    return {name: {"median_ms": round(statistics.median(t), 1),
                   "p95_ms": round(sorted(t)[max(0, int(len(t) * 0.95) - 1)], 1), "max_ms": round(max(t), 1)}
            for name, t in timings.items()}


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_console", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="messages in the history (default 2,000,000)")
    parser.add_argument("--hour", type=int, default=180_000, help="of which handed to the carrier in the last hour")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.hour >= args.rows:
        parser.error("--hour must be below --rows")
    async with postgres_server(os.environ.get("ENGINE_DSN")) as server, \
            fresh_database(server, "engine_bench_console") as target:
        conn = await asyncpg.connect(target)
        await migrate(conn)
        await conn.close()
        pool = await asyncpg.create_pool(target, min_size=2, max_size=10)
        try:
            started = time.perf_counter()
            await fill(pool, args.rows, args.hour)
            filled = time.perf_counter() - started
            results = await measure(pool, args.repeat)
            size = await pool.fetchval("SELECT pg_size_pretty(pg_total_relation_size('engine_outbound'))")
        finally:
            await pool.close()
    report: dict[str, Any] = {"rows": args.rows, "last_hour": args.hour, "repeat": args.repeat,
                              "engine_outbound_size": size, "fill_s": round(filled, 1), "pages": results}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.rows:,} messages ({args.hour:,} in the last hour), engine_outbound {size}, filled in "
              f"{filled:.0f} s; {args.repeat} requests per page")
        print(f"{'page':<32}{'median ms':>10}{'p95 ms':>10}{'max ms':>10}")
        for page, r in results.items():
            print(f"{page:<32}{r['median_ms']:>10}{r['p95_ms']:>10}{r['max_ms']:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
