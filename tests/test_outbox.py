"""Callbacks to applications: events written with the status change that caused them, delivered
signed from the outbox, retried, dead-lettered, and isolated per application. Real PostgreSQL,
real engine, real loopback carrier and gateways."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
import pytest

from engine.app_settings import AppChanges
from engine.callbacks.outbox import NO_GATEWAY, OutboxDeliverer
from engine.events import phone_event
from engine.store import admin
from engine.store import outbox_queries as oq
from engine.store import queries as q
from engine.store.outbox import NewEvent, enqueue_events
from engine.submit import Outgoing, submit, submit_many
from engine.testing import NOT_MOBILE_NUMBER
from tests.helpers.database import wait_final
from tests.helpers.engine import carrier, engine_running, running, setup_app
from tests.helpers.gateway import Gateway
from tests.helpers.polling import wait_until


@asynccontextmanager
async def delivering(pool: asyncpg.Pool, dsn: str, **kwargs: Any) -> AsyncIterator[OutboxDeliverer]:
    async with running(OutboxDeliverer(pool, dsn=dsn, **kwargs), drain_timeout=30) as deliverer:
        yield deliverer


def rows(*values: list[object]) -> str:
    """The one JSON parameter of the batched status writes (engine/store/queries.py)."""
    return orjson.dumps(values).decode()


async def _app(pool: asyncpg.Pool, name: str, gateway_url: str | None, concurrency: int | None = None) -> tuple[
    int, str
]:
    new = await admin.create_app(pool, name, gateway_url)
    if concurrency is not None:
        await admin.update_app(pool, name, AppChanges({"callback_concurrency": concurrency}))
    return new.app_id, new.callback_secret


async def _enqueue(pool: asyncpg.Pool, app_id: int, n: int, kind: str = "phone_blacklisted") -> list[str]:
    async with pool.acquire() as conn:
        return await enqueue_events(conn, [NewEvent(app_id, kind, phone_event(f"+1347264{i:04d}")) for i in range(n)])


async def _states(pool: asyncpg.Pool) -> Counter[str]:
    return Counter({r["state"]: r["n"] for r in await pool.fetch(
        "SELECT state, count(*)::int AS n FROM engine_outbox GROUP BY state")})


# ---- events are written in the same statement as the status change --------------------------------

async def _outbox(pool: asyncpg.Pool) -> list[dict[str, str]]:
    rows = await pool.fetch("SELECT type, payload FROM engine_outbox ORDER BY id")
    assert all(r["type"] == "delivery_report" for r in rows)
    return [orjson.loads(r["payload"]) for r in rows]


async def test_status_statements_write_delivery_reports(pool: asyncpg.Pool) -> None:
    app_id, _ = await _app(pool, "gw", "http://127.0.0.1:9/cb")
    quiet_id, _ = await _app(pool, "quiet", None)  # no gateway URL: no events
    ids = [
        await pool.fetchval("INSERT INTO engine_outbound (app_id, recipient, body) VALUES ($1, $2, $3) RETURNING id",
                            app, "+13472643707", f"m{i}")
        for i, app in enumerate([app_id, app_id, app_id, app_id, quiet_id])
    ]
    a, b, c, d, e = ids

    # The carrier accepted a, b and e: 0 -> 4 is reported (not for the app without a gateway).
    await pool.execute(q.MARK_ACCEPTED, rows([a, "SMa", "queued"], [b, "SMb", "queued"], [e, "SMe", "queued"]))
    assert await _outbox(pool) == [
        {"message_id": str(a), "status": "4", "final": "false"},
        {"message_id": str(b), "status": "4", "final": "false"},
    ]
    # Carrier steps that stay "queued at carrier" (sending, sent) report nothing new.
    await pool.execute(q.APPLY_STATUSES, rows([a, "sent", 4, 30, "sent", None, "SMa", None],
                                              [b, "sent", 4, 30, "sent", None, "SMb", None]))
    assert len(await _outbox(pool)) == 2
    # Finals: delivered, and undelivered with the carrier's error code; a repeat changes nothing.
    for _ in range(2):
        await pool.execute(q.APPLY_STATUSES, rows([a, "delivered", 1, 100, "delivered", None, None, None],
                                                  [b, "undelivered", 2, 100, "undelivered", 30003, None, None],
                                                  [e, "delivered", 1, 100, "delivered", None, None, None]))
    reports = await _outbox(pool)
    assert reports[2:] == [
        {"message_id": str(a), "status": "1", "final": "true"},
        {"message_id": str(b), "status": "2", "final": "true", "error_code": "30003"},
    ]
    # A late accept of a final message reports nothing.
    await pool.execute(q.MARK_ACCEPTED, rows([a, "SMa", "queued"]))
    # Engine-side outcomes: 'unknown' is still pending (0) so silent; a failure is final with its code.
    await pool.execute(q.MARK_OUTCOME, [c, d], ["unknown", "failed"], [0, 2], [5, 100], [None, 21211],
                       [None, "invalid To"], [1, 1], ["GSM-7", "GSM-7"], [None, None])
    await pool.execute(q.MARK_OUTCOME, [c], ["delivered"], [1], [100], [None], [None], [1], ["GSM-7"], [None])
    assert (await _outbox(pool))[4:] == [
        {"message_id": str(d), "status": "2", "final": "true", "error_code": "21211"},
        {"message_id": str(c), "status": "1", "final": "true"},
    ]
    assert await pool.fetchval("SELECT count(*) FROM engine_outbox WHERE app_id = $1", quiet_id) == 0


async def test_status_and_its_event_commit_together(pool: asyncpg.Pool) -> None:
    app_id, _ = await _app(pool, "gw", "http://127.0.0.1:9/cb")
    mid = await pool.fetchval(
        "INSERT INTO engine_outbound (app_id, recipient, body) VALUES ($1, '+13472643707', 'x') RETURNING id", app_id)
    # Make every outbox insert fail: the status update in the same statement must not happen either.
    await pool.execute("ALTER TABLE engine_outbox ADD CONSTRAINT refuse CHECK (false) NOT VALID")
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(q.APPLY_STATUSES, rows([mid, "delivered", 1, 100, "delivered", None, "SM1", None]))
    assert await pool.fetchval("SELECT status FROM engine_outbound WHERE id = $1", mid) == 0
    await pool.execute("ALTER TABLE engine_outbox DROP CONSTRAINT refuse")
    await pool.execute(q.APPLY_STATUSES, rows([mid, "delivered", 1, 100, "delivered", None, "SM1", None]))
    assert await pool.fetchval("SELECT status FROM engine_outbound WHERE id = $1", mid) == 1
    assert await pool.fetchval("SELECT count(*) FROM engine_outbox") == 1


# ---- the real engine, end to end ------------------------------------------------------------------

async def test_engine_sends_signed_delivery_reports_for_every_message(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake, Gateway() as gateway:
        await setup_app(pool, fake.base_url or "", dids=5, limit_per_min=6000)
        await admin.update_app(pool, "lib", AppChanges({"gateway_url": gateway.url}))
        app = await admin.get_app(pool, "lib")
        gateway.secret = app.callback_secret
        ids = await submit_many(pool, "lib", [Outgoing(f"+1347264{i:04d}", f"Your hold {i} is ready")
                                              for i in range(20)])
        async with engine_running(db_dsn):
            await wait_final(pool, 20)
            await wait_until(lambda: sum(r.form.get("final") == "true" for r in gateway.delivered()) >= 20,
                         what="20 final delivery reports")
            await wait_until(lambda: _all_delivered(pool), what="outbox rows marked delivered")

    by_message: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in gateway.received:
        assert r.verified, r.form
        assert r.form["type"] == "delivery_report" and r.form["app_id"] == str(app.id)
        by_message[r.form["message_id"]].append(r.form)
    assert set(by_message) == {str(i) for i in ids}
    for reports in by_message.values():
        finals = [f for f in reports if f["final"] == "true"]
        assert [(f["status"], "error_code" in f) for f in finals] == [("1", False)]
        # "queued at carrier" is reported at most once, however many carrier steps it went through.
        assert [f["status"] for f in reports if f["final"] == "false"] in (["4"], [])
    assert len({r.form["event_id"] for r in gateway.received}) == len(gateway.received)


async def _all_delivered(pool: asyncpg.Pool) -> bool:
    states = await _states(pool)
    return bool(states) and set(states) == {"delivered"}


async def test_engine_side_outcomes_are_reported(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake, Gateway() as gateway:
        await setup_app(pool, fake.base_url or "", dids=2, limit_per_min=6000)
        await admin.update_app(pool, "lib", AppChanges({"gateway_url": gateway.url}))
        gateway.secret = (await admin.get_app(pool, "lib")).callback_secret
        first = await submit(pool, "lib", "+13472643707", "Your hold is ready")
        dup = await submit(pool, "lib", "+13472643707", "Your hold is ready")
        test_no = await submit(pool, "lib", "555-123-4567", "test message")
        landline = await submit(pool, "lib", NOT_MOBILE_NUMBER, "to a landline")
        async with engine_running(db_dsn):
            await wait_final(pool, 4)
            await wait_until(lambda: sum(r.form.get("final") == "true" for r in gateway.delivered()) >= 4,
                         what="4 final reports")
        code = await pool.fetchval("SELECT error_code FROM engine_outbound WHERE id = $1", landline)
    finals = {r.form["message_id"]: r.form for r in gateway.delivered() if r.form["final"] == "true"}
    assert finals[str(first)]["status"] == "1"
    assert finals[str(test_no)]["status"] == "1"
    assert finals[str(dup)]["status"] == "2" and "error_code" not in finals[str(dup)]
    assert code is not None
    assert (finals[str(landline)]["status"], finals[str(landline)]["error_code"]) == ("2", str(code))
    assert all(r.verified for r in gateway.received)


# ---- delivery: retries, idempotency, signatures, isolation, dead letters, leases -------------------

async def test_gateway_failing_three_times_gets_each_event_once_in_effect(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with Gateway(fail_first=3) as gateway:
        app_id, secret = await _app(pool, "lib", gateway.url)
        gateway.secret = secret
        events = await _enqueue(pool, app_id, 5)
        async with delivering(pool, db_dsn, base_backoff=0.05, max_backoff=0.2):
            await wait_until(lambda: _all_delivered(pool), what="all delivered")
    rows = await pool.fetch("SELECT event_id::text AS e, attempts, last_error FROM engine_outbox")
    assert {r["e"] for r in rows} == set(events)
    assert all(r["attempts"] == 4 and r["last_error"].startswith("HTTP 500") for r in rows)
    # Every attempt carried the event's id and the same body; exactly one was accepted per event.
    assert Counter(r.form["event_id"] for r in gateway.received) == {e: 4 for e in events}
    assert Counter(r.form["event_id"] for r in gateway.delivered()) == {e: 1 for e in events}
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for r in gateway.received:
        bodies[r.form["event_id"]].add(r.raw)
        assert r.verified
        assert r.form["type"] == "phone_blacklisted" and r.form["app_id"] == str(app_id)
    assert all(len(b) == 1 for b in bodies.values())


async def test_wrong_secret_fails_verification_and_the_event_is_retried(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with Gateway(secret="not-the-app-secret", reject_unsigned=True) as gateway:
        app_id, secret = await _app(pool, "lib", gateway.url)
        await _enqueue(pool, app_id, 1)
        async with delivering(pool, db_dsn, base_backoff=0.05, max_backoff=0.1):
            await wait_until(lambda: len(gateway.received) >= 2, what="two attempts")
            assert not any(r.verified for r in gateway.received)
            row = await pool.fetchrow("SELECT state, last_error FROM engine_outbox")
            assert row["state"] == "pending" and row["last_error"] == "HTTP 401: bad signature"
            gateway.secret = secret  # the app configures the right secret: next attempt passes
            await wait_until(lambda: _all_delivered(pool), what="delivered")
    assert gateway.received[-1].verified


async def test_hanging_gateway_does_not_delay_other_apps(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with Gateway(hold=True) as slow, Gateway() as fast:
        slow_id, _ = await _app(pool, "slow", slow.url, concurrency=2)
        fast_id, _ = await _app(pool, "fast", fast.url)
        await _enqueue(pool, slow_id, 60)  # queued first: ahead of the fast app's in claim order
        await _enqueue(pool, fast_id, 10)
        # Requests outlive the test: a slow request that ended (answered or timed out) could unblock a fast one.
        async with delivering(pool, db_dsn, batch=10, request_timeout=120, deliverer_id="d1"):
            await wait_until(lambda: slow.in_flight == 2, what="the slow app's two requests at its gateway")
            # All of the fast app's callbacks are delivered while the slow gateway holds both of its app's
            # requests unanswered: they did not wait behind them.
            await wait_until(lambda: _done(pool, fast_id, 10), what="the fast app's callbacks delivered")
            assert len(fast.delivered()) == 10 and slow.received == [] and slow.in_flight == 2
            assert await pool.fetchval("SELECT count(*) FROM engine_outbox WHERE app_id = $1 AND state = 'delivered'",
                                       slow_id) == 0
            # The slow app had more events claimed than its limit lets out: the limit, not a shortage, held them.
            assert await pool.fetchval("SELECT count(*) FROM engine_outbox WHERE app_id = $1 AND claimed_by = 'd1'",
                                       slow_id) > 2
            slow.release()
    assert slow.max_in_flight == 2  # the slow app's own limit, never more


async def _done(pool: asyncpg.Pool, app_id: int, n: int) -> bool:
    return bool(await pool.fetchval(
        "SELECT count(*) = $2 FROM engine_outbox WHERE app_id = $1 AND state = 'delivered'", app_id, n))


async def test_dead_letter_after_max_age_with_injected_clock(pool: asyncpg.Pool, db_dsn: str) -> None:
    shift = [0.0]
    async with Gateway(always_fail=True) as gateway:
        app_id, _ = await _app(pool, "lib", gateway.url)
        nowhere_id, _ = await _app(pool, "nowhere", None)
        await _enqueue(pool, app_id, 1)
        await _enqueue(pool, nowhere_id, 1, kind="session_closed")
        async with delivering(pool, db_dsn, clock=lambda: time.time() + shift[0], base_backoff=0.05,
                              max_backoff=0.1):
            await wait_until(lambda: len(gateway.received) >= 3, what="retries")
            assert (await pool.fetchval("SELECT state FROM engine_outbox WHERE app_id = $1", app_id)) == "pending"
            shift[0] = 24 * 3600 + 60  # a day later
            await wait_until(lambda: _state_of(pool, app_id, "dead"), what="dead letter")
        attempts = len(gateway.received)
    status = await admin.app_status(pool, "lib")
    assert status["outbox"] == {"pending": 0, "delivered": 0, "dead": 1}
    [dead] = status["dead_letters"]
    assert dead["type"] == "phone_blacklisted" and dead["attempts"] == attempts
    assert dead["last_error"] == "HTTP 500: gateway is down"
    # An application without a gateway URL: its events are dead-lettered at once, saying why.
    nowhere = await admin.app_status(pool, "nowhere")
    assert nowhere["outbox"]["dead"] == 1 and nowhere["dead_letters"][0]["last_error"] == NO_GATEWAY


async def _state_of(pool: asyncpg.Pool, app_id: int, state: str) -> bool:
    return bool(await pool.fetchval("SELECT state = $2 FROM engine_outbox WHERE app_id = $1", app_id, state))


async def test_claims_of_a_crashed_deliverer_come_back_after_the_lease(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with Gateway() as gateway:
        app_id, _ = await _app(pool, "lib", gateway.url)
        leased = await _enqueue(pool, app_id, 3)
        # A deliverer claims the events and dies before posting them.
        claimed = await pool.fetch(oq.CLAIM, 0.0, "crashed", 10, 60.0, [])
        assert len(claimed) == 3
        # A live deliverer delivers an event enqueued later; the claims that found it passed over the leased three.
        [later] = await _enqueue(pool, app_id, 1)
        async with delivering(pool, db_dsn, lease_seconds=60):
            await wait_until(lambda: _event_state(pool, later, "delivered"), what="the unleased event delivered")
        assert [r.form["event_id"] for r in gateway.received] == [later]
        rows = await pool.fetch("SELECT event_id::text AS e, claimed_by, attempts FROM engine_outbox "
                                "WHERE event_id::text = ANY($1::text[])", leased)
        assert sorted((r["e"], r["claimed_by"], r["attempts"]) for r in rows) == sorted(
            (e, "crashed", 0) for e in leased)  # still leased to the crashed one
        shift = 61.0
        async with delivering(pool, db_dsn, lease_seconds=60, clock=lambda: time.time() + shift):
            await wait_until(lambda: _all_delivered(pool), what="delivered after the lease")
    assert sorted(r.form["event_id"] for r in gateway.delivered()) == sorted([*leased, later])


async def _event_state(pool: asyncpg.Pool, event_id: str, state: str) -> bool:
    return bool(await pool.fetchval("SELECT state = $2 FROM engine_outbox WHERE event_id = $1::uuid", event_id, state))


async def test_shutdown_releases_unattempted_claims(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with Gateway(hang=30) as gateway:
        app_id, _ = await _app(pool, "lib", gateway.url, concurrency=1)
        await _enqueue(pool, app_id, 5)
        async with delivering(pool, db_dsn, request_timeout=1):
            await wait_until(lambda: gateway.in_flight == 1, what="one request in flight")
        rows = await pool.fetch("SELECT state, claimed_by, attempts FROM engine_outbox")
        assert all(r["state"] == "pending" and r["claimed_by"] is None for r in rows)
        assert await pool.fetchval(
            "SELECT count(*) FROM engine_outbox WHERE next_attempt_at <= now() + interval '1 second'") >= 4


# ---- one rule for emitting events; LISTEN that survives a dropped connection ----------------------

async def test_events_of_apps_without_a_gateway_are_kept_in_order(pool: asyncpg.Pool) -> None:
    gw_id, _ = await _app(pool, "gw", "http://127.0.0.1:9/cb")
    quiet_id, _ = await _app(pool, "quiet", None)
    events = [NewEvent(app, kind, phone_event("+13472643707"))
              for app, kind in [(quiet_id, "phone_blacklisted"), (gw_id, "phone_unblacklisted"),
                                (quiet_id, "session_closed")]]
    async with pool.acquire() as conn:
        ids = await enqueue_events(conn, events)
    rows = await pool.fetch("SELECT event_id::text AS event_id, app_id, type FROM engine_outbox ORDER BY id")
    assert [(r["event_id"], r["app_id"], r["type"]) for r in rows] == [
        (i, e.app_id, e.type) for i, e in zip(ids, events, strict=True)]


async def _listening_pid(pool: asyncpg.Pool, channel: str) -> int | None:
    pid: int | None = await pool.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = $1",
        f'LISTEN "{channel}"')
    return pid


async def test_deliverer_listens_again_after_its_connection_is_killed(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with Gateway() as gateway:
        app_id, _ = await _app(pool, "lib", gateway.url)
        async with delivering(pool, db_dsn) as deliverer:
            await wait_until(lambda: _listening_pid(pool, "engine_outbox"), what="LISTEN")
            first = await _listening_pid(pool, "engine_outbox")
            assert await pool.fetchval("SELECT pg_terminate_backend($1)", first)
            # (The listener retries after 1 s; events keep flowing by the poll meanwhile.)
            await wait_until(lambda: _new_listener(pool, first), what="LISTEN again")
            await _enqueue(pool, app_id, 2)
            await wait_until(lambda: _all_delivered(pool), what="delivered")
            assert deliverer.delivered == 2


async def _new_listener(pool: asyncpg.Pool, old: int | None) -> bool:
    pid = await _listening_pid(pool, "engine_outbox")
    return pid is not None and pid != old
