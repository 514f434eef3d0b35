"""The outbound queue as the dispatch stages see it: typed functions over the claim and admission statements.

Each function is one round trip; batches travel as arrays (see :mod:`engine.store.queries`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from engine.policy.admission import Facts
from engine.store import queries as q

__all__ = ["Claimed", "FactsRequest", "admission_facts", "blacklisted_claims", "claim", "split_into_parts"]


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
                r["kind"], r["part_of"])
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
        facts[r["i"] - 1] = Facts(r["blacklisted"], r["flood_used"], r["duplicate"])
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


async def blacklisted_claims(pool: asyncpg.Pool, worker_id: str, ids: Sequence[int]) -> list[int]:
    """Of *ids* still claimed by *worker_id*, those whose phone is blacklisted for their app."""
    if not ids:
        return []
    return [r["id"] for r in await pool.fetch(q.BLACKLISTED_CLAIMS, list(ids), worker_id)]
