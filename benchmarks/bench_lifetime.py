"""What lifetimes and retention cost: queueing with the expiry sweep's indexes, a sweep round, and the purge.

On a fresh embedded PostgreSQL (or ENGINE_BENCH_DSN), migrated:

- **insert**: rows/s queued through the Python door's statement (SUBMIT_MANY, batches of 1,000), with the two
  partial indexes migration 0014 adds for the expiry sweep, then without them (dropped), alternating rounds;
- **sweep**: one round of the expiry sweep with nothing to expire over a queued backlog (what every worker pays
  every ENGINE_LEASE_SECONDS / 3), then the time to expire the whole backlog (app default lifetime) in rounds;
- **purge**: rows/s deleted by `engine purge`'s walk over old final messages, and the time of a purge with
  nothing old (the walk stops at its first batch).

    python -m benchmarks.bench_lifetime [--rows 200000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from db.embedded import EmbeddedPostgres
from db.migrate import migrate
from engine.store import lifetime
from engine.store import queries as q

INDEXES = {
    "engine_outbound_queued_expiry": "CREATE INDEX engine_outbound_queued_expiry ON engine_outbound (expires_at) "
                                     "WHERE state = 'queued' AND expires_at IS NOT NULL",
    "engine_outbound_queued_since": "CREATE INDEX engine_outbound_queued_since ON engine_outbound "
                                    "(app_id, (coalesce(send_at, created_at))) "
                                    "WHERE state = 'queued' AND expires_at IS NULL AND kind <> 'compliance'",
}


async def _insert_rate(pool: asyncpg.Pool, app_id: int, rows: int) -> float:
    """Rows/s queued through SUBMIT_MANY in batches of 1,000 (a tenth of them with an expiry)."""
    batch = 1000
    expires = datetime.now(UTC) + timedelta(days=1)
    started = time.perf_counter()
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        await pool.execute(
            q.SUBMIT_MANY, app_id, [f"+1347{(start + i) % 10_000_000:07d}" for i in range(n)], ["body"] * n,
            [None] * n, [None] * n, [None] * n, ["transactional"] * n,
            [expires if (start + i) % 10 == 0 else None for i in range(n)],
        )
    return rows / (time.perf_counter() - started)


async def _reset(pool: asyncpg.Pool) -> None:
    await pool.execute("TRUNCATE engine_outbound, engine_outbox")
    await pool.execute("VACUUM ANALYZE engine_outbound")


async def bench(dsn: str, rows: int, rounds: int) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    assert pool is not None
    try:
        app_id = await pool.fetchval("INSERT INTO engine_app (name, gateway_url) VALUES ('bench', NULL) RETURNING id")
        with_idx: list[float] = []
        without: list[float] = []
        for _ in range(rounds):
            for name, sql in INDEXES.items():
                await pool.execute(f"DROP INDEX IF EXISTS {name}")
                await pool.execute(sql)
            await _reset(pool)
            with_idx.append(await _insert_rate(pool, app_id, rows))
            for name in INDEXES:
                await pool.execute(f"DROP INDEX {name}")
            await _reset(pool)
            without.append(await _insert_rate(pool, app_id, rows))
        for sql in INDEXES.values():
            await pool.execute(sql)

        # The sweep: a queued backlog of *rows*, nothing due to expire, then all of it past the app's lifetime.
        await _reset(pool)
        await _insert_rate(pool, app_id, rows)
        await pool.execute("UPDATE engine_app SET valid_for = interval '1 hour' WHERE id = $1", app_id)
        await pool.execute("ANALYZE engine_outbound")
        now = datetime.now(UTC)
        idle: list[float] = []
        for _ in range(20):
            started = time.perf_counter()
            assert await lifetime.expire_queued(pool, now) == 0
            idle.append(time.perf_counter() - started)
        started = time.perf_counter()
        expired = 0
        while (done := await lifetime.expire_queued(pool, now + timedelta(days=2), limit=1000)) > 0:
            expired += done
        sweep_all = time.perf_counter() - started

        # The purge: every row is final now; make them old, purge them, then purge with nothing old.
        await pool.execute("UPDATE engine_outbound SET created_at = now() - interval '2 years'")
        await pool.execute("VACUUM ANALYZE engine_outbound")
        started = time.perf_counter()
        report = await lifetime.purge(pool, datetime.now(UTC), batch=1000)
        purge_s = time.perf_counter() - started
        await _insert_rate(pool, app_id, 10_000)
        await pool.execute("UPDATE engine_outbound SET state = 'delivered', status = 1, status_rank = 100")
        started = time.perf_counter()
        nothing = await lifetime.purge(pool, datetime.now(UTC))
        purge_idle = time.perf_counter() - started
    finally:
        await pool.close()
    return {
        "rows": rows,
        "insert_rows_per_s_with_lifetime_indexes": round(statistics.median(with_idx)),
        "insert_rows_per_s_without": round(statistics.median(without)),
        "insert_cost_of_indexes_pct": round(100 * (1 - statistics.median(with_idx) / statistics.median(without)), 1),
        "sweep_idle_round_ms_median": round(1000 * statistics.median(idle), 2),
        "sweep_expired": expired,
        "sweep_expire_all_s": round(sweep_all, 2),
        "sweep_expired_per_s": round(expired / sweep_all),
        "purge_deleted": report.messages,
        "purge_s": round(purge_s, 2),
        "purge_rows_per_s": round(report.messages / purge_s),
        "purge_batches": report.batches,
        "purge_nothing_old_ms": round(1000 * purge_idle, 1),
        "purge_nothing_old_batches": nothing.batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dsn = os.environ.get("ENGINE_BENCH_DSN")
    server = None
    if not dsn:
        data = Path(tempfile.mkdtemp(prefix="bench-lifetime-"))
        server = EmbeddedPostgres(data / "pgdata")
        dsn = server.start()
    try:
        result = asyncio.run(bench(dsn, args.rows, args.rounds))
    finally:
        if server is not None:
            server.stop()
            shutil.rmtree(data, ignore_errors=True)  # its tables and WAL: hundreds of megabytes
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<44} {value}")


if __name__ == "__main__":
    main()
