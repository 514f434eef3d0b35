"""/healthz and /metrics on a running engine."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest

from engine.submit import Outgoing, submit_many
from tests.helpers.database import wait_final
from tests.helpers.engine import carrier, engine_running, setup_app


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


async def test_loop_metrics_expose_what_prometheus_counters_and_histograms_would() -> None:
    """LoopCounter / LoopHistogram (no lock per update): `le` buckets are inclusive and cumulative, +Inf counts
    everything, labels are kept apart; the exposition parses with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    from engine.metrics import Metrics

    m = Metrics()
    accepted = m.sends.labels("accepted")
    accepted.inc()
    accepted.inc(2)
    m.sends.labels("rejected").inc()
    for v in (0.0, 0.005, 0.0051, 0.3, 99.0):
        m.provider_latency.observe(v)
    with pytest.raises(ValueError):
        m.sends.labels("a", "b")
    text = (await m.render(None)).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("engine_sends_total", (("outcome", "accepted"),))] == 3
    assert samples[("engine_sends_total", (("outcome", "rejected"),))] == 1
    bucket = "engine_provider_latency_seconds_bucket"
    assert samples[(bucket, (("le", "0.005"),))] == 2  # 0.0 and 0.005 itself
    assert samples[(bucket, (("le", "0.01"),))] == 3
    assert samples[(bucket, (("le", "0.25"),))] == 3
    assert samples[(bucket, (("le", "0.5"),))] == 4
    assert samples[(bucket, (("le", "30.0"),))] == 4
    assert samples[(bucket, (("le", "+Inf"),))] == 5
    assert samples[("engine_provider_latency_seconds_count", ())] == 5
    assert samples[("engine_provider_latency_seconds_sum", ())] == pytest.approx(99.3101)
