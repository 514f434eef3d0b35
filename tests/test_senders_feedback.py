"""Carrier feedback: a 10DLC carrier's 30022 (a campaign's rate exceeded) and 30023 (a brand's daily cap reached)
slow the campaign down or hold the brand until the carrier day resets, and the refused message goes back to the
queue instead of failing; per-campaign and per-brand figures on /metrics. Real engine, database and fake carrier."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import asyncpg

from engine.dispatch.record import RetryLater, next_step
from engine.policy.senders import carrier_day_timezone
from engine.providers import SendResult
from engine.store import admin, senders
from engine.submit import Outgoing, submit_many
from engine.throttle.daily import CarrierDay
from tests.helpers.bulk import queue_job
from tests.helpers.database import wait_final
from tests.helpers.engine import Running, carrier, engine_running, setup_app
from tests.helpers.polling import wait_until


def test_a_synchronous_30022_or_30023_is_retried_not_failed() -> None:
    refused = SendResult(ok=False, error_code=30022, error_message="rate", http_status=400)
    step = next_step(1, refused, 1, max_attempts=5, at_least_once=False, stopping=False, rng=lambda a, b: b,
                     slow_down={30022, 30023})
    assert isinstance(step, RetryLater)
    plain = SendResult(ok=False, error_code=21211, error_message="bad To", http_status=400)
    assert not isinstance(next_step(1, plain, 1, max_attempts=5, at_least_once=False, stopping=False,
                                    slow_down={30022, 30023}), RetryLater)


async def _campaign_app(pool: asyncpg.Pool, base_url: str, *, cap: int | None = None) -> int:
    await setup_app(pool, base_url, dids=3, limit_per_min=6000)
    await senders.create_brand(pool, "acme", daily_cap=cap, no_cap=cap is None, reserve=0 if cap else None)
    await senders.create_campaign(pool, "promo", "acme", "20")
    await admin.assign_campaign(pool, "promo", app="lib")
    return int(await pool.fetchval("SELECT id FROM engine_app WHERE name = 'lib'"))


async def _metrics(running: Running) -> str:
    async with aiohttp.ClientSession() as session, session.get(running.base_url + "/metrics") as resp:
        return await resp.text()


async def test_30022_slows_the_campaign_and_the_refused_messages_go_again(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier(callbacks="final") as fake:
        await _campaign_app(pool, fake.base_url or "")
        fake.refuse_next(2, 30022)
        await submit_many(pool, "lib", [Outgoing(f"+1718{2000000 + i:07d}", f"m{i}") for i in range(6)])
        async with engine_running(db_dsn, lease_seconds=4.0) as running:
            counts = await wait_final(pool, 6, timeout=60)
            assert counts == {"delivered": 6}  # the two the carrier refused went again: nothing failed
            text = await _metrics(running)
        records = list(fake.records)
    assert len(records) == 8 and sorted({r.body for r in records}) == sorted(f"m{i}" for i in range(6))
    assert [r.error_code for r in records].count(30022) == 2
    refused = await pool.fetch(
        "SELECT retired_sid, provider_message_id FROM engine_outbound WHERE retired_sid IS NOT NULL")
    assert len(refused) == 2 and all(r["retired_sid"] != r["provider_message_id"] for r in refused)
    campaign = await pool.fetchrow("SELECT slowed_until > now() AS slowed FROM engine_campaign")
    assert campaign["slowed"]
    assert 'engine_carrier_throttled_total{code="30022",level="campaign",name="promo"} 2.0' in text
    assert 'engine_campaign_mps{campaign="promo"} 20.0' in text
    assert 'engine_campaign_slowed{campaign="promo"} 1.0' in text


async def test_30023_holds_the_brand_until_the_reset(pool: asyncpg.Pool, db_dsn: str) -> None:
    """The carrier answers 30023 for the brand's first message: it waits in the queue until the carrier day resets
    (midnight US Pacific), the brand is held meanwhile (bulk work waits with it), transactional messages still go."""
    async with carrier(callbacks="final") as fake:
        app_id = await _campaign_app(pool, fake.base_url or "", cap=1000)
        fake.refuse_next(1, 30023)
        await submit_many(pool, "lib", [Outgoing("+17182000000", "first")])
        async with engine_running(db_dsn, lease_seconds=4.0) as running:
            assert running.runtime.worker is not None
            worker = running.runtime.worker
            await wait_until(lambda: pool.fetchval("SELECT capped_until IS NOT NULL FROM engine_brand"), timeout=30,
                             what="the brand held by the carrier")
            await wait_until(lambda: worker.caps.brand_held, timeout=30, what="the worker to learn it")
            await queue_job(pool, app_id, 5, first=3000000)
            await submit_many(pool, "lib", [Outgoing("+17185550000", "your code is 123456")])
            held = "SELECT count(*) FROM engine_outbound WHERE state = 'queued' AND reason = 'throttled'"
            await wait_until(lambda: any(r.body == "your code is 123456" and r.error_code is None
                                         for r in fake.records), timeout=30, what="the transactional message")
            await wait_until(lambda: _count(pool, held, 6), timeout=30, what="everything of the brand held")
            text = await _metrics(running)
    reset = CarrierDay(carrier_day_timezone()).bounds(datetime.now(UTC).timestamp())[1]
    rows = await pool.fetch("SELECT body, extract(epoch FROM due_at)::float8 AS due FROM engine_outbound "
                            "WHERE reason = 'throttled'")
    assert sorted(r["body"] for r in rows) == ["first"] + [f"sale {i}" for i in range(5)]
    assert all(abs(r["due"] - reset) < 5 for r in rows)  # all wait for the carrier day's reset
    brand_held = await pool.fetchval("SELECT extract(epoch FROM capped_until)::float8 FROM engine_brand")
    assert abs(brand_held - reset) < 1
    assert 'engine_carrier_throttled_total{code="30023",level="brand",name="acme"} 1.0' in text
    assert 'engine_brand_held{brand="acme"} 1.0' in text
    assert 'engine_brand_daily_cap{brand="acme"} 1000.0' in text
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE state IN ('failed', 'undelivered')") == 0


async def _count(pool: asyncpg.Pool, sql: str, expected: int) -> bool:
    return bool(await pool.fetchval(sql) == expected)
