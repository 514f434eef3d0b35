"""Two scenarios at the real per-DID limit (60/min, burst 1), each with its own fresh database, a fake
carrier in its own process (`--callbacks final --latency 0`) and `engine run` in its own process.

paced: D DIDs, a backlog of at least twice what they may send in T seconds, queued (INSERT … SELECT
generate_series) before the engine starts. The window is [t0, t0 + T), t0 = the carrier's first accept
(its own clock). Capacity of the window, precisely: a DID at r = limit/60 sends per second with burst b
may send b at once and then one every 1/r s, so from its first send at s >= t0 it sends at most
b + ceil((t0 + T - s)·r) - 1 <= b + ceil(T·r) - 1 in the half-open window; with b = 1, r = 1 and an
integer T that is T sends per DID, so capacity = D × T (= D × T·limit/60 - 1 + b). achieved/capacity is
the fraction of that used. max_per_did_60s is the highest count any DID sent in any 60-second window of
the carrier's record (the whole run when it is shorter than 60 s); the limit says it must be <= 60.
The engine is stopped T + a small margin after t0: the rest of the backlog is not waited for.

backlog: N queued messages and D DIDs at 60/min inserted in SQL, then the engine process starts. Reported:
time to first send (carrier's first accept minus the engine process's start, both wall clock) and the
engine process's peak RSS (VmHWM from /proc/<pid>/status, read ~10 s after the start), then it is stopped.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks import harness as h
from benchmarks.bench_e2e import APP, add_fake_app, to_records
from engine.store import admin
from engine.store.database import Database
from engine.testing import AcceptedRecord, max_per_sender_in_window

LIMIT_PER_MIN = 60
BURST = 1
STOP_MARGIN_S = 1.0


@dataclass
class Scenario:
    figures: dict[str, Any]
    records: list[AcceptedRecord] = field(default_factory=list)


@dataclass
class _Setup:
    dsn: str
    carrier_url: str
    kids: h.Children
    fill_s: float


@asynccontextmanager
async def _prepared(server_dsn: str, prefix: str, *, dids: int, messages: int, carrier: str = "lean",
                    ) -> AsyncIterator[_Setup]:
    """Fresh database + carrier; app, provider, *dids* DIDs at 60/min and *messages* queued, engine not started."""
    async with h.fresh_database(server_dsn, prefix) as dsn, h.children() as kids:
        db = await Database.connect(dsn, min_size=1, max_size=2)  # migrates
        try:
            carrier_url = await h.start_carrier(kids, carrier)
            await add_fake_app(db.pool, carrier_url)
            app = await admin.get_app(db.pool, APP)
            assert app.smsc_id is not None
            t = time.perf_counter()
            async with db.pool.acquire() as conn:
                await h.insert_dids_sql(conn, app.smsc_id, dids, limit_per_min=LIMIT_PER_MIN, burst=BURST)
                await h.insert_messages_sql(conn, app.id, messages)
            fill_s = time.perf_counter() - t
        finally:
            await db.close()
        yield _Setup(dsn, carrier_url, kids, fill_s)


async def _spawn_engine(s: _Setup, processes: int = 0) -> tuple[h.EngineProcs, float]:
    t_start = time.time()
    return await h.spawn_engine(s.kids, s.dsn, processes=processes, wait=False), t_start


def paced_capacity(dids: int, seconds: float, limit_per_min: int = LIMIT_PER_MIN, burst: int = BURST) -> int:
    """Most sends *dids* DIDs may make in a half-open window of *seconds* (see the module docstring)."""
    rate = limit_per_min / 60.0
    return dids * (burst + max(0, math.ceil(seconds * rate) - 1))


async def paced(server_dsn: str, *, dids: int, seconds: float, startup_timeout: float = 120.0,
                processes: int = 0, carrier: str = "lean") -> Scenario:
    """processes=N runs `engine serve` + `engine worker --processes N` instead of `engine run` (the DIDs are shared
    out between the workers by lease; the carrier's record shows whether the limit still holds across them)."""
    capacity = paced_capacity(dids, seconds)
    backlog = 2 * capacity + dids
    async with _prepared(server_dsn, "bench_paced", dids=dids, messages=backlog, carrier=carrier) as s:
        engine, _ = await _spawn_engine(s, processes)
        await h.wait_first_accept(s.carrier_url, s.kids.procs, startup_timeout)
        carrier_pid = s.kids.procs[0].pid
        carrier_cpu0 = h.cpu_seconds([carrier_pid])
        await asyncio.sleep(seconds + STOP_MARGIN_S)
        carrier_cpu = h.cpu_seconds([carrier_pid]) - carrier_cpu0
        await engine.stop()
        stats = await h.carrier_get(s.carrier_url, "stats")
        records = to_records(await h.carrier_get(s.carrier_url, "messages"))
    if not records:
        raise RuntimeError("the carrier recorded no sends")
    t0 = min(r.t for r in records)
    in_window = [r for r in records if t0 <= r.t < t0 + seconds]
    figures = {
        "dids": dids,
        "layout": h.layout(processes),
        "seconds": seconds,
        "limit_per_min": LIMIT_PER_MIN,
        "burst": BURST,
        "queued": backlog,
        "fill_s": round(s.fill_s, 3),
        "sent_in_window": len(in_window),
        "capacity": capacity,
        "achieved_ratio": round(len(in_window) / capacity, 4),
        "senders_in_window": len({r.from_ for r in in_window}),
        "carrier_accepted_total": stats["accepted"],
        "carrier_rejected": stats["rejected"],
        "run_after_t0_s": round(max(r.t for r in records) - t0, 3),
        "max_per_did_60s": max_per_sender_in_window(records, 60.0),
        "carrier": carrier,
        "carrier_cpu_us_per_msg": round(carrier_cpu / max(1, len(in_window)) * 1e6, 1),
    }
    return Scenario(figures, records)


async def backlog(server_dsn: str, *, messages: int, dids: int, settle_s: float = 10.0,
                  startup_timeout: float = 600.0, carrier: str = "lean") -> Scenario:
    async with _prepared(server_dsn, "bench_backlog", dids=dids, messages=messages, carrier=carrier) as s:
        h.log(f"  filled {messages} messages and {dids} DIDs in {s.fill_s:.1f}s")
        engine, t_start = await _spawn_engine(s)
        await h.wait_first_accept(s.carrier_url, s.kids.procs, startup_timeout)
        remaining = t_start + settle_s - time.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
        ran_s = time.time() - t_start
        pid = engine.pids[0]  # `engine run`
        peak = h.vm_hwm_mb(pid)
        rss_now = h.rss_mb(pid)
        await engine.stop()
        stats = await h.carrier_get(s.carrier_url, "stats")
        records = to_records(await h.carrier_get(s.carrier_url, "messages"))
    first = min(r.t for r in records)
    figures = {
        "messages": messages,
        "dids": dids,
        "limit_per_min": LIMIT_PER_MIN,
        "fill_s": round(s.fill_s, 3),
        "time_to_first_send_s": round(first - t_start, 3),
        "peak_rss_mb": peak,
        "rss_at_read_mb": rss_now,
        "rss_read_after_s": round(ran_s, 1),
        "carrier_accepted": stats["accepted"],
        "carrier_rejected": stats["rejected"],
        "max_per_did_60s": max_per_sender_in_window(records, 60.0),
        "carrier": carrier,
    }
    return Scenario(figures, records)
