"""Write buffers: collect items, flush them in one round trip on size or time, retry on failure.

At most one flush per *max_delay* (unless a batch fills up): the first item after a quiet spell is written at once,
those that follow within *max_delay* of that write wait for the next one. So a lone item (light load) is never
held back, and under load each round trip carries what arrived in *max_delay*.

`put()` waits until the item's batch is durably written (webhooks answer only then);
`put_nowait()` is fire-and-forget for the worker's own results (a failed flush keeps the items).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class Batcher(Generic[T]):
    """Flushes up to *max_size* items at once: at once after a quiet spell, else *max_delay* after the last flush."""

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[None]],
        *,
        name: str,
        max_size: int = 1000,
        max_delay: float = 0.005,
        retry_delay: float = 0.5,
    ) -> None:
        self._flush = flush
        self.name = name
        self.max_size = max_size
        self.max_delay = max_delay
        self.retry_delay = retry_delay
        self._items: list[T] = []
        self._waiter: asyncio.Future[None] | None = None
        self._has_items = asyncio.Event()
        self._full = asyncio.Event()
        self._last_flush = float("-inf")  # loop time the last flush started
        self.flushed = 0
        self.failures = 0

    def __len__(self) -> int:
        return len(self._items)

    def pending(self) -> list[T]:
        """The items not written yet (a copy)."""
        return list(self._items)

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        self._has_items.set()
        if len(self._items) >= self.max_size:
            self._full.set()

    async def put(self, item: T) -> None:
        """Add *item* and wait until it has been written."""
        await asyncio.shield(self.put_later(item))

    def put_later(self, item: T) -> asyncio.Future[None]:
        """Add *item*; the future is done once it has been written (shared by its batch: never cancel it)."""
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        waiter = self._waiter
        self.put_nowait(item)
        return waiter

    async def run(self) -> None:
        """Flush forever (until cancelled; call `drain()` after cancelling to write the rest)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._has_items.wait()
            wait = self._last_flush + self.max_delay - loop.time()
            if wait > 0 and len(self._items) < self.max_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), wait)
            self._last_flush = loop.time()
            if not await self._flush_once():
                await asyncio.sleep(self.retry_delay)

    async def _flush_once(self) -> bool:
        batch, waiter = self._items[: self.max_size], self._waiter
        self._items = self._items[self.max_size :]
        # Items put during the flush below land in self._items; only what is left *now* shares
        # this batch's waiter.
        carried = bool(self._items)
        self._waiter = waiter if carried else None
        if not carried:
            self._has_items.clear()
            self._full.clear()
        try:
            await self._flush(batch)
        except asyncio.CancelledError:
            # Cancelled mid-write (the owner is shutting down): the batch is not known to be written, so it stays
            # for drain() to write (every flush here is idempotent). Dropping it left rows 'sending' forever.
            self._keep(batch, waiter)
            raise
        except Exception:
            self.failures += 1
            log.exception("%s: flush of %d items failed; will retry", self.name, len(batch))
            self._keep(batch, waiter)
            return False
        self.flushed += len(batch)
        if waiter is not None and not carried and not waiter.done():
            waiter.set_result(None)
        return True

    def _keep(self, batch: list[T], waiter: asyncio.Future[None] | None) -> None:
        """Put a batch that was not written back in front, its callers still waiting for it."""
        self._items = batch + self._items
        if waiter is not None:
            newer = self._waiter
            if newer is None or newer is waiter:
                self._waiter = waiter
            else:
                # Later puts already share a newer future: the failed batch's callers follow it.
                newer.add_done_callback(_follow(waiter))
        self._has_items.set()

    async def drain(self, attempts: int = 3) -> bool:
        """Write whatever is left; True when empty."""
        for _ in range(attempts):
            if not self._items:
                return True
            if not await self._flush_once():
                await asyncio.sleep(self.retry_delay)
        return not self._items


def _follow(waiter: asyncio.Future[None]) -> Callable[[asyncio.Future[None]], None]:
    """A done-callback that resolves *waiter* when the future it is attached to resolves."""

    def resolve(_: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    return resolve
