"""Caps above the DID, through the real worker and carrier: an SMSC cap (segments/min for the whole pool,
e.g. a 10DLC campaign) and a carrier-account cap (segments/s, e.g. Twilio MPS)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import asyncpg
import pytest

from engine.app_settings import AppChanges
from engine.providers.fake import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from engine.store import admin
from engine.submit import Outgoing, submit_many
from tests.helpers.engine import carrier, engine_running


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.wallclock
async def test_smsc_cap_limits_the_whole_pool(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await admin.create_app(pool, "lib")
        await admin.add_provider(pool, "lib", kind="fake", account_sid=DEFAULT_ACCOUNT_SID,
                                 auth_token=DEFAULT_AUTH_TOKEN, base_url=fake.base_url)
        await admin.add_dids(pool, "lib", [f"+1646200{i:04d}" for i in range(10)], limit_per_min=6000)
        await admin.update_app(pool, "lib", AppChanges(columns={"smsc_limit_per_min": 600}))  # 10/s for the pool
        await submit_many(pool, "lib", [Outgoing(f"+1718{2000000 + i:07d}", f"m{i}") for i in range(200)])
        async with engine_running(db_dsn):
            while not fake.records:
                await asyncio.sleep(0.01)
            t0 = fake.records[0].t
            await asyncio.sleep(max(0.0, t0 + 3.2 - time.time()))
        times = [r.t for r in fake.records]
    # Ten DIDs could send 100/s each; the pool may send 10/s: about 30 in 3 s, spread over the DIDs.
    in_three = sum(1 for t in times if t < t0 + 3.0)
    assert 27 <= in_three <= 31
    assert _max_in_window(times, 1.0) <= 11
    assert len(Counter(r.from_ for r in fake.records)) >= 5


@pytest.mark.wallclock
async def test_account_cap_is_shared_by_apps_on_one_account(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        for app, area in (("a", "646"), ("b", "917")):
            await admin.create_app(pool, app)
            await admin.add_provider(pool, app, kind="fake", account_sid=DEFAULT_ACCOUNT_SID,
                                     auth_token=DEFAULT_AUTH_TOKEN, base_url=fake.base_url, max_per_second=5)
            await admin.add_dids(pool, app, [f"+1{area}200{i:04d}" for i in range(5)], limit_per_min=6000)
            await submit_many(pool, app, [Outgoing(f"+1718{2000000 + i:07d}", f"{app}{i}") for i in range(60)])
        async with engine_running(db_dsn):
            while not fake.records:
                await asyncio.sleep(0.01)
            t0 = fake.records[0].t
            await asyncio.sleep(max(0.0, t0 + 3.2 - time.time()))
        times = [r.t for r in fake.records]
    # One account, capped at 5 segments/s, behind two apps with ten DIDs: at most 5 in any second.
    assert _max_in_window(times, 1.0) <= 5
    assert 13 <= sum(1 for t in times if t < t0 + 3.0) <= 16
    assert {r.body[0] for r in fake.records} == {"a", "b"}  # both apps got turns
