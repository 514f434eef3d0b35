"""`engine bench --scenarios paced`'s mixed pool at a tiny size: long codes, a toll-free number and a short code at
their types' paces. Counts and limits only (how close to the capacity it gets is a wall-clock figure)."""

from __future__ import annotations

import pytest

from benchmarks.bench_mixed import SHORT_CODE, TOLL_FREE, mixed, sender_capacity
from benchmarks.runner import format_table
from engine.testing import max_per_sender_by_sender

pytestmark = pytest.mark.system


def test_sender_capacity() -> None:
    # burst b at r/s in a half-open window of T s: b + ceil(T r) - 1
    assert sender_capacity(60, 1, 3) == 3
    assert sender_capacity(180, 1, 3) == 9
    assert sender_capacity(6000, 10, 3) == 309


async def test_mixed_pool_counts_each_sender_within_its_limit(server_dsn: str) -> None:
    r = await mixed(server_dsn, long_codes=3, seconds=3)
    f = r.figures
    assert f["capacity"] == 3 * 3 + 9 + 309 and f["queued"] >= 2 * f["capacity"]
    assert f["carrier_rejected"] == 0 and f["carrier_accepted_total"] == len(r.records)
    assert len({rec.to for rec in r.records}) == len(r.records)  # each message once
    senders = {rec.from_ for rec in r.records}
    assert TOLL_FREE in senders and SHORT_CODE in senders and len(senders) == 5
    assert f["limits_exceeded"] == []
    # Never more than the capacity, but for the carrier's clock against ours: the first sends reach the carrier later
    # than the rest on a busy machine; 0.25 s of that at the window's edge is 25 sends of the short code.
    assert 0 < f["sent_in_window"] <= f["capacity"] + 25
    t0 = min(rec.t for rec in r.records)
    assert f["sent_in_window"] == sum(1 for rec in r.records if t0 <= rec.t < t0 + 3)
    assert sum(v["sent_in_window"] for v in f["senders"].values()) == f["sent_in_window"]
    per_60s = max_per_sender_by_sender(r.records, 60.0)
    assert per_60s[TOLL_FREE] <= 180 and per_60s[SHORT_CODE] <= 6000
    assert f["senders"]["toll_free"]["max_per_sender_60s"] == per_60s[TOLL_FREE]
    line = format_table({"scenarios": {"paced_mixed": f}, "machine": {"cpu": "x", "cores": 2, "python": "3",
                                                                       "postgres": "16"}})
    assert "paced, mixed pool" in line and "limits exceeded: none" in line
