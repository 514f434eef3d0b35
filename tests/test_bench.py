"""`engine bench` harness at tiny sizes: it counts what the carrier really accepted, and a throttled
engine shows a rate the DID limits allow. Only counts are asserted for the fast path, never timings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from benchmarks.bench_baseline import baseline_round
from benchmarks.bench_e2e import engine_round
from benchmarks.bench_paced import backlog, paced, paced_capacity
from benchmarks.bench_tracking import tracking_scenario
from benchmarks.runner import DEFAULT_SCENARIOS, SCENARIOS, BenchConfig, parse_scenarios, summarize
from engine.cli import build_parser
from engine.testing import max_per_sender_in_window

pytestmark = pytest.mark.system


def test_bench_size_flags_win_over_the_preset_and_quick_is_smaller() -> None:
    args = build_parser().parse_args(["bench", "--quick", "--json", "--messages", "300"])
    assert args.quick and args.json
    quick, full = BenchConfig.make(quick=True), BenchConfig.make(quick=False)
    cfg = BenchConfig.make(quick=args.quick, messages=args.messages, rounds=args.rounds)
    assert cfg.messages == 300 and cfg == dataclasses.replace(quick, messages=300)  # the rest from the preset
    # --quick runs the same scenarios, smaller in every size.
    assert quick.scenarios == full.scenarios
    for size in ("messages", "rounds", "throttle_dids", "throttle_decisions", "paced_dids", "paced_seconds",
                 "backlog_messages", "backlog_dids", "csv_rows", "tracking_messages"):
        assert getattr(quick, size) < getattr(full, size), size


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


async def test_engine_round_with_worker_processes_counts_every_process(server_dsn: str) -> None:
    """`engine serve` + `engine worker --processes 2`: every message once, the CPU summed over serve, the
    supervisor and both workers. Each worker holds half the DIDs from its start (expected_workers), so at least
    that half sent (400 messages may be gone before the second worker is up)."""
    r = await engine_round(server_dsn, messages=400, dids=10, processes=2)
    f = r.figures
    assert f["layout"] == "engine serve + engine worker --processes 2"
    assert f["engine_processes"] == 4  # serve, the supervisor, two workers
    assert f["carrier_accepted"] == len(r.records) == 400 and f["final"] == f["delivered"] == 400
    assert len({rec.to for rec in r.records}) == 400
    assert 5 <= f["senders_used"] <= 10 and f["cpu_us_per_msg"] > 0


async def test_throttled_engine_rate_matches_the_did_limit(server_dsn: str) -> None:
    # 3 DIDs at 60/min = one send per DID per second: 6 messages need two turns, >= ~1 s apart.
    r = await engine_round(server_dsn, messages=6, dids=3, limit_per_min=60)
    f = r.figures
    assert f["carrier_accepted"] == 6 and f["final"] == 6
    assert max_per_sender_in_window(r.records, 0.9) == 1
    assert max_per_sender_in_window(r.records, 60.0) == 2
    # Upper bounds on the rate (a busy machine only lowers it): the second turn cannot come sooner than ~1 s.
    assert f["elapsed_s"] >= 0.9
    assert f["msgs_per_s"] <= 6.5


def test_bench_scenario_flags() -> None:
    args = build_parser().parse_args(["bench", "--quick", "--scenarios", "paced, backlog", "--paced-dids", "7"])
    scenarios = parse_scenarios(args.scenarios)
    assert scenarios == ("paced", "backlog")
    cfg = BenchConfig.make(quick=True, paced_dids=args.paced_dids, scenarios=scenarios)
    assert cfg == dataclasses.replace(BenchConfig.make(quick=True), paced_dids=7, scenarios=scenarios)
    assert parse_scenarios("backlog,paced,paced") == scenarios  # once each, in the canonical order
    assert BenchConfig.make(quick=False).scenarios == DEFAULT_SCENARIOS == parse_scenarios(None)
    assert parse_scenarios("all") == SCENARIOS == (*DEFAULT_SCENARIOS, "tracking")  # the 10M table: when asked
    with pytest.raises(ValueError, match="nope"):
        parse_scenarios("paced,nope")
    # burst 1 at 60/min: t0, t0+1, ..., t0+T-1 in [t0, t0+T): T sends per DID
    assert paced_capacity(5, 3) == 15 and paced_capacity(300, 60) == 18_000


async def test_paced_counts_carrier_accepts_within_the_limit(server_dsn: str) -> None:
    r = await paced(server_dsn, dids=5, seconds=3)
    f = r.figures
    assert f["capacity"] == 15 and f["queued"] >= 2 * 15
    assert f["carrier_accepted_total"] == len(r.records) > 0 and f["carrier_rejected"] == 0
    t0 = min(rec.t for rec in r.records)
    assert f["sent_in_window"] == sum(1 for rec in r.records if t0 <= rec.t < t0 + 3)
    assert f["achieved_ratio"] == pytest.approx(f["sent_in_window"] / f["capacity"], abs=1e-4)
    assert len({rec.to for rec in r.records}) == len(r.records)  # each message once
    assert f["carrier_accepted_total"] < f["queued"]  # stopped without draining the backlog
    assert 0 < f["achieved_ratio"] <= 1.0  # never over the capacity (how close to it: the wallclock test)
    assert f["max_per_did_60s"] <= 60
    assert max_per_sender_in_window(r.records, 0.8) == 1  # 60/min, burst 1: ~1 s apart (slack for jitter)


@pytest.mark.wallclock
async def test_paced_reaches_most_of_the_capacity(server_dsn: str) -> None:
    r = await paced(server_dsn, dids=5, seconds=3)
    assert 0.8 <= r.figures["achieved_ratio"] <= 1.0


async def test_backlog_reports_first_send_and_peak_rss(server_dsn: str) -> None:
    r = await backlog(server_dsn, messages=2_000, dids=200, settle_s=2.0)
    f = r.figures
    assert f["carrier_accepted"] == len(r.records) > 0 and f["carrier_rejected"] == 0
    assert f["carrier_accepted"] < 2_000  # stopped early, backlog not drained
    assert 0 < f["time_to_first_send_s"] < 60
    assert f["peak_rss_mb"] is not None and f["peak_rss_mb"] >= f["rss_at_read_mb"] * 0.9 > 0
    assert f["max_per_did_60s"] <= 60


def test_http_client_bench_counts_every_request_on_kept_alive_connections() -> None:
    """benchmarks/bench_http_clients.py in a subprocess, tiny: aiohttp measured (every request answered by the
    server, which checks each one; one connection per request in flight), a client not installed skipped, not
    faked."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_http_clients", "--requests", "300", "--concurrency", "8",
         "--rounds", "1", "--clients", "aiohttp,pyreqwest", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    rows = {r["client"]: r for r in doc["results"]}
    aio = rows["aiohttp"]
    assert aio["errors"] == 0 and aio["bad_requests"] == 0
    assert aio["connections"] == [8]  # kept alive: no new connection per request
    assert aio["cpu_us_median"] > 0 and aio["rps_median"] > 0
    other = rows["pyreqwest"]  # not a project dependency: skipped with a note, unless someone installed it
    assert other.get("note", "").startswith("skipped") or other["errors"] == 0


def test_bench_without_pgqueuer_says_how_to_install_it_before_running_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from engine.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pgqueuer" else real(name, *a))
    assert main(["bench", "--scenarios", "e2e", "--messages", "10"]) == 2
    assert "pip install -e '.[bench]'" in capsys.readouterr().err
    assert main(["bench", "--processes", "0", "--scenarios", "throttle"]) == 2
    assert "--processes must be at least 1" in capsys.readouterr().err


async def test_latency_scenario_times_every_message_of_both_doors(server_dsn: str) -> None:
    """One message every 50 ms for 1 s per door: every one reaches the carrier and its final delivery report the
    app's gateway, so each percentile is over all of them (their values are not asserted: timings)."""
    from benchmarks.bench_latency import latency

    out = await latency(server_dsn, seconds=1.0, dids=3)
    assert set(out["doors"]) == {"sql", "api"} and out["carrier"] == "lean"
    for f in out["doors"].values():
        assert f["messages"] == f["reached_carrier"] == f["final_reports"] == 20
        for key in ("submit_to_carrier_ms", "submit_to_report_ms"):
            assert 0 < f[key]["p50"] <= f[key]["p99"] <= f[key]["max"]
        assert f["submit_to_carrier_ms"]["p50"] < f["submit_to_report_ms"]["p50"]
        # The lean carrier's CPU for 20 messages can be below the kernel's tick (10 ms) and read as 0.
        assert f["engine_cpu_us_per_msg"] > 0 and f["carrier_cpu_us_per_msg"] >= 0


async def test_cpu_accounting_names_every_process_of_the_round(server_dsn: str) -> None:
    """Each engine round accounts CPU per process and per second over its window: the engine processes by what they
    are, the carrier, Postgres, the benchmark process, and the whole machine's busy cores beside ours."""
    r = await engine_round(server_dsn, messages=300, dids=10, processes=2)
    acc = r.figures["cpu_accounting"]
    names = [p["process"] for p in acc["processes"]]
    assert sorted(names[:4]) == sorted(
        ["engine serve", "engine worker --processes 2 (supervisor)", "engine worker", "engine worker"])
    assert names[4:] == ["lean carrier", "postgres (all backends)", "benchmark process (submits, polls)"]
    assert acc["window_s"] > 0 and acc["cores"] >= 1
    engine_cpu = sum(p["cpu_s"] for p in acc["processes"][:4])
    assert engine_cpu == pytest.approx(r.figures["cpu_s"], abs=0.05)  # the same window as cpu_us_per_msg
    assert acc["ours_cores_busy"] == pytest.approx(sum(p["cores_busy"] for p in acc["processes"]), abs=0.01)
    assert 0 < acc["ours_cores_busy"] <= acc["machine_cores_busy"] + 0.2


def test_ab_alternates_source_trees_and_refuses_what_is_not_one(tmp_path: Path) -> None:
    """`python -m benchmarks.ab`: one JSON line per round of each side (here this tree under two names), and a side
    that names no source tree of the engine is refused before anything runs."""
    import json
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-m", "benchmarks.ab", "--messages", "100", "--rounds", "1",
                          f"a={root}", f"b={root}"], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["side"], r["round"]) for r in rows] == [("a", 0), ("b", 0)]
    assert all(r["msgs_per_s"] > 0 and r["cpu_us_per_msg"] > 0 for r in rows)
    bad = subprocess.run([sys.executable, "-m", "benchmarks.ab", f"x={tmp_path}"], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 2 and "not NAME=DIR" in bad.stderr


async def test_tracking_scenario_builds_what_it_says_and_times_every_query(server_dsn: str) -> None:
    result = await tracking_scenario(server_dsn, messages=30_000, runs=3, event_share=0.1)
    assert result["messages"] == 30_000 and result["dropped_indexes"] == []
    queries = result["queries"]
    assert len(queries["job_sizes"]) == 12 and sum(queries["job_sizes"]) == 30_000 // 4
    timed = {k: v for k, v in queries.items() if isinstance(v, dict)}
    assert {"first_page", "phone", "tag", "job", "deep_cursor", "job_counts_by_state", "message_detail"} <= set(timed)
    assert all(v["runs"] == 3 and v["p50_ms"] > 0 for v in timed.values())
