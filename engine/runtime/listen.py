"""One reconnecting LISTEN loop: keep a subscription open, wake an event on every notification.

Driver-free: the caller passes a `subscribe` factory (the store's, over asyncpg) that opens a
connection, listens and returns it, and the exception types that mean "connection trouble".
A dropped connection is logged at WARNING and reopened after a delay; the event is also set after
every (re)connect, because notifications sent while nobody listened are lost (a consumer then
finds that work by its poll, or by this wake-up at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)


class Subscription(Protocol):
    """An open LISTEN connection, as far as the loop needs to know it."""

    def is_closed(self) -> bool: ...

    async def close(self) -> None: ...


Subscribe = Callable[[Callable[[], None]], Awaitable[Subscription]]
"""Opens a subscription that calls its argument on every notification."""


class Listener:
    """Keeps one subscription alive until cancelled, setting *wake* on every notification."""

    def __init__(
        self,
        subscribe: Subscribe,
        wake: asyncio.Event,
        *,
        name: str,
        errors: tuple[type[BaseException], ...],
        retry_delay: float = 1.0,
        check_interval: float = 0.5,
    ) -> None:
        self.subscribe = subscribe
        self.wake = wake
        self.name = name
        self.errors = errors
        self.retry_delay = retry_delay
        self.check_interval = check_interval
        self.connects = 0  # successful (re)connections, for tests and logs

    async def run(self) -> None:
        """Listen, reconnecting after every drop, until the task is cancelled (then close the connection)."""
        while True:
            await self.listen_once()
            await asyncio.sleep(self.retry_delay)

    async def listen_once(self) -> None:
        """One connection's life: open it, wake the consumer, wait until it drops (or fails to open)."""
        conn: Subscription | None = None
        try:
            conn = await self.subscribe(self.wake.set)
            self.connects += 1
            self.wake.set()  # anything that arrived while we were not listening
            while not conn.is_closed():
                await asyncio.sleep(self.check_interval)
            log.warning("%s: LISTEN connection closed; polling until it is back", self.name)
        except self.errors as exc:
            log.warning("%s: LISTEN connection lost (%s); polling until it is back", self.name, type(exc).__name__)
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(*self.errors):
                    await conn.close()
