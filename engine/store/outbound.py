"""The outbound queue (engine_outbound): queueing and counting for every caller, and the claim, admission and
status statements of the dispatch stages. Typed in and out; each function is one round trip; batches travel as
arrays (the SQL is in :mod:`engine.store.queries`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import asyncpg
import orjson

from engine.frozen import fast_init
from engine.policy.admission import Facts
from engine.statuses import StatusChange
from engine.store import lease_queries as lq
from engine.store import queries as q
from engine.store.database import Pool
from engine.store.outbox import NewEvent, enqueue_events

__all__ = [
    "Accepted",
    "CarrierStatus",
    "Claimed",
    "FactsRequest",
    "NewMessage",
    "Outcome",
    "Retry",
    "SendMark",
    "TagKey",
    "admission_facts",
    "apply_statuses",
    "claim",
    "count_by_state",
    "defer",
    "keep_claims",
    "mark_accepted",
    "mark_outcomes",
    "mark_retries",
    "mark_sending",
    "next_due",
    "pin_tags",
    "queue",
    "queue_depth",
    "split_into_parts",
    "sticky_dids",
    "unmarked_claims",
    "write_refusals",
]

TagKey = tuple[int, str, str]  # (app, recipient, tag): a conversation


@fast_init
@dataclass(frozen=True, slots=True)
class Outcome:
    """An engine-side status change to write (its delivery report is written by the same statement)."""

    id: int
    change: StatusChange
    code: int | None = None
    message: str | None = None
    segments: int | None = None
    encoding: str | None = None
    reason: str | None = None  # why the engine refused it (admission), sent in the delivery report


class SendMark(NamedTuple):
    """A message about to be sent: through which DID, billed how."""

    id: int
    did_id: int
    sender: str
    segments: int
    encoding: str
    expires_at: datetime | None = None  # not marked (so not sent) at or after this


class Accepted(NamedTuple):
    """The carrier accepted a message: its sid and first status."""

    id: int
    sid: str
    status: str


@fast_init
@dataclass(frozen=True, slots=True)
class CarrierStatus:
    """A status the carrier called back with, mapped to ours."""

    message_id: int
    provider_status: str
    change: StatusChange
    error_code: int | None
    sid: str | None
    sender: str | None = None  # the callback's From: the sender a Messaging Service chose


class Retry(NamedTuple):
    """A retryable failure, kept by this worker for another attempt."""

    id: int
    code: int | None
    message: str | None


@fast_init
@dataclass(frozen=True, slots=True)
class Claimed:
    """A message this worker claimed from the queue, as stored."""

    id: int
    app_id: int
    recipient: str
    body: str
    tag: str | None
    attempts: int
    defers: int  # times it was left in the queue for its DID's turn
    kind: str  # 'message', 'reply' or 'compliance' (the engine's own STOP/HELP answers)
    part_of: int | None  # parts 2..n of a split message point at part 1
    from_did: int | None = None  # a reply: the DID the phone texted, which it must go out from
    priority: int = 1  # 0 the engine's answers and replies, 1 transactional, 2 bulk and marketing


@fast_init
@dataclass(frozen=True, slots=True)
class FactsRequest:
    """What admission asks about one claimed message.

    *head*: the first part as it will be sent, to compare within the duplicate window (None: not checked);
    *flood_seconds*: the app's flood period (0: the flood limit is not checked for this message).
    """

    id: int
    head: str | None
    flood_seconds: float


async def claim(
    pool: asyncpg.Pool, worker_id: str, limit: int, lease_seconds: float, app_ids: Sequence[int]
) -> list[Claimed]:
    """Claim up to *limit* due queued messages of *app_ids* for *worker_id* (SKIP LOCKED, leased)."""
    rows = await pool.fetch(q.CLAIM, worker_id, limit, lease_seconds, list(app_ids))
    return [
        Claimed(r["id"], r["app_id"], r["recipient"], r["body"], r["tag"] or None, r["attempts"], r["defers"],
                r["kind"], r["part_of"], r["from_did"], r["priority"])
        for r in rows
    ]


async def admission_facts(pool: asyncpg.Pool, requests: Sequence[FactsRequest]) -> list[Facts]:
    """Blacklist, flood count and duplicate window for each request, in order (one query for the batch)."""
    if not requests:
        return []
    rows = await pool.fetch(
        q.ADMISSION_FACTS,
        [r.id for r in requests],
        [r.head for r in requests],
        [r.flood_seconds for r in requests],
    )
    facts = [Facts()] * len(requests)  # a message deleted meanwhile has no row: nothing known against it
    for r in rows:
        facts[r["i"] - 1] = Facts(
            r["blacklisted"], r["flood_used"], r["duplicate"], r["expires_at"], r["marketing"], r["subscribed"],
            r["time_zone"],
        )
    return facts


async def split_into_parts(pool: asyncpg.Pool, worker_id: str, splits: Sequence[tuple[int, Sequence[str]]]) -> None:
    """Rewrite each claimed message (id, parts) as part 1 and queue parts 2..n linked to it, in one transaction."""
    if not splits:
        return
    owners = [message_id for message_id, parts in splits for _ in parts[1:]]
    bodies = [part for _, parts in splits for part in parts[1:]]
    async with pool.acquire() as conn, conn.transaction():
        # The engine may split its own STOP/HELP answers too (kind 'compliance', guarded by a trigger).
        await conn.execute("SELECT set_config('engine.compliance', 'on', true)")
        await conn.execute(
            q.SPLIT_INTO_PARTS, [i for i, _ in splits], [parts[0] for _, parts in splits], owners, bodies, worker_id
        )


async def unmarked_claims(pool: asyncpg.Pool, worker_id: str, ids: Sequence[int]) -> dict[int, bool]:
    """Of *ids* that MARK_SENDING left unmarked, those still claimed by *worker_id* -> whether the phone is
    blacklisted for their app (if not, its expiry passed). The others lost their claim to another worker."""
    if not ids:
        return {}
    return {r["id"]: r["blacklisted"] for r in await pool.fetch(q.UNMARKED_CLAIMS, list(ids), worker_id)}


async def defer(pool: asyncpg.Pool, worker_id: str, ids: Sequence[int], delays: Sequence[float]) -> None:
    """Back to the queue, each due after its delay (its DID's turn is further away than the horizon)."""
    if ids:
        await pool.execute(q.DEFER_SECONDS, list(ids), list(delays), worker_id)


async def mark_sending(
    pool: asyncpg.Pool, worker_id: str, lease_seconds: float, marks: Sequence[SendMark], now: datetime
) -> set[int]:
    """Mark the batch 'sending' (one round trip); returns the ids marked. Unmarked: our claim was lost, the phone
    opted out meanwhile, or the message's expiry is not after *now* (see :func:`unmarked_claims`)."""
    rows = [
        (m.id, m.did_id, m.sender, m.segments, m.encoding, None if m.expires_at is None else m.expires_at.timestamp())
        for m in marks
    ]
    marked: list[int] = await pool.fetchval(q.MARK_SENDING, _json(rows), worker_id, lease_seconds, now)
    return set(marked)


async def mark_accepted(pool: asyncpg.Pool, batch: Sequence[Accepted]) -> None:
    await pool.execute(q.MARK_ACCEPTED, _json([(a.id, a.sid, a.status) for a in batch]))


def _json(rows: Sequence[Sequence[object]]) -> str:
    """Rows as the one JSON parameter of the batched writes (see queries.APPLY_STATUSES)."""
    return orjson.dumps(rows).decode()


def _outcome_columns(batch: Sequence[Outcome]) -> list[list[object]]:
    return [
        [o.id for o in batch],
        [o.change.state for o in batch],
        [o.change.status for o in batch],
        [o.change.rank for o in batch],
        [o.code for o in batch],
        [o.message for o in batch],
        [o.segments for o in batch],
        [o.encoding for o in batch],
        [o.reason for o in batch],
    ]


async def mark_outcomes(pool: asyncpg.Pool, batch: Sequence[Outcome]) -> None:
    """Engine-side outcomes and their delivery reports, in one statement."""
    await pool.execute(q.MARK_OUTCOME, *_outcome_columns(batch))


async def write_refusals(pool: asyncpg.Pool, refused: Sequence[Outcome], events: Sequence[NewEvent]) -> None:
    """Messages not sent for a reason the app must hear about: their final status and the events, atomically.
    (An invalid_characters event rides along: its message itself goes on.)"""
    async with pool.acquire() as conn, conn.transaction():
        if refused:
            await conn.execute(q.MARK_OUTCOME, *_outcome_columns(refused))
        await enqueue_events(conn, events)


async def apply_statuses(pool: Pool, batch: Sequence[CarrierStatus]) -> None:
    """Carrier statuses and their delivery reports in one statement. Of several for one message, the highest rank
    applies (statuses never move backwards); every one, applied or not, goes on the message's timeline."""
    rows = [(u.message_id, u.provider_status, u.change.status, u.change.rank, u.change.state, u.error_code, u.sid,
             u.sender) for u in batch]
    await pool.execute(q.APPLY_STATUSES, _json(rows))


async def mark_retries(pool: asyncpg.Pool, batch: Sequence[Retry], lease_seconds: float) -> None:
    await pool.execute(
        q.MARK_RETRY, [r.id for r in batch], [r.code for r in batch], [r.message for r in batch], lease_seconds
    )


async def keep_claims(pool: asyncpg.Pool, worker_id: str, lease_seconds: float, held: Collection[int], *,
                      requeue_sending: bool) -> bool:
    """Extend our sends in flight and the claims we still hold (*held*: ids of claimed messages in memory); return
    claims nobody renewed (a dead worker's, or ones we dropped) to the queue, and dead workers' sends in doubt to
    'unknown' (or, with *requeue_sending*, to the queue). True when anything came back to the queue."""
    async with pool.acquire() as conn:
        await conn.execute(lq.HEARTBEAT, worker_id, lease_seconds, list(held))
        recovered = await conn.execute(lq.REQUEUE_EXPIRED, "claimed")
        if requeue_sending:
            await conn.execute(lq.REQUEUE_EXPIRED, "sending")
        else:
            await conn.execute(lq.RECOVER_SENDING_UNKNOWN)
    return bool(recovered != "UPDATE 0")


async def next_due(pool: asyncpg.Pool, app_ids: Sequence[int]) -> float | None:
    """Seconds until the next queued message of *app_ids* (outside paused jobs) is due (negative: overdue), or
    None when they have none queued."""
    if not app_ids:
        return None
    value = await pool.fetchval(q.NEXT_DUE, list(app_ids))
    return None if value is None else float(value)


async def sticky_dids(pool: asyncpg.Pool, keys: Sequence[TagKey]) -> dict[TagKey, int]:
    """The DID each conversation is pinned to, where one is."""
    if not keys:
        return {}
    rows = await pool.fetch(q.TAGS_LOOKUP, *(list(col) for col in zip(*keys, strict=True)))
    return {keys[r["i"] - 1]: r["did_id"] for r in rows}


async def pin_tags(pool: asyncpg.Pool, pins: Mapping[TagKey, int]) -> None:
    """Pin new conversations to their DIDs (an existing pin wins)."""
    if pins:
        cols = [list(c) for c in zip(*pins, strict=True)]
        await pool.execute(q.TAGS_ASSIGN, *cols, list(pins.values()))


# ---- queueing and counting (the Python door, the demo, health) -------------------------------------------


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A validated message to queue: E.164 recipient, body, optional tag, when to send (aware; None = now), its
    free type label, its category and when it expires (aware; None = the app's default lifetime, if any)."""

    recipient: str
    body: str
    tag: str | None = None
    send_at: datetime | None = None
    type: str | None = None
    category: str = "transactional"
    expires_at: datetime | None = None


async def queue(pool: Pool, app_id: int, messages: Sequence[NewMessage]) -> list[int]:
    """Queue *messages* for the application in one statement (all or nothing); their ids, in order."""
    records = await pool.fetch(
        q.SUBMIT_MANY,
        app_id,
        [m.recipient for m in messages],
        [m.body for m in messages],
        [m.tag for m in messages],
        [m.send_at for m in messages],
        [m.type for m in messages],
        [m.category for m in messages],
        [m.expires_at for m in messages],
    )
    return [r["id"] for r in records]


async def count_by_state(conn: Pool | asyncpg.Connection, app_id: int, kind: str | None = None) -> dict[str, int]:
    """How many of the application's messages (of *kind*, if given) are in each state (states with none are left
    out)."""
    rows = await (conn.fetch(q.COUNT_BY_STATE, app_id) if kind is None else
                  conn.fetch(q.COUNT_BY_STATE_OF_KIND, app_id, kind))
    return {r["state"]: r["n"] for r in rows}


async def queue_depth(pool: Pool) -> dict[str, int]:
    """Messages not yet final, by state, all applications together (a metric)."""
    return {r["state"]: r["n"] for r in await pool.fetch(q.QUEUE_DEPTH)}
