"""Bulk work queued straight in the database: a running job's messages."""

from __future__ import annotations

import asyncpg


async def queue_job(pool: asyncpg.Pool, app_id: int, count: int, *, first: int = 2000000) -> int:
    """A running job of *count* messages 'sale 0', 'sale 1', … (bulk work: class 2, held first by a daily cap; not
    marketing, so neither quiet hours nor consent decide when it goes)."""
    job: int = await pool.fetchval(
        "INSERT INTO engine_job (app_id, source, total) VALUES ($1, 'api', $2) RETURNING id", app_id, count)
    await pool.execute(
        "INSERT INTO engine_outbound (app_id, recipient, body, job_id) "
        "SELECT $1, '+1718' || ($3 + i)::text, 'sale ' || i, $2 FROM generate_series(0, $4 - 1) i",
        app_id, job, first, count)
    return job
