"""Notification jobs: a bulk send's messages queued with COPY in one transaction, its progress, pause/resume/cancel.

A job ('running') has its queued messages claimed like any others. Pausing sets the job 'paused' and its queued
messages' due_at to infinity (nothing claims them, an idle worker does not wake for them); resuming sets it
'running' and makes them due again (at their send_at, or now). Canceling cancels its queued messages as
cancel_messages does. Messages a worker already claimed (in memory, placed on a DID) are not recalled: they may
still go out after a pause or a cancel. A job is finished ('done', or 'canceled' for a canceled one, with
finished_at) once none of its messages may still change (:data:`jobs_queries.FINISH_JOBS`), checked whenever its
status is read and periodically by the API server. The SQL is in :mod:`engine.store.jobs_queries`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import asyncpg

from engine.errors import Conflict, NotFound
from engine.policy.lifetime import Notification
from engine.store import jobs_queries as jq

__all__ = [
    "CreatedJob",
    "Job",
    "JobMessage",
    "JobSnapshot",
    "JobSpec",
    "cancel_job",
    "create_job",
    "finish_jobs",
    "get_job",
    "insert_job",
    "job_snapshot",
    "list_jobs",
    "pause_job",
    "resume_job",
]

RATE_WINDOW: Final = 60.0  # seconds of sends a job's rate is measured over (less while the job is younger)

_COLUMNS: Final = ["app_id", "recipient", "body", "tag", "send_at", "due_at", "job_id", "type", "category",
                   "expires_at"]


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a job is: where it came from, its label, template and what every one of its messages carries."""

    source: str  # 'csv', 'api' or 'send_messages'
    name: str | None = None
    template: str | None = None
    tag: str | None = None
    send_at: datetime | None = None  # aware; None = now
    notification: Notification = field(default_factory=Notification)


@dataclass(frozen=True, slots=True)
class JobMessage:
    """One recipient (E.164) and its body's parts (several only for a single-SMS carrier)."""

    recipient: str
    parts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CreatedJob:
    id: int
    messages: int  # rows queued (parts count one each)
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    app_id: int
    app: str
    source: str
    name: str | None
    template: str | None
    type: str | None
    category: str
    tag: str | None
    send_at: datetime | None
    state: str
    total: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    open: int | None = None  # messages that may still change (list_jobs only)


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """A job and its messages now: counts by state, sends in the last *window* seconds, the pool's capacity."""

    job: Job
    by_state: dict[str, int]
    recent_sends: int
    window: float
    capacity_per_s: float | None
    now: datetime


def _job(row: asyncpg.Record) -> Job:
    return Job(**dict(row))


async def insert_job(conn: asyncpg.Connection, app_id: int, spec: JobSpec, total: int) -> tuple[int, datetime]:
    """The job row (in the caller's transaction); its id and creation time (the transaction's now())."""
    n = spec.notification
    row = await conn.fetchrow(jq.INSERT_JOB, app_id, spec.source, spec.name, spec.template, n.type, n.category,
                              spec.tag, spec.send_at, total)
    return row["id"], row["created_at"]


def _records(app_id: int, job_id: int, spec: JobSpec, due: datetime, messages: Sequence[JobMessage],
             ids: Sequence[int] | None) -> Iterator[tuple[object, ...]]:
    n = spec.notification
    common = (spec.tag, spec.send_at, due, job_id, n.type, n.category, n.expires_at)
    if ids is None:
        for m in messages:
            yield (app_id, m.recipient, m.parts[0], *common)
        return
    position = 0
    for m in messages:
        head = ids[position]
        for i, part in enumerate(m.parts):
            yield (app_id, m.recipient, part, *common, ids[position], None if i == 0 else head)
            position += 1


async def create_job(pool: asyncpg.Pool, app_id: int, spec: JobSpec, messages: Sequence[JobMessage]) -> CreatedJob:
    """The job and all its messages (COPY, in order, due at spec.send_at or now), or nothing: one transaction."""
    total = sum(len(m.parts) for m in messages)
    async with pool.acquire() as conn, conn.transaction():
        job_id, created_at = await insert_job(conn, app_id, spec, total)
        if total:
            split = total > len(messages)
            # Parts 2..n point at part 1 (part_of): their ids must be known before the COPY.
            ids = await conn.fetchval(jq.ALLOCATE_IDS, total) if split else None
            due = spec.send_at if spec.send_at is not None and spec.send_at > created_at else created_at
            await conn.copy_records_to_table(
                "engine_outbound", records=_records(app_id, job_id, spec, due, messages, ids),
                columns=[*_COLUMNS, "id", "part_of"] if split else _COLUMNS,
            )
    return CreatedJob(job_id, total, created_at)


async def get_job(pool: asyncpg.Pool, job_id: int, app_id: int | None = None) -> Job:
    """The job (of *app_id*, when given), or NotFound."""
    row = await pool.fetchrow(jq.JOB, job_id, app_id)
    if row is None:
        raise NotFound(f"no job {job_id}" + ("" if app_id is None else " for this application"))
    return _job(row)


async def finish_jobs(pool: asyncpg.Pool, *, job_id: int | None = None, app_id: int | None = None) -> list[int]:
    """Mark finished the unfinished jobs (one, one app's, or all) none of whose messages may still change."""
    return [r["id"] for r in await pool.fetch(jq.FINISH_JOBS, job_id, app_id)]


async def job_snapshot(pool: asyncpg.Pool, job_id: int, app_id: int | None = None) -> JobSnapshot:
    """The job (finished first if it is) with its counts by state, recent sends and pool capacity; or NotFound."""
    async with pool.acquire() as conn:
        await conn.execute(jq.FINISH_JOBS, job_id, app_id)
        row = await conn.fetchrow(jq.JOB, job_id, app_id)
        if row is None:
            raise NotFound(f"no job {job_id}" + ("" if app_id is None else " for this application"))
        job = _job(row)
        by_state = {r["state"]: r["n"] for r in await conn.fetch(jq.JOB_COUNTS, job_id)}
        now: datetime = await conn.fetchval(jq.NOW)
        start = max(job.created_at, job.send_at or job.created_at)
        window = min(RATE_WINDOW, max(1.0, (now - start).total_seconds()))
        recent = await conn.fetchval(jq.JOB_RECENT_SENDS, job_id, window)
        cap = await conn.fetchrow(jq.POOL_CAPACITY, job.app_id)
    limits = [] if cap is None else [v for v in (cap["dids"], cap["smsc"], cap["account"]) if v is not None]
    return JobSnapshot(job, by_state, recent, window, min(limits) if limits else None, now)


async def list_jobs(pool: asyncpg.Pool, app_id: int | None = None, limit: int = 20) -> list[Job]:
    """The newest jobs (of one app, or all) with their open counts; finished ones are marked first."""
    await pool.execute(jq.FINISH_JOBS, None, app_id)
    return [_job(r) for r in await pool.fetch(jq.LIST_JOBS, app_id, limit)]


async def _change(pool: asyncpg.Pool, job_id: int, app_id: int | None, to: str, allowed: tuple[str, ...],
                  messages_sql: str) -> tuple[Job, int]:
    """Lock the job, move it to *to* (from one of *allowed*; already *to*: nothing changes) and run *messages_sql*
    on its queued messages, in one transaction; the job and how many messages changed."""
    await pool.execute(jq.FINISH_JOBS, job_id, app_id)
    async with pool.acquire() as conn, conn.transaction():
        state = await conn.fetchval(jq.LOCK_JOB, job_id, app_id)
        if state is None:
            raise NotFound(f"no job {job_id}" + ("" if app_id is None else " for this application"))
        changed = 0
        if state != to:
            if state not in allowed:
                raise Conflict(f"job {job_id} is {state}: only a {' or '.join(allowed)} job can be {_PAST[to]}")
            await conn.execute(jq.SET_JOB_STATE, job_id, to)
            changed = int((await conn.execute(messages_sql, job_id)).rsplit(" ", 1)[-1])
            if to == "running":
                await conn.execute(jq.WAKE_WORKERS)
        job = _job(await conn.fetchrow(jq.JOB, job_id, app_id))
    return job, changed


_PAST: Final = {"paused": "paused", "running": "resumed", "canceled": "canceled"}


async def pause_job(pool: asyncpg.Pool, job_id: int, app_id: int | None = None) -> tuple[Job, int]:
    """Pause a running job: its queued messages wait (due_at = infinity). Returns the job and how many waited."""
    return await _change(pool, job_id, app_id, "paused", ("running",), jq.PAUSE_MESSAGES)


async def resume_job(pool: asyncpg.Pool, job_id: int, app_id: int | None = None) -> tuple[Job, int]:
    """Resume a paused job: its queued messages are due again (at send_at, or now) and idle workers are woken."""
    return await _change(pool, job_id, app_id, "running", ("paused",), jq.RESUME_MESSAGES)


async def cancel_job(pool: asyncpg.Pool, job_id: int, app_id: int | None = None) -> tuple[Job, int]:
    """Cancel a running or paused job: its queued messages become 'canceled' (status 2). Returns how many."""
    return await _change(pool, job_id, app_id, "canceled", ("running", "paused"), jq.CANCEL_MESSAGES)
