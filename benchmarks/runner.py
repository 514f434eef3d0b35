"""`engine bench`: engine vs baseline end to end (alternating A B A B), the scheduler alone, and the
engine at the real per-DID limit (`paced`: a backlog over D DIDs at 60/min for T seconds, then over a mixed pool of
long codes, a toll-free number and a short code at their types' paces; `backlog`:
time to first send and peak RSS with a large queue and many DIDs). `--scenarios` picks some of them.

With --json exactly one JSON object goes to stdout; progress and logs go to stderr.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from benchmarks import harness as h
from benchmarks.bench_baseline import baseline_round
from benchmarks.bench_e2e import engine_round
from benchmarks.bench_jobs import csv_to_queued
from benchmarks.bench_latency import latency
from benchmarks.bench_mixed import mixed
from benchmarks.bench_paced import backlog, paced
from benchmarks.bench_tracking import tracking_scenario

# e2e = engine vs baseline (and their ratio); processes = `engine run` vs `engine worker --processes 1 / N`
# jobs = a CSV of csv_rows rows to all queued (`engine send --detach`); latency = one message every 50 ms per door;
# tracking = the tracking queries on a 10-million-message table (minutes to build: only when named, or 'all')
SCENARIOS = ("e2e", "processes", "throttle", "paced", "backlog", "jobs", "latency", "tracking")
DEFAULT_SCENARIOS = ("e2e", "processes", "throttle", "paced", "backlog", "jobs", "latency")
MIXED_LONG_CODES = 10  # paced also runs a mixed pool: these long codes, a toll-free number and a short code


def parse_scenarios(text: str | None) -> tuple[str, ...]:
    """A comma list of scenario names (None or '' = the default ones, 'all' = every one), in the canonical order."""
    if text is None or not text.strip():
        return DEFAULT_SCENARIOS
    if text.strip() == "all":
        return SCENARIOS
    names = {n.strip() for n in text.split(",") if n.strip()}
    unknown = names - set(SCENARIOS)
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    return tuple(n for n in SCENARIOS if n in names)


@dataclass(frozen=True)
class BenchConfig:
    messages: int
    rounds: int
    dids: int
    limit_per_min: int
    throttle_dids: int
    throttle_decisions: int
    quick: bool
    paced_dids: int = 300
    paced_seconds: float = 60.0
    backlog_messages: int = 1_000_000
    backlog_dids: int = 100_000
    scenarios: tuple[str, ...] = DEFAULT_SCENARIOS
    processes: int = 2
    csv_rows: int = 100_000
    carrier: str = "lean"  # the carrier process every scenario sends to (harness.CARRIERS)
    latency_seconds: float = 30.0  # latency: how long each door gets one message every 50 ms
    tracking_messages: int = 10_000_000

    @classmethod
    def make(cls, *, quick: bool, messages: int | None = None, rounds: int | None = None, dids: int = 100,
             limit_per_min: int = 600_000, throttle_dids: int | None = None,
             throttle_decisions: int | None = None, paced_dids: int | None = None,
             paced_seconds: float | None = None, backlog_messages: int | None = None,
             backlog_dids: int | None = None, scenarios: tuple[str, ...] = DEFAULT_SCENARIOS,
             processes: int | None = None, csv_rows: int | None = None, carrier: str = "lean",
             latency_seconds: float | None = None, tracking_messages: int | None = None) -> BenchConfig:
        return cls(
            messages=messages or (20_000 if quick else 100_000),
            rounds=rounds or (2 if quick else 3),
            dids=dids,
            limit_per_min=limit_per_min,
            throttle_dids=throttle_dids or (10_000 if quick else 100_000),
            throttle_decisions=throttle_decisions or (100_000 if quick else 1_000_000),
            quick=quick,
            paced_dids=paced_dids or (100 if quick else 300),
            paced_seconds=paced_seconds or (20.0 if quick else 60.0),
            backlog_messages=backlog_messages or (100_000 if quick else 1_000_000),
            backlog_dids=backlog_dids or (10_000 if quick else 100_000),
            scenarios=scenarios,
            processes=processes or 2,
            csv_rows=csv_rows or (20_000 if quick else 100_000),
            carrier=carrier,
            latency_seconds=latency_seconds or 30.0,
            tracking_messages=tracking_messages or (1_000_000 if quick else 10_000_000),
        )


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1)}


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians and ranges over rounds, plus the per-round figures."""
    return {
        "msgs_per_s": _spread([r["msgs_per_s"] for r in rounds]),
        "cpu_us_per_msg": _spread([r["cpu_us_per_msg"] for r in rounds]),
        # The fake carrier shares the 2 cores: its cost per message bounds what any sender can reach.
        "carrier_cpu_us_per_msg": _spread([r["carrier_cpu_us_per_msg"] for r in rounds]),
        "queue_to_carrier_p50_ms": _spread([r["queue_to_carrier_p50_ms"] for r in rounds]),
        "queue_to_carrier_p99_ms": _spread([r["queue_to_carrier_p99_ms"] for r in rounds]),
        "carrier_accepted": [r["carrier_accepted"] for r in rounds],
        "all_final": all(r["final"] == r["messages"] for r in rounds),
        "rounds": rounds,
    }


async def _throttle(cfg: BenchConfig) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.bench_throttle", "--dids", str(cfg.throttle_dids),
        "--decisions", str(cfg.throttle_decisions), stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"bench_throttle exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


async def _e2e(cfg: BenchConfig, server: str) -> dict[str, Any]:
    engine_rounds: list[dict[str, Any]] = []
    baseline_rounds: list[dict[str, Any]] = []
    for i in range(cfg.rounds):  # A B A B: drift on the machine hits both sides alike
        h.log(f"round {i + 1}/{cfg.rounds}: engine, {cfg.messages} messages")
        e = await engine_round(server, messages=cfg.messages, dids=cfg.dids, limit_per_min=cfg.limit_per_min,
                               carrier=cfg.carrier)
        engine_rounds.append(e.figures)
        h.log(f"  engine {e.figures['msgs_per_s']} msg/s, {e.figures['cpu_us_per_msg']} µs CPU/msg")
        h.log(f"round {i + 1}/{cfg.rounds}: baseline, {cfg.messages} messages")
        b = await baseline_round(server, messages=cfg.messages, dids=cfg.dids, carrier=cfg.carrier)
        baseline_rounds.append(b.figures)
        h.log(f"  baseline {b.figures['msgs_per_s']} msg/s, {b.figures['cpu_us_per_msg']} µs CPU/msg")
    engine = summarize(engine_rounds)
    baseline = summarize(baseline_rounds)
    baseline["kind"] = baseline_rounds[0]["kind"]
    ratio = {
        "msgs_per_s": round(engine["msgs_per_s"]["median"] / baseline["msgs_per_s"]["median"], 2),
        "cpu_us_per_msg": round(engine["cpu_us_per_msg"]["median"] / baseline["cpu_us_per_msg"]["median"], 2),
    }
    return {
        "e2e": {"messages": cfg.messages, "dids": cfg.dids, "limit_per_min": cfg.limit_per_min, **engine},
        "baseline": {"messages": cfg.messages, **baseline},
        "ratio": ratio,
    }


async def _processes(cfg: BenchConfig, server: str) -> dict[str, Any]:
    """`engine run` (one process) vs the HTTP side in `engine serve` and dispatch in `engine worker --processes 1`,
    then `--processes N`; alternated like e2e. Then the paced scenario with N worker processes: the limit must
    hold across them (DID leases), from the carrier's record."""
    layouts = (0, 1, cfg.processes)
    rounds: dict[int, list[dict[str, Any]]] = {n: [] for n in layouts}
    for i in range(cfg.rounds):
        for n in layouts:
            h.log(f"round {i + 1}/{cfg.rounds}: {h.layout(n)}, {cfg.messages} messages")
            r = await engine_round(server, messages=cfg.messages, dids=cfg.dids, limit_per_min=cfg.limit_per_min,
                                   processes=n, carrier=cfg.carrier)
            rounds[n].append(r.figures)
            h.log(f"  {r.figures['msgs_per_s']} msg/s, {r.figures['cpu_us_per_msg']} µs CPU/msg")
    one = summarize(rounds[0])
    out: dict[str, Any] = {"messages": cfg.messages, "dids": cfg.dids, "worker_processes": cfg.processes,
                           "layouts": {}}
    for n in layouts:
        summary = summarize(rounds[n])
        summary["ratio_to_engine_run"] = round(summary["msgs_per_s"]["median"] / one["msgs_per_s"]["median"], 2)
        out["layouts"][h.layout(n)] = summary
    h.log(f"paced with {h.layout(cfg.processes)}: {cfg.paced_dids} DIDs at 60/min for {cfg.paced_seconds:g}s")
    p = await paced(server, dids=cfg.paced_dids, seconds=cfg.paced_seconds, processes=cfg.processes,
                    carrier=cfg.carrier)
    out["paced"] = p.figures
    h.log(f"  sent {p.figures['sent_in_window']}/{p.figures['capacity']}, max per DID in 60 s "
          f"{p.figures['max_per_did_60s']}")
    return out


async def run_bench(cfg: BenchConfig, dsn: str | None, command: str) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    pg_version = None
    needs_pg = any(n in cfg.scenarios
                   for n in ("e2e", "processes", "paced", "backlog", "jobs", "latency", "tracking"))
    if needs_pg:
        async with h.postgres_server(dsn) as server:
            conn = await asyncpg.connect(server)
            try:
                pg_version = str(await conn.fetchval("SHOW server_version"))
            finally:
                await conn.close()
            if "e2e" in cfg.scenarios:
                scenarios.update(await _e2e(cfg, server))
            if "processes" in cfg.scenarios:
                scenarios["processes"] = await _processes(cfg, server)
            if "paced" in cfg.scenarios:
                h.log(f"paced: {cfg.paced_dids} DIDs at 60/min for {cfg.paced_seconds:g}s")
                p = await paced(server, dids=cfg.paced_dids, seconds=cfg.paced_seconds, carrier=cfg.carrier)
                scenarios["paced"] = p.figures
                h.log(f"  sent {p.figures['sent_in_window']}/{p.figures['capacity']} in the window "
                      f"({p.figures['achieved_ratio']}), max per DID in 60 s {p.figures['max_per_did_60s']}")
                h.log(f"paced, mixed pool: {MIXED_LONG_CODES} long codes, a toll-free number and a short code for "
                      f"{cfg.paced_seconds:g}s")
                m = await mixed(server, long_codes=MIXED_LONG_CODES, seconds=cfg.paced_seconds)
                scenarios["paced_mixed"] = m.figures
                h.log(f"  sent {m.figures['sent_in_window']}/{m.figures['capacity']} in the window "
                      f"({m.figures['achieved_ratio']}), limits exceeded: {m.figures['limits_exceeded'] or 'none'}")
            if "backlog" in cfg.scenarios:
                h.log(f"backlog: {cfg.backlog_messages} queued, {cfg.backlog_dids} DIDs at 60/min")
                b = await backlog(server, messages=cfg.backlog_messages, dids=cfg.backlog_dids, carrier=cfg.carrier)
                scenarios["backlog"] = b.figures
                h.log(f"  first send after {b.figures['time_to_first_send_s']}s, "
                      f"peak RSS {b.figures['peak_rss_mb']} MB")
            if "jobs" in cfg.scenarios:
                scenarios["jobs"] = await csv_to_queued(server, cfg.csv_rows, cfg.rounds)
            if "latency" in cfg.scenarios:
                h.log(f"latency: one message every 50 ms for {cfg.latency_seconds:g} s per door")
                scenarios["latency"] = await latency(server, seconds=cfg.latency_seconds, carrier=cfg.carrier)
            if "tracking" in cfg.scenarios:
                scenarios["tracking"] = await tracking_scenario(server, messages=cfg.tracking_messages)
    if "throttle" in cfg.scenarios:
        h.log(f"throttle: {cfg.throttle_dids} DIDs, {cfg.throttle_decisions} decisions")
        scenarios["throttle"] = await _throttle(cfg)
    return {
        "scenarios": scenarios,
        "quick": cfg.quick,
        "carrier": cfg.carrier,
        "machine": h.machine_info(pg_version),
        "command": command,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def format_table(result: dict[str, Any]) -> str:
    s = result["scenarios"]
    lines: list[str] = []
    if "e2e" in s:
        e, b = s["e2e"], s["baseline"]
        rows = [
            ("", "engine", f"baseline ({b['kind']})", "engine/baseline"),
            ("msgs/s (median)", e["msgs_per_s"]["median"], b["msgs_per_s"]["median"], s["ratio"]["msgs_per_s"]),
            ("msgs/s (min..max)", f"{e['msgs_per_s']['min']}..{e['msgs_per_s']['max']}",
             f"{b['msgs_per_s']['min']}..{b['msgs_per_s']['max']}", ""),
            ("CPU µs/msg (median)", e["cpu_us_per_msg"]["median"], b["cpu_us_per_msg"]["median"],
             s["ratio"]["cpu_us_per_msg"]),
            ("queue→carrier p50 ms", e["queue_to_carrier_p50_ms"]["median"],
             b["queue_to_carrier_p50_ms"]["median"], ""),
            ("queue→carrier p99 ms", e["queue_to_carrier_p99_ms"]["median"],
             b["queue_to_carrier_p99_ms"]["median"], ""),
            ("carrier accepted", e["carrier_accepted"], b["carrier_accepted"], ""),
        ]
        lines.append(f"{e['messages']} messages per round, {len(e['rounds'])} rounds each (A B A B)")
        lines += [f"{a!s:<24}{c1!s:>22}{c2!s:>26}{c3!s:>18}" for a, c1, c2, c3 in rows]
    if "processes" in s:
        for name, lay in s["processes"]["layouts"].items():
            lines.append(f"{name}: {lay['msgs_per_s']['median']} msg/s ({lay['ratio_to_engine_run']}× engine run), "
                         f"{lay['cpu_us_per_msg']['median']} µs CPU/msg")
            acc = lay["rounds"][-1]["cpu_accounting"]
            busy = ", ".join(f"{p['process']} {p['cores_busy']}" for p in acc["processes"])
            lines.append(f"  cores busy (last round, {acc['window_s']} s): {busy}; ours {acc['ours_cores_busy']} of "
                         f"{acc['cores']}, the whole machine {acc['machine_cores_busy']}")
        p = s["processes"]["paced"]
        lines.append(f"  paced with {p['layout']}: sent {p['sent_in_window']} of capacity {p['capacity']}, "
                     f"max per DID in any 60 s {p['max_per_did_60s']}")
    if "throttle" in s:
        t = s["throttle"]
        lines.append(f"throttle: {t['dids']} DIDs, {t['decisions']} decisions: {t['us_per_decision']} µs/decision, "
                     f"peak RSS {t['peak_rss_mb']} MB")
    if "paced" in s:
        p = s["paced"]
        lines.append(f"paced: {p['dids']} DIDs at {p['limit_per_min']}/min, {p['seconds']:g}s window from the first "
                     f"accept: sent {p['sent_in_window']} of capacity {p['capacity']} ({p['achieved_ratio']}), "
                     f"max per DID in any 60 s {p['max_per_did_60s']}")
    if "paced_mixed" in s:
        m = s["paced_mixed"]
        kinds = ", ".join(f"{v['count']} {k} (max {v['max_per_sender_60s']}/{v['limit_per_min']} in 60 s, "
                          f"{v['max_per_sender_1s']} in 1 s)" for k, v in m["senders"].items())
        lines.append(f"paced, mixed pool ({kinds}): sent {m['sent_in_window']} of capacity {m['capacity']} "
                     f"({m['achieved_ratio']}) in {m['seconds']:g}s, limits exceeded: "
                     f"{', '.join(m['limits_exceeded']) or 'none'}")
    if "backlog" in s:
        k = s["backlog"]
        lines.append(f"backlog: {k['messages']} queued, {k['dids']} DIDs: first send {k['time_to_first_send_s']}s "
                     f"after the engine started, peak RSS {k['peak_rss_mb']} MB (at {k['rss_read_after_s']}s)")
    if "jobs" in s:
        j = s["jobs"]["median"]
        lines.append(f"jobs: a {s['jobs']['rows']:,}-row CSV to all queued: engine send {j['command_s']} s "
                     f"({j['rows_per_s']:,.0f} rows/s, median); in process: read {j['read_s']} s, validate "
                     f"{j['validate_s']} s, COPY {j['copy_s']} s ({j['copy_rows_per_s']:,.0f} rows/s)")
    if "latency" in s:
        for door, f in s["latency"]["doors"].items():
            c, r = f["submit_to_carrier_ms"], f["submit_to_report_ms"]
            lines.append(f"latency via {door}: submit→carrier p50 {c['p50']} ms, p99 {c['p99']} ms; submit→delivery "
                         f"report p50 {r['p50']} ms, p99 {r['p99']} ms ({f['messages']} messages, engine "
                         f"{f['engine_cpu_us_per_msg']} µs CPU/msg, carrier {f['carrier_cpu_us_per_msg']})")
    if "tracking" in s:
        t = s["tracking"]
        lines.append(f"tracking: {t['messages']:,} messages (built in {t['fill_s']} s + indexes {t['indexes_s']} s, "
                     f"{t['table_and_indexes_mb']} MB), ms per query, p50 / p99 of {t['runs']}:")
        lines += [f"  {name:<28}{q['p50_ms']:>9} {q['p99_ms']:>9}" for name, q in t["queries"].items()
                  if isinstance(q, dict)]
    m = result["machine"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, PostgreSQL {m['postgres']}")
    return "\n".join(lines)
