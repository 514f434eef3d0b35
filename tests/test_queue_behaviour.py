"""Queue mechanics: no head-of-line blocking, lease recovery, scheduled sends, schema and index use."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from db.migrate import load_migrations, migrate
from engine.store import lease_queries as lq
from engine.store import queries as q
from engine.submit import Outgoing, submit, submit_many
from tests.helpers.database import wait_final, with_database
from tests.helpers.engine import carrier, engine_running, setup_app
from tests.helpers.polling import wait_until


async def test_sticky_backlog_does_not_block_other_dids(pool: asyncpg.Pool, db_dsn: str) -> None:
    """A 30-message conversation on one DID (30 s at 60/min) must not delay other recipients: they all go out
    while the conversation is still in its first half (12 messages over the 4 free DIDs at 1/s take ~3 s).
    Both are paced by the same real clock, so a busy machine does not change that order."""
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=5, limit_per_min=60)
        thread = [Outgoing("+13472643707", f"thread {i:02d}", tag="long") for i in range(30)]
        others = [Outgoing(f"+1718200{i:04d}", f"other {i}") for i in range(12)]
        await submit_many(pool, "lib", thread + others)
        async with engine_running(db_dsn, horizon_seconds=3.0, batch_size=10):
            await wait_until(lambda: sum(r.body.startswith("other") for r in fake.records) >= len(others),
                             timeout=60, what="the untagged messages (held behind the conversation?)")
            thread_sent = [r for r in fake.records if r.body.startswith("thread")]
            assert len(thread_sent) < len(thread) // 2
            assert len({r.from_ for r in thread_sent}) == 1
            # Deferred parts of the conversation keep their order.
            assert [r.body for r in thread_sent] == sorted(r.body for r in thread_sent)
        deferred = await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE defers > 0")
        assert deferred > 0  # the backlog beyond the horizon waited in the database, not in memory


async def test_expired_claims_are_recovered_and_sent(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=2, limit_per_min=6000)
        ids = await submit_many(pool, "lib", [Outgoing(f"+1718200{i:04d}", f"m{i}") for i in range(5)])
        # A worker that died after claiming (lease already expired) and one that died mid-send.
        await pool.execute("UPDATE engine_outbound SET state = 'claimed', claimed_by = 'dead', "
                           "lease_until = now() - interval '1 s' WHERE id = ANY($1::bigint[])", ids[:4])
        await pool.execute("UPDATE engine_outbound SET state = 'sending', claimed_by = 'dead', attempts = 1, "
                           "lease_until = now() - interval '1 s' WHERE id = $1", ids[4])
        async with engine_running(db_dsn):
            counts = await wait_final(pool, 5)
        assert counts == {"delivered": 4, "unknown": 1}  # at-most-once: a maybe-sent message is not resent
        assert sorted(r.body for r in fake.records) == ["m0", "m1", "m2", "m3"]


async def test_scheduled_message_waits_until_due(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=1, limit_per_min=6000)
        on = datetime.now(UTC) + timedelta(seconds=1.5)
        later = await submit(pool, "lib", "+13472643707", "later", on=on)
        await submit(pool, "lib", "+13472643708", "now")
        async with engine_running(db_dsn):
            await wait_final(pool, 2, timeout=20)
        sent = {r.body: r.t for r in fake.records}
        assert sent["later"] >= on.timestamp() - 0.05
        row = await pool.fetchrow("SELECT send_at, state FROM engine_outbound WHERE id = $1", later)
        assert row["state"] == "delivered" and row["send_at"] == on


async def test_sql_submit_function_and_plain_insert(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO engine_app (name) VALUES ('sqlapp')")
    mid = await pool.fetchval("SELECT engine_submit('sqlapp', '+1 (347) 264-3707', 'hello', 'tag1')")
    row = await pool.fetchrow("SELECT recipient, tag, state FROM engine_outbound WHERE id = $1", mid)
    assert tuple(row) == ("+13472643707", "tag1", "queued")
    with pytest.raises(asyncpg.InvalidParameterValueError):
        await pool.fetchval("SELECT engine_submit('sqlapp', 'not a number', 'x')")
    with pytest.raises(asyncpg.NoDataFoundError):
        await pool.fetchval("SELECT engine_submit('nope', '+13472643707', 'x')")
    future = datetime.now(UTC) + timedelta(hours=1)
    iid = await pool.fetchval(
        "INSERT INTO engine_outbound (app_id, recipient, body, send_at) "
        "SELECT id, '+13472643707', 'later', $1 FROM engine_app WHERE name = 'sqlapp' RETURNING id", future)
    assert await pool.fetchval("SELECT due_at FROM engine_outbound WHERE id = $1", iid) == future
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body) "
                           "SELECT id, '347-264-3707', 'x' FROM engine_app WHERE name = 'sqlapp'")


async def _notifications(db_dsn: str, channel: str, act: Callable[[], Awaitable[object]]) -> list[str]:
    """The notifications *channel* got for what *act* committed. A marker sent after *act* arrives after them
    (PostgreSQL delivers notifications in commit order), so once the marker is in, all of them are."""
    got: list[tuple[str, str]] = []
    conn = await asyncpg.connect(db_dsn)
    try:
        await conn.add_listener(channel, lambda *a: got.append((a[2], a[3])))
        await act()
        await conn.execute("SELECT pg_notify($1, 'test-marker')", channel)
        await wait_until(lambda: (channel, "test-marker") in got, what="the marker notification")
    finally:
        await conn.close()
    return [name for name, _ in got[: got.index((channel, "test-marker"))]]


async def test_insert_notifies_listeners_once_per_statement(pool: asyncpg.Pool, db_dsn: str) -> None:
    await pool.execute("INSERT INTO engine_app (name) VALUES ('n')")

    async def inserts() -> None:
        # Nothing inserted, nothing to wake anyone for (statement triggers fire on zero rows too).
        await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body) "
                           "SELECT id, '+13472643707', 'none' FROM engine_app WHERE false")
        await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body) "
                           "SELECT id, '+13472643707', 'b' || g FROM engine_app, generate_series(1, 50) g")

    assert await _notifications(db_dsn, "engine_outbound", inserts) == ["engine_outbound"]


async def test_outbox_insert_notifies_only_when_it_inserted_rows(pool: asyncpg.Pool, db_dsn: str) -> None:
    """Every status batch runs an INSERT … SELECT into engine_outbox; with no gateway it inserts nothing and must
    not wake the deliverer."""
    app_id = await pool.fetchval("INSERT INTO engine_app (name) VALUES ('ob') RETURNING id")
    insert = ("INSERT INTO engine_outbox (app_id, type, payload) "
              "SELECT $1, 'delivery_report', '{}'::jsonb FROM generate_series(1, $2)")
    assert await _notifications(db_dsn, "engine_outbox", lambda: pool.execute(insert, app_id, 0)) == []
    assert await _notifications(db_dsn, "engine_outbox", lambda: pool.execute(insert, app_id, 3)) == ["engine_outbox"]


async def test_migrations_apply_once_and_record_versions(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        assert await migrate(conn) == []  # template already migrated: nothing to do
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM engine_schema_migrations")]
        assert versions == [m.version for m in load_migrations()]
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = {r["tablename"] for r in rows}
        assert {"engine_app", "engine_provider", "engine_smsc", "engine_did", "engine_outbound",
                "engine_tag_did", "engine_schema_migrations"} <= tables
    finally:
        await conn.close()


async def test_concurrent_migrations_serialise(server_dsn: str) -> None:
    """Several processes starting at once: the advisory lock lets exactly one apply each file."""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute("DROP DATABASE IF EXISTS engine_mig_race")
        await admin.execute("CREATE DATABASE engine_mig_race")
    finally:
        await admin.close()
    dsn = with_database(server_dsn, "engine_mig_race")
    conns = [await asyncpg.connect(dsn) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(len(r) for r in results) == [0, 0, 0, len(load_migrations())]
    finally:
        for c in conns:
            await c.close()


async def test_claim_and_status_queries_use_their_indexes(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO engine_app (name) VALUES ('x')")
    await pool.execute("INSERT INTO engine_job (app_id, source) SELECT id, 'csv' FROM engine_app")
    await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body, state, job_id) "
                       "SELECT a.id, '+13472643707', 'b' || g, "
                       "CASE WHEN g % 50 = 0 THEN 'queued' ELSE 'delivered' END, "
                       "CASE WHEN g % 3 = 0 THEN j.id END FROM engine_app a JOIN engine_job j ON j.app_id = a.id, "
                       "generate_series(1, 20000) g")
    await pool.execute("ANALYZE engine_outbound")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + q.CLAIM, "w", 10, 30.0, [1]))
        # each flow from its own partial index: the app's messages by class, the job's by job
        assert "engine_outbound_due_app" in plan and "engine_outbound_due_job" in plan, plan
        assert "engine_job_running" in plan or "engine_job_app" in plan, plan
        plan = "\n".join(r[0] for r in await conn.fetch(
            "EXPLAIN " + q.APPLY_STATUSES, '[[1, "delivered", 1, 100, "delivered", null, "SM1", "+16462000001"]]'))
        assert "engine_outbound_pkey" in plan


@pytest.mark.parametrize(("rows", "analyzed"), [(20000, True), (20000, False), (60, False), (60, True)])
async def test_generic_plans_of_the_hot_queries_never_scan_history(
    pool: asyncpg.Pool, rows: int, analyzed: bool
) -> None:
    """PostgreSQL switches a prepared statement to its generic plan (parameters unknown) after a few executions,
    and keeps it. Those plans must touch only queued rows (claim) or the given ids (status writes), never the
    table's history: a generic claim that walked the app's whole history by the duplicate-window index, or
    hash-joined its picks against a scan of the table, made claims O(history) (seen as 10x Postgres CPU)."""
    await pool.execute("INSERT INTO engine_app (name) VALUES ('g')")
    await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body, state) "
                       "SELECT id, '+1347264' || lpad((g % 10000)::text, 4, '0'), 'b' || g, "
                       "CASE WHEN g % 50 = 0 THEN 'queued' ELSE 'delivered' END "
                       "FROM engine_app, generate_series(1, $1::int) g", rows)
    if analyzed:
        await pool.execute("ANALYZE engine_outbound")
    statements = {
        "CLAIM": (q.CLAIM, ("w", 500, 30.0, [1])),
        "NEXT_DUE": (q.NEXT_DUE, ([1],)),
        "MARK_SENDING": (q.MARK_SENDING, ('[[1, 1, "+1", 1, "GSM-7", null], [2, 1, "+1", 1, "GSM-7", 1e9]]', "w",
                                          30.0, datetime.now(UTC))),
        "MARK_ACCEPTED": (q.MARK_ACCEPTED, ('[[1, "SM1", "queued"], [2, "SM2", "queued"]]',)),
        "APPLY_STATUSES": (q.APPLY_STATUSES,
                           ('[[1, "delivered", 1, 100, "delivered", null, "SM1", "+16462000001"]]',)),
        "ADMISSION_FACTS": (q.ADMISSION_FACTS, ([1, 2], ["b1", None], [60.0, 0.0])),
    }
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for name, (sql, args) in statements.items():
            stmt = await conn.prepare("EXPLAIN " + sql)
            plan = "\n".join(r[0] for r in await stmt.fetch(*args))
            if rows > 1000:
                # (A one-page table is read whole by any plan; a plan cached then is replaced once autovacuum
                # updates the growing table's statistics, which invalidates cached plans.)
                assert "Seq Scan on engine_outbound" not in plan, f"{name}:\n{plan}"
            if name != "CLAIM":  # rows by id: never a range of a state index, full of dead entries under churn
                assert "engine_outbound_open" not in plan and "engine_outbound_leased" not in plan, f"{name}:\n{plan}"
            if name in ("CLAIM", "NEXT_DUE"):
                # each flow from its own partial index (never the state index, a join over every queued row)
                assert "engine_outbound_dedup" not in plan and "engine_outbound_open" not in plan, plan
                if rows > 1000:
                    assert "engine_outbound_due_app" in plan and "engine_outbound_due_job" in plan, plan


async def test_counts_by_state_query(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO engine_app (name) VALUES ('c')")
    app_id = await pool.fetchval("SELECT id FROM engine_app")
    await submit_many(pool, "c", [Outgoing("+13472643707", f"{i}") for i in range(3)])
    rows = await pool.fetch(q.COUNT_BY_STATE, app_id)
    assert Counter({r["state"]: r["n"] for r in rows}) == Counter({"queued": 3})


async def test_requeue_expired_takes_only_the_state_it_is_given(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO engine_app (name) VALUES ('r')")
    ids = {}
    for state, lease in [("claimed", -5), ("sending", -5), ("claimed", 60), ("sending", 60)]:
        ids[state, lease] = await pool.fetchval(
            "INSERT INTO engine_outbound (app_id, recipient, body, state, claimed_by, lease_until) "
            "SELECT id, '+13472643707', $1, $2, 'gone', now() + make_interval(secs => $3) FROM engine_app "
            "RETURNING id", f"{state}{lease}", state, float(lease))

    async def states() -> dict[tuple[str, int], str]:
        got = {r["id"]: r["state"] for r in await pool.fetch("SELECT id, state FROM engine_outbound")}
        return {k: got[v] for k, v in ids.items()}

    assert await pool.execute(lq.REQUEUE_EXPIRED, "claimed") == "UPDATE 1"
    assert (await states())[("claimed", -5)] == "queued" and (await states())[("sending", -5)] == "sending"
    assert await pool.execute(lq.REQUEUE_EXPIRED, "sending") == "UPDATE 1"
    assert await states() == {("claimed", -5): "queued", ("sending", -5): "queued",
                              ("claimed", 60): "claimed", ("sending", 60): "sending"}


async def test_generic_plan_of_lease_recovery_uses_the_lease_index(pool: asyncpg.Pool) -> None:
    """REQUEUE_EXPIRED takes its state as a parameter; its literal IN list keeps the partial index usable
    by the generic plan, so the recovery every few seconds never reads the table's history."""
    await pool.execute("INSERT INTO engine_app (name) VALUES ('g')")
    await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body, state) "
                       "SELECT id, '+13472643707', 'b' || g, 'delivered' FROM engine_app, generate_series(1, 5000) g")
    await pool.execute("ANALYZE engine_outbound")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute("PREPARE recover(text) AS " + lq.REQUEUE_EXPIRED)
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN EXECUTE recover('claimed')"))
        await conn.execute("DEALLOCATE recover")
    assert "$1" in plan, plan  # really the generic plan
    assert "Seq Scan on engine_outbound" not in plan, plan


async def test_the_send_paths_pool_always_uses_generic_plans_and_the_main_pool_does_not(
    pool: asyncpg.Pool, db_dsn: str
) -> None:
    """The claim, admission facts and status writes run on a pool of their own whose sessions force generic plans
    (the plans pinned above); PostgreSQL's own choice stays for every other statement."""
    from engine.store.database import Database

    async def plan(p: asyncpg.Pool) -> str:
        async with p.acquire() as conn:
            await conn.execute("PREPARE by_id(bigint) AS SELECT id FROM engine_outbound WHERE id = $1")
            try:
                return "\n".join(r[0] for r in await conn.fetch("EXPLAIN EXECUTE by_id(1)"))
            finally:
                await conn.execute("DEALLOCATE by_id")

    hot = await Database(pool, db_dsn, None).hot_pool()
    try:
        assert await hot.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        assert "$1" in await plan(hot)  # the generic plan from the first execution on
    finally:
        await hot.close()
    assert await pool.fetchval("SHOW plan_cache_mode") == "auto"
    assert "$1" not in await plan(pool)  # a custom plan, as PostgreSQL chooses for its first executions
