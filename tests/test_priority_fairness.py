"""Priority and fairness: transactional messages and replies before bulk and marketing, and a fair share of the
pool for every job and app (README "Priority and fairness").

- the scheduler's urgent lane (pure): urgent work goes ahead of a DID's bulk, in its own order;
- the claim (real Postgres): classes in order, and the bulk class shared equally per app then per flow;
- end to end: a transactional message submitted behind a 100,000-message marketing job on the same DIDs goes
  out after only a handful of the job's messages, not after the job's 20-second horizon in memory.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from engine.store import outbound
from engine.submit import submit
from engine.throttle import Scheduler
from tests.helpers.engine import carrier, engine_running, setup_app
from tests.helpers.polling import wait_until

# ---- the scheduler's urgent lane (pure) ------------------------------------------------------------------------


def _drain(sched: Scheduler[str], start: float = 0.0) -> list[str]:
    out: list[str] = []
    now = start
    while (nxt := sched.next_due()) is not None:
        now = max(now, nxt)
        out.extend(d.payload for d in sched.pop_due(now))
    return out


@given(hs.lists(hs.tuples(hs.booleans(), hs.integers(1, 3)), min_size=1, max_size=40))
def test_urgent_work_goes_first_in_its_own_order(pushes: list[tuple[bool, int]]) -> None:
    """Pushed together, the DID sends every urgent message (in push order) before any bulk one (in push order),
    and still never faster than its limit."""
    sched: Scheduler[str] = Scheduler()
    sched.set_did(1, 1, 60)
    for i, (urgent, cost) in enumerate(pushes):
        sched.push(1, cost, f"{'u' if urgent else 'b'}{i}", 0.0, urgent=urgent)
    sent = _drain(sched)
    expected = [f"u{i}" for i, (u, _) in enumerate(pushes) if u] + [f"b{i}" for i, (u, _) in enumerate(pushes) if not u]
    assert sent == expected
    assert sched.queued_cost(1) == 0 and sched.backlog() == 0


def test_an_urgent_message_queues_behind_urgent_work_only() -> None:
    sched: Scheduler[str] = Scheduler()
    sched.set_did(1, 1, 60)
    for i in range(20):
        sched.push(1, 1, f"b{i}", 0.0)
    assert sched.project(1, 0.0) == pytest.approx(20.0)  # a bulk message would wait 20 s
    assert sched.project(1, 0.0, urgent=True) == pytest.approx(0.0)
    sched.push(1, 1, "u0", 0.0, urgent=True)
    assert sched.project(1, 0.0, urgent=True) == pytest.approx(1.0)
    assert _drain(sched)[:2] == ["u0", "b0"]


def test_disabling_a_did_returns_urgent_work_and_forgets_the_lane() -> None:
    sched: Scheduler[str] = Scheduler()
    sched.set_did(1, 1, 60)
    sched.push(1, 1, "b0", 0.0)
    sched.push(1, 2, "u0", 0.0, urgent=True)
    assert [p for _, p in sched.disable_did(1)] == ["u0", "b0"]
    sched.set_did(1, 1, 60)
    sched.push(1, 1, "b1", 0.0)
    sched.push(1, 1, "u1", 0.0, urgent=True)
    assert _drain(sched) == ["u1", "b1"]


def test_a_retried_urgent_message_stays_urgent() -> None:
    sched: Scheduler[str] = Scheduler()
    sched.set_did(1, 1, 60)
    for i in range(5):
        sched.push(1, 1, f"b{i}", 0.0)
    sched.push_later(1, 1, "u0", 0.5, urgent=True)
    assert _drain(sched)[:2] == ["b0", "u0"]  # b0 went at 0.0; u0 is next once it may go again


# ---- the claim (real Postgres) ---------------------------------------------------------------------------------


async def _app(pool: asyncpg.Pool, name: str) -> int:
    return int(await pool.fetchval("INSERT INTO engine_app (name) VALUES ($1) RETURNING id", name))


async def _job(pool: asyncpg.Pool, app_id: int, rows: int, *, state: str = "running") -> int:
    job = int(await pool.fetchval(
        "INSERT INTO engine_job (app_id, source, state, total) VALUES ($1, 'api', $2, $3) RETURNING id",
        app_id, state, rows))
    await _rows(pool, app_id, rows, job_id=job)
    return job


async def _rows(pool: asyncpg.Pool, app_id: int, rows: int, *, job_id: int | None = None,
                category: str = "transactional", kind: str = "message") -> None:
    await pool.execute(
        "INSERT INTO engine_outbound (app_id, recipient, body, job_id, category, kind) "
        "SELECT $1, '+1347264' || lpad(g::text, 4, '0'), 'b' || g, $3, $4, $5 FROM generate_series(1, $2::int) g",
        app_id, rows, job_id, category, kind)


async def _claimed(pool: asyncpg.Pool, app_ids: list[int], batch: int) -> list[asyncpg.Record]:
    claimed = await outbound.claim(pool, "w1", batch, 30.0, app_ids)
    ids = [c.id for c in claimed]
    rows = await pool.fetch("SELECT id, app_id, job_id, priority FROM engine_outbound WHERE id = ANY($1)", ids)
    by_id = {r["id"]: r for r in rows}
    return [by_id[i] for i in ids]


async def test_the_claim_shares_the_bulk_class_per_app_then_per_flow(pool: asyncpg.Pool) -> None:
    a, b = await _app(pool, "a"), await _app(pool, "b")
    a1, a2 = await _job(pool, a, 1000), await _job(pool, a, 1000)
    await _rows(pool, a, 1000, category="marketing")  # app a's own marketing: a third flow of a
    b1 = await _job(pool, b, 1000)
    await _job(pool, b, 1000, state="paused")  # never claimed while paused
    got = await _claimed(pool, [a, b], 120)
    assert len(got) == 120
    per_app = Counter(r["app_id"] for r in got)
    assert per_app == {a: 60, b: 60}  # every app with bulk work an equal part …
    per_flow = Counter((r["app_id"], r["job_id"]) for r in got)
    assert per_flow == {(a, a1): 20, (a, a2): 20, (a, None): 20, (b, b1): 60}  # … split equally between its flows


async def test_the_claim_takes_replies_then_transactional_then_bulk(pool: asyncpg.Pool) -> None:
    a = await _app(pool, "a")
    await _job(pool, a, 500)
    await _rows(pool, a, 30)  # single transactional messages
    await pool.execute("SELECT set_config('engine.compliance', 'on', false)")
    await _rows(pool, a, 10, kind="reply")
    got = await _claimed(pool, [a], 50)
    assert [r["priority"] for r in got] == [0] * 10 + [1] * 30 + [2] * 10
    # and the next claim goes on with the job where it stopped
    got = await _claimed(pool, [a], 50)
    assert [r["priority"] for r in got] == [2] * 50


async def test_a_large_job_does_not_starve_a_small_one(pool: asyncpg.Pool) -> None:
    """Claim after claim, a 200-message job started after a 5,000-message one gets half of every batch until it is
    done (rows ordered by due time would have sent the whole large job first)."""
    a = await _app(pool, "a")
    big = await _job(pool, a, 5000)
    small = await _job(pool, a, 200)
    taken: Counter[int | None] = Counter()
    for _ in range(4):
        taken.update(r["job_id"] for r in await _claimed(pool, [a], 100))
    assert taken == {big: 200, small: 200}
    got = await _claimed(pool, [a], 100)
    assert Counter(r["job_id"] for r in got) == {big: 100}  # the small one is done: the large one takes it all


async def test_an_idle_claim_waits_for_its_apps_next_row_only(pool: asyncpg.Pool) -> None:
    a, b = await _app(pool, "a"), await _app(pool, "b")
    assert await outbound.next_due(pool, [a]) is None
    await pool.execute("INSERT INTO engine_outbound (app_id, recipient, body, due_at) "
                       "VALUES ($1, '+13472643707', 'x', now() + interval '1 hour'), "
                       "($2, '+13472643707', 'y', now() + interval '1 minute')", a, b)
    paused = await _job(pool, a, 3, state="paused")
    await pool.execute("UPDATE engine_outbound SET due_at = 'infinity' WHERE job_id = $1", paused)
    nxt = await outbound.next_due(pool, [a])
    assert nxt is not None and 3500 < nxt <= 3600
    nxt = await outbound.next_due(pool, [a, b])
    assert nxt is not None and 0 < nxt <= 60


# ---- end to end ------------------------------------------------------------------------------------------------


@pytest.mark.system
async def test_a_transactional_message_overtakes_a_100k_marketing_job(pool: asyncpg.Pool, db_dsn: str) -> None:
    """Two DIDs at 10/s each; a 100,000-message marketing job fills their 20-second horizon in memory. A
    transactional message submitted then reaches the carrier after at most a few of the job's messages (it
    waited for neither the job's queued rows nor the bulk already placed on its DID)."""
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", name="lib", dids=2, limit_per_min=600)
        app_id = await pool.fetchval("SELECT id FROM engine_app WHERE name = 'lib'")
        # Priority, not quiet hours, is under test: at night in New York (tests run at any hour) the job would wait.
        await pool.execute("UPDATE engine_app SET quiet_hours = false WHERE id = $1", app_id)
        job = int(await pool.fetchval(
            "INSERT INTO engine_job (app_id, source, category, total) VALUES ($1, 'api', 'marketing', 100000) "
            "RETURNING id", app_id))
        # subscribers (marketing goes only to them), spread over many phones
        await pool.execute("INSERT INTO engine_subscription (app_id, phone, source) "
                           "SELECT $1, '+1347' || lpad(g::text, 7, '0'), 'api' FROM generate_series(1, 1000) g", app_id)
        await pool.execute(
            "INSERT INTO engine_outbound (app_id, recipient, body, job_id, category) "
            "SELECT $1, '+1347' || lpad((g % 1000 + 1)::text, 7, '0'), 'Sale ' || g, $2, 'marketing' "
            "FROM generate_series(1, 100000) g", app_id, job)
        async with engine_running(db_dsn, serve=False):
            # the job's first 20 seconds are in the DIDs' queues once ~20 messages went out
            await wait_until(lambda: len(fake.records) >= 20, timeout=60)
            await asyncio.sleep(0.5)
            message_id = await submit(pool, "lib", "+12125550123", "Your hold is ready")
            await wait_until(lambda: any(r.to == "+12125550123" for r in fake.records), timeout=60)
            records = list(fake.records)
        position = next(i for i, r in enumerate(records) if r.to == "+12125550123")
        before = position - 20
        # Placed behind the job's bulk it would wait ~20 s x 20/s = 400 sends; it went after a few (the ones sent
        # while it was submitted and claimed).
        assert before < 100, f"{before} of the job's messages went first"
        state = await pool.fetchval("SELECT state FROM engine_outbound WHERE id = $1", message_id)
        assert state in ("sent", "delivered")
        remaining = await pool.fetchval(
            "SELECT count(*) FROM engine_outbound WHERE job_id = $1 AND state = 'queued'", job)
        assert remaining > 90_000  # the job was still there: it was overtaken, not finished
