"""Lifetime, consent and quiet hours through the real pipeline: real Postgres, the loopback fake carrier and a dispatch
worker whose wall clock (what lifetimes and quiet hours are judged by) and pacing clock the test drives — no test
sleeps for the time it simulates. What reached the air is the fake carrier's own record.

The database's clock cannot be injected: where simulated hours must pass for a row the engine put back in the
queue, the test moves that row's due time by the hours it moved the engine's clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from engine.app_settings import validate_app_changes
from engine.config import Settings
from engine.dispatch.worker import Worker
from engine.store import admin
from engine.submit import Outgoing, submit, submit_many
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeCarrier
from tests.helpers.database import wait_final
from tests.helpers.engine import carrier, dispatch_worker, engine_running
from tests.helpers.polling import wait_until

GATEWAY = "http://127.0.0.1:9/unused"  # reports are written to the outbox; nobody delivers them in these tests
NYC = "+16465550100"
NIGHT_NY = datetime(2030, 1, 16, 4, 0, tzinfo=UTC)  # 23:00 in New York on 15 January 2030
NOON_NY = datetime(2030, 1, 16, 17, 0, tzinfo=UTC)


class WallClock:
    """The worker's wall clock: epoch seconds the test sets."""

    def __init__(self, at: datetime | float) -> None:
        self.now = at.timestamp() if isinstance(at, datetime) else at

    def __call__(self) -> float:
        return self.now

    def set(self, at: datetime) -> None:
        self.now = at.timestamp()


async def _app(pool: asyncpg.Pool, fake: FakeCarrier, name: str = "lib", *, dids: int = 2, limit: int = 6000,
               number: int = 0) -> int:
    new = await admin.create_app(pool, name, gateway_url=GATEWAY)
    await admin.add_provider(pool, name, kind="fake", account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN,
                             base_url=fake.base_url)
    await admin.add_dids(pool, name, [f"+1646200{number:02d}{i:02d}" for i in range(dids)], limit_per_min=limit)
    return new.app_id


def running_worker(
    pool: asyncpg.Pool, dsn: str, wall: Callable[[], float], *, clock: Callable[[], float] | None = None,
    **overrides: Any,
) -> AbstractAsyncContextManager[Worker]:
    """A dispatch worker on these clocks until the block ends (no periodic purge unless asked for)."""
    settings = Settings(dsn=dsn, poll_seconds=0.1, lease_seconds=30.0, purge_seconds=0).override(**overrides)
    return dispatch_worker(pool, dsn, settings, clock=clock, wall_clock=wall)


async def _subscribe(pool: asyncpg.Pool, app_id: int, phone: str) -> None:
    await pool.execute("INSERT INTO engine_subscription (app_id, phone, source) VALUES ($1, $2, 'api')", app_id, phone)


async def _row(pool: asyncpg.Pool, message_id: int) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT state, status, reason, type, category, expires_at, due_at, updated_at, claimed_by,"
        " extract(epoch FROM due_at - updated_at)::float8 AS held_for FROM engine_outbound WHERE id = $1",
        message_id)
    assert row is not None
    return row


async def _reports(pool: asyncpg.Pool) -> dict[str, dict[str, str]]:
    """The delivery reports waiting in the outbox, by message id (the last one of each)."""
    rows = await pool.fetch("SELECT payload FROM engine_outbox WHERE type = 'delivery_report' ORDER BY id")
    payloads = [orjson.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"] for r in rows]
    return {p["message_id"]: p for p in payloads}


async def _state(pool: asyncpg.Pool, message_id: int, *states: str) -> bool:
    return bool(await pool.fetchval("SELECT state = ANY($2::text[]) FROM engine_outbound WHERE id = $1",
                                    message_id, list(states)))


# ---- lifetime ------------------------------------------------------------------------------------------------


async def test_an_expired_message_is_never_sent_and_its_report_says_why(pool: asyncpg.Pool, db_dsn: str) -> None:
    """Its own valid_for (SQL door), its own expires_at (Python door) and the app's default lifetime all end a message
    'expired' once the worker's clock is past them; a message of an app without a lifetime still goes."""
    async with carrier(callbacks="none") as fake:
        await _app(pool, fake, "lib")
        await _app(pool, fake, "other", number=1)
        await admin.update_app(pool, "lib", validate_app_changes({"valid_for": "1h"}))
        now = datetime.now(UTC)
        own = await pool.fetchval("SELECT engine_submit('lib', $1, 'Storytime moved', valid_for => '1 hour')",
                                  "+13472640001")
        (until,) = await submit_many(pool, "lib", [Outgoing("+13472640002", "Hold ready",
                                                            expires_at=now + timedelta(minutes=30))])
        default = await submit(pool, "lib", "+13472640003", "Renew your card")
        control = await submit(pool, "other", "+13472640004", "Welcome")
        async with running_worker(pool, db_dsn, WallClock(now + timedelta(hours=2))):
            await wait_final(pool, 3)
            await wait_until(lambda: fake.accepted == 1, what="the control message at the carrier")
        for message_id in (own, until, default):
            row = await _row(pool, message_id)
            assert (row["state"], row["status"], row["reason"]) == ("expired", 2, "expired")
        reports = await _reports(pool)
        for message_id in (own, until, default):
            assert reports[str(message_id)] == {"message_id": str(message_id), "status": "2", "final": "true",
                                                "reason": "expired"}
        assert [r.to for r in fake.records] == ["+13472640004"]
        assert (await _row(pool, control))["state"] == "sent"


async def test_an_expiry_passing_between_claim_and_send_is_refused(pool: asyncpg.Pool, db_dsn: str) -> None:
    """One DID at one message a minute: the second message waits in the worker's memory for its turn. Its expiry
    passes meanwhile (the wall clock moves), and when its turn comes (the pacing clock moves) it is not sent:
    MARK_SENDING refuses it and it ends 'expired' with its report."""
    mono = [1000.0]
    async with carrier(callbacks="none") as fake:
        await _app(pool, fake, dids=1, limit=1)
        now = datetime.now(UTC)
        wall = WallClock(now)
        first, second = await submit_many(pool, "lib", [
            Outgoing("+13472640001", "first", valid_for="30m"), Outgoing("+13472640002", "second", valid_for="30m")])
        async with running_worker(pool, db_dsn, wall, clock=lambda: mono[0], horizon_seconds=300.0,
                                  lease_seconds=120.0) as worker:
            await wait_until(lambda: fake.accepted == 1, what="the first message at the carrier")
            # Placed with the first (one claim, one batch): the second waits in memory, never deferred to the queue.
            assert await pool.fetchval("SELECT state = 'claimed' AND defers = 0 FROM engine_outbound WHERE id = $1",
                                       second)
            wall.set(now + timedelta(minutes=31))  # its expiry passes while it waits for its turn …
            mono[0] += 61.0  # … which then comes
            worker.sender.pushed.set()
            await wait_until(lambda: _state(pool, second, "expired"), what="the second message expired")
        assert [r.body for r in fake.records] == ["first"]
        row = await _row(pool, second)
        assert (row["state"], row["status"], row["reason"]) == ("expired", 2, "expired")
        # Refused by the last check before sending, not by admission: never marked sending, never re-claimed.
        assert await pool.fetchval("SELECT sending_at IS NULL AND attempts = 0 AND defers = 0 FROM engine_outbound "
                                   "WHERE id = $1", second)
        assert (await _reports(pool))[str(second)]["reason"] == "expired"
        assert (await _row(pool, first))["state"] == "sent"


async def test_the_validity_left_goes_to_the_carrier(pool: asyncpg.Pool, db_dsn: str) -> None:
    """Twilio's ValidityPeriod: the seconds of lifetime left when the message is handed over (1-36,000); nothing
    when it has no expiry or more than 10 hours left (the carrier's default applies)."""
    async with carrier(callbacks="none") as fake:
        await _app(pool, fake)
        now = datetime.now(UTC)
        await submit_many(pool, "lib", [
            Outgoing("+13472640001", "an hour", valid_for="1h"),
            Outgoing("+13472640002", "ten minutes", expires_at=now + timedelta(minutes=10)),
            Outgoing("+13472640003", "a day", valid_for="1d"),
            Outgoing("+13472640004", "forever"),
        ])
        async with running_worker(pool, db_dsn, time.time):
            await wait_until(lambda: fake.accepted == 4, what="four messages at the carrier")
        validity = {r.body: r.validity_period for r in fake.records}
        assert validity["a day"] is None and validity["forever"] is None
        an_hour, ten_minutes = validity["an hour"], validity["ten minutes"]
        assert an_hour is not None and 3500 <= an_hour <= 3600
        assert ten_minutes is not None and 500 <= ten_minutes <= 600


async def test_the_fake_carrier_refuses_a_validity_period_out_of_range() -> None:
    """As Twilio does (21624), so a client bug that sent one out of range would show."""
    import aiohttp

    from engine.providers import OutboundRequest
    from engine.providers.twilio import TwilioClient

    async with carrier(callbacks="none") as fake, aiohttp.ClientSession() as session:
        client = TwilioClient(session, account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN,
                              base_url=fake.base_url or "")
        for bad in (0, 36001, -5):
            result = await client.send(OutboundRequest(1, NYC, "+16462000000", "x", None, validity_period=bad))
            assert (result.ok, result.error_code, result.retryable) == (False, 21624, False)
        result = await client.send(OutboundRequest(1, NYC, "+16462000000", "x", None, validity_period=36000))
        assert result.ok and fake.records[-1].validity_period == 36000
        assert fake.accepted == 1


# ---- consent and quiet hours -------------------------------------------------------------------------------------


async def test_marketing_goes_to_subscribers_only(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier(callbacks="none") as fake:
        app_id = await _app(pool, fake)
        await _subscribe(pool, app_id, "+13472640001")
        subscriber, stranger, receipt = await submit_many(pool, "lib", [
            Outgoing("+13472640001", "20% off today", category="marketing", type="promo"),
            Outgoing("+13472640002", "20% off today", category="marketing", type="promo"),
            Outgoing("+13472640002", "Your receipt", type="receipt"),  # transactional: no subscription needed
        ])
        async with running_worker(pool, db_dsn, WallClock(datetime.now(UTC).replace(hour=17))):  # 12:00 or 13:00 NY
            await wait_final(pool, 1)
            await wait_until(lambda: fake.accepted == 2, what="two messages at the carrier")
        assert sorted((r.to, r.body) for r in fake.records) == [
            ("+13472640001", "20% off today"), ("+13472640002", "Your receipt")]
        row = await _row(pool, stranger)
        assert (row["state"], row["status"], row["reason"]) == ("failed", 2, "no_consent")
        assert (await _reports(pool))[str(stranger)]["reason"] == "no_consent"
        assert {(await _row(pool, i))["state"] for i in (subscriber, receipt)} == {"sent"}


async def test_marketing_at_23_local_waits_until_08_then_goes(pool: asyncpg.Pool, db_dsn: str) -> None:
    """A subscriber in New York, 23:00 local: held (queued, due at 08:00, nothing sent, nothing dropped); still held
    when claimed at 07:59; sent at 08:00. A transactional message at 23:00 goes at once."""
    async with carrier(callbacks="none") as fake:
        app_id = await _app(pool, fake)
        await _subscribe(pool, app_id, NYC)
        wall = WallClock(NIGHT_NY)
        promo = await submit(pool, "lib", NYC, "Book sale tomorrow", category="marketing")
        notice = await submit(pool, "lib", "+16465550101", "Your hold is ready")
        async with running_worker(pool, db_dsn, wall):
            await wait_until(lambda: fake.accepted == 1, what="the transactional message at the carrier")

            async def held() -> asyncpg.Record | None:
                row = await _row(pool, promo)
                return row if row["state"] == "queued" and row["held_for"] > 0 else None

            row = await wait_until(held, what="the marketing message held")
            assert row["held_for"] == 9 * 3600  # 23:00 -> 08:00, exactly
            assert [r.body for r in fake.records] == ["Your hold is ready"]

            # Nine hours pass for the row; the worker's clock lags the database's by a minute (07:59): it holds the
            # message again for that minute, it does not send it early.
            wall.set(NIGHT_NY + timedelta(hours=8, minutes=59))
            before = row["updated_at"]
            await pool.execute("UPDATE engine_outbound SET due_at = due_at - interval '9 hours' WHERE id = $1", promo)

            async def held_again() -> asyncpg.Record | None:
                r = await _row(pool, promo)
                return r if r["state"] == "queued" and r["updated_at"] > before else None

            row = await wait_until(held_again, what="the marketing message held again at 07:59")
            assert row["held_for"] == 60 and fake.accepted == 1

            wall.set(NIGHT_NY + timedelta(hours=9))  # 08:00
            await pool.execute("UPDATE engine_outbound SET due_at = due_at - interval '1 minute' WHERE id = $1", promo)
            await wait_until(lambda: fake.accepted == 2, what="the marketing message at 08:00")
        assert [r.body for r in fake.records] == ["Your hold is ready", "Book sale tomorrow"]
        assert [(await _row(pool, i))["state"] for i in (notice, promo)] == ["sent", "sent"]


async def test_the_recipients_stored_zone_decides(pool: asyncpg.Pool, db_dsn: str) -> None:
    """23:00 in New York is 13:00 in Tokyo: a New York number whose owner lives in Tokyo gets it now."""
    async with carrier(callbacks="none") as fake:
        app_id = await _app(pool, fake)
        await _subscribe(pool, app_id, NYC)
        await pool.execute("INSERT INTO engine_contact_zone (app_id, phone, time_zone) VALUES ($1, $2, 'Asia/Tokyo')",
                           app_id, NYC)
        await submit(pool, "lib", NYC, "Book sale", category="marketing")
        async with running_worker(pool, db_dsn, WallClock(NIGHT_NY)):
            await wait_until(lambda: fake.accepted == 1, what="the marketing message at the carrier")


async def test_a_held_message_still_expires(pool: asyncpg.Pool, db_dsn: str) -> None:
    """Held for quiet hours with an hour to live: the sweep ends it 'expired' once the clock passes its expiry."""
    async with carrier(callbacks="none") as fake:
        app_id = await _app(pool, fake)
        await _subscribe(pool, app_id, NYC)
        wall = WallClock(NIGHT_NY)  # 23:00 in New York; the message lives one more hour by this clock
        promo = await submit(pool, "lib", NYC, "Flash sale", category="marketing",
                             expires_at=NIGHT_NY + timedelta(hours=1))
        async with running_worker(pool, db_dsn, wall) as worker:
            await wait_until(lambda: _state(pool, promo, "queued"), what="held")
            await wait_until(lambda: pool.fetchval("SELECT due_at > now() + interval '1 hour' FROM engine_outbound "
                                                   "WHERE id = $1", promo), what="held until morning")
            assert await worker.expire_sweep() == 0  # not yet: held, within its lifetime
        row = await _row(pool, promo)
        assert row["state"] == "queued" and fake.accepted == 0
        later = Worker(pool, db_dsn, Settings(dsn=db_dsn), wall_clock=WallClock(NIGHT_NY + timedelta(hours=2)))
        try:
            assert await later.expire_sweep() == 1
        finally:
            await later.close_carriers()
        assert (await _row(pool, promo))["state"] == "expired" and fake.accepted == 0


async def test_engine_running_keeps_its_defaults(pool: asyncpg.Pool, db_dsn: str) -> None:
    """The composed engine (real clocks) sends a transactional message with a lifetime and records its fields."""
    async with carrier(callbacks="none") as fake:
        await _app(pool, fake)
        async with engine_running(db_dsn, serve=False):
            message_id = await submit(pool, "lib", NYC, "Due tomorrow", type="reminder", valid_for="2h")
            await wait_until(lambda: fake.accepted == 1, what="the message at the carrier")
        row = await _row(pool, message_id)
        assert (row["type"], row["category"]) == ("reminder", "transactional") and row["expires_at"] is not None
