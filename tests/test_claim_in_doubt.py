"""A claim whose answer is lost (the connection dies around its commit) must not leave rows claimed unseen.

The database committed the claim, the worker got an error instead of the rows: nobody holds them in memory, and the
worker's heartbeat renewed their lease forever (a CI run saw 9 of 4,000 messages stuck 'claimed' after a
PostgreSQL restart). It now renews only what the worker holds (tests/test_held_claims.py); these rows go back at
once. The fault is injected around a real claim on the real database: the statement runs, then the answer is
dropped.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from engine.config import Settings
from engine.dispatch.claim import Claimer
from engine.dispatch.place import Pending
from engine.store import queries as q
from engine.store.outbound import Claimed
from engine.submit import Outgoing, submit_many
from engine.throttle import Scheduler
from tests.helpers.engine import setup_app
from tests.helpers.polling import wait_until


class AnswerLost:
    """The pool, except that the first CLAIM commits and then its answer is lost, as when the server goes away
    between its commit and the reply."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.lost = 0

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.pool.fetch(sql, *args)
        if sql == q.CLAIM and not self.lost and rows:
            self.lost = len(rows)
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)


async def test_rows_of_a_claim_whose_answer_was_lost_go_back_and_are_claimed_once(pool: asyncpg.Pool) -> None:
    await setup_app(pool, "http://127.0.0.1:9", dids=2)
    app_id = await pool.fetchval("SELECT id FROM engine_app WHERE name = 'lib'")
    ids = await submit_many(pool, "lib", [Outgoing(f"+1718200{i:04d}", f"n{i}") for i in range(30)])
    flaky = AnswerLost(pool)
    seen: list[int] = []

    async def handle(rows: list[Claimed]) -> None:
        seen.extend(r.id for r in rows)

    settings = Settings(batch_size=100, poll_seconds=0.05)
    claimer = Claimer(flaky, "w-test", settings, Scheduler[Pending](), [], handle,
                      lambda: ([app_id], False))
    task = asyncio.create_task(claimer.run())
    try:
        await wait_until(lambda: _eq(sorted(seen), ids), timeout=20, interval=0.05, what="every row claimed again")
    finally:
        claimer.stop()
        await task
    assert flaky.lost == 30  # the first claim took them all, and its answer was lost
    assert sorted(seen) == ids  # each reached the worker once, through a later claim
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE state = 'claimed' AND claimed_by = "
                               "'w-test'") == 30  # claimed by the claim that answered, none left behind unseen


async def _eq(a: list[int], b: list[int]) -> bool:
    return a == b
