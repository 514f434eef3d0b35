"""A worker's heartbeat renews only the claims it still holds in memory, and its sends in flight.

Before, it renewed every row claimed by the worker: a claimed row that some path had dropped from memory (a batch
cut short by a database restart, an answer that never came) stayed claimed, and unsent, for as long as the worker
lived; a CI run saw 6 of 4,000 messages so after a PostgreSQL restart. Now such a row's lease runs out and it
returns to the queue, and rows the worker does hold keep their claim.
"""

from __future__ import annotations

import asyncpg

from engine import statuses as st
from engine.config import Settings
from engine.dispatch.place import Pending
from engine.dispatch.worker import Worker
from engine.store import outbound
from engine.store.outbound import Outcome, SendMark
from engine.submit import Outgoing, submit_many
from tests.helpers.engine import setup_app

DID = "+15550000001"


async def _rows(pool: asyncpg.Pool) -> dict[int, tuple[str, str | None, bool]]:
    """id -> (state, claimed_by, lease still running)."""
    rows = await pool.fetch("SELECT id, state, claimed_by, coalesce(lease_until > now(), false) AS live "
                            "FROM engine_outbound")
    return {r["id"]: (r["state"], r["claimed_by"], r["live"]) for r in rows}


async def test_the_heartbeat_renews_held_claims_and_sends_and_returns_the_rest(pool: asyncpg.Pool) -> None:
    await setup_app(pool, "http://127.0.0.1:9", dids=1)
    app_id = await pool.fetchval("SELECT id FROM engine_app WHERE name = 'lib'")
    did_id = await pool.fetchval("SELECT id FROM engine_did")
    ids = await submit_many(pool, "lib", [Outgoing(f"+1718200{i:04d}", f"n{i}") for i in range(6)])
    # Claimed with a lease that has already run out: only what the heartbeat renews keeps its claim.
    assert len(await outbound.claim(pool, "w", 10, -1.0, [app_id])) == 6
    sending = ids[4:]
    marks = [SendMark(i, did_id, DID, 1, "GSM-7") for i in sending]
    assert await outbound.mark_sending(pool, "w", -1.0, marks, await pool.fetchval("SELECT now()")) == set(sending)
    held = ids[:2]  # ids[2:4] were dropped from memory; ids[4:] are in flight
    came_back = await outbound.keep_claims(pool, "w", 30.0, held, requeue_sending=False)
    rows = await _rows(pool)
    assert came_back
    assert [rows[i] for i in held] == [("claimed", "w", True)] * 2
    assert [rows[i] for i in ids[2:4]] == [("queued", None, False)] * 2  # claimable again, by anyone
    assert [rows[i] for i in sending] == [("sending", "w", True)] * 2  # a send in flight keeps its lease


async def test_held_claims_is_everything_the_worker_holds(pool: asyncpg.Pool, db_dsn: str) -> None:
    """Each place a claimed message can be in a worker's memory counts, and nothing else does."""
    worker = Worker(pool, db_dsn, Settings(dsn=db_dsn))

    def pending(i: int) -> Pending:
        return Pending(i, 1, 1, f"+1718200{i:04d}", "hi", 1, "GSM-7", 0)

    assert worker.held_claims() == set()
    worker.scheduler.set_did(7, 1, 60)
    worker.scheduler.push(7, 1, pending(1), 0.0)  # queued on its DID
    worker.scheduler.push_later(7, 1, pending(2), 100.0)  # waiting for a retry
    worker.claimer.in_hand = [outbound.Claimed(3, 1, "+17182000003", "hi", None, 0, 0, "message", None)]
    worker.sender.marking = [pending(4)]
    worker.orphans.append(pending(5))
    worker.claimer.unfinished.append(6)
    worker.recorder.outcomes.put_nowait(Outcome(7, st.SEND_FAILED, None, "refused"))
    assert worker.held_claims() == {1, 2, 3, 4, 5, 6, 7}
