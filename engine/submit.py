"""The Python door into the queue: `submit()` and `submit_many()`.

Same table and semantics as the SQL function `engine_submit(...)`; one round trip per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.errors import InvalidInput
from engine.phone import to_e164
from engine.store import queries as q
from engine.store.admin import get_app


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to submit. *on* is when to send (timezone-aware; None = now)."""

    recipient: str
    body: str
    tag: str | None = None
    on: datetime | None = None


async def submit_many(pool: asyncpg.Pool, app: str, messages: Iterable[Outgoing]) -> list[int]:
    """Queue *messages* for *app* in one transaction; returns their ids in order.

    Every recipient is validated first: one invalid number rejects the whole batch, nothing queued.
    """
    items = list(messages)
    recipients: list[str] = []
    for i, m in enumerate(items):
        e164 = to_e164(m.recipient)
        if e164 is None:
            raise InvalidInput(f"messages[{i}].recipient", f"{m.recipient!r} is not a valid phone number")
        if m.on is not None and m.on.tzinfo is None:
            raise InvalidInput(f"messages[{i}].on", "must be timezone-aware")
        recipients.append(e164)
    if not items:
        return []
    async with pool.acquire() as conn, conn.transaction():
        row = await get_app(conn, app)
        records = await conn.fetch(
            q.SUBMIT_MANY,
            row.id,
            recipients,
            [m.body for m in items],
            [m.tag for m in items],
            [m.on for m in items],
        )
    return [r["id"] for r in records]


async def submit(
    pool: asyncpg.Pool, app: str, recipient: str, body: str, *, tag: str | None = None, on: datetime | None = None
) -> int:
    """Queue one message; returns its id."""
    (message_id,) = await submit_many(pool, app, [Outgoing(recipient, body, tag, on)])
    return message_id
