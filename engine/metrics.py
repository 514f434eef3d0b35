"""Prometheus metrics for one engine process (its own registry: no global state between engines).

Counters and histograms are fed by the pipeline; gauges that describe the database (queue depth
by state, callback backlog) are read at scrape time, at most once per `cache_seconds`.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
WAIT_BUCKETS = (0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)

DepthReader = Callable[[], Awaitable[tuple[dict[str, int], int]]]
LevelReader = Callable[[], Awaitable[Sequence[Mapping[str, Any]]]]


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopCounter:
    """A labelled counter fed from one event loop: a plain float per label set, no lock per increment.

    prometheus_client's Counter takes a threading lock on every inc(); on the send path that was several
    per message. Everything here runs on the engine's single event loop (scrapes included), so no lock is
    needed. Exposed as `<name>_total`, like a prometheus_client Counter.
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], _CounterChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> _CounterChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values!r}")
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = _CounterChild()
        return child

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for key, child in self._children.items():
            family.add_metric(list(key), child.value)
        yield family


class LoopHistogram:
    """A histogram fed from one event loop: bucket counts in a list, one bisect per observation, no lock."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != float("inf"):
            bounds.append(float("inf"))
        self.name = name
        self.documentation = documentation
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket with value <= bound ("le")
        self.sum += value

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[Metric]:
        cumulative = 0
        buckets = []
        for bound, count in zip(self.bounds, self.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self.sum)


class Metrics:
    """The engine's metric families, registered in a private registry."""

    def __init__(self, *, cache_seconds: float = 2.0) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Fed once or more per message: lock-free (see LoopCounter); the gauges below are set per scrape.
        self.sends = LoopCounter("engine_sends", "Provider create requests by outcome", ["outcome"], r)
        self.provider_latency = LoopHistogram(
            "engine_provider_latency_seconds", "Provider create request latency", LATENCY_BUCKETS, r
        )
        self.throttle_wait = LoopHistogram(
            "engine_throttle_wait_seconds", "Time a message waited in its DID queue for a token", WAIT_BUCKETS, r
        )
        self.status_callbacks = LoopCounter(
            "engine_status_callbacks", "Carrier status callbacks received", ["result"], r
        )
        self.http_bad_requests = LoopCounter(
            "engine_http_bad_requests", "Malformed HTTP requests refused by the server, by error", ["reason"], r
        )
        self.carrier_throttled = LoopCounter(
            "engine_carrier_throttled", "Messages the carrier refused for a 10DLC rate (30022) or daily cap (30023): "
            "requeued, their campaign slowed or brand held", ["level", "name", "code"], r)
        self.cap_held = LoopCounter(
            "engine_daily_cap_held", "Messages a brand's daily cap sent back to the queue until the reset", [], r)
        self.queue_depth = Gauge("engine_queue_depth", "Messages not yet final, by state", ["state"], registry=r)
        self.brand_sent = Gauge("engine_brand_sent_today", "Segments a brand sent since its carrier day began",
                                ["brand"], registry=r)
        self.brand_cap = Gauge("engine_brand_daily_cap", "A brand's daily cap in segments (0: none)", ["brand"],
                               registry=r)
        self.brand_held = Gauge("engine_brand_held", "1 while the carrier holds the brand (30023) until the reset",
                                ["brand"], registry=r)
        self.campaign_sent = Gauge("engine_campaign_sent_60s", "Segments a campaign sent in the last 60 seconds",
                                   ["campaign"], registry=r)
        self.campaign_mps = Gauge("engine_campaign_mps", "A campaign's throughput in segments per second",
                                  ["campaign"], registry=r)
        self.campaign_slowed = Gauge("engine_campaign_slowed", "1 while the carrier slowed the campaign (30022)",
                                     ["campaign"], registry=r)
        self.callback_backlog = Gauge("engine_callback_backlog", "Application callbacks pending delivery", registry=r)
        self.cache_seconds = cache_seconds
        self._read_at = float("-inf")

    async def render(self, read_depths: DepthReader | None, read_levels: LevelReader | None = None) -> bytes:
        """The text exposition, refreshing database gauges when they are older than the cache."""
        now = time.monotonic()
        if read_depths is not None and now - self._read_at >= self.cache_seconds:
            depths, backlog = await read_depths()
            for state in ("queued", "claimed", "sending", "sent", "unknown"):
                self.queue_depth.labels(state).set(depths.get(state, 0))
            self.callback_backlog.set(backlog)
            if read_levels is not None:
                self._set_levels(await read_levels())
            self._read_at = now
        return generate_latest(self.registry)

    def _set_levels(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Per brand and campaign, from the database (so the same whichever process serves /metrics)."""
        for r in rows:
            name, held = str(r["name"]), 1.0 if r["held"] else 0.0
            if r["level"] == "brand":
                self.brand_sent.labels(name).set(r["sent"])
                self.brand_cap.labels(name).set(r["capacity"] or 0.0)
                self.brand_held.labels(name).set(held)
            else:
                self.campaign_sent.labels(name).set(r["sent"])
                self.campaign_mps.labels(name).set(r["capacity"])
                self.campaign_slowed.labels(name).set(held)
