"""Workers and DID leases: each DID is paced by exactly one worker at a time (typed functions, one round trip each)."""

from __future__ import annotations

import asyncpg

from engine.store import lease_queries as lq

__all__ = [
    "acquire_leases",
    "leave",
    "register_worker",
    "release_leases",
    "renew",
    "requeue_claimed",
    "requeue_unsent",
]


async def register_worker(pool: asyncpg.Pool, worker_id: str, host: str, pid: int) -> None:
    await pool.execute(lq.REGISTER_WORKER, worker_id, host, pid)


async def renew(pool: asyncpg.Pool, worker_id: str, lease_seconds: float) -> tuple[int, set[int]]:
    """Heartbeat, count the live workers and extend our DID leases: (workers alive, DIDs we still hold)."""
    async with pool.acquire() as conn:
        await conn.execute(lq.WORKER_HEARTBEAT, worker_id)
        alive = int(await conn.fetchval(lq.ALIVE_WORKERS, lease_seconds))
        held = {r["did_id"] for r in await conn.fetch(lq.RENEW_LEASES, worker_id, lease_seconds)}
    return alive, held


async def acquire_leases(
    pool: asyncpg.Pool, worker_id: str, lease_seconds: float, wants: dict[int, int]
) -> set[int]:
    """Take up to wants[smsc] free DIDs of each SMSC; returns those won."""
    if not wants:
        return set()
    smscs = list(wants)
    rows = await pool.fetch(lq.ACQUIRE_LEASES, worker_id, lease_seconds, smscs, [wants[s] for s in smscs])
    return {r["did_id"] for r in rows}


async def release_leases(pool: asyncpg.Pool, worker_id: str, did_ids: list[int]) -> None:
    await pool.execute(lq.RELEASE_LEASES, worker_id, did_ids)


async def requeue_unsent(pool: asyncpg.Pool, worker_id: str, ids: list[int], delay: float) -> None:
    """Claimed messages we will not send after all: back to the queue, due after *delay* seconds."""
    await pool.execute(lq.REQUEUE_UNSENT, ids, worker_id, delay)


async def requeue_claimed(pool: asyncpg.Pool, worker_id: str, ids: list[int], delay: float) -> None:
    """Messages of a batch that failed half-way: those still only claimed go back to the queue."""
    await pool.execute(lq.REQUEUE_CLAIMED, ids, worker_id, delay)


async def requeue_all_claimed(pool: asyncpg.Pool, worker_id: str, delay: float) -> int:
    """Every message *worker_id* holds only claimed (not yet 'sending') back to the queue, due after *delay*: after
    a claim whose answer was lost, so that rows it claimed unseen do not stay claimed. Returns how many."""
    done = await pool.execute(lq.REQUEUE_ALL_CLAIMED, worker_id, delay)
    return int(done.split()[-1])


async def leave(pool: asyncpg.Pool, worker_id: str) -> None:
    """A worker stopping: its unsent claims back to the queue, its leases and registration gone (one transaction)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(lq.RELEASE, worker_id)
        await conn.execute(lq.RELEASE_ALL_LEASES, worker_id)
        await conn.execute(lq.DEREGISTER_WORKER, worker_id)
