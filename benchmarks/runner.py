"""`engine bench`: engine vs baseline end to end (alternating A B A B), and the scheduler alone.

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


@dataclass(frozen=True)
class BenchConfig:
    messages: int
    rounds: int
    dids: int
    limit_per_min: int
    throttle_dids: int
    throttle_decisions: int
    quick: bool

    @classmethod
    def make(cls, *, quick: bool, messages: int | None = None, rounds: int | None = None, dids: int = 100,
             limit_per_min: int = 600_000, throttle_dids: int | None = None,
             throttle_decisions: int | None = None) -> BenchConfig:
        return cls(
            messages=messages or (5_000 if quick else 100_000),
            rounds=rounds or (2 if quick else 3),
            dids=dids,
            limit_per_min=limit_per_min,
            throttle_dids=throttle_dids or (10_000 if quick else 100_000),
            throttle_decisions=throttle_decisions or (100_000 if quick else 1_000_000),
            quick=quick,
        )


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1)}


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians and ranges over rounds, plus the per-round figures."""
    return {
        "msgs_per_s": _spread([r["msgs_per_s"] for r in rounds]),
        "cpu_us_per_msg": _spread([r["cpu_us_per_msg"] for r in rounds]),
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


async def run_bench(cfg: BenchConfig, dsn: str | None, command: str) -> dict[str, Any]:
    async with h.postgres_server(dsn) as server:
        conn = await asyncpg.connect(server)
        try:
            pg_version = str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
        engine_rounds: list[dict[str, Any]] = []
        baseline_rounds: list[dict[str, Any]] = []
        for i in range(cfg.rounds):  # A B A B: drift on the machine hits both sides alike
            h.log(f"round {i + 1}/{cfg.rounds}: engine, {cfg.messages} messages")
            e = await engine_round(server, messages=cfg.messages, dids=cfg.dids, limit_per_min=cfg.limit_per_min)
            engine_rounds.append(e.figures)
            h.log(f"  engine {e.figures['msgs_per_s']} msg/s, {e.figures['cpu_us_per_msg']} µs CPU/msg")
            h.log(f"round {i + 1}/{cfg.rounds}: baseline, {cfg.messages} messages")
            b = await baseline_round(server, messages=cfg.messages, dids=cfg.dids)
            baseline_rounds.append(b.figures)
            h.log(f"  baseline {b.figures['msgs_per_s']} msg/s, {b.figures['cpu_us_per_msg']} µs CPU/msg")
    h.log(f"throttle: {cfg.throttle_dids} DIDs, {cfg.throttle_decisions} decisions")
    throttle = await _throttle(cfg)
    engine = summarize(engine_rounds)
    baseline = summarize(baseline_rounds)
    baseline["kind"] = baseline_rounds[0]["kind"]
    ratio = {
        "msgs_per_s": round(engine["msgs_per_s"]["median"] / baseline["msgs_per_s"]["median"], 2),
        "cpu_us_per_msg": round(engine["cpu_us_per_msg"]["median"] / baseline["cpu_us_per_msg"]["median"], 2),
    }
    return {
        "scenarios": {
            "e2e": {"messages": cfg.messages, "dids": cfg.dids, "limit_per_min": cfg.limit_per_min, **engine},
            "baseline": {"messages": cfg.messages, **baseline},
            "ratio": ratio,
            "throttle": throttle,
        },
        "quick": cfg.quick,
        "machine": h.machine_info(pg_version),
        "command": command,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def format_table(result: dict[str, Any]) -> str:
    s = result["scenarios"]
    e, b, t = s["e2e"], s["baseline"], s["throttle"]
    rows = [
        ("", "engine", f"baseline ({b['kind']})", "engine/baseline"),
        ("msgs/s (median)", e["msgs_per_s"]["median"], b["msgs_per_s"]["median"], s["ratio"]["msgs_per_s"]),
        ("msgs/s (min..max)", f"{e['msgs_per_s']['min']}..{e['msgs_per_s']['max']}",
         f"{b['msgs_per_s']['min']}..{b['msgs_per_s']['max']}", ""),
        ("CPU µs/msg (median)", e["cpu_us_per_msg"]["median"], b["cpu_us_per_msg"]["median"],
         s["ratio"]["cpu_us_per_msg"]),
        ("queue→carrier p50 ms", e["queue_to_carrier_p50_ms"]["median"], b["queue_to_carrier_p50_ms"]["median"], ""),
        ("queue→carrier p99 ms", e["queue_to_carrier_p99_ms"]["median"], b["queue_to_carrier_p99_ms"]["median"], ""),
        ("carrier accepted", e["carrier_accepted"], b["carrier_accepted"], ""),
    ]
    lines = [f"{e['messages']} messages per round, {len(e['rounds'])} rounds each (A B A B)"]
    lines += [f"{a!s:<24}{c1!s:>22}{c2!s:>26}{c3!s:>18}" for a, c1, c2, c3 in rows]
    lines.append(f"throttle: {t['dids']} DIDs, {t['decisions']} decisions: {t['us_per_decision']} µs/decision, "
                 f"peak RSS {t['peak_rss_mb']} MB")
    m = result["machine"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, PostgreSQL {m['postgres']}")
    return "\n".join(lines)
