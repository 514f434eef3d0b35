"""The test databases and what tests read from them: per-test database names, counts by state, waiting for finals."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tests.helpers.polling import wait_until

# States a message leaves only through a later carrier callback, if ever ('unknown' may still be reconciled).
FINAL: Final = ("delivered", "undelivered", "failed", "suppressed", "canceled", "unknown", "expired")
_COUNTS: Final = "SELECT state, count(*)::int AS n FROM engine_outbound GROUP BY state"


def with_database(dsn: str, name: str) -> str:
    """*dsn* pointing at database *name* on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _fetch(db: asyncpg.Pool | str, sql: str, *args: object) -> list[asyncpg.Record]:
    """*db* a pool, or a DSN to connect to just for this (a server that restarts under a test)."""
    rows: list[asyncpg.Record]
    if isinstance(db, str):
        conn = await asyncpg.connect(db)
        try:
            rows = await conn.fetch(sql, *args)
        finally:
            await conn.close()
    else:
        rows = await db.fetch(sql, *args)
    return rows


async def state_counts(db: asyncpg.Pool | str) -> dict[str, int]:
    """Messages by state."""
    return {r["state"]: r["n"] for r in await _fetch(db, _COUNTS)}


async def wait_final(
    db: asyncpg.Pool | str, count: int, *, timeout: float = 60.0, interval: float = 0.05
) -> dict[str, int]:
    """Wait until *count* messages are in a final state; returns the counts by state.

    (System tests poll every 0.25 s: each poll is a scan competing with the engine for the cores.)
    """
    last: dict[str, int] = {}

    async def settled() -> dict[str, int] | None:
        nonlocal last
        last = await state_counts(db)
        return last if sum(last.get(s, 0) for s in FINAL) >= count else None

    try:
        counts = await wait_until(settled, timeout=timeout, interval=interval,
                                  what=lambda: f"{count} messages in a final state (last seen: {last})")
    except AssertionError as exc:  # say which messages, and where each stands
        raise AssertionError(f"{exc}; not final: {await _not_final(db)}") from None
    assert counts is not None
    return counts


_NOT_FINAL = """
SELECT id, state, claimed_by, round(extract(epoch FROM lease_until - now())::numeric, 1)::float8 AS lease_left_s,
       round(extract(epoch FROM now() - updated_at)::numeric, 1)::float8 AS idle_s, attempts, defers
FROM engine_outbound WHERE NOT (state = ANY($1::text[])) ORDER BY id LIMIT 10
"""


async def _not_final(db: asyncpg.Pool | str) -> list[dict[str, object]]:
    """Up to ten messages not in a final state, with their claim, lease and last change."""
    return [dict(r) for r in await _fetch(db, _NOT_FINAL, list(FINAL))]


async def fetch_until(pool: asyncpg.Pool, sql: str, *args: object, timeout: float = 20.0) -> object:
    """Poll the value of *sql* until it is truthy; returns it."""
    return await wait_until(lambda: pool.fetchval(sql, *args), timeout=timeout, what=sql)
