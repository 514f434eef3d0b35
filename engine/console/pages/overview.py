"""Overview: open messages by state, sends per minute over the last hour, delivery rate, callbacks, per-app counts.

The figures refresh live: the tables by htmx polling a fragment, the chart from ``/console/api/overview.json``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from aiohttp import web

from engine.console.views import Deps, render
from engine.runtime.clock import Clock
from engine.store import console as store

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


class OverviewPages:
    def __init__(self, deps: Deps, clock: Clock) -> None:
        self.deps = deps
        self.clock = clock
        self._reading: tuple[float, store.Overview] | None = None
        self._pending: asyncio.Future[store.Overview] | None = None

    async def overview(self) -> store.Overview:
        """The figures, read at most once per FRESH_SECONDS however many browsers poll (concurrent requests wait for
        the one reading in progress)."""
        now = self.clock()
        if self._reading is not None and now - self._reading[0] < FRESH_SECONDS:
            return self._reading[1]
        if self._pending is None:
            self._pending = asyncio.ensure_future(store.overview(self.deps.pool))
            pending = self._pending
            try:
                self._reading = (now, await asyncio.shield(pending))
            finally:
                self._pending = None
            return self._reading[1]
        return await asyncio.shield(self._pending)

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
