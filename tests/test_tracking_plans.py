"""Plan tests of the tracking queries: every filter combination the list supports is served by an index (never a
scan of the table's history), and the detail, timeline and resend lookups go by their keys, also in the generic
plans prepared statements end up with. (Speed on 10 million messages is measured in benchmarks/bench_tracking.)"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from engine.store import carousel_queries as cq
from engine.store import queries as q
from engine.store import tracking_queries as tq
from engine.store.tracking import STATES_BY_STATUS, MessageFilter, list_messages

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ROWS = 40_000

_FILL = """
INSERT INTO engine_outbound (app_id, recipient, body, tag, type, job_id, state, status, status_rank, created_at)
SELECT CASE WHEN g % 20 = 0 THEN $2::bigint ELSE $1::bigint END,
       '+1212' || (5000000 + (g * 7919) % 5000)::text, 'm' || g,
       CASE WHEN g % 5 = 0 THEN 't' || (g * 31) % 2000 END,
       CASE WHEN g % 500 = 1 THEN 'rare' WHEN g % 10 < 3 THEN 'reminder' WHEN g % 10 < 5 THEN 'registration' END,
       CASE WHEN g BETWEEN 10001 AND 20000 AND g % 20 <> 0 THEN ($3::bigint[])[1 + (g - 10001) / 2500] END,
       s.state, CASE s.state WHEN 'delivered' THEN 1 WHEN 'sent' THEN 4 WHEN 'queued' THEN 0 ELSE 2 END,
       CASE s.state WHEN 'sent' THEN 30 WHEN 'queued' THEN 0 ELSE 100 END,
       $4::timestamptz - make_interval(secs => ($5 - g) * 60.0)
FROM generate_series(1, $5::int) AS g
CROSS JOIN LATERAL (SELECT CASE WHEN g % 97 = 0 THEN 'failed' WHEN g % 89 = 0 THEN 'undelivered'
                                WHEN g % 37 = 0 THEN 'sent' WHEN g % 41 = 0 THEN 'queued' ELSE 'delivered' END
                           AS state) AS s
"""

async def _fill(pool: asyncpg.Pool) -> dict[str, object]:
    apps = [await pool.fetchval("INSERT INTO engine_app (name) VALUES ($1) RETURNING id", n) for n in ("a", "b")]
    jobs = [await pool.fetchval("INSERT INTO engine_job (app_id, source) VALUES ($1, 'csv') RETURNING id", apps[0])
            for _ in range(4)]
    await pool.execute(_FILL, apps[0], apps[1], jobs, NOW, ROWS)
    await pool.execute("VACUUM ANALYZE engine_outbound")
    phone = await pool.fetchval("SELECT recipient FROM engine_outbound WHERE app_id = $1 LIMIT 1", apps[0])
    middle = await pool.fetchrow("SELECT created_at, id FROM engine_outbound WHERE app_id = $1 ORDER BY id "
                                 "OFFSET $2 LIMIT 1", apps[0], ROWS // 3)
    return {
        "apps": [apps[0]], "phone": phone, "type": "rare", "tag": "t62", "job_id": jobs[1],
        # A wide range (four fifths of the history): the time filter alone is not what narrows the list.
        "since": NOW - timedelta(minutes=ROWS * 0.9), "until": NOW - timedelta(minutes=ROWS * 0.1),
        "cursor_at": middle["created_at"], "cursor_id": middle["id"],
    }


FILTERS = ("phone", "type_", "tag", "job", "since", "until", "cursor")
STATUSES = {"any": (), "failed": STATES_BY_STATUS[2], "delivered": ("delivered",), "pending": STATES_BY_STATUS[0]}


@pytest.mark.parametrize("plans", ["force_custom_plan", "force_generic_plan"])
async def test_every_filter_combination_reads_its_driving_index_in_order(pool: asyncpg.Pool, plans: str) -> None:
    """Each filter set is read from the index of its most selective filter, in the list's order (an index scan, no
    sort of what it found, no bitmap, no sequential scan), whatever the planner would estimate: in the plans for
    the values (the first runs of a prepared statement) and in the generic plan PostgreSQL may keep after."""
    values = await _fill(pool)
    indexes = dict(tq.DRIVERS)
    seen: set[str] = set()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(tq.LIST_PLANNING)  # as list_messages runs it
        await conn.execute(f"SET LOCAL plan_cache_mode = {plans}")
        for on in itertools.product((False, True), repeat=len(FILTERS)):
            flags = dict(zip(FILTERS, on, strict=True))
            for status, states in STATUSES.items():
                sql, names = tq.list_messages(**flags, states=states)
                args = [values["apps"], 51, *(values[n] for n in names)]
                stmt = await conn.prepare("EXPLAIN " + sql)
                plan = "\n".join(r[0] for r in await stmt.fetch(*args))
                lead = tq.driver(phone=flags["phone"], tag=flags["tag"], job=flags["job"], type_=flags["type_"],
                                 states=states)
                where = f"{flags} status={status}, driven by {lead}:\n{plan}"
                assert f"Index Scan Backward using {indexes[lead]} on engine_outbound" in plan, where
                assert "Seq Scan" not in plan and "Bitmap" not in plan, where
                # One sort only: merging the applications' pages (the top one), never what an index scan found,
                # except the phone's index, which holds no id (equal created_at only are put in id order), and the
                # merge of a job's states' pages (at most a page per state).
                sorts = plan.count("Sort Key")
                assert sorts == 1 or (lead == "phone" and "Incremental Sort" in plan and sorts == 2) or (
                    lead == "job" and sorts == 2), where
                if lead == "job":  # a range of its index per state asked for (all, when none is), their pages merged
                    assert "Function Scan on unnest st" in plan, where
                    assert "Index Cond: ((job_id = " in plan and "(state = st.state)" in plan, where
                seen.add(lead)
    assert seen == set(indexes)
    assert tq.driver(phone=False, tag=False, job=False, type_=False, states=("failed", "delivered")) == "app"


async def test_the_store_function_runs_them(pool: asyncpg.Pool) -> None:
    """list_messages runs the statement of its filter set (every parameter in its place)."""
    values = await _fill(pool)
    apps = values["apps"]
    assert isinstance(apps, list)
    phone = await pool.fetchval("SELECT recipient FROM engine_outbound WHERE app_id = $1 AND type = 'reminder' "
                                "AND state = 'delivered' LIMIT 1", apps[0])
    flt = MessageFilter(phone=phone, states=STATES_BY_STATUS[1], type="reminder")
    page = await list_messages(pool, apps, flt, limit=500)
    expected = await pool.fetch(
        "SELECT id FROM engine_outbound WHERE app_id = $1 AND recipient = $2 AND state = 'delivered' "
        "AND type = 'reminder' ORDER BY created_at DESC, id DESC", apps[0], phone)
    assert [m.id for m in page.messages] == [r["id"] for r in expected] and expected


@pytest.mark.parametrize("analyzed", [True, False])
async def test_generic_plans_of_the_lookups_go_by_their_keys(pool: asyncpg.Pool, analyzed: bool) -> None:
    await _fill(pool)
    await pool.execute("INSERT INTO engine_message_event (message_id, state, status) "
                       "SELECT id, 'delivered', 1 FROM engine_outbound WHERE id % 4 = 0")
    if analyzed:
        await pool.execute("ANALYZE engine_message_event")
    statements = {
        "MESSAGE": (tq.MESSAGE, (5,), "engine_outbound_pkey"),
        "ORIGINAL": (tq.ORIGINAL, (5,), "engine_outbound_pkey"),
        "TIMELINE": (tq.TIMELINE, (5,), "engine_message_event_message"),
        "PARTS": (tq.PARTS, (5,), "engine_outbound_part_of"),
        "RESENDS": (tq.RESENDS, (5,), "engine_outbound_resent_from"),
    }
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for name, (sql, args, index) in statements.items():
            stmt = await conn.prepare("EXPLAIN " + sql)
            plan = "\n".join(r[0] for r in await stmt.fetch(*args))
            assert index in plan and "Seq Scan" not in plan, f"{name}:\n{plan}"


async def test_status_writes_still_go_by_primary_key(pool: asyncpg.Pool) -> None:
    """APPLY_STATUSES now also notes the callbacks that changed nothing: still no scan of the history."""
    await _fill(pool)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        stmt = await conn.prepare("EXPLAIN " + q.APPLY_STATUSES)
        plan = "\n".join(r[0] for r in await stmt.fetch(
            '[[1, "sent", 4, 30, "sent", null, "SM1", null],'
            ' [1, "delivered", 1, 100, "delivered", null, "SM1", null]]'))
    assert "Seq Scan on engine_outbound" not in plan and "engine_outbound_pkey" in plan, plan


async def test_the_timeline_trigger_never_pairs_rows_in_a_nested_loop(pool: asyncpg.Pool) -> None:
    """PL/pgSQL keeps the plan of the trigger's first call, sized for that call's transition tables: a nested loop
    planned for one row paired old and new rows in O(n²) once a statement updated thousands (a heartbeat over
    5,000 claimed messages: 9 s). The function plans without nested loops; and a statement over many rows after a
    one-row first call still records each change exactly once."""
    config = await pool.fetchval("SELECT proconfig FROM pg_proc WHERE proname = 'engine_outbound_timeline'")
    assert config == ["enable_nestloop=off"]
    await _fill(pool)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE engine_outbound SET state = 'failed' WHERE id = 1 AND state <> 'failed'")
        changed = await conn.fetchval(
            "WITH c AS (UPDATE engine_outbound SET state = CASE WHEN state = 'delivered' THEN 'failed' "
            "ELSE 'delivered' END WHERE id BETWEEN 2 AND 5001 RETURNING 1) SELECT count(*) FROM c")
    assert changed == 5000
    assert await pool.fetchval("SELECT count(*) FROM engine_message_event WHERE message_id BETWEEN 2 AND 5001") == 5000


LIST_ONLY = ("engine_outbound_app_created", "engine_outbound_app_failed", "engine_outbound_app_tag",
             "engine_outbound_app_type")


@pytest.mark.parametrize(("rows", "analyzed"), [(20000, False), (20000, True), (60, False)])
async def test_the_send_path_never_reads_the_lists_indexes(pool: asyncpg.Pool, rows: int, analyzed: bool) -> None:
    """The list's indexes are for the list. Admission's duplicate-window lookup once took the app's list index
    (app, created_at, id) over engine_outbound_dedup on a table without statistics, reading the app's whole window
    for every claimed message; "id > 0", a predicate only the list states, keeps it out of every other plan."""
    await pool.execute("INSERT INTO engine_app (name) VALUES ('g')")
    await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body, state, tag, type) "
                       "SELECT id, '+1347264' || lpad((g % 10000)::text, 4, '0'), 'b' || g, "
                       "CASE WHEN g % 50 = 0 THEN 'queued' ELSE 'delivered' END, 't' || g % 7, 'reminder' "
                       "FROM engine_app, generate_series(1, $1::int) g", rows)
    if analyzed:
        await pool.execute("ANALYZE engine_outbound")
    statements = {
        "CLAIM": (q.CLAIM, ("w", 500, 30.0, [1])),
        "ADMISSION_FACTS": (q.ADMISSION_FACTS, ([1, 2], ["b1", "b2"], [60.0, 0.0])),
        "NEXT_DUE": (q.NEXT_DUE, ([1],)),
        "MARK_SENDING": (q.MARK_SENDING, ('[[1, 1, "+1", 1, "GSM-7", null], [2, 1, "+1", 1, "GSM-7", null]]', "w",
                                          30.0, datetime.now(UTC))),
        "MARK_ACCEPTED": (q.MARK_ACCEPTED, ('[[1, "SM1", "queued"], [2, "SM2", "queued"]]',)),
        "APPLY_STATUSES": (q.APPLY_STATUSES, ('[[1, "delivered", 1, 100, "delivered", null, "SM1", null]]',)),
        "RECENT_COUNTS": (cq.RECENT_COUNTS, (1, ["+13472640001"], 3600.0)),
    }
    async with pool.acquire() as conn, conn.transaction():
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
            for name, (sql, args) in statements.items():
                stmt = await conn.prepare("EXPLAIN " + sql)
                plan = "\n".join(r[0] for r in await stmt.fetch(*args))
                assert not [i for i in LIST_ONLY if i in plan], f"{name} ({mode}):\n{plan}"
