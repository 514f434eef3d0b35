"""The callback outbox (engine_outbox): emitting events, and what the deliverer reads and writes.

Typed in and out; the SQL is in :mod:`engine.store.outbox_queries`. Times passed as *offset* are
seconds added to the database's now(): the deliverer's injected clock minus the real one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import asyncpg
import orjson

from engine.store import outbox_queries as oq
from engine.store import queries as q
from engine.store.database import Pool


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to emit: its application, its type (engine.events) and its fields."""

    app_id: int
    type: str
    payload: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    """A claimed outbox row with what delivering it needs."""

    id: int
    event_id: str
    app_id: int
    type: str
    payload: Mapping[str, object]
    attempts: int  # before this one
    gateway_url: str | None
    secret: str = field(repr=False)
    concurrency: int
    inbound_id: int | None = None  # an incoming_message: the MO its gateway's answer replies to


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """A delivery attempt that failed: when to try again, why, or whether to give up at once."""

    id: int
    delay: float  # seconds until the next attempt (capped by the event's max age)
    error: str
    give_up: bool = False


async def enqueue_events(conn: asyncpg.Connection, events: Sequence[NewEvent]) -> list[str]:
    """Emit *events* inside the caller's transaction, in order; returns their event ids.

    One rule for every emitter: an event is kept even when its app has no gateway URL; the deliverer
    then dead-letters it ('no gateway_url'), where `engine app status` shows it.
    """
    if not events:
        return []
    rows = await conn.fetch(
        oq.ENQUEUE_MANY,
        [e.app_id for e in events],
        [e.type for e in events],
        [orjson.dumps(dict(e.payload)).decode() for e in events],
    )
    return [r["event_id"] for r in rows]


async def claim(
    pool: Pool, *, offset: float, deliverer_id: str, limit: int, lease_seconds: float, skip_apps: Sequence[int]
) -> list[ClaimedEvent]:
    """Lease up to *limit* due events of apps not in *skip_apps* (their lanes are full), oldest due first."""
    rows = await pool.fetch(oq.CLAIM, offset, deliverer_id, limit, lease_seconds, list(skip_apps))
    return [
        ClaimedEvent(
            id=r["id"], event_id=r["event_id"], app_id=r["app_id"], type=r["type"],
            payload=_payload(r["payload"]), attempts=r["attempts"], gateway_url=r["gateway_url"],
            secret=r["callback_secret"], concurrency=r["callback_concurrency"], inbound_id=r["inbound_id"],
        )
        for r in rows
    ]


def _payload(raw: object) -> Mapping[str, object]:
    """A jsonb column as asyncpg returns it (text without a codec) as a mapping."""
    if isinstance(raw, str | bytes):
        return cast(Mapping[str, object], orjson.loads(raw))
    return cast(Mapping[str, object], raw)


async def seconds_until_due(pool: Pool, *, offset: float, skip_apps: Sequence[int]) -> float | None:
    """Seconds until the next pending event of an app not in *skip_apps* is due (≤ 0: now); None when none."""
    value = await pool.fetchval(oq.NEXT_DUE, offset, list(skip_apps))
    return None if value is None else float(value)


async def renew_leases(pool: Pool, deliverer_id: str, *, offset: float, lease_seconds: float) -> None:
    """Keep this deliverer's claims (in flight, or waiting behind a busy gateway) leased."""
    await pool.execute(oq.HEARTBEAT, deliverer_id, offset, lease_seconds)


@dataclass(frozen=True, slots=True)
class GatewayAnswer:
    """What a gateway answered to an incoming_message: a reply body, closing the session, a text to reprocess."""

    outbox_id: int
    body: str | None = None
    close_session: bool = False
    reprocess: str | None = None


async def record_attempts(
    pool: Pool,
    *,
    delivered: Sequence[int],
    failed: Sequence[FailedAttempt],
    offset: float,
    max_age: float,
    deliverer_id: str,
    answers: Sequence[GatewayAnswer] = (),
) -> None:
    """Write a batch of outcomes in one transaction: successes (with the gateways' answers to incoming messages,
    so an answer is neither lost nor, on a repeated delivery, used twice), and failures to retry or dead-letter.

    A failure past *max_age* (seconds since the event was created) is dead-lettered; a success is
    recorded whoever holds the lease now.
    """
    async with pool.acquire() as conn, conn.transaction():
        if delivered:
            await conn.execute(oq.MARK_DELIVERED, list(delivered), offset)
        if answers:
            await conn.execute(
                oq.RECORD_ANSWERS, [a.outbox_id for a in answers], [a.body for a in answers],
                [a.close_session for a in answers], [a.reprocess for a in answers],
            )
        if failed:
            await conn.execute(
                oq.MARK_FAILED,
                [f.id for f in failed],
                offset,
                max_age,
                [f.delay for f in failed],
                [f.error[:1000] for f in failed],
                [f.give_up for f in failed],
                deliverer_id,
            )


async def release(pool: Pool, deliverer_id: str, *, offset: float) -> None:
    """Hand back this deliverer's claims not yet attempted: they are due at once (for another process)."""
    await pool.execute(oq.RELEASE, deliverer_id, offset)


async def backlog(pool: Pool) -> int:
    """Events waiting to be delivered, all applications together (a metric)."""
    return int(await pool.fetchval(q.CALLBACK_BACKLOG))
