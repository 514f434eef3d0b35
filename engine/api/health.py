"""Operational endpoints: `/healthz` (process and database alive) and `/metrics` (Prometheus text)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from engine.metrics import Metrics
from engine.policy.senders import carrier_day_timezone
from engine.store import outbound, outbox, senders
from engine.store.database import DB_ERRORS, Pool, ping
from engine.throttle.daily import CarrierDay


class HealthApi:
    """Serves health and metrics for one engine process."""

    def __init__(self, pool: Pool, metrics: Metrics) -> None:
        self.pool = pool
        self.metrics = metrics
        self.carrier_day = CarrierDay(carrier_day_timezone())

    async def _depths(self) -> tuple[dict[str, int], int]:
        return await outbound.queue_depth(self.pool), await outbox.backlog(self.pool)

    async def _levels(self) -> list[dict[str, Any]]:
        """Brands' days and campaigns' last minute (engine/metrics.py: engine_brand_*, engine_campaign_*)."""
        start = self.carrier_day.bounds(time.time())[0]
        return await senders.level_stats(self.pool, datetime.fromtimestamp(start, UTC))

    async def healthz(self, _: web.Request) -> web.Response:
        try:
            await ping(self.pool)
        except DB_ERRORS as exc:
            return web.json_response({"ok": False, "database": type(exc).__name__}, status=503)
        return web.json_response({"ok": True})

    async def metrics_text(self, _: web.Request) -> web.Response:
        body = await self.metrics.render(self._depths, self._levels)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.healthz), web.get("/metrics", self.metrics_text)]
