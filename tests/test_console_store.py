"""What the console reads and changes, on a real database: the overview's figures, conversations in order, the
blacklist and the opt-out record, dead letters, DIDs' last minute; and every statement's generic plan on a big
table reads through an index, never a scan of the history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from engine.errors import InvalidInput
from engine.events import PHONE_BLACKLISTED, phone_event
from engine.store import admin
from engine.store import console as store
from engine.store import console_queries as cq
from engine.store.outbox import NewEvent, enqueue_events

PHONE = "+13472643707"


async def _app(pool: asyncpg.Pool, name: str = "lib") -> int:
    return (await admin.create_app(pool, name)).app_id


async def _messages(pool: asyncpg.Pool, app_id: int, rows: Sequence[tuple[str, float | None]], *,
                    recipient: str = PHONE, did_id: int | None = None, segments: int | None = None) -> None:
    """Messages in *state*, handed to the carrier *ago* seconds before now (None: not yet)."""
    await pool.execute(
        "INSERT INTO engine_outbound (app_id, recipient, body, state, sending_at, did_id, segments) "
        "SELECT $1, $2, 'b' || i, s, CASE WHEN ago IS NULL THEN NULL ELSE now() - make_interval(secs => ago) END, "
        "$5, $6 FROM unnest($3::text[], $4::float8[]) WITH ORDINALITY AS u(s, ago, i)",
        app_id, recipient, [s for s, _ in rows], [a for _, a in rows], did_id, segments)


async def test_overview_counts_open_messages_the_last_hour_and_callbacks(pool: asyncpg.Pool) -> None:
    lib, crm = await _app(pool, "lib"), await _app(pool, "crm")
    await _messages(pool, lib, [("queued", None)] * 3 + [("sending", 1), ("sent", 5), ("unknown", 30)])
    await _messages(pool, lib, [("delivered", 10)] * 6 + [("undelivered", 70), ("failed", 130), ("expired", 200)])
    await _messages(pool, lib, [("delivered", 3700)] * 5)  # older than an hour: history, not on the overview
    await _messages(pool, crm, [("queued", None), ("delivered", 20)])
    async with pool.acquire() as conn:
        await enqueue_events(conn, [NewEvent(lib, PHONE_BLACKLISTED, phone_event(PHONE))] * 3)
    await pool.execute("UPDATE engine_outbox SET state = 'dead' WHERE id = (SELECT min(id) FROM engine_outbox)")

    ov = await store.overview(pool)
    assert ov.queue == {"queued": 4, "claimed": 0, "sending": 1, "sent": 1, "unknown": 1}
    assert (ov.sent_hour, ov.delivered_hour, ov.failed_hour) == (13, 7, 3)
    assert ov.delivery_rate == pytest.approx(0.7)
    assert (ov.callbacks_pending, ov.callbacks_dead) == (2, 1)
    assert len(ov.minutes) == 61 and sum(n for _, n in ov.minutes) == 13
    assert [m for m, _ in ov.minutes] == sorted(m for m, _ in ov.minutes)
    assert all(b - a == 60 for (a, _), (b, _) in zip(ov.minutes, ov.minutes[1:], strict=False))
    by_name = {a.name: a for a in ov.apps}
    assert by_name["lib"].open == {"queued": 3, "sending": 1, "sent": 1, "unknown": 1}
    assert (by_name["lib"].sent_hour, by_name["lib"].delivered_hour, by_name["lib"].failed_hour) == (12, 6, 3)
    assert (by_name["crm"].sent_hour, by_name["crm"].callbacks_dead) == (1, 0)
    assert (by_name["lib"].callbacks_pending, by_name["lib"].callbacks_dead) == (2, 1)


async def test_an_empty_engine_has_no_delivery_rate(pool: asyncpg.Pool) -> None:
    ov = await store.overview(pool)
    assert ov.delivery_rate is None and ov.apps == [] and sum(ov.queue.values()) == 0


async def _mo(pool: asyncpg.Pool, phone: str, body: str, at: datetime, app_id: int | None = None) -> int:
    return int(await pool.fetchval(
        "INSERT INTO engine_inbound (message_sid, phone, to_number, body, params, received_at, app_id, state) "
        "VALUES ('SM' || md5(random()::text), $1, '+16462000000', $2, '{}', $3, $4, 'done') RETURNING id",
        phone, body, at, app_id))


async def test_a_conversation_interleaves_what_came_in_and_went_out_and_pages_back(pool: asyncpg.Pool) -> None:
    app_id = await _app(pool)
    start = datetime.now(UTC) - timedelta(minutes=10)
    for i in range(6):
        await _mo(pool, PHONE, f"in {i}", start + timedelta(seconds=2 * i), app_id)
        await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body, created_at, kind) "
                           "VALUES ($1, $2, $3, $4, 'reply')", app_id, PHONE, f"out {i}",
                           start + timedelta(seconds=2 * i + 1))
    await _mo(pool, "+13472640000", "someone else", start, app_id)
    items, cursor = await store.conversation(pool, PHONE, before=None, limit=5)
    assert [i["body"] for i in items] == ["out 5", "in 5", "out 4", "in 4", "out 3"]
    assert [i["direction"] for i in items[:2]] == ["out", "in"]
    older, cursor2 = await store.conversation(pool, PHONE, before=cursor, limit=5)
    assert [i["body"] for i in older] == ["in 3", "out 2", "in 2", "out 1", "in 1"]
    rest, last = await store.conversation(pool, PHONE, before=cursor2, limit=5)
    assert [i["body"] for i in rest] == ["out 0", "in 0"] and last is None


async def test_recent_conversations_group_the_latest_mos_by_phone(pool: asyncpg.Pool) -> None:
    now = datetime.now(UTC)
    for i, phone in enumerate(["+13472640001", "+13472640002", "+13472640001", "+13472640003"]):
        await _mo(pool, phone, f"mo {i}", now + timedelta(seconds=i))
    rows, cursor = await store.recent_conversations(pool, before=None, limit=3)
    assert [(r["phone"], r["body"], r["count"]) for r in rows] == [
        ("+13472640003", "mo 3", 1), ("+13472640001", "mo 2", 1), ("+13472640002", "mo 1", 1)]
    rows, cursor = await store.recent_conversations(pool, before=cursor, limit=3)
    assert [(r["phone"], r["body"]) for r in rows] == [("+13472640001", "mo 0")] and cursor is None


async def test_an_operators_blacklist_change_is_recorded_with_their_name_and_reason(pool: asyncpg.Pool) -> None:
    app_id = await _app(pool)
    assert await store.change_blacklist(pool, app_id, PHONE, add=True, operator="ops", note="called to stop")
    assert not await store.change_blacklist(pool, app_id, PHONE, add=True, operator="ops", note="again")
    row = await pool.fetchrow("SELECT reason, note FROM engine_blacklist")
    assert tuple(row) == ("operator", "called to stop")
    assert await store.change_blacklist(pool, app_id, PHONE, add=False, operator="ana", note="wants them back")
    assert not await store.change_blacklist(pool, app_id, PHONE, add=False, operator="ana", note="again")
    events = [tuple(r) for r in await pool.fetch(
        "SELECT action, source, operator, note FROM engine_consent_event ORDER BY id")]
    assert events == [("opt_out", "operator", "ops", "called to stop"),
                      ("opt_in", "operator", "ana", "wants them back")]
    told = [r["type"] for r in await pool.fetch("SELECT type FROM engine_outbox ORDER BY id")]
    assert told == ["phone_blacklisted", "phone_unblacklisted"]
    record, _ = await store.consent_events(pool, phone=PHONE, before=None, limit=10)
    assert [(e["action"], e["operator"]) for e in record] == [("opt_in", "ana"), ("opt_out", "ops")]


async def test_blacklist_search_by_first_digits_and_newest_first_with_paging(pool: asyncpg.Pool) -> None:
    lib, crm = await _app(pool, "lib"), await _app(pool, "crm")
    phones = [f"+1347264{i:04d}" for i in range(7)] + ["+16465550100"]
    await pool.execute("INSERT INTO engine_blacklist (app_id, phone, created_at) "
                       "SELECT $1, p, now() - make_interval(secs => i) FROM unnest($2::text[]) WITH ORDINALITY u(p, i)",
                       lib, phones)
    await pool.execute("INSERT INTO engine_blacklist (app_id, phone) VALUES ($1, $2)", crm, phones[0])
    found = await store.blacklist_page(pool, prefix="+1347264", after=None, limit=5)
    assert [(r["phone"], r["app"]) for r in found] == [(phones[0], "crm"), (phones[0], "lib"), (phones[1], "lib"),
                                                       (phones[2], "lib"), (phones[3], "lib")]
    more = await store.blacklist_page(pool, prefix="+1347264", after=phones[3], limit=5)
    assert [r["phone"] for r in more] == phones[4:7]
    assert [r["phone"] for r in await store.blacklist_page(pool, prefix="+1646", after=None, limit=5)] == [phones[7]]
    newest = await store.blacklist_page(pool, prefix=None, after=None, limit=3)
    assert [r["phone"] for r in newest] == [phones[0], phones[0], phones[1]]
    last = newest[-1]
    page2 = await store.blacklist_page(pool, prefix=None, after=None, limit=3,
                                       before=(last["created_at"], last["app_id"], last["phone"]))
    assert [r["phone"] for r in page2] == phones[2:5]


async def test_a_dead_letter_gets_one_more_attempt(pool: asyncpg.Pool) -> None:
    app_id = await _app(pool)
    async with pool.acquire() as conn:
        (event_id,) = await enqueue_events(conn, [NewEvent(app_id, PHONE_BLACKLISTED, phone_event(PHONE))])
    await pool.execute("UPDATE engine_outbox SET state = 'dead', attempts = 7, last_error = 'HTTP 500'")
    dead, cursor = await store.dead_letters(pool, app_id, before=None, limit=10)
    assert [(d["event_id"], d["attempts"], d["last_error"]) for d in dead] == [(event_id, 7, "HTTP 500")]
    assert cursor is None
    other = await _app(pool, "other")
    assert not await store.retry_dead_letter(pool, other, event_id)  # another app's event: untouched
    assert await store.retry_dead_letter(pool, app_id, event_id)
    assert await pool.fetchval("SELECT state FROM engine_outbox") == "pending"
    assert not await store.retry_dead_letter(pool, app_id, event_id)  # no longer dead
    with pytest.raises(InvalidInput, match="event_id"):
        await store.retry_dead_letter(pool, app_id, "not-a-uuid")


async def test_dids_show_the_segments_they_sent_in_the_last_minute(pool: asyncpg.Pool) -> None:
    await _app(pool)
    await admin.add_dids(pool, "lib", [f"+1646200{i:04d}" for i in range(5)], limit_per_min=60)
    dids = {r["number"]: r["id"] for r in await pool.fetch("SELECT number, id FROM engine_did")}
    app_id = await pool.fetchval("SELECT id FROM engine_app")
    first = dids["+16462000000"]
    await _messages(pool, app_id, [("delivered", 5), ("sent", 30)], did_id=first, segments=3)
    await _messages(pool, app_id, [("delivered", 90)], did_id=first, segments=3)  # over a minute ago
    await _messages(pool, app_id, [("sent", 1)], did_id=dids["+16462000004"])  # segments unknown yet: 1
    smsc_id = await pool.fetchval("SELECT smsc_id FROM engine_app")
    page, cursor = await store.did_page(pool, smsc_id, after=None, limit=3)
    assert [(r["number"], r["last_minute"], r["limit_per_min"]) for r in page] == [
        ("+16462000000", 6, 60), ("+16462000001", 0, 60), ("+16462000002", 0, 60)]
    page, cursor = await store.did_page(pool, smsc_id, after=cursor, limit=3)
    assert [(r["number"], r["last_minute"]) for r in page] == [("+16462000003", 0), ("+16462000004", 1)]
    assert cursor is None


async def test_smscs_show_the_account_with_the_token_masked(pool: asyncpg.Pool) -> None:
    await _app(pool)
    await admin.add_provider(pool, "lib", kind="twilio", account_sid="AC" + "2" * 32,
                             auth_token="0123456789abcdef0123456789abcdef", messaging_service_sid="MG" + "3" * 32)
    (smsc,) = await store.smscs(pool)
    assert smsc.token_masked == "••••••••cdef" and smsc.messaging_service_sid == "MG" + "3" * 32
    assert "0123456789abcdef" not in repr(smsc) and "auth_token" not in smsc.facts
    assert smsc.facts["apps"] == ["lib"]


# ---- plans: every console statement reads a big table through an index --------------------------------------

PLANS = {
    "OPEN_BY_APP": (cq.OPEN_BY_APP, ()),
    "SENT_BETWEEN": (cq.SENT_BETWEEN, (datetime.now(UTC) - timedelta(minutes=20), datetime.now(UTC))),
    "CALLBACKS_BY_APP": (cq.CALLBACKS_BY_APP, ()),
    "RECENT_MOS": (cq.RECENT_MOS, (None, 50)),
    "PHONE_MOS": (cq.PHONE_MOS, (PHONE, None, 50)),
    "PHONE_MTS": (cq.PHONE_MTS, (PHONE, None, 50)),
    "CONSENT_EVENTS": (cq.CONSENT_EVENTS, (None, 50)),
    "PHONE_CONSENT_EVENTS": (cq.PHONE_CONSENT_EVENTS, (PHONE, None, 50)),
    "BLACKLIST_SEARCH": (cq.BLACKLIST_SEARCH, ("+1347", "+1347:", None, 50)),
    "BLACKLIST_RECENT": (cq.BLACKLIST_RECENT, (None, None, None, 50)),
    "DEAD_LETTERS": (cq.DEAD_LETTERS, (1, None, 20)),
    "SMSC_DID_PAGE": (cq.SMSC_DID_PAGE, (1, None, 100)),
    "DID_LAST_MINUTE": (cq.DID_LAST_MINUTE, ([1, 2, 3],)),
}
BIG = ("engine_outbound", "engine_inbound", "engine_blacklist", "engine_consent_event", "engine_outbox")


async def test_generic_plans_of_the_console_never_scan_a_big_table(pool: asyncpg.Pool) -> None:
    """A prepared statement ends up on its generic plan (parameters unknown); on tables the size of a busy year
    those plans must go through an index (the figures: benchmarks/console_pages.py)."""
    app_id = await _app(pool)
    await admin.add_dids(pool, "lib", [f"+1646200{i:04d}" for i in range(50)])
    await pool.execute(
        "INSERT INTO engine_outbound (app_id, recipient, body, state, sending_at, created_at, did_id) "
        "SELECT $1, '+1347' || lpad((g % 100000)::text, 7, '0'), 'b', "
        "CASE WHEN g % 100 = 0 THEN 'queued' ELSE 'delivered' END, "
        "now() - make_interval(secs => g), now() - make_interval(secs => g), (SELECT min(id) FROM engine_did) "
        "FROM generate_series(1, 200000) g", app_id)
    await pool.execute(
        "INSERT INTO engine_inbound (message_sid, phone, to_number, body, params, state, app_id) "
        "SELECT 'SM' || g, '+1347' || lpad((g % 100000)::text, 7, '0'), '+16462000000', 'hi', '{}', 'done', $1 "
        "FROM generate_series(1, 50000) g", app_id)
    await pool.execute(
        "INSERT INTO engine_blacklist (app_id, phone, created_at) "
        "SELECT $1, '+1' || (2000000000 + g)::text, now() - make_interval(secs => g) FROM generate_series(1, 50000) g",
        app_id)
    await pool.execute(
        "INSERT INTO engine_consent_event (app_id, phone, action, source) "
        "SELECT $1, '+1' || (2000000000 + g)::text, 'opt_out', 'keyword' FROM generate_series(1, 50000) g", app_id)
    await pool.execute(
        "INSERT INTO engine_outbox (app_id, type, payload, state) "
        "SELECT $1, 'delivery_report', '{}', CASE WHEN g % 500 = 0 THEN 'dead' ELSE 'delivered' END "
        "FROM generate_series(1, 50000) g", app_id)
    for table in BIG:
        await pool.execute(f"ANALYZE {table}")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for name, (sql, args) in PLANS.items():
            stmt = await conn.prepare("EXPLAIN " + sql)
            plan = "\n".join(r[0] for r in await stmt.fetch(*args))
            for table in BIG:
                assert f"Seq Scan on {table}" not in plan, f"{name}:\n{plan}"
