"""Jobs in the database: COPY in one transaction, pause/resume/cancel on the rows, the requeue trigger (migration
0012), finishing, the counts job_status reads. Real PostgreSQL; the worker's statements are run as it runs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from engine.errors import Conflict, NotFound
from engine.policy.lifetime import Notification
from engine.store import jobs, leases, outbound
from engine.store.carousel import app_by_name
from tests.helpers.engine import add_fake_app


async def _app(pool: asyncpg.Pool, *, single_sms: bool = False) -> int:
    app = await add_fake_app(pool, "http://127.0.0.1:9", name="lib", numbers=["+16462000000", "+16462000001"],
                             limit_per_min=120)
    if single_sms:
        await pool.execute("UPDATE engine_provider SET single_sms = true WHERE id = $1", app.provider_id)
    return app.app_id


def _messages(n: int) -> list[jobs.JobMessage]:
    return [jobs.JobMessage(f"+1718200{i:04d}", (f"Hi {i}",)) for i in range(n)]


async def _states(pool: asyncpg.Pool, job_id: int) -> dict[str, int]:
    rows = await pool.fetch("SELECT state, count(*)::int AS n FROM engine_outbound WHERE job_id = $1 GROUP BY 1",
                            job_id)
    return {r["state"]: r["n"] for r in rows}


async def test_create_job_copies_every_message_with_the_jobs_fields(pool: asyncpg.Pool) -> None:
    app_id = await _app(pool)
    on = datetime.now(UTC) + timedelta(hours=1)
    expires = on + timedelta(hours=2)
    spec = jobs.JobSpec("csv", "members.csv", "Hi {{name}}", "holds", on,
                        Notification("reminder", "marketing", expires))
    created = await jobs.create_job(pool, app_id, spec, _messages(300))
    assert created.messages == 300
    job = await jobs.get_job(pool, created.id)
    assert (job.source, job.name, job.template, job.type, job.category, job.tag, job.state, job.total) == (
        "csv", "members.csv", "Hi {{name}}", "reminder", "marketing", "holds", "running", 300)
    rows = await pool.fetch("SELECT * FROM engine_outbound WHERE job_id = $1 ORDER BY id", created.id)
    assert [r["recipient"] for r in rows] == [m.recipient for m in _messages(300)]  # in file order
    assert [r["body"] for r in rows] == [f"Hi {i}" for i in range(300)]
    for r in rows[:3]:
        assert (r["app_id"], r["tag"], r["type"], r["category"], r["state"], r["status"]) == (
            app_id, "holds", "reminder", "marketing", "queued", 0)
        assert r["send_at"] == on and r["due_at"] == on and r["expires_at"] == expires
        assert r["priority"] == 2  # bulk: behind single transactional messages


async def test_split_parts_point_at_their_first_part(pool: asyncpg.Pool) -> None:
    app_id = await _app(pool, single_sms=True)
    messages = [jobs.JobMessage("+17182000001", ("(1/2) a", "(2/2) b")), jobs.JobMessage("+17182000002", ("c",)),
                jobs.JobMessage("+17182000003", ("(1/3) d", "(2/3) e", "(3/3) f"))]
    created = await jobs.create_job(pool, app_id, jobs.JobSpec("api"), messages)
    assert created.messages == 6 and (await jobs.get_job(pool, created.id)).total == 6
    rows = await pool.fetch("SELECT id, body, part_of FROM engine_outbound WHERE job_id = $1 ORDER BY id", created.id)
    ids = [r["id"] for r in rows]
    assert [r["body"] for r in rows] == ["(1/2) a", "(2/2) b", "c", "(1/3) d", "(2/3) e", "(3/3) f"]
    assert [r["part_of"] for r in rows] == [None, ids[0], None, None, ids[3], ids[3]]


async def test_a_job_is_all_its_messages_or_nothing(pool: asyncpg.Pool) -> None:
    app_id = await _app(pool)
    bad = [*_messages(50), jobs.JobMessage("not a number", ("x",))]  # the table's check refuses the last row
    with pytest.raises(asyncpg.CheckViolationError):
        await jobs.create_job(pool, app_id, jobs.JobSpec("csv", "x.csv"), bad)
    assert await pool.fetchval("SELECT count(*) FROM engine_job") == 0
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound") == 0


async def test_an_empty_job_is_done_at_once(pool: asyncpg.Pool) -> None:
    app_id = await _app(pool)
    created = await jobs.create_job(pool, app_id, jobs.JobSpec("api"), [])
    job = await jobs.get_job(pool, created.id)
    assert job.state == "done" and job.finished_at is not None and job.total == 0


async def test_pause_resume_cancel_move_the_queued_rows(pool: asyncpg.Pool, db_dsn: str) -> None:
    app_id = await _app(pool)
    created = await jobs.create_job(pool, app_id, jobs.JobSpec("csv"), _messages(20))
    # Five are already with a worker: pausing leaves them alone.
    await pool.execute("UPDATE engine_outbound SET state = 'claimed', claimed_by = 'w1', "
                       "lease_until = now() + interval '1 min' WHERE id IN (SELECT id FROM engine_outbound "
                       "WHERE job_id = $1 ORDER BY id LIMIT 5)", created.id)
    job, paused = await jobs.pause_job(pool, created.id, app_id)
    assert (job.state, paused) == ("paused", 15)
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE job_id = $1 AND state = 'queued' "
                               "AND due_at = 'infinity'", created.id) == 15
    assert await outbound.next_due(pool, [app_id]) is None  # nothing due: an idle worker sleeps (and does not fail)
    assert await outbound.claim(pool, "w2", 100, 30.0, [app_id]) == []  # nothing to claim
    assert (await jobs.pause_job(pool, created.id))[1] == 0  # pausing again changes nothing

    listen = await asyncpg.connect(db_dsn)
    woken: list[str] = []
    await listen.add_listener("engine_outbound", lambda *a: woken.append(a[2]))
    try:
        job, resumed = await jobs.resume_job(pool, created.id)
        assert (job.state, resumed) == ("running", 15)
        assert await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE job_id = $1 AND state = 'queued' "
                                   "AND due_at <= now()", created.id) == 15
        await listen.execute("SELECT 1")  # notifications are delivered between statements
        assert woken  # idle workers are woken like for new rows
    finally:
        await listen.close()
    assert (await jobs.resume_job(pool, created.id))[1] == 0  # resuming a running job changes nothing
    done = await jobs.create_job(pool, app_id, jobs.JobSpec("api"), [])
    with pytest.raises(Conflict, match="is done: only a paused job can be resumed"):
        await jobs.resume_job(pool, done.id)

    job, canceled = await jobs.cancel_job(pool, created.id, app_id)
    assert (job.state, canceled) == ("canceled", 15)
    rows = await pool.fetch("SELECT state, status, status_rank, final_at FROM engine_outbound WHERE job_id = $1 "
                            "AND state = 'canceled'", created.id)
    assert len(rows) == 15 and all(r["status"] == 2 and r["status_rank"] == 100 and r["final_at"] for r in rows)
    assert await _states(pool, created.id) == {"claimed": 5, "canceled": 15}
    with pytest.raises(Conflict, match="canceled"):
        await jobs.resume_job(pool, created.id)
    assert job.finished_at is None  # five are still with the worker
    await pool.execute("UPDATE engine_outbound SET state = 'delivered', status = 1, status_rank = 100 "
                       "WHERE job_id = $1 AND state = 'claimed'", created.id)
    assert await jobs.finish_jobs(pool) == [created.id]
    job = await jobs.get_job(pool, created.id)
    assert job.state == "canceled" and job.finished_at is not None


async def test_another_apps_job_is_not_found(pool: asyncpg.Pool) -> None:
    app_id = await _app(pool)
    other = await add_fake_app(pool, "http://127.0.0.1:9", name="other")
    created = await jobs.create_job(pool, app_id, jobs.JobSpec("api"), _messages(3))
    for call in (jobs.pause_job, jobs.resume_job, jobs.cancel_job):
        with pytest.raises(NotFound, match="for this application"):
            await call(pool, created.id, other.app_id)
    with pytest.raises(NotFound):
        await jobs.job_snapshot(pool, created.id, other.app_id)
    assert await _states(pool, created.id) == {"queued": 3}


async def test_requeued_messages_follow_their_jobs_state(pool: asyncpg.Pool) -> None:
    """A message a worker hands back (deferred for its DID's turn, or released) after its job was paused waits
    with the others; after it was canceled, it is canceled (migration 0012)."""
    app_id = await _app(pool)
    paused = await jobs.create_job(pool, app_id, jobs.JobSpec("csv"), _messages(4))
    canceled = await jobs.create_job(pool, app_id, jobs.JobSpec("csv"), _messages(4))
    running = await jobs.create_job(pool, app_id, jobs.JobSpec("csv"), _messages(4))
    # A worker claimed them all (as the claim does: state, owner, lease).
    await pool.execute("UPDATE engine_outbound SET state = 'claimed', claimed_by = 'w1', "
                       "lease_until = now() + interval '1 min'")
    await jobs.pause_job(pool, paused.id)
    await jobs.cancel_job(pool, canceled.id)
    by_job = {r["id"]: r["job_id"] for r in await pool.fetch("SELECT id, job_id FROM engine_outbound")}
    ids = sorted(by_job)
    await outbound.defer(pool, "w1", ids[::2], [0.0] * len(ids[::2]))  # the DID's turn is far: back to the queue
    await leases.requeue_claimed(pool, "w1", ids[1::2], 0.0)  # the worker lost the DID
    rows = await pool.fetch("SELECT id, state, status, due_at = 'infinity' AS waits, due_at <= now() AS due "
                            "FROM engine_outbound")
    for r in rows:
        job_id = by_job[r["id"]]
        if job_id == paused.id:
            assert (r["state"], r["waits"]) == ("queued", True)
        elif job_id == canceled.id:
            assert (r["state"], r["status"]) == ("canceled", 2)
        else:
            assert (r["state"], r["due"]) == ("queued", True)
    assert await outbound.next_due(pool, [app_id]) is not None  # the running job's are due
    assert {c.id for c in await outbound.claim(pool, "w2", 100, 30.0, [app_id])} == {
        i for i, j in by_job.items() if j == running.id}


async def test_snapshot_counts_and_finishes(pool: asyncpg.Pool) -> None:
    app_id = await _app(pool)
    app = await app_by_name(pool, "lib")
    assert app.id == app_id
    created = await jobs.create_job(pool, app_id, jobs.JobSpec("api"), _messages(10))
    await pool.execute("""UPDATE engine_outbound SET state = 'delivered', status = 1, status_rank = 100,
                              sending_at = now(), final_at = now()
                          WHERE id IN (SELECT id FROM engine_outbound WHERE job_id = $1 ORDER BY id LIMIT 6)""",
                       created.id)
    snap = await jobs.job_snapshot(pool, created.id, app_id)
    assert snap.by_state == {"delivered": 6, "queued": 4} and snap.recent_sends == 6
    assert snap.capacity_per_s == pytest.approx(4.0)  # two DIDs at 120/min
    assert snap.job.finished_at is None
    await pool.execute("UPDATE engine_outbound SET state = 'failed', status = 2, status_rank = 100 "
                       "WHERE job_id = $1 AND state = 'queued'", created.id)
    snap = await jobs.job_snapshot(pool, created.id)
    assert snap.job.state == "done" and snap.job.finished_at is not None  # marked when read
    listed = await jobs.list_jobs(pool, app_id)
    assert [(j.id, j.state, j.open) for j in listed] == [(created.id, "done", 0)]
