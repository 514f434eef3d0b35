"""/healthz and /metrics on a running engine."""

from __future__ import annotations

import aiohttp
import asyncpg

from engine.submit import Outgoing, submit_many
from tests.harness import carrier, engine_running, setup_app, wait_final


async def test_healthz_and_prometheus_metrics(pool: asyncpg.Pool, db_dsn: str) -> None:
    async with carrier() as fake:
        await setup_app(pool, fake.base_url or "", dids=2, limit_per_min=6000)
        await submit_many(pool, "lib", [Outgoing(f"+1718{2000000 + i:07d}", f"m{i}") for i in range(20)])
        async with engine_running(db_dsn) as run:
            await wait_final(pool, 20)
            base = run.runtime.base_url
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{base}/healthz") as r:
                    assert r.status == 200 and (await r.json()) == {"ok": True}
                async with s.get(f"{base}/metrics") as r:
                    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
                    text = await r.text()
    lines = {line.split(" ")[0]: line.split(" ")[-1] for line in text.splitlines() if not line.startswith("#")}
    assert float(lines['engine_sends_total{outcome="accepted"}']) == 20
    assert float(lines["engine_provider_latency_seconds_count"]) == 20
    assert float(lines["engine_throttle_wait_seconds_count"]) == 20
    assert float(lines['engine_status_callbacks_total{result="accepted"}']) >= 20
    assert float(lines['engine_queue_depth{state="queued"}']) == 0
    assert "engine_callback_backlog" in lines
