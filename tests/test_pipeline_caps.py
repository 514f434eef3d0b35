"""Caps above the DID, through the real worker and carrier: an SMSC cap (segments/min for the whole pool,
e.g. a 10DLC campaign) and a carrier-account cap (segments/s, e.g. Twilio MPS).

The default run checks what a cap forbids (never more than it allows in any window, on the carrier's own
timestamps): a busy machine only slows the engine down, so these cannot fail because of load. How close the
engine comes to the cap is a wall-clock throughput figure, checked only with ``-m wallclock``; the scheduler's
throughput under a binding cap is proven exactly on an injected clock in tests/test_throttle_hierarchy.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import asyncpg
import pytest

from engine.app_settings import AppChanges
from engine.store import admin
from engine.submit import Outgoing, submit_many
from engine.testing import AcceptedRecord
from tests.helpers.engine import carrier, engine_running, setup_app
from tests.helpers.polling import wait_until
from tests.helpers.windows import max_in_window

Records = list[AcceptedRecord]


def _sent_past(seconds: float) -> Callable[[Records], bool]:
    """True once the carrier has a send more than *seconds* after its first: every send of [t0, t0 + seconds)
    is in (the carrier records sends in the order it takes them)."""
    return lambda records: bool(records) and records[-1].t >= records[0].t + seconds


async def _smsc_capped(pool: asyncpg.Pool, db_dsn: str, enough: Callable[[Records], bool]) -> Records:
    """Ten DIDs that could send 100/s each, in a pool capped at 600/min (10/s), until *enough* was sent."""
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=10, limit_per_min=6000)
        await admin.update_app(pool, "lib", AppChanges(columns={"smsc_limit_per_min": 600}))
        await submit_many(pool, "lib", [Outgoing(f"+1718{2000000 + i:07d}", f"m{i}") for i in range(200)])
        async with engine_running(db_dsn):
            await wait_until(lambda: enough(fake.records), timeout=60, what="the capped sends")
        return list(fake.records)


async def test_smsc_cap_limits_the_whole_pool(pool: asyncpg.Pool, db_dsn: str) -> None:
    records = await _smsc_capped(pool, db_dsn, lambda records: len(records) >= 40)
    times = [r.t for r in records]
    # The pool may send 10/s (burst: one more), spread over the DIDs.
    assert max_in_window(times, 1.0) <= 11
    assert max_in_window(times, 3.0) <= 31
    assert len(Counter(r.from_ for r in records)) >= 5


@pytest.mark.wallclock
async def test_smsc_cap_is_reached(pool: asyncpg.Pool, db_dsn: str) -> None:
    records = await _smsc_capped(pool, db_dsn, _sent_past(3.0))
    t0 = records[0].t
    assert 27 <= sum(1 for r in records if r.t < t0 + 3.0) <= 31  # about 30 in 3 s


async def _account_capped(pool: asyncpg.Pool, db_dsn: str, enough: Callable[[Records], bool]) -> Records:
    """Two apps with five fast DIDs each on one carrier account capped at 5 segments/s, until *enough* was sent."""
    async with carrier() as fake:
        for app, area in (("a", "646"), ("b", "917")):
            await setup_app(pool, fake.base_url or "", name=app, dids=5, limit_per_min=6000, area=area,
                            max_per_second=5)
            await submit_many(pool, app, [Outgoing(f"+1718{2000000 + i:07d}", f"{app}{i}") for i in range(60)])
        async with engine_running(db_dsn):
            await wait_until(lambda: enough(fake.records), timeout=60, what="the capped sends")
        return list(fake.records)


async def test_account_cap_is_shared_by_apps_on_one_account(pool: asyncpg.Pool, db_dsn: str) -> None:
    records = await _account_capped(pool, db_dsn, lambda records: len(records) >= 20)
    times = [r.t for r in records]
    # One account, capped at 5 segments/s, behind two apps with ten DIDs: at most 5 in any second.
    assert max_in_window(times, 1.0) <= 5
    assert max_in_window(times, 3.0) <= 16
    assert {r.body[0] for r in records} == {"a", "b"}  # both apps got turns


@pytest.mark.wallclock
async def test_account_cap_is_reached(pool: asyncpg.Pool, db_dsn: str) -> None:
    records = await _account_capped(pool, db_dsn, _sent_past(3.0))
    t0 = records[0].t
    assert 13 <= sum(1 for r in records if r.t < t0 + 3.0) <= 16
