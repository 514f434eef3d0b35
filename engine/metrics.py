"""Prometheus metrics for one engine process (its own registry: no global state between engines).

Counters and histograms are fed by the pipeline; gauges that describe the database (queue depth
by state, callback backlog) are read at scrape time, at most once per `cache_seconds`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

DepthReader = Callable[[], Awaitable[tuple[dict[str, int], int]]]


class Metrics:
    """The engine's metric families, registered in a private registry."""

    def __init__(self, *, cache_seconds: float = 2.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.sends = Counter("engine_sends", "Provider create requests by outcome", ["outcome"], registry=r)
        self.provider_latency = Histogram(
            "engine_provider_latency_seconds", "Provider create request latency", buckets=LATENCY_BUCKETS, registry=r
        )
        self.throttle_wait = Histogram(
            "engine_throttle_wait_seconds", "Time a message waited in its DID queue for a token",
            buckets=WAIT_BUCKETS, registry=r,
        )
        self.status_callbacks = Counter(
            "engine_status_callbacks", "Carrier status callbacks received", ["result"], registry=r
        )
        self.queue_depth = Gauge("engine_queue_depth", "Messages not yet final, by state", ["state"], registry=r)
        self.callback_backlog = Gauge("engine_callback_backlog", "Application callbacks pending delivery", registry=r)
        self.cache_seconds = cache_seconds
        self._read_at = float("-inf")

    async def render(self, read_depths: DepthReader | None) -> bytes:
        """The text exposition, refreshing database gauges when they are older than the cache."""
        now = time.monotonic()
        if read_depths is not None and now - self._read_at >= self.cache_seconds:
            depths, backlog = await read_depths()
            for state in ("queued", "claimed", "sending", "sent", "unknown"):
                self.queue_depth.labels(state).set(depths.get(state, 0))
            self.callback_backlog.set(backlog)
            self._read_at = now
        return generate_latest(self.registry)
