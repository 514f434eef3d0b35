"""The overview's figures are read once per few seconds for every browser, and a page never waits for them while
someone keeps the overview open: an older reading (up to a minute) is answered at once while the next is read.
On an injected clock, with the real reading on a real database."""

from __future__ import annotations

import asyncio

import asyncpg

from engine.config import Settings
from engine.console.pages.overview import FRESH_SECONDS, STALE_SECONDS, OverviewPages
from engine.console.views import Deps
from engine.store import console as store
from engine.store.database import Pool
from engine.submit import Outgoing, submit_many
from tests.helpers.engine import setup_app


async def test_one_reading_per_few_seconds_and_an_older_one_answered_at_once(pool: asyncpg.Pool) -> None:
    await setup_app(pool, "http://127.0.0.1:9", dids=1)
    now = [1000.0]
    reads: list[asyncio.Event] = []  # one per reading; a reading finishes when its event is set

    async def read(p: Pool) -> store.Overview:
        done = asyncio.Event()
        reads.append(done)
        await done.wait()
        return await store.overview(p)

    pages = OverviewPages(Deps(pool, Settings()), lambda: now[0], read=read)

    async def first_of(n: int) -> None:
        while len(reads) < n:
            await asyncio.sleep(0)
        reads[n - 1].set()

    # The first look waits for a reading; browsers asking meanwhile share it.
    looks = [asyncio.ensure_future(pages.overview()) for _ in range(3)]
    await first_of(1)
    first = await asyncio.gather(*looks)
    assert len(reads) == 1 and first[0] is first[1] is first[2] and first[0].queue["queued"] == 0

    # Within FRESH_SECONDS: the same reading, no new one.
    now[0] += FRESH_SECONDS - 0.1
    assert await pages.overview() is first[0] and len(reads) == 1

    # Older: answered at once with the reading it has, while one new reading starts (once, however many ask).
    await submit_many(pool, "lib", [Outgoing("+13472640001", "hi")])
    now[0] += 0.2
    assert await pages.overview() is first[0] and await pages.overview() is first[0]
    await first_of(2)
    while pages._pending is not None:
        await asyncio.sleep(0)
    assert len(reads) == 2
    second = await pages.overview()
    assert second is not first[0] and second.queue["queued"] == 1 and len(reads) == 2

    # After a quiet spell longer than STALE_SECONDS, the next look waits for a fresh reading.
    now[0] += STALE_SECONDS + 1
    look = asyncio.ensure_future(pages.overview())
    await first_of(3)
    assert await look is not second and len(reads) == 3


async def test_a_failed_background_reading_is_not_left_unretrieved(pool: asyncpg.Pool) -> None:
    """The database away during a background reading: the page still answers with the reading it has, and the
    failure is retrieved (the suite fails any test whose loop reports an unretrieved exception)."""
    now = [0.0]
    calls = [0]

    async def read(p: Pool) -> store.Overview:
        calls[0] += 1
        if calls[0] == 2:
            raise OSError("connection refused")
        return await store.overview(p)

    pages = OverviewPages(Deps(pool, Settings()), lambda: now[0], read=read)
    first = await pages.overview()
    now[0] += FRESH_SECONDS + 1
    assert await pages.overview() is first  # answered at once; its background reading fails
    while pages._pending is not None:
        await asyncio.sleep(0)
    assert calls[0] == 2
    now[0] += 0.1
    assert await pages.overview() is first  # still the reading it has; another reading is tried
    while pages._pending is not None:
        await asyncio.sleep(0)
    assert calls[0] == 3 and await pages.overview() is not first
