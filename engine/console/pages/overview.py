"""Overview: open messages by state, sends per minute over the last hour, delivery rate, callbacks, per-app counts.

The figures refresh live: the tables by htmx polling a fragment, the chart from ``/console/api/overview.json``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web

from engine.console.views import Deps, render
from engine.runtime.clock import Clock
from engine.store import console as store
from engine.store.database import Pool

__all__ = ["OverviewPages", "overview_json"]


def overview_json(ov: store.Overview) -> dict[str, Any]:
    return {
        "queue": ov.queue,
        "minutes": [[minute, n] for minute, n in ov.minutes],
        "sent_hour": ov.sent_hour,
        "delivered_hour": ov.delivered_hour,
        "failed_hour": ov.failed_hour,
        "delivery_rate": ov.delivery_rate,
        "callbacks": {"pending": ov.callbacks_pending, "dead": ov.callbacks_dead},
        "apps": [
            {"name": a.name, "open": a.open, "sent_hour": a.sent_hour, "delivered_hour": a.delivered_hour,
             "failed_hour": a.failed_hour, "callbacks_pending": a.callbacks_pending,
             "callbacks_dead": a.callbacks_dead}
            for a in ov.apps
        ],
    }


FRESH_SECONDS: Final = 3.0  # every operator's page, fragment and chart share one reading this long
# An older reading, up to this age, is served at once while a new one is read in the background: a page never
# waits for the figures (~0.1-0.3 s on a busy 10-million-message table) while someone keeps the overview open
# (its live parts poll every few seconds). Only the first look after a quiet minute waits for a fresh reading.
STALE_SECONDS: Final = 60.0


class OverviewPages:
    def __init__(self, deps: Deps, clock: Clock,
                 read: Callable[[Pool], Awaitable[store.Overview]] = store.overview) -> None:
        self.deps = deps
        self.clock = clock
        self.read = read
        self._reading: tuple[float, store.Overview] | None = None
        self._pending: asyncio.Future[store.Overview] | None = None

    async def overview(self) -> store.Overview:
        """The figures, read at most once per FRESH_SECONDS however many browsers poll (concurrent requests share
        the one reading in progress); a reading up to STALE_SECONDS old is answered at once while the next one is
        read."""
        now = self.clock()
        reading = self._reading
        if reading is not None and now - reading[0] < FRESH_SECONDS:
            return reading[1]
        pending = self._pending
        if pending is None:
            pending = self._pending = asyncio.ensure_future(self._refresh(now))
            # A background reading that fails (the database away) is seen by whoever waits for one, or by the
            # next look; it must not be left as an exception nobody retrieved.
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())
        if reading is not None and now - reading[0] < STALE_SECONDS:
            return reading[1]
        return await asyncio.shield(pending)

    async def _refresh(self, started: float) -> store.Overview:
        try:
            figures = await self.read(self.deps.pool)
            self._reading = (started, figures)
            return figures
        finally:
            self._pending = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.page, name="overview"),
            web.get("/overview/live", self.live, name="overview-live"),
            web.get("/api/overview.json", self.data, name="overview-json"),
        ]

    async def page(self, request: web.Request) -> web.Response:
        return await render(request, "overview.html", {"ov": await self.overview()}, nav="overview")

    async def live(self, request: web.Request) -> web.Response:
        return await render(request, "_overview_live.html", {"ov": await self.overview()})

    async def data(self, request: web.Request) -> web.Response:
        return web.json_response(overview_json(await self.overview()))
