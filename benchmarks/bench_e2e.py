"""One end-to-end engine round: `engine run` in its own process, the fake carrier in another.

The queue is filled (5,000-row `submit_many` transactions from this process) once the engine is
up and idle; the clock runs from the first submit to the last final status written to Postgres
(`max(final_at)`), so each message costs a create POST, the carrier's final status callback to
the engine's webhook and the status write. Engine CPU is read from /proc (psutil) around that window.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from benchmarks import harness as h
from engine.demo import FINAL_STATES
from engine.store import admin
from engine.store.database import Database
from engine.submit import Outgoing, submit_many
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, AcceptedRecord

APP = "bench"
CHUNK = 5000
_FINAL_SQL = "SELECT count(*) FROM engine_outbound WHERE state IN ({})".format(
    ", ".join(f"'{s}'" for s in FINAL_STATES)
)


@dataclass
class Round:
    """What one round measured, plus the carrier's record (for tests)."""

    figures: dict[str, Any]
    records: list[AcceptedRecord] = field(default_factory=list)


def to_records(rows: list[dict[str, Any]]) -> list[AcceptedRecord]:
    return [
        AcceptedRecord(t=r["t"], sid=r["sid"], from_=r["from"], to=r["to"], body=r["body"],
                       messaging_service_sid=None, status_callback=None, final_status=r["final_status"])
        for r in rows
    ]


async def carrier_figures(carrier_url: str) -> tuple[dict[str, Any], list[AcceptedRecord]]:
    stats = await h.carrier_get(carrier_url, "stats")
    records = to_records(await h.carrier_get(carrier_url, "messages"))
    return {
        "carrier_accepted": stats["accepted"],
        "carrier_rejected": stats["rejected"],
        "carrier_callbacks_sent": stats["callbacks_sent"],
        "carrier_callbacks_failed": stats["callbacks_failed"],
        "senders_used": len({r.from_ for r in records}),
    }, records


def rate_figures(messages: int, t0: float, t_end: float, cpu_s: float) -> dict[str, Any]:
    elapsed = max(t_end - t0, 1e-9)
    return {
        "elapsed_s": round(elapsed, 3),
        "msgs_per_s": round(messages / elapsed, 1),
        "cpu_s": round(cpu_s, 3),
        "cpu_us_per_msg": round(cpu_s / messages * 1e6, 1),
    }


def round_figures(
    messages: int,
    states: Sequence[str],
    final_states: Collection[str],
    rows: Sequence[Mapping[str, Any]],
    records: Sequence[AcceptedRecord],
    carrier: Mapping[str, Any],
    *,
    submit_s: float,
    t0: float,
    t_end: float,
    cpu_s: float,
    carrier_cpu_s: float,
    postgres_cpu_s: float | None = None,
) -> dict[str, Any]:
    """One round's figures, the same for the engine and the baseline: outcome counts (from each row's
    *states*), rate and CPU, the carrier's CPU, queue->carrier latency (rows' sid/t vs the carrier's record)."""
    created = {r["sid"]: r["t"] for r in rows if r["sid"] is not None}
    accepted = {r.sid: r.t for r in records}
    return {
        "messages": messages,
        "final": sum(1 for state in states if state in final_states),
        "delivered": sum(1 for state in states if state == "delivered"),
        "submit_s": round(submit_s, 3),
        **rate_figures(messages, t0, t_end, cpu_s),
        "carrier_cpu_us_per_msg": round(carrier_cpu_s / messages * 1e6, 1),
        # The whole server (every backend, the benchmark's own polling included); None when it is not local.
        "postgres_cpu_us_per_msg": None if postgres_cpu_s is None else round(postgres_cpu_s / messages * 1e6, 1),
        **h.latency_figures(created, accepted),
        **carrier,
    }


async def add_fake_app(pool: asyncpg.Pool, carrier_url: str) -> None:
    """The benchmark's app (APP) with a fake-carrier provider at *carrier_url*; DIDs are the caller's."""
    await admin.create_app(pool, APP)
    await admin.add_provider(pool, APP, kind="fake", account_sid=DEFAULT_ACCOUNT_SID,
                             auth_token=DEFAULT_AUTH_TOKEN, base_url=carrier_url)


async def engine_round(
    server_dsn: str, *, messages: int, dids: int = 100, limit_per_min: int = 600_000, timeout: float | None = None,
    processes: int = 0, carrier: str = "lean",
) -> Round:
    """Send *messages* through a fresh database, a fresh carrier and a fresh engine: one `engine run` process, or
    with processes=N `engine serve` + `engine worker --processes N` (CPU summed over all of them)."""
    timeout = timeout if timeout is not None else max(120.0, messages / 100)
    pg_pid = await h.postgres_pid(server_dsn)
    async with h.fresh_database(server_dsn, "bench_engine") as dsn, h.children() as kids:
        db = await Database.connect(dsn, min_size=1, max_size=4)  # migrates
        try:
            carrier_url = await h.start_carrier(kids, carrier)
            await add_fake_app(db.pool, carrier_url)
            await admin.add_dids(db.pool, APP, h.did_numbers(dids), limit_per_min=limit_per_min)
            engine = await h.spawn_engine(kids, dsn, processes=processes)
            job = [Outgoing(to, body) for to, body in h.recipients(messages)]

            carrier_pid = kids.procs[0].pid  # the fake carrier, started first: shared cost, not ours
            window = h.CpuWindow.start(engine, carrier_pid, pg_pid)
            cpu0 = engine.cpu()
            carrier_cpu0 = h.cpu_seconds([carrier_pid])
            pg_cpu0 = h.tree_cpu(pg_pid)
            t0 = time.time()
            for i in range(0, len(job), CHUNK):
                await submit_many(db.pool, APP, job[i : i + CHUNK])
            submit_s = time.time() - t0
            async with db.pool.acquire() as conn:
                await h.wait_all_final(conn, _FINAL_SQL, messages, kids.procs, timeout)
            cpu1 = engine.cpu()
            accounting = window.stop(engine)
            carrier_cpu = h.cpu_seconds([carrier_pid]) - carrier_cpu0
            pg_cpu = h.tree_cpu_delta(pg_cpu0, h.tree_cpu(pg_pid))
            t_end: float = await db.pool.fetchval(
                "SELECT extract(epoch FROM max(final_at))::float8 FROM engine_outbound"
            )
            rows = await db.pool.fetch(
                "SELECT provider_message_id AS sid, extract(epoch FROM created_at)::float8 AS t, state "
                "FROM engine_outbound"
            )
            seen, records = await carrier_figures(carrier_url)
        finally:
            await db.close()
    figures = round_figures(
        messages, [r["state"] for r in rows], FINAL_STATES, rows, records, seen,
        submit_s=submit_s, t0=t0, t_end=t_end, cpu_s=h.tree_cpu_delta(cpu0, cpu1) or 0.0, carrier_cpu_s=carrier_cpu,
        postgres_cpu_s=pg_cpu,
    )
    figures["layout"] = h.layout(processes)
    figures["carrier"] = carrier
    figures["cpu_accounting"] = accounting
    figures["engine_processes"] = len(cpu1)  # the supervisor included
    return Round(figures, records)
