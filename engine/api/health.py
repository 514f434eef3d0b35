"""Operational endpoints: `/healthz` (process and database alive) and `/metrics` (Prometheus text)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from engine.metrics import Metrics
from engine.store import outbound, outbox
from engine.store.database import DB_ERRORS, Pool, ping


class HealthApi:
    """Serves health and metrics for one engine process."""

    def __init__(self, pool: Pool, metrics: Metrics) -> None:
        self.pool = pool
        self.metrics = metrics

    async def _depths(self) -> tuple[dict[str, int], int]:
        return await outbound.queue_depth(self.pool), await outbox.backlog(self.pool)

    async def healthz(self, _: web.Request) -> web.Response:
        try:
            await ping(self.pool)
        except DB_ERRORS as exc:
            return web.json_response({"ok": False, "database": type(exc).__name__}, status=503)
        return web.json_response({"ok": True})

    async def metrics_text(self, _: web.Request) -> web.Response:
        body = await self.metrics.render(self._depths)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.healthz), web.get("/metrics", self.metrics_text)]
