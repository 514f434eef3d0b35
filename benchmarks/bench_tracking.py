"""`tracking`: the tracking queries on a large table (default 10,000,000 messages).

Builds, in a fresh database, N messages of three applications (85 % / 14 % / 1 % of the rows) with one INSERT …
SELECT generate_series: a million phones, twelve jobs (bulk sends: contiguous rows, one type each), free-label
types (one rare), conversation tags (a fifth of the rows, 50,000 distinct), statuses as a working engine leaves
them (the newest messages still pending, the history final: mostly delivered, a few percent failed), spread over
180 days. The table's indexes are
dropped for the fill and built again after it (as fast as PostgreSQL builds indexes), then VACUUM ANALYZE. A share
of the messages also gets a four-step timeline (engine_message_event).

Then each query is timed RUNS times with varying values, through the engine's own store functions (what
GET /api/messages and GET /api/message run): the first page (big and small app), each filter alone, a time range,
a combination, a deep keyset page (a cursor in the middle of the history, with and without a filter), a job's
counts by state (the shape of job_status: SELECT state, count(*) … WHERE job_id = $1 GROUP BY state) and one
message with its timeline. Reported: p50 / p99 / max in milliseconds, per query, and the build time.

Run alone: ``python -m benchmarks.bench_tracking --messages 1000000 [--dsn DSN] [--drop-index NAME …]``
(--drop-index measures the queries without one of the indexes), or ``engine bench --scenarios tracking``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg

from benchmarks import harness as h
from engine.store import tracking
from engine.store.database import Database

RUNS = 40
JOBS = 12
PHONES = 1_000_000
TAGS = 50_000
DAYS = 180
APPS = ("big", "mid", "small")

# i -> app: 85 % big, 14 % mid, 1 % small (interleaved, as concurrent traffic is). Jobs are bulk sends of the big
# app: the rows are cut into 4 × JOBS runs and every fourth run is a job (a quarter of the table). Statuses as a
# working engine leaves them: the newest 0.5 % still queued or at the carrier, the history final (by hash: 90 %
# delivered, 3 % failed, 1 % undelivered, 5 % sent with no final report from the carrier, 0.5 % suppressed, 0.5 %
# canceled). created_at rises with i over DAYS, with up to a minute of jitter. $1 rows in all, $2..$4 the apps,
# $5 the job ids.
_FILL = """
INSERT INTO engine_outbound (app_id, recipient, body, tag, type, category, job_id, state, status, status_rank,
                             sender, segments, encoding, provider_message_id, created_at, due_at, sent_at, final_at)
SELECT CASE WHEN x.job IS NOT NULL OR x.h % 100 < 85 THEN $2::bigint WHEN x.h % 100 < 99 THEN $3 ELSE $4 END,
       '+1' || (2012000000 + (x.h / 7) % {phones})::text,
       'Message ' || x.i || ': your hold is ready at Main Library until Friday.',
       CASE WHEN x.job IS NULL AND x.h % 5 = 0 THEN 'conv-' || ((x.h / 11) % {tags}) END,
       CASE WHEN x.job IS NOT NULL THEN (ARRAY['reminder', 'registration', 'waitlist', 'cancellation'])[x.job % 4 + 1]
            WHEN x.h % 1000 = 0 THEN 'overdue-fine'
            WHEN x.h % 3 = 0 THEN 'reminder' WHEN x.h % 3 = 1 THEN 'registration' END,
       CASE WHEN x.job % 2 = 1 THEN 'marketing' ELSE 'transactional' END,
       ($5::bigint[])[x.job + 1], x.state,
       CASE x.state WHEN 'delivered' THEN 1 WHEN 'sent' THEN 4 WHEN 'queued' THEN 0 ELSE 2 END,
       CASE x.state WHEN 'sent' THEN 30 WHEN 'queued' THEN 0 ELSE 100 END,
       '+1646200' || lpad((x.h % 100)::text, 4, '0'), 1, 'GSM-7', 'SM' || md5(x.i::text),
       x.at, x.at, x.at + interval '1 second',
       CASE WHEN x.state NOT IN ('sent', 'queued') THEN x.at + interval '5 seconds' END
FROM (
    SELECT g.i, hh.h,
           CASE WHEN ((g.i - 1) * {runs} / $1) % 4 = 1 THEN ((g.i - 1) * {runs} / $1) / 4 END AS job,
           CASE WHEN g.i > $1 - $1 / 200 THEN
                    CASE WHEN hh.h % 5 < 2 THEN 'queued' WHEN hh.h % 5 < 4 THEN 'sent' ELSE 'delivered' END
                WHEN hh.h % 200 < 180 THEN 'delivered' WHEN hh.h % 200 < 186 THEN 'failed'
                WHEN hh.h % 200 < 188 THEN 'undelivered' WHEN hh.h % 200 < 198 THEN 'sent'
                WHEN hh.h % 200 < 199 THEN 'suppressed' ELSE 'canceled' END AS state,
           now() - make_interval(secs => ($1 - g.i) * ({days} * 86400.0 / $1) + (hh.h % 60)) AS at
    FROM generate_series({first}::bigint, {last}::bigint) AS g(i)
    CROSS JOIN LATERAL (SELECT (g.i * 2654435761) % 4294967296 AS h) AS hh
) AS x
"""
_EVENTS = """
INSERT INTO engine_message_event (message_id, at, state, status, provider_status, sender)
SELECT o.id, o.created_at + make_interval(secs => e.k), e.state, e.status, e.pstatus,
       CASE WHEN e.state = 'sending' THEN o.sender END
FROM engine_outbound o
CROSS JOIN (VALUES (0.2, 'sending', 0, NULL), (0.5, 'sent', 4, 'queued'), (2.0, 'sent', 4, 'sent'),
                   (5.0, 'delivered', 1, 'delivered')) AS e(k, state, status, pstatus)
WHERE o.id % $1 = 0
"""
JOB_COUNTS = "SELECT state, count(*)::int AS n FROM engine_outbound WHERE job_id = $1 GROUP BY state"


async def build(conn: asyncpg.Connection, messages: int, event_share: float, drop: list[str]) -> dict[str, Any]:
    """Fill the table (indexes dropped meanwhile, built again after); returns what was built and how long it took."""
    started = time.monotonic()
    apps = [await conn.fetchval("INSERT INTO engine_app (name) VALUES ($1) RETURNING id", name) for name in APPS]
    jobs = [await conn.fetchval("INSERT INTO engine_job (app_id, source, name, state) VALUES ($1, 'csv', $2, 'done') "
                                "RETURNING id", apps[0], f"campaign-{k}.csv") for k in range(JOBS)]
    indexes = await conn.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'engine_outbound' "
        "AND indexname <> 'engine_outbound_pkey'")
    for r in indexes:
        await conn.execute(f'DROP INDEX "{r["indexname"]}"')
    await conn.execute("SET maintenance_work_mem = '512MB'")
    await conn.execute("SET max_parallel_maintenance_workers = 2")
    chunk = 1_000_000
    for start in range(0, messages, chunk):
        size = min(chunk, messages - start)
        sql = _FILL.format(phones=PHONES, tags=TAGS, runs=4 * JOBS, days=DAYS, first=start + 1, last=start + size)
        await conn.execute(sql, messages, *apps, jobs)
        h.log(f"  {start + size:,}/{messages:,} rows")
    filled = time.monotonic()
    for r in indexes:
        if r["indexname"] in drop:
            h.log(f"  without {r['indexname']}")
            continue
        await conn.execute(r["indexdef"])
    every = max(1, round(1 / event_share)) if event_share > 0 else 0
    if every:
        await conn.execute(_EVENTS, every)
    await conn.execute("VACUUM ANALYZE engine_outbound")
    await conn.execute("VACUUM ANALYZE engine_message_event")
    done = time.monotonic()
    size = await conn.fetchval("SELECT pg_total_relation_size('engine_outbound')")
    return {"apps": dict(zip(APPS, apps, strict=True)), "fill_s": round(filled - started, 1),
            "indexes_s": round(done - filled, 1), "table_and_indexes_mb": round(size / 2**20),
            "dropped_indexes": drop, "events_every": every}


def _figures(times: list[float]) -> dict[str, float]:
    return {"p50_ms": round(h.percentile(times, 50), 2), "p99_ms": round(h.percentile(times, 99), 2),
            "max_ms": round(max(times), 2), "runs": len(times)}


async def _timed(runs: int, query: Callable[[int], Awaitable[object]]) -> dict[str, float]:
    times: list[float] = []
    for k in range(runs):
        t0 = time.perf_counter()
        await query(k)
        times.append((time.perf_counter() - t0) * 1000)
    return _figures(times)


async def measure(pool: asyncpg.Pool, apps: dict[str, int], runs: int, seed: int = 3) -> dict[str, Any]:
    rnd = random.Random(seed)
    big, small = apps["big"], apps["small"]
    bounds = await pool.fetchrow("SELECT min(created_at) AS lo, max(created_at) AS hi FROM engine_outbound")
    jobs = [r["id"] for r in await pool.fetch("SELECT id FROM engine_job ORDER BY id")]
    ids = await pool.fetchrow("SELECT min(id) AS lo, max(id) AS hi FROM engine_outbound")
    with_events = [r["message_id"] for r in await pool.fetch(
        "SELECT DISTINCT message_id FROM engine_message_event ORDER BY message_id LIMIT 2000")]
    phones = [f"+1{2012000000 + rnd.randrange(PHONES)}" for _ in range(runs)]
    tags = [f"conv-{rnd.randrange(TAGS)}" for _ in range(runs)]
    span = bounds["hi"] - bounds["lo"]
    days = [bounds["lo"] + span * rnd.random() for _ in range(runs)]

    async def page(app: int, flt: tracking.MessageFilter, cursor: str | None = None) -> tracking.Page:
        return await tracking.list_messages(pool, [app], flt, limit=50, cursor=cursor)

    async def middle_cursor(k: int) -> str:
        row = await pool.fetchrow("SELECT created_at, id FROM engine_outbound WHERE id = $1",
                                  ids["lo"] + (ids["hi"] - ids["lo"]) * (k + 1) // (runs + 2))
        return tracking.encode_cursor(row["created_at"], row["id"])

    cursors = [await middle_cursor(k) for k in range(runs)]
    F = tracking.MessageFilter
    queries: dict[str, Callable[[int], Awaitable[object]]] = {
        "first_page": lambda k: page(big, F()),
        "first_page_small_app": lambda k: page(small, F()),
        "phone": lambda k: page(big, F(phone=phones[k])),
        "status_failed": lambda k: page(big, F(states=tracking.STATES_BY_STATUS[2])),
        "status_pending": lambda k: page(big, F(states=tracking.STATES_BY_STATUS[0])),
        "status_at_carrier": lambda k: page(big, F(states=tracking.STATES_BY_STATUS[4])),
        "status_delivered": lambda k: page(big, F(states=("delivered",))),
        "type_common": lambda k: page(big, F(type="reminder")),
        "type_rare": lambda k: page(big, F(type="overdue-fine")),
        "tag": lambda k: page(big, F(tag=tags[k])),
        "job": lambda k: page(big, F(job_id=jobs[k % len(jobs)])),
        "job_failed": lambda k: page(big, F(job_id=jobs[k % len(jobs)], states=tracking.STATES_BY_STATUS[2])),
        "time_range_1_day": lambda k: page(big, F(since=days[k], until=days[k] + timedelta(days=1))),
        "until_old": lambda k: page(big, F(until=bounds["lo"] + span / 10)),
        "range_and_type_and_failed": lambda k: page(big, F(
            since=days[k], until=days[k] + timedelta(days=7), type="registration",
            states=tracking.STATES_BY_STATUS[2])),
        "deep_cursor": lambda k: page(big, F(), cursors[k]),
        "deep_cursor_failed": lambda k: page(big, F(states=tracking.STATES_BY_STATUS[2]), cursors[k]),
        "job_counts_by_state": lambda k: pool.fetch(JOB_COUNTS, jobs[k % len(jobs)]),
        "message_detail": lambda k: tracking.message_detail(pool, with_events[k % len(with_events)]),
    }
    results: dict[str, Any] = {}
    for name, query in queries.items():
        await query(0)  # warm the cache for this query's pages, as a running engine's would be
        results[name] = await _timed(runs, query)
        h.log(f"  {name}: p50 {results[name]['p50_ms']} ms, p99 {results[name]['p99_ms']} ms")
    results["job_sizes"] = [r["n"] for r in await pool.fetch(
        "SELECT count(*)::int AS n FROM engine_outbound WHERE job_id IS NOT NULL GROUP BY job_id ORDER BY job_id")]
    return results


async def tracking_scenario(server_dsn: str, *, messages: int, runs: int = RUNS, event_share: float = 0.05,
                            drop: list[str] | None = None) -> dict[str, Any]:
    async with h.fresh_database(server_dsn, "bench_tracking") as dsn:
        db = await Database.connect(dsn, min_size=1, max_size=2)  # migrates
        try:
            async with db.pool.acquire() as conn:
                h.log(f"tracking: building {messages:,} messages")
                built = await build(conn, messages, event_share, drop or [])
            h.log(f"  built in {built['fill_s']} s + indexes {built['indexes_s']} s, "
                  f"{built['table_and_indexes_mb']} MB")
            queries = await measure(db.pool, built["apps"], runs)
        finally:
            await db.close()
    return {"messages": messages, "runs": runs, **{k: v for k, v in built.items() if k != "apps"},
            "queries": queries}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_tracking", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--events", type=float, default=0.05, help="share of messages with a timeline")
    parser.add_argument("--drop-index", action="append", default=[], help="measure without this index")
    parser.add_argument("--dsn", help="an admin database on the server to use (default: embedded)")
    args = parser.parse_args()

    async def run() -> dict[str, Any]:
        async with h.postgres_server(args.dsn) as server:
            return await tracking_scenario(server, messages=args.messages, runs=args.runs, event_share=args.events,
                                           drop=args.drop_index)

    result = asyncio.run(run())
    sys.stdout.write(json.dumps({"command": " ".join(sys.argv), "tracking": result,
                                 "machine": h.machine_info(None)}, default=str) + "\n")


if __name__ == "__main__":
    main()
