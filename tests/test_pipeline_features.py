"""Pipeline behaviours through the real engine, real Postgres and a real loopback carrier."""

from __future__ import annotations

import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import aiohttp
import asyncpg
import pytest

from engine.providers.twilio import twilio_signature
from engine.store import admin
from engine.submit import Outgoing, submit, submit_many
from engine.testing import DEFAULT_AUTH_TOKEN, AcceptedRecord
from tests.helpers.database import wait_final
from tests.helpers.engine import carrier, engine_running, setup_app
from tests.helpers.polling import wait_until


async def test_tag_sticks_to_one_did_until_removed(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=8, limit_per_min=6000)
        job = [Outgoing("+13472643707", f"thread msg {i}", tag="reg-42") for i in range(12)]
        job += [Outgoing(f"+1718200{i:04d}", f"other {i}", tag="reg-42") for i in range(12)]
        job += [Outgoing(f"+1917200{i:04d}", f"untagged {i}") for i in range(40)]
        await submit_many(pool, "lib", job)
        async with engine_running(db_dsn):
            await wait_final(pool, len(job))
        senders = defaultdict(set)
        for r in fake.records:
            if r.body.startswith("thread"):
                senders[(r.to, "thread")].add(r.from_)
        assert len(senders[("+13472643707", "thread")]) == 1
        # Different recipients with the same tag are different conversations: spread over the pool.
        other = {r.from_ for r in fake.records if r.body.startswith("other")}
        assert len(other) > 1
        # Least-loaded choice balances the pool, counting the sticky conversation's load too.
        thread_did = next(iter(senders[("+13472643707", "thread")]))
        load = Counter(r.from_ for r in fake.records if r.from_ != thread_did)
        assert len(load) == 7 and max(load.values()) - min(load.values()) <= 2
        app = await admin.get_app(pool, "lib")
        assert await admin.remove_tag(pool, "lib", "+13472643707", "reg-42") is True
        assert await admin.remove_tag(pool, "lib", "+13472643707", "reg-42") is False
        left = await pool.fetchval("SELECT count(*) FROM engine_tag_did WHERE app_id = $1", app.id)
        assert left == 12


async def test_duplicates_within_window_suppressed_and_test_numbers_never_sent(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=3, limit_per_min=6000)
        first = await submit(pool, "lib", "+13472643707", "Your hold is ready")
        dup = await submit(pool, "lib", "(347) 264-3707", "Your hold is ready")
        other_body = await submit(pool, "lib", "+13472643707", "Your hold expires soon")
        test_no = await submit(pool, "lib", "555-123-4567", "test message")
        async with engine_running(db_dsn):
            await wait_final(pool, 4)
        rows = {r["id"]: r for r in await pool.fetch("SELECT id, state, status FROM engine_outbound")}
        assert (rows[first]["state"], rows[first]["status"]) == ("delivered", 1)
        assert (rows[dup]["state"], rows[dup]["status"]) == ("suppressed", 2)
        assert rows[other_body]["state"] == "delivered"
        assert (rows[test_no]["state"], rows[test_no]["status"]) == ("delivered", 1)
        assert sorted(r.body for r in fake.records) == ["Your hold expires soon", "Your hold is ready"]
        assert all(not r.to.startswith("+1555") for r in fake.records)


async def test_duplicate_window_zero_sends_both(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=2, limit_per_min=6000)
        await admin.set_dedup_window(pool, "lib", 0)
        first = await submit(pool, "lib", "+13472643707", "same")
        # A zero window admits the second only if its created_at (its transaction's start) is later: wait until
        # the database clock has moved past the first's.
        await wait_until(lambda: pool.fetchval(
            "SELECT clock_timestamp() > created_at FROM engine_outbound WHERE id = $1", first), interval=0.001)
        await submit(pool, "lib", "+13472643707", "same")
        async with engine_running(db_dsn):
            counts = await wait_final(pool, 2)
        assert counts == {"delivered": 2}
        assert len(fake.records) == 2


async def test_permanent_error_fails_with_provider_code_without_retry(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=2, limit_per_min=6000)
        mid = await submit(pool, "lib", "+15005550009", "to a landline")
        async with engine_running(db_dsn):
            await wait_final(pool, 1)
        row = await pool.fetchrow("SELECT state, status, error_code, attempts FROM engine_outbound WHERE id = $1", mid)
        assert dict(row) == {"state": "failed", "status": 2, "error_code": 21614, "attempts": 1}
        assert fake.records == []


async def test_429_with_retry_after_is_honoured_then_delivered(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=1, limit_per_min=6000)
        fake.inject(429, count=2, retry_after=0.4)
        mid = await submit(pool, "lib", "+13472643707", "after the storm")
        started = time.monotonic()
        async with engine_running(db_dsn):
            await wait_final(pool, 1)
        elapsed = time.monotonic() - started
        row = await pool.fetchrow("SELECT state, attempts FROM engine_outbound WHERE id = $1", mid)
        assert dict(row) == {"state": "delivered", "attempts": 3}
        # Two waits of Retry-After 0.4 s. A lower bound on a wait: a busy machine only makes it longer.
        assert elapsed >= 0.8
        assert len(fake.records) == 1


async def _state_is(pool: asyncpg.Pool, mid: int, state: str) -> bool:
    return bool(await pool.fetchval("SELECT state = $2 FROM engine_outbound WHERE id = $1", mid, state))


async def _post_status(base: str, provider_id: int, message_id: int, params: dict[str, str], token: str) -> int:
    url = f"{base}/webhooks/twilio/status/{provider_id}/{message_id}"
    headers = {"X-Twilio-Signature": twilio_signature(token, url, params)}
    async with aiohttp.ClientSession() as s, s.post(url, data=params, headers=headers) as resp:
        return resp.status


async def test_status_callbacks_signature_and_order(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier(callbacks="none") as fake:
        await setup_app(pool, fake.base_url or "", dids=1, limit_per_min=6000)
        mid = await submit(pool, "lib", "+13472643707", "statuses")
        async with engine_running(db_dsn) as run:
            await wait_until(lambda: _state_is(pool, mid, "sent"), what="the message sent")
            base = run.runtime.base_url or ""
            pid = await pool.fetchval("SELECT id FROM engine_provider")
            sid = await pool.fetchval("SELECT provider_message_id FROM engine_outbound WHERE id = $1", mid)
            delivered = {"MessageSid": sid, "MessageStatus": "delivered"}
            # Wrong token → 403 and nothing changes.
            assert await _post_status(base, pid, mid, delivered, "not-the-token") == 403
            assert await pool.fetchval("SELECT status FROM engine_outbound WHERE id = $1", mid) == 4
            assert await _post_status(base, pid, mid, delivered, DEFAULT_AUTH_TOKEN) == 204
            # Late and contradictory callbacks never move a final status.
            assert await _post_status(base, pid, mid, {"MessageSid": sid, "MessageStatus": "sent"},
                                      DEFAULT_AUTH_TOKEN) == 204
            assert await _post_status(base, pid, mid, {"MessageSid": sid, "MessageStatus": "undelivered",
                                                       "ErrorCode": "30003"}, DEFAULT_AUTH_TOKEN) == 204
        row = await pool.fetchrow("SELECT state, status, provider_status, error_code FROM engine_outbound")
        assert dict(row) == {"state": "delivered", "status": 1, "provider_status": "delivered", "error_code": None}


async def _paced(pool: asyncpg.Pool, db_dsn: str, enough: Callable[[list[AcceptedRecord]], bool]) -> list[
    AcceptedRecord
]:
    """10 DIDs at 60/min (burst 1) with a backlog, until *enough* was sent; the carrier's own records."""
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=10, limit_per_min=60)
        await submit_many(pool, "lib", [Outgoing(f"+1718200{i:04d}", f"paced {i}") for i in range(200)])
        async with engine_running(db_dsn):
            await wait_until(lambda: enough(fake.records), timeout=60, what="the paced sends")
        return list(fake.records)


async def test_real_pacing_on_the_wall_clock(pool: asyncpg.Pool, db_dsn: str) -> None:
    """Burst 1 at 60/min: consecutive sends of one DID at least ~1 s apart (carrier's own timestamps). What pacing
    forbids, so a busy machine cannot make it fail; how much of the capacity is used is the wallclock test below."""
    records = await _paced(pool, db_dsn, lambda records: len(records) >= 30)
    by_did: dict[str | None, list[float]] = defaultdict(list)
    for r in records:
        by_did[r.from_].append(r.t)
    gaps = [b - a for ts in by_did.values() for a, b in itertools.pairwise(ts)]
    assert gaps and min(gaps) > 0.95


@pytest.mark.wallclock
async def test_real_pacing_uses_the_capacity(pool: asyncpg.Pool, db_dsn: str) -> None:
    """10 DIDs at 60/min for 5 s: >= 95 % of the capacity, <= 6 per DID (carrier's own timestamps)."""
    records = await _paced(pool, db_dsn, lambda records: bool(records) and records[-1].t >= records[0].t + 5.0)
    t0 = records[0].t
    in_five = [r for r in records if r.t < t0 + 5.0]
    assert max(Counter(r.from_ for r in records).values()) <= 6
    assert len(in_five) >= 0.95 * 10 * 5


async def test_oversized_body_from_the_sql_door_is_refused_with_a_reason(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=1, limit_per_min=6000)
        big = await pool.fetchval("SELECT engine_submit('lib', '+13472643707', $1)", "x" * 1600)  # 11 segments
        ok = await pool.fetchval("SELECT engine_submit('lib', '+13472643708', $1)", "y" * 1500)  # 10 segments
        async with engine_running(db_dsn):
            await wait_final(pool, 2)
        rows = {r["id"]: r for r in await pool.fetch("SELECT id, state, error_message, segments FROM engine_outbound")}
        assert rows[big]["state"] == "failed" and "11 segments" in rows[big]["error_message"]
        assert rows[big]["segments"] == 11
        assert rows[ok]["state"] == "delivered" and rows[ok]["segments"] == 10
        assert [len(r.body) for r in fake.records] == [1500]
