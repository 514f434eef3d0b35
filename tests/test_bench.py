"""`engine bench` harness at tiny sizes: it counts what the carrier really accepted, and a throttled
engine shows a rate the DID limits allow. Only counts are asserted for the fast path, never timings."""

from __future__ import annotations

import pytest

from benchmarks.bench_baseline import baseline_round
from benchmarks.bench_e2e import engine_round
from benchmarks.runner import BenchConfig, summarize
from engine.cli import build_parser
from engine.providers.fake import max_per_sender_in_window

pytestmark = pytest.mark.system


def test_bench_command_parses_sizes() -> None:
    args = build_parser().parse_args(["bench", "--quick", "--json", "--messages", "300"])
    cfg = BenchConfig.make(quick=args.quick, messages=args.messages, rounds=args.rounds)
    assert (cfg.messages, cfg.rounds, cfg.throttle_dids, cfg.throttle_decisions) == (300, 2, 10_000, 100_000)
    full = BenchConfig.make(quick=False)
    assert (full.messages, full.rounds, full.throttle_dids, full.throttle_decisions) == (
        100_000, 3, 100_000, 1_000_000)


async def test_engine_and_baseline_count_what_the_carrier_accepted(server_dsn: str) -> None:
    engine = await engine_round(server_dsn, messages=300, dids=10)
    baseline = await baseline_round(server_dsn, messages=300, dids=10)
    for r in (engine, baseline):
        f = r.figures
        assert f["carrier_accepted"] == len(r.records) == 300
        assert f["carrier_rejected"] == 0
        assert f["final"] == f["delivered"] == 300
        assert f["carrier_callbacks_sent"] == 300
        assert f["senders_used"] == 10
        assert len({rec.to for rec in r.records}) == 300  # each message once
        assert f["msgs_per_s"] > 0 and f["cpu_us_per_msg"] > 0
    summary = summarize([engine.figures])
    assert summary["all_final"] and summary["carrier_accepted"] == [300]


async def test_throttled_engine_rate_matches_the_did_limit(server_dsn: str) -> None:
    # 3 DIDs at 60/min = one send per DID per second: 6 messages need two turns, >= ~1 s apart.
    r = await engine_round(server_dsn, messages=6, dids=3, limit_per_min=60)
    f = r.figures
    assert f["carrier_accepted"] == 6 and f["final"] == 6
    assert max_per_sender_in_window(r.records, 0.9) == 1
    assert max_per_sender_in_window(r.records, 60.0) == 2
    assert f["elapsed_s"] >= 0.9
    assert f["msgs_per_s"] <= 6.5
