"""Inbound end to end: signed Twilio-format MOs over real HTTP into a real engine, answers through the fake carrier.

STOP/HELP/START exactly right: the record, the blacklist every door obeys, exactly one confirmation from the DID
the phone texted, retried webhooks handled once, forged ones refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from engine.app_settings import AppChanges
from engine.store import admin
from engine.submit import Outgoing, submit_many
from tests.helpers.database import fetch_until, wait_final
from tests.helpers.engine import carrier, engine_running, provider_of, send_mo, setup_app

PHONE = "+13472643707"


async def _handled(pool: asyncpg.Pool, count: int) -> None:
    await fetch_until(pool, "SELECT count(*) >= $1 FROM engine_inbound WHERE state = 'done'", count)


async def test_stop_as_a_first_message_opts_out_records_and_confirms_once(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        dids = await setup_app(pool, fake.base_url or "", dids=3, limit_per_min=6000)
        provider = await provider_of(pool)
        async with engine_running(db_dsn) as running:
            base = running.runtime.base_url or ""
            assert await send_mo(base, provider, PHONE, dids[1], "Stop") == 200
            await _handled(pool, 1)
            await wait_final(pool, 1)
        assert [(r.from_, r.to) for r in fake.records] == [(dids[1], PHONE)]
        assert "unsubscribed" in fake.records[0].body
        app = await admin.get_app(pool, "lib")
        assert await pool.fetchval("SELECT reason FROM engine_blacklist WHERE phone = $1", PHONE) == "keyword"
        record = await pool.fetchrow("SELECT app_id, action, source, keyword, did_id, message_sid "
                                     "FROM engine_consent_event")
        assert (record["app_id"], record["action"], record["source"], record["keyword"]) == (
            app.id, "opt_out", "keyword", "STOP")
        assert record["did_id"] is not None and record["message_sid"].startswith("SM")
        assert await pool.fetchval("SELECT count(*) FROM engine_outbox WHERE type = 'phone_blacklisted'") == 1


async def test_an_opted_out_phone_gets_only_its_confirmation_and_help_answers(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        dids = await setup_app(pool, fake.base_url or "", dids=2, limit_per_min=6000)
        provider = await provider_of(pool)
        later = datetime.now(UTC) + timedelta(seconds=2)
        (scheduled,) = await submit_many(pool, "lib", [Outgoing(PHONE, "Your reminder", on=later)])
        async with engine_running(db_dsn) as running:
            base = running.runtime.base_url or ""
            await send_mo(base, provider, PHONE, dids[0], "STOP")
            await _handled(pool, 1)
            await submit_many(pool, "lib", [Outgoing(PHONE, "A new campaign")])  # after STOP: refused
            await send_mo(base, provider, PHONE, dids[0], "HELP")
            await _handled(pool, 2)
            await wait_final(pool, 4, timeout=30)
        bodies = [r.body for r in fake.records if r.to == PHONE]
        assert len(bodies) == 2  # the confirmation and the help answer, nothing else
        assert sum("unsubscribed" in b for b in bodies) == 1 and sum("reply STOP" in b for b in bodies) == 1
        states = {r["body"]: (r["state"], r["reason"]) for r in await pool.fetch(
            "SELECT body, state, reason FROM engine_outbound WHERE kind = 'message'")}
        assert states == {"Your reminder": ("failed", "blacklisted"), "A new campaign": ("failed", "blacklisted")}
        assert scheduled in [r["id"] for r in await pool.fetch("SELECT id FROM engine_outbound WHERE kind = 'message'")]


async def test_start_after_stop_resubscribes(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        dids = await setup_app(pool, fake.base_url or "", dids=2, limit_per_min=6000)
        await admin.update_app(pool, "lib", AppChanges(columns={"optin_text": "Welcome back to lib"}))
        provider = await provider_of(pool)
        async with engine_running(db_dsn) as running:
            base = running.runtime.base_url or ""
            await send_mo(base, provider, PHONE, dids[0], "stop")
            await send_mo(base, provider, PHONE, dids[0], "START")  # handled after the STOP: per-phone order
            await _handled(pool, 2)
            await submit_many(pool, "lib", [Outgoing(PHONE, "Storytime is at 10")])
            await wait_final(pool, 3)
        received = [r.body for r in fake.records if r.to == PHONE]
        assert "unsubscribed" in received[0]  # the STOP's confirmation, then (in either order: two DIDs) …
        assert sorted(received[1:]) == ["Storytime is at 10", "Welcome back to lib"]
        assert await pool.fetchval("SELECT count(*) FROM engine_blacklist") == 0
        actions = [r["action"] for r in await pool.fetch("SELECT action FROM engine_consent_event ORDER BY id")]
        assert actions == ["opt_out", "opt_in"]  # the record keeps both: unblacklisting deletes no history


async def test_a_retried_webhook_is_handled_once_and_a_forged_one_stores_nothing(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    async with carrier() as fake:
        dids = await setup_app(pool, fake.base_url or "", dids=1, limit_per_min=6000)
        provider = await provider_of(pool)
        async with engine_running(db_dsn) as running:
            base = running.runtime.base_url or ""
            assert await send_mo(base, provider, PHONE, dids[0], "STOP", sid="SM" + "a" * 32) == 200
            assert await send_mo(base, provider, PHONE, dids[0], "STOP", sid="SM" + "a" * 32) == 200
            token = {"I-Twilio-Idempotency-Token": "retry-1"}
            assert await send_mo(base, provider, PHONE, dids[0], "HELP", headers=token) == 200
            assert await send_mo(base, provider, PHONE, dids[0], "HELP", headers=token) == 200  # new sid, same token
            assert await send_mo(base, provider, PHONE, dids[0], "STOP", signature="forged") == 403
            await _handled(pool, 2)
            await wait_final(pool, 2)
        assert await pool.fetchval("SELECT count(*) FROM engine_inbound") == 2
        assert len(fake.records) == 2  # one confirmation, one help answer


async def test_a_send_the_carrier_refuses_as_unsubscribed_blacklists_the_phone(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    unsubscribed = "+15005550004"  # the fake carrier answers 21610 for it, as Twilio's test number does
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=1, limit_per_min=6000)
        await submit_many(pool, "lib", [Outgoing(unsubscribed, "hello")])
        async with engine_running(db_dsn):
            await wait_final(pool, 1)
            await fetch_until(pool, "SELECT count(*) FROM engine_blacklist WHERE phone = $1", unsubscribed)
        assert await pool.fetchval("SELECT reason FROM engine_blacklist") == "carrier"
        assert await pool.fetchval("SELECT source FROM engine_consent_event") == "carrier"
        assert await pool.fetchval("SELECT error_code FROM engine_outbound") == 21610
        assert fake.records == []
