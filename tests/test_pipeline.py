"""End to end through real Postgres and real loopback HTTP: submit → pace → carrier → statuses back."""

from __future__ import annotations

from collections import Counter

import asyncpg

from engine.submit import Outgoing, submit, submit_many
from engine.testing import max_per_sender_by_sender
from tests.helpers.database import wait_final
from tests.helpers.engine import carrier, engine_running, setup_app


async def test_small_run_every_message_final_and_delivered(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=5, limit_per_min=6000)
        ids = await submit_many(pool, "lib", [Outgoing(f"+1212555{i:04d}"[:2] + f"2125{i:06d}", f"hi {i}")
                                             for i in range(50)])
        async with engine_running(db_dsn):
            counts = await wait_final(pool, 50, timeout=30)
        assert counts == {"delivered": 50}
        rows = await pool.fetch("SELECT id, status, provider_message_id, segments, encoding, sender, attempts "
                                "FROM engine_outbound ORDER BY id")
        assert [r["id"] for r in rows] == ids
        for r in rows:
            assert r["status"] == 1 and r["provider_message_id"].startswith("SM")
            assert r["segments"] == 1 and r["encoding"] == "GSM-7" and r["attempts"] == 1
        assert len(fake.records) == 50
        assert Counter(r.to for r in fake.records).most_common(1)[0][1] == 1


async def test_ten_thousand_through_a_hundred_dids_no_loss_no_duplicate(pool: asyncpg.Pool, db_dsn: str) -> None:
    n = 10_000
    async with carrier(callbacks="final") as fake:
        numbers = await setup_app(pool, fake.base_url or "", dids=100, limit_per_min=6000)
        job = [Outgoing(f"+1718{200 + i // 10000:03d}{i % 10000:04d}", f"Reminder #{i}: book club tonight")
               for i in range(n)]
        await submit_many(pool, "lib", job)
        async with engine_running(db_dsn):
            counts = await wait_final(pool, n, timeout=110)
        assert counts == {"delivered": n}
        # The carrier's own record: each message exactly once, only from our DIDs, never over the limit.
        sent = Counter((r.to, r.body) for r in fake.records)
        assert len(sent) == n and max(sent.values()) == 1
        assert {r.from_ for r in fake.records} <= set(numbers)
        assert max(max_per_sender_by_sender(fake.records, 60.0).values()) <= 6000
        statuses = await pool.fetchval("SELECT count(DISTINCT id) FROM engine_outbound WHERE status = 1")
        assert statuses == n


async def test_single_submit_returns_id(pool: asyncpg.Pool) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "")
    mid = await submit(pool, "lib", "+1(347)264-3707", "hello", tag="t1")
    row = await pool.fetchrow("SELECT recipient, tag, state, status FROM engine_outbound WHERE id = $1", mid)
    assert dict(row) == {"recipient": "+13472643707", "tag": "t1", "state": "queued", "status": 0}
