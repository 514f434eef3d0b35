"""Trying the engine on one machine: `engine fake-carrier` (a carrier speaking Twilio's REST API) and `engine demo`."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from engine import gctune
from engine.cli.common import _common, _stop_on_signals
from engine.config import Settings

if TYPE_CHECKING:
    from engine.cli.common import Handler, Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser("fake-carrier", help="run a local carrier speaking Twilio's REST API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--latency", type=float, default=0.05, help="seconds before status callbacks")
    p.add_argument("--failure-rate", type=float, default=0.0)
    p.add_argument("--callbacks", choices=["all", "final", "none"], default="all")
    p.add_argument("--account-sid")
    p.add_argument("--auth-token")
    p.add_argument("--seed", type=int)

    p = sub.add_parser("demo", help="the main job on a fresh machine: a bulk send through a pool of DIDs")
    _common(p)
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--dids", type=int, default=50)
    p.add_argument("--limit-per-min", type=int, default=60)
    p.add_argument("--failure-rate", type=float, default=0.02)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


async def _cmd_fake_carrier(settings: Settings, args: argparse.Namespace) -> int:
    from engine.testing import run_fake_carrier

    kwargs: dict[str, Any] = {"latency": args.latency, "failure_rate": args.failure_rate,
                              "callbacks": args.callbacks, "seed": args.seed}
    if args.account_sid and args.auth_token:
        kwargs["accounts"] = {args.account_sid: args.auth_token}
    gctune.tune()
    task = asyncio.ensure_future(run_fake_carrier(args.host, args.port, **kwargs))
    stop = asyncio.Event()
    _stop_on_signals(stop)
    await asyncio.wait([task, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return 0


async def _cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from engine.demo import run_demo

    return await run_demo(settings, messages=args.messages, dids=args.dids, limit_per_min=args.limit_per_min,
                          failure_rate=args.failure_rate, as_json=args.json)


COMMANDS: dict[str, Handler] = {"fake-carrier": _cmd_fake_carrier, "demo": _cmd_demo}
