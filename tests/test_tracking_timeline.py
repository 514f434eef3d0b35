"""The status timeline (engine_message_event) as the send path's own statements write it, on a real database."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from engine import statuses as st
from engine.store import lease_queries as lq
from engine.store import outbound
from engine.store.outbound import Accepted, CarrierStatus, Outcome, Retry, SendMark
from engine.store.tracking import message_detail

DID = "+16462000001"
NOW = datetime.now(UTC)


async def _setup(pool: asyncpg.Pool, n: int) -> tuple[int, int, list[int]]:
    app = await pool.fetchval("INSERT INTO engine_app (name) VALUES ('t') RETURNING id")
    smsc = await pool.fetchval("INSERT INTO engine_smsc (name, app_id) VALUES ('t', $1) RETURNING id", app)
    did = await pool.fetchval("INSERT INTO engine_did (smsc_id, number) VALUES ($1, $2) RETURNING id", smsc, DID)
    rows = await pool.fetch("INSERT INTO engine_outbound (app_id, recipient, body) SELECT $1, '+1212555' || "
                            "lpad(g::text, 4, '0'), 'm' || g FROM generate_series(1, $2) g RETURNING id", app, n)
    return app, did, sorted(r["id"] for r in rows)


async def _steps(pool: asyncpg.Pool, mid: int) -> list[tuple[object, ...]]:
    rows = await pool.fetch("SELECT state, status, provider_status, error_code, reason, sender, applied "
                            "FROM engine_message_event WHERE message_id = $1 ORDER BY at", mid)
    return [tuple(r) for r in rows]


async def test_each_step_of_the_send_path_is_recorded_once_and_internal_moves_are_not(pool: asyncpg.Pool) -> None:
    app, did, ids = await _setup(pool, 300)
    claimed = await outbound.claim(pool, "w", 300, 30.0, [app])
    assert len(claimed) == 300
    await outbound.defer(pool, "w", ids[:100], [0.0] * 100)  # back to the queue: not a step
    await pool.execute(lq.HEARTBEAT, "w", 30.0, ids[100:])
    assert await pool.fetchval("SELECT count(*) FROM engine_message_event") == 0
    await outbound.claim(pool, "w", 300, 30.0, [app])
    marks = [SendMark(i, did, DID, 1, "GSM-7") for i in ids]
    assert await outbound.mark_sending(pool, "w", 30.0, marks, NOW) == set(ids)
    a, b, c = ids[:3]
    await outbound.mark_retries(pool, [Retry(a, 20429, "Too many requests")], 30.0)
    await outbound.mark_sending(pool, "w", 30.0, [SendMark(a, did, DID, 1, "GSM-7")], NOW)
    await outbound.mark_accepted(pool, [Accepted(i, f"SM{i}", "queued") for i in ids if i != c])
    await outbound.mark_outcomes(pool, [Outcome(c, st.SEND_FAILED, 21211, "invalid To", reason=None)])
    sent, delivered = st.from_twilio("sent"), st.from_twilio("delivered")
    assert sent is not None and delivered is not None
    # One batch: message a's callbacks in arrival order, a late 'sent' for b after its 'delivered'.
    await outbound.apply_statuses(pool, [
        CarrierStatus(a, "sent", sent, None, f"SM{a}"), CarrierStatus(b, "delivered", delivered, None, f"SM{b}"),
        CarrierStatus(a, "delivered", delivered, None, f"SM{a}"), CarrierStatus(b, "sent", sent, None, f"SM{b}"),
    ])
    # Out of order across batches: delivered, then a late 'sent' that changes nothing.
    d = ids[3]
    await outbound.apply_statuses(pool, [CarrierStatus(d, "delivered", delivered, None, None)])
    await outbound.apply_statuses(pool, [CarrierStatus(d, "sent", sent, 30001, None)])

    assert await _steps(pool, a) == [
        ("sending", 0, None, None, None, DID, True),
        ("claimed", 0, None, 20429, None, None, True),  # the retryable failure
        ("sending", 0, None, None, None, None, True),  # again (same DID: unchanged)
        ("sent", 4, "queued", None, None, None, True),
        ("sent", 4, "sent", None, None, None, False),  # lower than delivered in the same batch: noted, not applied
        ("delivered", 1, "delivered", None, None, None, True),
    ]
    assert await _steps(pool, b) == [
        ("sending", 0, None, None, None, DID, True), ("sent", 4, "queued", None, None, None, True),
        ("sent", 4, "sent", None, None, None, False), ("delivered", 1, "delivered", None, None, None, True),
    ]
    assert await _steps(pool, c) == [("sending", 0, None, None, None, DID, True),
                                     ("failed", 2, None, 21211, None, None, True)]
    assert await _steps(pool, d) == [
        ("sending", 0, None, None, None, DID, True), ("sent", 4, "queued", None, None, None, True),
        ("delivered", 1, "delivered", None, None, None, True), ("delivered", 1, "sent", 30001, None, None, False),
    ]
    # Every other message: sending, then the carrier's answer; nothing for the claims, deferrals and heartbeats.
    counts = await pool.fetch("SELECT message_id, count(*)::int AS n FROM engine_message_event GROUP BY message_id")
    assert {r["message_id"]: r["n"] for r in counts if r["message_id"] not in (a, b, c, d)} == {
        i: 2 for i in ids[4:]}
    detail = await message_detail(pool, d)
    assert detail is not None
    assert [e.as_json()["event"] for e in detail.timeline] == ["created", "engine", "carrier", "carrier", "callback"]
    assert [e.at for e in detail.timeline] == sorted(e.at for e in detail.timeline)


async def test_refusals_record_their_reason_and_deleting_a_message_drops_its_timeline(pool: asyncpg.Pool) -> None:
    app, _, ids = await _setup(pool, 3)
    await outbound.claim(pool, "w", 3, 30.0, [app])
    await outbound.mark_outcomes(pool, [Outcome(ids[0], st.SUPPRESSED, None, "duplicate", 1, "GSM-7", "duplicate")])
    assert await _steps(pool, ids[0]) == [("suppressed", 2, None, None, "duplicate", None, True)]
    # Canceling a queued message (cancel_messages' statement) is a step too.
    await pool.execute("UPDATE engine_outbound SET state = 'queued' WHERE id = $1", ids[1])
    await pool.execute("UPDATE engine_outbound SET state = 'canceled', status = 2, status_rank = 100 WHERE id = $1",
                       ids[1])
    assert [s[0] for s in await _steps(pool, ids[1])] == ["canceled"]
    await pool.execute("DELETE FROM engine_outbound WHERE id = ANY($1::bigint[])", ids[:2])
    assert await pool.fetchval("SELECT count(*) FROM engine_message_event") == 0
