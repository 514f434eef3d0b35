"""Sender types and 10DLC caps through the real worker, database and fake carrier: a short code paced at its type's
rate; a brand's daily cap reached mid-job holding the rest until the carrier day resets (the reset is brought a few
seconds close by the injected wall clock of the carrier day), transactional messages still going, nothing lost."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import asyncpg

from engine.config import Settings
from engine.dispatch.worker import Worker
from engine.providers import OutboundRequest
from engine.providers.twilio import TwilioClient, basic_authorization
from engine.store import admin, senders
from engine.submit import Outgoing, submit_many
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from engine.throttle.daily import CarrierDay
from tests.helpers.bulk import queue_job
from tests.helpers.database import wait_final
from tests.helpers.engine import carrier, dispatch_worker, engine_running, provider_of, send_mo, setup_app
from tests.helpers.polling import wait_until
from tests.helpers.windows import max_in_window


def worker_running(pool: asyncpg.Pool, dsn: str, **kwargs: Any) -> AbstractAsyncContextManager[Worker]:
    """The real dispatch worker (no HTTP side) until the block ends."""
    settings = Settings(dsn=dsn, poll_seconds=0.2, lease_seconds=10.0, horizon_seconds=5.0)
    return dispatch_worker(pool, dsn, settings, **kwargs)


async def test_a_short_code_is_accepted_and_paced_at_its_rate(pool: asyncpg.Pool, db_dsn: str) -> None:
    """300 messages through one short code (default: 100 segments/s, burst 10): all from it, and never faster than
    its rate: the engine decides them over at least (300 - 10) / 100 = 2.9 s and no 2 s hold more than 200 + the
    burst. On the carrier's clock each bound gets 0.25 s of slack (25 sends at this rate): the first sends reach it
    later than the rest on a busy machine (a long code's pace would take 300 s, no pace at all well under 1 s)."""
    async with carrier(callbacks="none") as fake:
        await setup_app(pool, fake.base_url or "", dids=0)
        await admin.add_dids(pool, "lib", ["12345"], sender_type="short_code")
        await submit_many(pool, "lib", [Outgoing(f"+1718{2000000 + i:07d}", f"m{i}") for i in range(300)])
        async with worker_running(pool, db_dsn):
            await wait_until(lambda: len(fake.records) >= 300, timeout=60, what="300 sends")
        records = list(fake.records)
    assert {r.from_ for r in records} == {"12345"} and len(records) == 300
    times = sorted(r.t for r in records)
    assert times[-1] - times[0] >= (300 - 10) / 100 - 0.25
    assert max_in_window(times, 2.0) <= 200 + 10 + 25


class SoonMidnight:
    """The wall clock the carrier day is read from: US Pacific midnight comes *after* seconds after its first use
    (the worker's first look at a daily cap), so a test sees a reset without waiting for the real one."""

    def __init__(self, after: float) -> None:
        self.after = after
        self.shift: float | None = None
        self.reset_at = 0.0  # real epoch time of that midnight

    def __call__(self, t: float) -> float:
        real = t - time.monotonic() + time.time()
        if self.shift is None:
            now = time.time()
            midnight = CarrierDay().bounds(now)[1]
            self.shift = midnight - (now + self.after)
            self.reset_at = now + self.after
        return real + self.shift


async def test_a_daily_cap_reached_mid_job_holds_the_rest_until_the_reset(pool: asyncpg.Pool, db_dsn: str) -> None:
    """A brand capped at 30 segments per carrier day (5 kept for transactional) and a bulk job of 40: 25 go, 15 wait
    in the queue with reason 'throttled' (engine app status says so), transactional messages still go (the app does
    not hold them), and at the reset the 15 go. Nothing is lost or sent twice."""
    async with carrier(callbacks="none") as fake:
        await setup_app(pool, fake.base_url or "", dids=4, limit_per_min=6000)
        await senders.create_brand(pool, "acme", daily_cap=30, reserve=5)
        await senders.create_campaign(pool, "promo", "acme", "100")
        await admin.assign_campaign(pool, "promo", app="lib")
        app_id = await pool.fetchval("SELECT id FROM engine_app WHERE name = 'lib'")
        await queue_job(pool, app_id, 40)
        clock = SoonMidnight(after=6.0)
        async with worker_running(pool, db_dsn, carrier_day=CarrierDay(to_wall=clock)):
            await wait_until(lambda: len(fake.records) >= 25, timeout=30, what="the bulk work the cap allows")
            held = "SELECT count(*) FROM engine_outbound WHERE state = 'queued' AND reason = 'throttled'"
            await wait_until(lambda: pool.fetchval(held), timeout=10, what="throttled messages")
            assert await pool.fetchval(held) == 15 and len(fake.records) == 25
            status = await admin.app_status(pool, "lib")
            assert status["senders"]["throttled"] == 15
            assert [(b["name"], b["used_today"], b["daily_cap"]) for b in status["senders"]["brands"]] == [
                ("acme", 25, 30)]
            ids = await submit_many(pool, "lib", [Outgoing("+17185550000", "your code is 123456")])
            await wait_until(lambda: any(r.to == "+17185550000" for r in fake.records), timeout=10,
                             what="the transactional message")
            assert time.time() < clock.reset_at, "the machine was too slow to see the cap before the reset"
            await wait_until(lambda: len(fake.records) >= 41, timeout=30, what="the rest after the reset")
        records = list(fake.records)
    after_reset = [r for r in records if r.body.startswith("sale") and r.t >= clock.reset_at - 0.05]
    assert len(after_reset) == 15
    assert sorted(r.body for r in records) == sorted([f"sale {i}" for i in range(40)] + ["your code is 123456"])
    rows = await pool.fetch("SELECT state, reason FROM engine_outbound")
    assert {(r["state"], r["reason"]) for r in rows} == {("sent", None)} and len(rows) == 41
    assert ids


async def test_a_starting_worker_counts_what_the_brand_sent_today(pool: asyncpg.Pool, db_dsn: str) -> None:
    """The brand already sent 20 segments today (another worker, before a restart: in the database): a worker that
    starts counts them, so only 25 - 20 = 5 bulk segments go before the reset."""
    async with carrier(callbacks="none") as fake:
        numbers = await setup_app(pool, fake.base_url or "", dids=2, limit_per_min=6000)
        await senders.create_brand(pool, "acme", daily_cap=30, reserve=5)
        await senders.create_campaign(pool, "promo", "acme", "100")
        await admin.assign_campaign(pool, "promo", app="lib")
        app_id = await pool.fetchval("SELECT id FROM engine_app WHERE name = 'lib'")
        did = await pool.fetchval("SELECT id FROM engine_did WHERE number = $1", numbers[0])
        await pool.execute(
            "INSERT INTO engine_outbound (app_id, recipient, body, state, status, did_id, sender, segments, sending_at,"
            " sent_at) SELECT $1, '+1718' || (3000000 + i)::text, 'earlier', 'sent', 4, $2, $3, 2, now() - interval "
            "'1 minute', now() FROM generate_series(1, 10) i", app_id, did, numbers[0])
        await queue_job(pool, app_id, 20)
        clock = SoonMidnight(after=3600.0)
        async with worker_running(pool, db_dsn, carrier_day=CarrierDay(to_wall=clock)):
            held = "SELECT count(*) FROM engine_outbound WHERE state = 'queued' AND reason = 'throttled'"
            seen: list[object] = []

            async def throttled() -> object:
                seen[:] = [len(fake.records), await pool.fetch(
                    "SELECT state, reason, count(*) FROM engine_outbound GROUP BY 1, 2")]
                return await pool.fetchval(held)

            await wait_until(throttled, timeout=30, what=lambda: f"throttled messages (last seen {seen})")
            await wait_until(lambda: len(fake.records) >= 5, timeout=30, what="the 5 segments left")
            await asyncio.sleep(0.5)  # nothing more goes
            assert len(fake.records) == 5
            assert await pool.fetchval(held) == 15


SERVICE = "MG" + "5" * 32
POOL = ["+16465550101", "+16465550102", "+16465550103"]


async def test_messaging_service_only_sending(pool: asyncpg.Pool, db_dsn: str) -> None:
    """An app with no DIDs of its own sends through a Messaging Service (MessagingServiceSid, no From), paced at the
    service's 5 segments/s; the fake carrier picks each sender from the service's pool and reports it in its reply and
    its status callbacks, and the engine records the sender Twilio chose."""
    async with carrier(callbacks="all") as fake:
        await admin.create_app(pool, "lib")
        await admin.add_provider(pool, "lib", kind="fake", account_sid=DEFAULT_ACCOUNT_SID,
                                 auth_token=DEFAULT_AUTH_TOKEN, base_url=fake.base_url, messaging_service_sid=SERVICE,
                                 service_mps="5")
        fake.add_service(SERVICE, POOL)
        assert await admin.list_dids(pool, "lib") == [
            {"number": SERVICE, "limit_per_min": 300, "burst": 1, "enabled": True,
             "sender_type": "messaging_service", "country": None, "campaign": None}]
        await submit_many(pool, "lib", [Outgoing(f"+1718{2000000 + i:07d}", f"m{i}") for i in range(12)])
        async with engine_running(db_dsn):
            counts = await wait_final(pool, 12, timeout=60)
            assert counts == {"delivered": 12}
            await wait_until(lambda: pool.fetchval("SELECT bool_and(sender <> $1) FROM engine_outbound", SERVICE),
                             timeout=10, what="the senders the service chose")
        records = list(fake.records)
    assert {r.messaging_service_sid for r in records} == {SERVICE}
    assert sorted(r.from_ or "" for r in records) == sorted(POOL * 4)  # each sender of the pool in turn
    chosen = {r.body: r.from_ for r in records}
    rows = await pool.fetch("SELECT body, sender FROM engine_outbound")
    assert {r["body"]: r["sender"] for r in rows} == chosen
    times = sorted(r.t for r in records)
    # Paced at the service's rate, not per number of its pool (0.25 s of slack: the first send's latency).
    assert times[-1] - times[0] >= 11 / 5 - 0.25
    assert max_in_window(times, 1.0) <= 5 + 1  # (+1: the carrier's clock against ours, 200 ms apart)


async def test_the_fake_refuses_unknown_or_empty_services(pool: asyncpg.Pool) -> None:
    async with carrier() as fake, aiohttp.ClientSession() as session:
        client = TwilioClient(session, account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN,
                              base_url=fake.base_url or "", messaging_service_sid=SERVICE)
        request = OutboundRequest(1, "+17182000000", None, "hi", None)
        result = await client.send(request)
        assert not result.ok and result.error_code == 21701
        fake.add_service(SERVICE, [])
        assert (await client.send(request)).error_code == 21704
        fake.add_service(SERVICE, POOL[:1])
        result = await client.send(request)
        assert result.ok and fake.records[-1].from_ == POOL[0]
        # Its reply names the sender it chose, as the status callbacks do.
        url = f"{fake.base_url}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
        form = {"To": "+17182000001", "Body": "hi", "MessagingServiceSid": SERVICE}
        headers = {"Authorization": basic_authorization(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)}
        async with session.post(url, data=form, headers=headers) as resp:
            reply = await resp.json()
        assert resp.status == 201 and reply["from"] == POOL[0] and reply["messaging_service_sid"] == SERVICE


async def test_stop_to_a_short_code_is_answered_from_the_short_code(pool: asyncpg.Pool, db_dsn: str) -> None:
    """A phone texts STOP to the app's short code (as a short-code program asks: "text JOIN to 123456"): the phone is
    opted out and the confirmation goes from the short code it texted."""
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=0)
        await admin.add_dids(pool, "lib", ["123456"], sender_type="short_code")
        provider = await provider_of(pool)
        async with engine_running(db_dsn) as running:
            assert await send_mo(running.base_url, provider, "+13472643707", "123456", "STOP") == 200
            await wait_final(pool, 1)
        assert [(r.from_, r.to) for r in fake.records] == [("123456", "+13472643707")]
    assert await pool.fetchval("SELECT count(*) FROM engine_blacklist WHERE phone = '+13472643707'") == 1
