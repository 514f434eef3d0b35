"""One admission pipeline for every door: the door table, and opt-outs that arrive after a message was queued.

Each door — HTTP `send_message`, `engine_submit()`, a plain INSERT and `submit_many()` — sends to its own phone
through a real engine, real Postgres and the loopback fake carrier; the messages must end the same way
whichever door they came in by (the HTTP door answers -2/-3 at once where the others end `failed` with the
reason). The fake carrier's own record says what reached the air.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from engine.app_settings import AppChanges
from engine.policy.admission import BLACKLISTED, FLOOD_LIMIT
from engine.segment import GSM7, analyze, split_message
from engine.store import admin
from engine.store import carousel as api_store
from engine.submit import Outgoing, submit_many
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeCarrier
from tests.helpers.database import wait_final
from tests.helpers.engine import carrier, engine_running

APP = "lib"
DOORS = ("http", "engine_submit", "insert", "submit_many")
PHONES = {door: f"+1347264370{i}" for i, door in enumerate(DOORS)}
HTTP_CODES = {-2: BLACKLISTED, -3: FLOOD_LIMIT}
LONG_BODY = " ".join(f"Storytime{i} moves to the east wing this week." for i in range(9))[:400]
CURLY_BODY = ("“Your hold is ready” — it’s at the Main Library’s desk. " * 27)[:1500]

Door = Callable[[str, str], Awaitable[list[int]]]
Outcome = tuple[Any, ...]


async def _setup(pool: asyncpg.Pool, fake: FakeCarrier, *, single_sms: bool = False) -> admin.NewApp:
    app = await admin.create_app(pool, APP, gateway_url="http://127.0.0.1:9/unused")
    await admin.add_provider(pool, APP, kind="fake", account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN,
                             base_url=fake.base_url, single_sms=single_sms)
    await admin.add_dids(pool, APP, [f"+1646200000{i}" for i in range(4)], limit_per_min=6000)
    return app


def _doors(pool: asyncpg.Pool, app: admin.NewApp, base_url: str, session: aiohttp.ClientSession) -> dict[str, Door]:
    async def http(phone: str, body: str) -> list[int]:
        async with session.post(f"{base_url}/api/send_message",
                                data={"api_key": app.api_key, "phone_number": phone, "body": body}) as resp:
            assert resp.status == 200, await resp.text()
            return [int(i) for i in (await resp.json())["message_ids"].split(",")]

    async def engine_submit(phone: str, body: str) -> list[int]:
        return [await pool.fetchval("SELECT engine_submit($1, $2, $3)", APP, phone, body)]

    async def insert(phone: str, body: str) -> list[int]:
        return [await pool.fetchval("INSERT INTO engine_outbound (app_id, recipient, body) VALUES ($1, $2, $3) "
                                    "RETURNING id", app.app_id, phone, body)]

    async def many(phone: str, body: str) -> list[int]:
        return await submit_many(pool, APP, [Outgoing(phone, body)])

    return {"http": http, "engine_submit": engine_submit, "insert": insert, "submit_many": many}


async def _outcomes(pool: asyncpg.Pool, returned: list[list[int]]) -> list[Outcome]:
    """Each message's rows (a split message: part 1, then the parts linked to it), as comparable outcomes."""
    result: list[Outcome] = []
    for ids in returned:
        if len(ids) == 1 and ids[0] < 0:
            result.append(("refused", HTTP_CODES[ids[0]]))
            continue
        rows = await pool.fetch(
            "SELECT state, status, reason, segments, encoding, body FROM engine_outbound "
            "WHERE id = ANY($1::bigint[]) OR part_of = ANY($1::bigint[]) ORDER BY id", ids)
        for r in rows:
            if r["state"] == "delivered":
                result.append(("delivered", r["segments"], r["encoding"], r["body"]))
            else:
                result.append(("refused", r["reason"]) if r["reason"] else (r["state"], r["status"]))
    return result


async def _run_doors(
    pool: asyncpg.Pool, db_dsn: str, fake: FakeCarrier, app: admin.NewApp, bodies: list[str]
) -> dict[str, list[Outcome]]:
    """Send *bodies* (in order) to each door's phone through that door; wait until all is final."""
    async with engine_running(db_dsn) as running, aiohttp.ClientSession() as session:
        doors = _doors(pool, app, running.runtime.base_url or "", session)
        returned: dict[str, list[list[int]]] = {door: [] for door in DOORS}
        for door, send in doors.items():
            for body in bodies:
                returned[door].append(await send(PHONES[door], body))
        rows = sum(1 for ids in returned.values() for i in (x for r in ids for x in r) if i > 0)
        await wait_final(pool, rows)
        await _wait_rows_final(pool)
    return {door: await _outcomes(pool, returned[door]) for door in DOORS}


async def _wait_rows_final(pool: asyncpg.Pool) -> None:
    """Parts inserted by the engine itself count too: wait until no row is left open."""
    for _ in range(400):
        if not await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE state IN "
                                   "('queued', 'claimed', 'sending', 'sent')"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("messages still open after 20 s")


def _air(fake: FakeCarrier) -> dict[str, list[str]]:
    """What the carrier accepted, per door's phone."""
    return {door: [r.body for r in fake.records if r.to == PHONES[door]] for door in DOORS}


async def test_blacklisted_recipient_gets_nothing_from_any_door(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        app = await _setup(pool, fake)
        await api_store.blacklist(pool, app.app_id, list(PHONES.values()))
        results = await _run_doors(pool, db_dsn, fake, app, ["Your hold is ready"])
        assert all(result == [("refused", BLACKLISTED)] for result in results.values()), results
        assert _air(fake) == {door: [] for door in DOORS}
        # The SQL doors' messages end failed (status 2) and the app hears why in its delivery report.
        reports = await pool.fetch("SELECT payload FROM engine_outbox WHERE type = 'delivery_report'")
        assert len(reports) == 3
        assert all('"reason": "blacklisted"' in r["payload"] and '"status": "2"' in r["payload"] for r in reports)


async def test_flood_limit_holds_for_every_door(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        app = await _setup(pool, fake)
        await admin.update_app(pool, APP, AppChanges(flood_limit=(2, 3600.0)))
        bodies = ["Reminder one", "Reminder two", "Reminder three"]
        results = await _run_doors(pool, db_dsn, fake, app, bodies)
        expected = [("delivered", 1, GSM7, bodies[0]), ("delivered", 1, GSM7, bodies[1]), ("refused", FLOOD_LIMIT)]
        assert results == {door: expected for door in DOORS}
        # (Two DIDs send concurrently: the carrier may take the two in either order.)
        assert {door: sorted(air) for door, air in _air(fake).items()} == {door: sorted(bodies[:2]) for door in DOORS}


async def test_single_sms_carrier_gets_the_same_parts_from_every_door(pool: asyncpg.Pool, db_dsn: str) -> None:
    parts = split_message(LONG_BODY, "character")
    assert len(parts) == 3 and len(LONG_BODY) == 400
    async with carrier() as fake:
        app = await _setup(pool, fake, single_sms=True)
        results = await _run_doors(pool, db_dsn, fake, app, [LONG_BODY])
        expected = [("delivered", 1, GSM7, part) for part in parts]
        assert results == {door: expected for door in DOORS}
        assert {door: sorted(bodies) for door, bodies in _air(fake).items()} == {door: sorted(parts) for door in DOORS}


async def test_smart_encoding_counts_the_same_at_every_door(pool: asyncpg.Pool, db_dsn: str) -> None:
    smart = analyze(CURLY_BODY, smart=True)
    # Near the 10-segment limit only with smart encoding: as UCS-2 it would be 23 segments and refused.
    assert (smart.encoding, smart.segments, analyze(CURLY_BODY).segments) == (GSM7, 10, 23)
    async with carrier() as fake:
        app = await _setup(pool, fake)
        await admin.update_app(pool, APP, AppChanges(columns={"smart_encoding": True}))
        results = await _run_doors(pool, db_dsn, fake, app, [CURLY_BODY])
        assert results == {door: [("delivered", 10, GSM7, CURLY_BODY)] for door in DOORS}
        assert _air(fake) == {door: [smart.body] for door in DOORS}


@pytest.mark.parametrize("scheduled", [False, True], ids=["queued", "scheduled"])
async def test_phone_opted_out_after_its_message_was_queued_gets_nothing(
    pool: asyncpg.Pool, db_dsn: str, scheduled: bool
) -> None:
    async with carrier() as fake:
        app = await _setup(pool, fake)
        on = datetime.now(UTC) + timedelta(seconds=1) if scheduled else None
        phone, other = PHONES["http"], PHONES["insert"]
        ids = await submit_many(pool, APP, [Outgoing(phone, "Storytime is at 10", on=on),
                                            Outgoing(other, "Storytime is at 10", on=on)])
        await api_store.blacklist(pool, app.app_id, [phone])  # STOP arrives after the message was queued
        async with engine_running(db_dsn):
            await wait_final(pool, 2)
        states = {r["id"]: (r["state"], r["status"], r["reason"]) for r in
                  await pool.fetch("SELECT id, state, status, reason FROM engine_outbound")}
        assert states == {ids[0]: ("failed", 2, BLACKLISTED), ids[1]: ("delivered", 1, None)}
        assert [r.to for r in fake.records] == [other]
        report = await pool.fetchval("SELECT payload FROM engine_outbox WHERE type = 'delivery_report' "
                                     "AND payload->>'message_id' = $1", str(ids[0]))
        assert '"reason": "blacklisted"' in report


async def test_opt_out_while_the_message_waits_in_memory_for_its_did(pool: asyncpg.Pool, db_dsn: str) -> None:
    """A message already claimed and paced behind its DID's limit: the opt-out still wins (MARK_SENDING)."""
    async with carrier() as fake:
        app = await _setup(pool, fake)
        await pool.execute("UPDATE engine_did SET enabled = number = '+16462000000', limit_per_min = 30")
        first, waiting = "+13472643700", "+13472643701"
        ids = await submit_many(pool, APP, [Outgoing(first, "one"), Outgoing(waiting, "two")])
        async with engine_running(db_dsn, horizon_seconds=60.0):
            # 30/min: the second send waits ~2 s in the worker's memory, claimed.
            for _ in range(200):
                state = await pool.fetchval("SELECT state FROM engine_outbound WHERE id = $1", ids[1])
                if state == "claimed" and fake.records:
                    break
                await asyncio.sleep(0.01)
            assert state == "claimed"
            await api_store.blacklist(pool, app.app_id, [waiting])
            await wait_final(pool, 2)
        row = await pool.fetchrow("SELECT state, reason FROM engine_outbound WHERE id = $1", ids[1])
        assert (row["state"], row["reason"]) == ("failed", BLACKLISTED)
        assert [r.to for r in fake.records] == [first]


async def test_only_engine_code_may_write_compliance_messages(pool: asyncpg.Pool) -> None:
    app = await admin.create_app(pool, APP)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body, kind) "
                           "VALUES ($1, '+13472643707', 'x', 'compliance')", app.app_id)
    (message_id,) = await submit_many(pool, APP, [Outgoing("+13472643707", "x")])
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await pool.execute("UPDATE engine_outbound SET kind = 'compliance' WHERE id = $1", message_id)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('engine.compliance', 'on', true)")
        await conn.execute("UPDATE engine_outbound SET kind = 'compliance' WHERE id = $1", message_id)
