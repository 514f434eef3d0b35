"""Overview: open messages by state, sends per minute over the last hour, delivery rate, callbacks, per-app counts.

The figures refresh live: the tables by htmx polling a fragment, the chart from ``/console/api/overview.json``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from engine.console.views import Deps, render
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


class OverviewPages:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.page, name="overview"),
            web.get("/overview/live", self.live, name="overview-live"),
            web.get("/api/overview.json", self.data, name="overview-json"),
        ]

    async def page(self, request: web.Request) -> web.Response:
        return await render(request, "overview.html", {"ov": await store.overview(self.deps.pool)}, nav="overview")

    async def live(self, request: web.Request) -> web.Response:
        return await render(request, "_overview_live.html", {"ov": await store.overview(self.deps.pool)})

    async def data(self, request: web.Request) -> web.Response:
        return web.json_response(overview_json(await store.overview(self.deps.pool)))
