"""The paced scenario's mixed pool: one SMSC of long codes, a toll-free number and a short code, each at its sender
type's default pace (engine/policy/senders.toml: 60/min burst 1, 180/min burst 1, 6,000/min burst 10), with a
backlog of twice what the pool may send in T seconds; a fresh database, the fake carrier and `engine run` in their
own processes, as in bench_paced.

Capacity of the window [t0, t0 + T) (t0 = the carrier's first accept of the run): a sender at r segments/s with burst
b may send b at once, then one every 1/r s, so from its first send at s >= t0 at most b + ceil((t0 + T - s)·r) - 1
<= b + ceil(T·r) - 1; capacity is that summed over the senders. achieved_ratio = sent in the window / capacity.
Limits, from the carrier's own timestamps: the most any sender sent in any 60-second window (must stay within its
limit per minute), and in any 1-second window (the per-second figure: a toll-free number 3, a short code 100 + its
burst - 1).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from benchmarks import harness as h
from benchmarks.bench_e2e import APP, add_fake_app, to_records
from benchmarks.bench_paced import STOP_MARGIN_S, Scenario
from engine.policy.senders import type_defaults
from engine.store import admin
from engine.store.database import Database
from engine.testing import max_per_sender_by_sender

TOLL_FREE = "+18885550100"
SHORT_CODE = "12345"


def sender_capacity(limit_per_min: int, burst: int, seconds: float) -> int:
    """Most sends one sender may make in a half-open window of *seconds* (see the module docstring)."""
    return burst + max(0, math.ceil(seconds * limit_per_min / 60.0) - 1)


async def mixed(server_dsn: str, *, long_codes: int, seconds: float, startup_timeout: float = 120.0) -> Scenario:
    long_code, toll_free, short_code = (type_defaults(t) for t in ("long_code", "toll_free", "short_code"))
    senders = {"long_code": (long_codes, long_code), "toll_free": (1, toll_free), "short_code": (1, short_code)}
    capacity = sum(n * sender_capacity(d.limit_per_min, d.burst, seconds) for n, d in senders.values())
    backlog = 2 * capacity + 100
    async with h.fresh_database(server_dsn, "bench_mixed") as dsn, h.children() as kids:
        db = await Database.connect(dsn, min_size=1, max_size=2)  # migrates
        try:
            carrier_url = await h.start_carrier(kids)
            await add_fake_app(db.pool, carrier_url)
            app = await admin.get_app(db.pool, APP)
            assert app.smsc_id is not None
            t = time.perf_counter()
            async with db.pool.acquire() as conn:
                await h.insert_dids_sql(conn, app.smsc_id, long_codes, limit_per_min=long_code.limit_per_min,
                                        burst=long_code.burst)
                await h.insert_messages_sql(conn, app.id, backlog)
            # The toll-free number and the short code as an operator adds them: their type sets their pace.
            await admin.add_dids(db.pool, APP, [TOLL_FREE])
            await admin.add_dids(db.pool, APP, [SHORT_CODE], sender_type="short_code")
            fill_s = time.perf_counter() - t
        finally:
            await db.close()
        engine = await h.spawn_engine(kids, dsn, wait=False)
        await h.wait_first_accept(carrier_url, kids.procs, startup_timeout)
        await asyncio.sleep(seconds + STOP_MARGIN_S)
        await engine.stop()
        stats = await h.carrier_get(carrier_url, "stats")
        records = to_records(await h.carrier_get(carrier_url, "messages"))
    if not records:
        raise RuntimeError("the carrier recorded no sends")
    t0 = min(r.t for r in records)
    in_window = [r for r in records if t0 <= r.t < t0 + seconds]
    per_60s = max_per_sender_by_sender(records, 60.0)
    per_1s = max_per_sender_by_sender(records, 1.0)
    by_type = {
        "long_code": (long_code, [n for n in per_60s if n not in (TOLL_FREE, SHORT_CODE)]),
        "toll_free": (toll_free, [TOLL_FREE]),
        "short_code": (short_code, [SHORT_CODE]),
    }
    figures: dict[str, Any] = {
        "seconds": seconds,
        "senders": {kind: {"count": senders[kind][0], "limit_per_min": d.limit_per_min, "burst": d.burst,
                           "sent_in_window": sum(1 for r in in_window if r.from_ in numbers),
                           "max_per_sender_60s": max((per_60s.get(n, 0) for n in numbers), default=0),
                           "max_per_sender_1s": max((per_1s.get(n, 0) for n in numbers), default=0)}
                    for kind, (d, numbers) in by_type.items()},
        "queued": backlog,
        "fill_s": round(fill_s, 3),
        "sent_in_window": len(in_window),
        "capacity": capacity,
        "achieved_ratio": round(len(in_window) / capacity, 4),
        "carrier_accepted_total": stats["accepted"],
        "carrier_rejected": stats["rejected"],
        "limits_exceeded": sorted(
            kind for kind, (d, numbers) in by_type.items() if any(per_60s.get(n, 0) > d.limit_per_min for n in numbers)
        ),
    }
    return Scenario(figures, records)
