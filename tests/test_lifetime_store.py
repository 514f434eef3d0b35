"""The doors' notification fields, admission's facts, the expiry sweep, recipients' time zones and the purge, against a
real database (the HTTP door over real loopback HTTP). Bad values get a clear error and queue nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from engine.api.carousel import CarouselApi
from engine.app_settings import validate_app_changes
from engine.config import Settings
from engine.errors import InvalidInput, NotFound
from engine.store import admin, lifetime, outbound
from engine.store import carousel as api_store
from engine.store.outbound import FactsRequest
from engine.submit import Outgoing, submit, submit_many

NOW = datetime(2030, 1, 16, 17, 0, tzinfo=UTC)  # the HTTP door's injected clock (noon in New York)
NYC = "+16465550100"


async def _count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM engine_outbound"))


async def _fields(pool: asyncpg.Pool, message_id: int) -> tuple[Any, ...]:
    row = await pool.fetchrow("SELECT type, category, expires_at FROM engine_outbound WHERE id = $1", message_id)
    assert row is not None
    return row["type"], row["category"], row["expires_at"]


# ---- the SQL door -------------------------------------------------------------------------------------------------


async def test_engine_submit_takes_the_notification_fields_and_old_calls_still_work(pool: asyncpg.Pool) -> None:
    await admin.create_app(pool, "lib")
    old = await pool.fetchval("SELECT engine_submit('lib', '3472643707', 'hello', 'tag1')")
    assert await _fields(pool, old) == (None, "transactional", None)
    old_on = await pool.fetchval("SELECT engine_submit('lib', '3472643707', 'later', NULL, now() + interval '1 day')")
    assert await _fields(pool, old_on) == (None, "transactional", None)
    new = await pool.fetchval(
        "SELECT engine_submit('lib', '+13472643707', 'Sale', type => 'promo', category => 'marketing', "
        "valid_for => '2 hours')")
    typ, category, expires = await _fields(pool, new)
    created = await pool.fetchval("SELECT created_at FROM engine_outbound WHERE id = $1", new)
    assert (typ, category, expires) == ("promo", "marketing", created + timedelta(hours=2))
    # The earlier of valid_for (from `on`) and expires_at wins.
    on = datetime.now(UTC) + timedelta(days=1)
    both = await pool.fetchval(
        "SELECT engine_submit('lib', '+13472643707', 'x', \"on\" => $1, valid_for => '1 hour', expires_at => $2)",
        on, on + timedelta(hours=3))
    assert (await _fields(pool, both))[2] == on + timedelta(hours=1)


@pytest.mark.parametrize(("call", "problem"), [
    ("category => 'promo'", "category must be transactional or marketing"),
    ("category => NULL", "category must be transactional or marketing"),
    ("valid_for => '0 seconds'", "valid_for must be longer than zero"),
    ("valid_for => '400 days'", "at most 365 days"),
    ("expires_at => now() - interval '1 minute'", "is already past"),
    ("\"on\" => now() + interval '2 days', expires_at => now() + interval '1 day'", "is not after the time"),
    ("type => ''", "type must be 1-64 characters"),
    ("type => repeat('x', 65)", "type must be 1-64 characters"),
])
async def test_engine_submit_refuses_bad_fields_and_queues_nothing(pool: asyncpg.Pool, call: str, problem: str) -> None:
    await admin.create_app(pool, "lib")
    with pytest.raises(asyncpg.InvalidParameterValueError, match=problem):
        await pool.fetchval(f"SELECT engine_submit('lib', '+13472643707', 'x', {call})")
    assert await _count(pool) == 0


# ---- the Python door ------------------------------------------------------------------------------------------


async def test_submit_takes_the_notification_fields(pool: asyncpg.Pool) -> None:
    await admin.create_app(pool, "lib")
    now = datetime.now(UTC)
    on = now + timedelta(hours=1)
    ids = await submit_many(pool, "lib", [
        Outgoing("+13472643707", "a", type=" reminder ", valid_for="90m"),
        Outgoing("+13472643707", "b", on=on, category="marketing", valid_for=timedelta(hours=2),
                 expires_at=on + timedelta(hours=1)),
        Outgoing("+13472643707", "c"),
    ], now=now)
    assert await _fields(pool, ids[0]) == ("reminder", "transactional", now + timedelta(minutes=90))
    assert await _fields(pool, ids[1]) == (None, "marketing", on + timedelta(hours=1))
    assert await _fields(pool, ids[2]) == (None, "transactional", None)
    one = await submit(pool, "lib", "+13472643707", "d", type="waitlist", expires_at=now + timedelta(days=2))
    assert (await _fields(pool, one))[:2] == ("waitlist", "transactional")


@pytest.mark.parametrize(("message", "field", "problem"), [
    (Outgoing("+13472643707", "x", category="promo"), "category", "transactional or marketing"),
    (Outgoing("+13472643707", "x", type="  "), "type", "1-64 characters"),
    (Outgoing("+13472643707", "x", type="t" * 65), "type", "1-64 characters"),
    (Outgoing("+13472643707", "x", valid_for="soon"), "valid_for", "not a duration"),
    (Outgoing("+13472643707", "x", valid_for=timedelta(0)), "valid_for", "longer than zero"),
    (Outgoing("+13472643707", "x", valid_for=timedelta(days=400)), "valid_for", "at most 365 days"),
    (Outgoing("+13472643707", "x", expires_at=datetime(2031, 1, 1)), "expires_at", "timezone-aware"),
    (Outgoing("+13472643707", "x", expires_at=datetime(2020, 1, 1, tzinfo=UTC)), "expires_at", "already past"),
    (Outgoing("+13472643707", "x", on=datetime(2031, 1, 2, tzinfo=UTC), expires_at=datetime(2031, 1, 1, tzinfo=UTC)),
     "expires_at", "not after the time"),
])
async def test_submit_refuses_bad_fields_and_queues_nothing(
    pool: asyncpg.Pool, message: Outgoing, field: str, problem: str
) -> None:
    await admin.create_app(pool, "lib")
    with pytest.raises(InvalidInput, match=problem) as caught:
        await submit_many(pool, "lib", [Outgoing("+13472643707", "fine"), message])
    assert caught.value.param == f"messages[1].{field}"
    assert await _count(pool) == 0


# ---- the HTTP door --------------------------------------------------------------------------------------------


@dataclass
class Http:
    client: TestClient[web.Request, web.Application]
    key: str
    app_id: int

    async def call(self, name: str, **params: str) -> tuple[int, Any]:
        resp = await self.client.post(f"/api/{name}", data={"api_key": self.key, **params})
        async with resp:
            return resp.status, orjson.loads(await resp.read())


@pytest.fixture
async def http(pool: asyncpg.Pool) -> AsyncIterator[Http]:
    new = await admin.create_app(pool, "lib")
    handlers = CarouselApi(pool, Settings(), clock=lambda: NOW, cache_seconds=0)
    app = web.Application()
    app.add_routes(handlers.routes())
    async with TestClient(TestServer(app)) as client:
        yield Http(client, new.api_key, new.app_id)


async def test_send_message_stores_type_category_and_lifetime(http: Http, pool: asyncpg.Pool) -> None:
    status, body = await http.call("send_message", phone_number=NYC, body="Storytime moved", type="cancellation",
                                   category="Marketing", valid_for="2h")
    assert status == 200, body
    (message_id,) = [int(i) for i in body["message_ids"].split(",")]
    assert await _fields(pool, message_id) == ("cancellation", "marketing", NOW + timedelta(hours=2))
    status, body = await http.call("send_message", phone_number=NYC, body="x", on="2030-01-17T10:00:00Z",
                                   valid_for="1h", expires_at="2030-01-17T10:30:00Z")
    assert status == 200, body
    expires = (await _fields(pool, int(body["message_ids"])))[2]
    assert expires == datetime(2030, 1, 17, 10, 30, tzinfo=UTC)  # the earlier of on + 1h and expires_at


@pytest.mark.parametrize(("params", "problem"), [
    ({"category": "promo"}, "category: must be transactional or marketing"),
    ({"valid_for": "soon"}, "valid_for: 'soon' is not a duration"),
    ({"valid_for": "400d"}, "valid_for: must be at most 365 days"),
    ({"expires_at": "2030-01-16T16:00:00Z"}, "expires_at: is already past"),
    ({"on": "2030-01-18T10:00:00Z", "expires_at": "2030-01-17T10:00:00Z"}, "expires_at: is not after the time"),
    ({"type": "x" * 65}, "type: at most 64 characters"),
])
async def test_send_message_refuses_bad_fields_and_queues_nothing(
    http: Http, pool: asyncpg.Pool, params: dict[str, str], problem: str
) -> None:
    status, body = await http.call("send_message", phone_number=NYC, body="x", **params)
    assert (status, body) == (400, {"error": body["error"]}) and body["error"].startswith(problem), body
    assert await _count(pool) == 0


async def test_set_time_zone(http: Http, pool: asyncpg.Pool) -> None:
    status, body = await http.call("set_time_zone", phone_number="(646) 555-0100", time_zone="America/Chicago")
    assert (status, body) == (200, {"phone_number": "16465550100", "time_zone": "America/Chicago"})
    assert await lifetime.contact_zone(pool, http.app_id, NYC) == "America/Chicago"
    status, body = await http.call("set_time_zone", phone_number=NYC, time_zone="Mars/Olympus")
    assert status == 400 and body["error"].startswith("time_zone:")
    assert await lifetime.contact_zone(pool, http.app_id, NYC) == "America/Chicago"
    status, body = await http.call("set_time_zone", phone_number="12", time_zone="UTC")
    assert status == 400 and body["error"].startswith("phone_number:")
    status, body = await http.call("set_time_zone", phone_number=NYC, time_zone="")
    assert (status, body) == (200, {"phone_number": "16465550100", "time_zone": None})
    assert await lifetime.contact_zone(pool, http.app_id, NYC) is None


# ---- admission's facts --------------------------------------------------------------------------------------------


async def test_admission_facts_carry_lifetime_consent_and_zone(pool: asyncpg.Pool) -> None:
    app_id = (await admin.create_app(pool, "lib")).app_id
    now = datetime.now(UTC)
    on = now + timedelta(days=1)
    own, timed, plain, promo, stranger = await submit_many(pool, "lib", [
        Outgoing(NYC, "a", valid_for="1h"), Outgoing(NYC, "b", on=on), Outgoing(NYC, "c"),
        Outgoing(NYC, "d", category="marketing"), Outgoing("+16465550101", "e", category="marketing"),
    ], now=now)
    await pool.execute("INSERT INTO engine_subscription (app_id, phone, tag, source) VALUES ($1, $2, 'news', 'api')",
                       app_id, NYC)
    await lifetime.set_contact_zone(pool, app_id, NYC, "America/Chicago")
    ids = [own, timed, plain, promo, stranger]

    async def facts() -> list[Any]:
        return await outbound.admission_facts(pool, [FactsRequest(i, None, 0.0) for i in ids])

    before = await facts()
    assert [f.expires_at is not None for f in before] == [True, False, False, False, False]
    assert [(f.marketing, f.subscribed, f.time_zone) for f in before[3:]] == [
        (True, True, "America/Chicago"), (True, False, None)]
    assert before[2].time_zone is None  # only marketing needs it
    # The app's default lifetime applies, from when each message is due, to messages without their own.
    await admin.update_app(pool, "lib", validate_app_changes({"valid_for": "3h"}))
    after = await facts()
    created = {r["id"]: r["created_at"] for r in await pool.fetch("SELECT id, created_at FROM engine_outbound")}
    assert after[0].expires_at == before[0].expires_at
    assert after[1].expires_at == on + timedelta(hours=3)
    assert after[2].expires_at == created[plain] + timedelta(hours=3)


# ---- the expiry sweep -------------------------------------------------------------------------------------------


async def test_the_sweep_expires_queued_messages_past_their_lifetime_with_reports(pool: asyncpg.Pool) -> None:
    """Nothing claims these messages (the app has no DIDs, like a pool too busy to take them): the sweep still ends
    them 'expired' on time, so delivery_status says 2, and the application hears it."""
    app = await admin.create_app(pool, "lib", gateway_url="http://127.0.0.1:9/unused")
    await admin.create_app(pool, "quiet", gateway_url=None)
    now = datetime.now(UTC)
    own, default, scheduled, fresh = await submit_many(pool, "lib", [
        Outgoing(NYC, "own", valid_for="30m"), Outgoing(NYC, "default"),
        Outgoing(NYC, "scheduled", on=now + timedelta(hours=5)), Outgoing(NYC, "fresh", valid_for="5h"),
    ], now=now)
    (other,) = await submit_many(pool, "quiet", [Outgoing(NYC, "other")], now=now)
    async with pool.acquire() as conn, conn.transaction():  # the engine's own STOP answer never expires
        await conn.execute("SELECT set_config('engine.compliance', 'on', true)")
        stop = await conn.fetchval("INSERT INTO engine_outbound (app_id, recipient, body, kind) VALUES "
                                   "($1, $2, 'You are unsubscribed', 'compliance') RETURNING id", app.app_id, NYC)
    for name in ("lib", "quiet"):
        await admin.update_app(pool, name, validate_app_changes({"valid_for": "1h"}))
    assert await lifetime.expire_queued(pool, now + timedelta(minutes=10)) == 0
    assert await lifetime.expire_queued(pool, now + timedelta(hours=2), limit=1) == 3  # one of each kind per app
    assert await lifetime.expire_queued(pool, now + timedelta(hours=2)) == 0
    states = {r["id"]: (r["state"], r["status"], r["reason"]) for r in await pool.fetch(
        "SELECT id, state, status, reason FROM engine_outbound")}
    assert states[own] == states[default] == states[other] == ("expired", 2, "expired")
    assert {states[i][0] for i in (scheduled, fresh, stop)} == {"queued"}
    assert await api_store.delivery_statuses(pool, app.app_id, [own, default, scheduled]) == {
        own: 2, default: 2, scheduled: 0}
    reports = [r["payload"] for r in await pool.fetch("SELECT payload FROM engine_outbox ORDER BY id")]
    payloads = [orjson.loads(p) if isinstance(p, str) else p for p in reports]
    assert sorted(p["message_id"] for p in payloads) == sorted([str(own), str(default)])  # 'quiet' has no gateway
    assert all(p["reason"] == "expired" and p["status"] == "2" for p in payloads)
    # 'fresh' lives 5 hours from now, 'scheduled' one hour from 5 hours from now.
    assert await lifetime.expire_queued(pool, now + timedelta(hours=6, minutes=1)) == 2


# ---- purge ------------------------------------------------------------------------------------------------------


async def _old(pool: asyncpg.Pool, ids: list[int], age: str) -> None:
    await pool.execute(f"UPDATE engine_outbound SET created_at = now() - interval '{age}', "
                       f"final_at = now() - interval '{age}' WHERE id = ANY($1::bigint[])", ids)


async def _messages(pool: asyncpg.Pool, app: str, states: list[str]) -> list[int]:
    app_id = await pool.fetchval("SELECT id FROM engine_app WHERE name = $1", app)
    return [await pool.fetchval("INSERT INTO engine_outbound (app_id, recipient, body, state) VALUES ($1, $2, $3, $4) "
                                "RETURNING id", app_id, NYC, f"{state} {i}", state) for i, state in enumerate(states)]


FINAL_STATES = ["delivered", "undelivered", "failed", "suppressed", "canceled", "expired", "unknown"]


async def test_purge_deletes_old_final_messages_and_leaves_everything_younger(pool: asyncpg.Pool) -> None:
    lib = await admin.create_app(pool, "lib", gateway_url="http://127.0.0.1:9/unused")
    await admin.create_app(pool, "brief")
    await admin.update_app(pool, "brief", validate_app_changes({"retention": "30d"}))
    old = await _messages(pool, "lib", FINAL_STATES)
    old_open = await _messages(pool, "lib", ["queued", "sent", "claimed"])  # never purged: not final
    young = await _messages(pool, "lib", FINAL_STATES)  # 17 months: inside the default 18
    brief_old = await _messages(pool, "brief", ["delivered", "failed"])  # 40 days: past brief's 30
    brief_young = await _messages(pool, "brief", ["delivered"])  # 20 days
    await _old(pool, old + old_open, "19 months")
    await _old(pool, young, "17 months")
    await _old(pool, brief_old, "40 days")
    await _old(pool, brief_young, "20 days")
    # Parts of a split message go with their first part (and are counted).
    head, *parts = await _messages(pool, "lib", ["delivered", "delivered", "sent"])
    await pool.execute("UPDATE engine_outbound SET part_of = $1 WHERE id = ANY($2::bigint[])", head, parts)
    await _old(pool, [head, *parts], "19 months")
    # Callback events: delivered long ago (purged), delivered lately, pending and dead (kept).
    for state, age in (("delivered", "19 months"), ("delivered", "1 day"), ("pending", "19 months"),
                       ("dead", "19 months")):
        await pool.execute("INSERT INTO engine_outbox (app_id, type, payload, state, created_at, delivered_at) "
                           f"VALUES ($1, 'delivery_report', '{{}}', $2, now() - interval '{age}', "
                           f"CASE WHEN $2 = 'delivered' THEN now() - interval '{age}' END)", lib.app_id, state)
    total = await _count(pool)

    dry = await lifetime.purge(pool, datetime.now(UTC), dry_run=True, batch=4)
    assert (dry.messages, dry.callback_events) == (len(old) + 3 + len(brief_old), 1)
    assert await _count(pool) == total  # a dry run deletes nothing
    assert dry.apps == {"lib": "1 year 6 mons", "brief": "30 days"}

    report = await lifetime.purge(pool, datetime.now(UTC), batch=4)
    assert (report.messages, report.callback_events) == (dry.messages, 1) and report.batches > 4
    left = {r["id"] for r in await pool.fetch("SELECT id FROM engine_outbound")}
    assert left == set(old_open + young + brief_young)
    assert await pool.fetchval("SELECT count(*) FROM engine_outbox") == 3
    again = await lifetime.purge(pool, datetime.now(UTC))
    assert (again.messages, again.callback_events) == (0, 0)


async def test_purge_of_one_app_and_older_than(pool: asyncpg.Pool) -> None:
    await admin.create_app(pool, "lib")
    await admin.create_app(pool, "crm")
    lib = await _messages(pool, "lib", ["delivered", "failed"])
    crm = await _messages(pool, "crm", ["delivered"])
    await _old(pool, lib + crm, "100 days")
    only_crm = await lifetime.purge(pool, datetime.now(UTC), app="crm", older_than="90 days")
    assert (only_crm.messages, only_crm.apps) == (1, {"crm": "90 days"})
    assert await lifetime.purge(pool, datetime.now(UTC), older_than="120 days") == lifetime.PurgeReport(
        False, "120 days", {"lib": "120 days", "crm": "120 days"}, 0, 0, 2)
    assert (await lifetime.purge(pool, datetime.now(UTC), older_than="99 days")).messages == 2
    with pytest.raises(NotFound):
        await lifetime.purge(pool, datetime.now(UTC), app="nobody")
    with pytest.raises(InvalidInput, match="--batch"):
        await lifetime.purge(pool, datetime.now(UTC), batch=0)


async def test_purge_never_waits_for_a_locked_row(pool: asyncpg.Pool) -> None:
    """A message some transaction holds (a late status write, say) is skipped, not waited for; the next purge gets
    it. The purge is many short transactions, never one long lock."""
    await admin.create_app(pool, "lib")
    ids = await _messages(pool, "lib", ["delivered"] * 5)
    await _old(pool, ids, "2 years")
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM engine_outbound WHERE id = $1 FOR UPDATE", ids[2])
        report = await asyncio.wait_for(lifetime.purge(pool, datetime.now(UTC), batch=2), 10)
        assert report.messages == 4
    assert (await lifetime.purge(pool, datetime.now(UTC))).messages == 1
    assert await _count(pool) == 0


# ---- plans: the sweep and the purge never scan the table's history --------------------------------------------


async def test_generic_plans_of_the_sweep_and_the_purge_use_their_indexes(pool: asyncpg.Pool) -> None:
    """The expiry sweep runs every few seconds on every worker and the purge walks millions of rows: their generic
    plans (what a prepared statement settles on) must go by index — queued rows only, or primary-key ranges — on a
    table with statistics, as autovacuum keeps them. (Before its first ANALYZE a 30,000-row table looks small
    enough to the planner to read whole for the purge's first batch; that costs one scan, once.)"""
    from engine.store import lifetime_queries as lq
    from engine.store import queries as q

    await pool.execute("INSERT INTO engine_app (name, valid_for) VALUES ('g', interval '1 hour')")
    # History, and a backlog: a pool too busy to claim its queue is when the sweep matters.
    await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body, state, expires_at) "
                       "SELECT id, '+1347264' || lpad((g % 10000)::text, 4, '0'), 'b' || g, "
                       "CASE WHEN g % 3 = 0 THEN 'queued' ELSE 'delivered' END, "
                       "CASE WHEN g % 100 = 0 THEN now() + interval '1 hour' END "
                       "FROM engine_app, generate_series(1, 30000) g")
    await pool.execute("INSERT INTO engine_outbox (app_id, type, payload, state, delivered_at) SELECT id, "
                       "'delivery_report', '{}', 'delivered', now() FROM engine_app, generate_series(1, 5000)")
    await pool.execute("ANALYZE")
    now = datetime.now(UTC)
    statements = {
        "EXPIRE_QUEUED": (lq.EXPIRE_QUEUED, (now, 1000)),
        "HOLD_QUIET": (lq.HOLD_QUIET, ([1, 2], [60.0, 60.0], "w")),
        "PURGE_MESSAGES": (lq.PURGE_MESSAGES, (0, 1000, [1], [now], False)),
        "PURGE_EVENTS": (lq.PURGE_EVENTS, (0, 1000, [1], [now], False)),
        "UNMARKED_CLAIMS": (q.UNMARKED_CLAIMS, ([1, 2], "w")),
    }
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for name, (sql, args) in statements.items():
            plan = "\n".join(r[0] for r in await (await conn.prepare("EXPLAIN " + sql)).fetch(*args))
            assert "Seq Scan on engine_outbound" not in plan and "Seq Scan on engine_outbox" not in plan, (
                f"{name}:\n{plan}")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        plan = "\n".join(r[0] for r in await (await conn.prepare("EXPLAIN " + lq.EXPIRE_QUEUED)).fetch(now, 1000))
        assert "engine_outbound_queued_expiry" in plan and "engine_outbound_queued_since" in plan, plan
        assert "Sort Key: (COALESCE" not in plan, plan  # the backlog is read in lifetime order, never sorted
