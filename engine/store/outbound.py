"""The message queue (engine_outbound) for callers outside the dispatch stages: queueing and counting.

Typed in and out; the SQL is in :mod:`engine.store.queries`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.store import queries as q
from engine.store.database import Pool


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A validated message to queue: E.164 recipient, body, optional tag, when to send (aware; None = now)."""

    recipient: str
    body: str
    tag: str | None = None
    send_at: datetime | None = None


async def queue(pool: Pool, app_id: int, messages: Sequence[NewMessage]) -> list[int]:
    """Queue *messages* for the application in one statement (all or nothing); their ids, in order."""
    records = await pool.fetch(
        q.SUBMIT_MANY,
        app_id,
        [m.recipient for m in messages],
        [m.body for m in messages],
        [m.tag for m in messages],
        [m.send_at for m in messages],
    )
    return [r["id"] for r in records]


async def count_by_state(conn: Pool | asyncpg.Connection, app_id: int) -> dict[str, int]:
    """How many of the application's messages are in each state (states with none are left out)."""
    return {r["state"]: r["n"] for r in await conn.fetch(q.COUNT_BY_STATE, app_id)}


async def queue_depth(pool: Pool) -> dict[str, int]:
    """Messages not yet final, by state, all applications together (a metric)."""
    return {r["state"]: r["n"] for r in await pool.fetch(q.QUEUE_DEPTH)}
