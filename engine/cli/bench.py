"""`engine bench`: throughput benchmarks, the engine against a per-message job queue, and the scheduler."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import TYPE_CHECKING

from engine.cli.common import _common, _print_json
from engine.config import Settings

if TYPE_CHECKING:
    from engine.cli.common import Handler, Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser("bench", help="throughput benchmarks: engine vs a per-message job queue, and the scheduler")
    _common(p)
    p.add_argument("--quick", action="store_true", help="small sizes (20,000 messages, 2 rounds each)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (logs go to stderr)")
    p.add_argument("--messages", type=int, help="messages per round (default 100,000; --quick 20,000)")
    p.add_argument("--rounds", type=int, help="rounds of each side, alternated (default 3; --quick 2)")
    p.add_argument("--dids", type=int, default=100, help="sender numbers (default 100)")
    p.add_argument("--limit-per-min", type=int, default=600_000, help="per-DID limit (default 600,000)")
    p.add_argument("--throttle-dids", type=int, help="scheduler DIDs (default 100,000; --quick 10,000)")
    p.add_argument("--throttle-decisions", type=int, help="scheduler decisions (default 1,000,000; --quick 100,000)")
    p.add_argument("--paced-dids", type=int, help="paced: DIDs at 60/min (default 300; --quick 100)")
    p.add_argument("--paced-seconds", type=float, help="paced: window in seconds (default 60; --quick 20)")
    p.add_argument("--backlog-messages", type=int, help="backlog: queued messages (default 1,000,000; --quick 100,000)")
    p.add_argument("--backlog-dids", type=int, help="backlog: DIDs at 60/min (default 100,000; --quick 10,000)")
    p.add_argument("--processes", type=int, default=2,
                   help="processes scenario: worker processes compared with one `engine run` (default 2)")
    p.add_argument("--csv-rows", type=int, help="jobs: rows of the CSV sent (default 100,000; --quick 20,000)")
    p.add_argument("--latency-seconds", type=float,
                   help="latency: seconds of one message every 50 ms, per door (SQL, HTTP API) (default 30)")
    p.add_argument("--carrier", choices=["lean", "regular"], default="lean",
                   help="the carrier every scenario sends to: the lean benchmark carrier (default; a plain asyncio "
                        "HTTP/1.1 responder, so the figures are the sender's) or the regular fake carrier "
                        "(`engine fake-carrier`, aiohttp)")
    p.add_argument("--tracking-messages", type=int,
                   help="tracking: messages in the table (default 10,000,000; --quick 1,000,000)")
    p.add_argument("--scenarios",
                   help="comma list of e2e (engine vs baseline), processes (engine run vs engine worker "
                        "--processes N), throttle, paced (also a mixed pool: long codes, a toll-free number, a short "
                        "code), backlog, jobs (a CSV to all queued), latency (one message every 50 ms through the SQL "
                        "door and the HTTP API) (the default: these seven), tracking (the tracking queries on a large "
                        "table; minutes to build), or all")


async def _cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from benchmarks.runner import BenchConfig, format_table, parse_scenarios, run_bench

    try:
        scenarios = parse_scenarios(args.scenarios)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.processes < 1:
        print("error: --processes must be at least 1", file=sys.stderr)
        return 2
    if "e2e" in scenarios and importlib.util.find_spec("pgqueuer") is None:
        print("error: the e2e scenario's baseline needs PgQueuer: pip install -e '.[bench]' (or '.[dev]'), "
              "or leave e2e out with --scenarios", file=sys.stderr)
        return 2
    cfg = BenchConfig.make(
        quick=args.quick, messages=args.messages, rounds=args.rounds, dids=args.dids,
        limit_per_min=args.limit_per_min, throttle_dids=args.throttle_dids,
        throttle_decisions=args.throttle_decisions, paced_dids=args.paced_dids,
        paced_seconds=args.paced_seconds, backlog_messages=args.backlog_messages,
        backlog_dids=args.backlog_dids, scenarios=scenarios, processes=args.processes, csv_rows=args.csv_rows,
        carrier=args.carrier, latency_seconds=args.latency_seconds, tracking_messages=args.tracking_messages,
    )
    result = await run_bench(cfg, settings.dsn, "engine " + " ".join(sys.argv[1:]))
    if args.json:
        _print_json(result)
    else:
        print(format_table(result))
    return 0


COMMANDS: dict[str, Handler] = {"bench": _cmd_bench}
