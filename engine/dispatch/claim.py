"""The claim stage: take due messages from the queue for the pools this worker can send for now.

A pool whose DIDs are busy beyond the horizon is skipped: its messages wait in the queue, in order, instead
of in memory. Claimed batches go on to the admit and place stages (the worker's `handle`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping

from engine.config import Settings
from engine.dispatch.place import Pending
from engine.store import leases, outbound
from engine.store.database import DB_ERRORS, Pool
from engine.store.outbound import Claimed
from engine.throttle import Scheduler

__all__ = ["Claimer", "servable_apps"]

log = logging.getLogger(__name__)



def servable_apps(
    scheduler: Scheduler[Pending],
    app_pools: Mapping[int, int | None],
    bound: Collection[int],
    now: float,
    horizon: float,
) -> tuple[list[int], bool]:
    """Apps (by id -> their SMSC) this worker can send for now: it holds DIDs of their SMSC, the SMSC has a
    carrier (*bound*) and the pool is not busy beyond the horizon. Also says whether any pool was saturated."""
    limit = now + horizon
    ready: set[int] = set()
    saturated = False
    for smsc in scheduler.pool_ids():
        if not scheduler.has_pool(smsc) or smsc not in bound:
            continue
        if scheduler.project(scheduler.choose(smsc, now), now, reserved=False) > limit:
            saturated = True
        else:
            ready.add(smsc)
    return [app for app, smsc in app_pools.items() if smsc in ready], saturated


class Claimer:
    """The fetch loop: claim batches while there is room in memory, sleep until woken or something is due."""

    def __init__(
        self,
        pool: Pool,
        worker_id: str,
        settings: Settings,
        scheduler: Scheduler[Pending],
        orphans: list[Pending],
        handle: Callable[[list[Claimed]], Awaitable[None]],
        servable: Callable[[], tuple[list[int], bool]],
    ) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.settings = settings
        self.scheduler = scheduler
        self.orphans = orphans
        self.handle = handle
        self.servable = servable
        self.wake = asyncio.Event()  # new rows may be due
        self.stopping = False
        self.unfinished: list[int] = []  # claimed ids of batches that failed half-way
        self.in_hand: list[Claimed] = []  # the claimed batch on its way through admission and placement
        # A claim whose answer never came (the connection died around its commit): rows may be claimed by us that
        # we never saw; they go back to the queue at once instead of waiting out their lease.
        self.claim_in_doubt = False

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()

    def _buffer_full(self) -> bool:
        return self.scheduler.backlog() >= self.settings.batch_size * 20

    async def run(self) -> None:
        settings = self.settings
        while not self.stopping:
            await self.requeue_orphans()
            if self._buffer_full():
                await self._sleep_or_wake(0.05)
                continue
            self.wake.clear()
            apps, saturated = self.servable()
            rows: list[Claimed] = []
            try:
                if apps:
                    self.claim_in_doubt = True
                    rows = await outbound.claim(
                        self.pool, self.worker_id, settings.batch_size, settings.lease_seconds, apps)
                    self.claim_in_doubt = False
                if rows:
                    self.in_hand = rows
                    await self.handle(rows)
            except DB_ERRORS as exc:
                # A batch that failed half-way must not stay claimed until its lease runs out: its rows go back
                # to the queue once the database answers again. Any of them already placed in
                # memory can no longer be marked 'sending' (that needs the claim), so none is sent twice.
                self.unfinished.extend(r.id for r in rows)
                log.warning("claim failed (%s); retrying", exc)
                await asyncio.sleep(settings.poll_seconds)
                continue
            finally:
                self.in_hand = []
            if len(rows) < settings.batch_size:
                if saturated:
                    # Some pools are full: look again soon (their rows wait in the queue, in order).
                    await asyncio.sleep(min(0.2, settings.poll_seconds))
                else:
                    await self._sleep_or_wake(await self._idle_wait(apps, bool(rows)))

    async def requeue_orphans(self) -> None:
        """Claimed messages this worker can no longer send (their DIDs went elsewhere, or their batch failed
        half-way): back to the queue."""
        if self.claim_in_doubt:
            # Every message we hold only claimed goes back: the unknown ones with them. Those still in memory
            # can no longer be marked 'sending' (that needs the claim), so none is sent twice; they are claimed
            # again like any queued message.
            await leases.requeue_all_claimed(self.pool, self.worker_id, 0.5)
            self.claim_in_doubt = False
            self.unfinished.clear()
        if self.unfinished:
            ids = list(self.unfinished)
            await leases.requeue_claimed(self.pool, self.worker_id, ids, 0.5)
            del self.unfinished[: len(ids)]
        self.orphans.extend(self.scheduler.take_orphans())
        if not self.orphans:
            return
        batch = list(self.orphans)
        self.orphans.clear()
        try:
            # A short delay: the DID they wait for is being handed over (or their pool moved).
            await leases.requeue_unsent(self.pool, self.worker_id, [p.id for p in batch], 0.5)
        except DB_ERRORS:
            self.orphans.extend(batch)
            raise

    async def _idle_wait(self, apps: list[int], claimed: bool) -> float:
        """How long to sleep when the queue is drained: until the next scheduled row, at most a poll. When a claim
        found nothing although rows are due (another worker's conversations, rows locked by another claim), a
        short pause instead of spinning."""
        nxt = await outbound.next_due(self.pool, apps)
        if nxt is None:
            return self.settings.poll_seconds
        floor = 0.0 if claimed else min(0.05, self.settings.poll_seconds)
        return max(floor, min(nxt, self.settings.poll_seconds))

    async def _sleep_or_wake(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

