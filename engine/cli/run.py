"""`engine migrate` and the engine's processes: `engine serve`, `engine worker` (--processes N) and `engine run`."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from engine import gctune
from engine.cli.common import _common, _server_flags, _stop_on_signals, _with_db, _worker_flags
from engine.config import Settings
from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.cli.common import Handler, Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser("migrate", help="apply database migrations")
    _common(p)

    for name, help_text in (
        ("serve", "run the HTTP webhooks (status callbacks) and health endpoint"),
        ("worker", "run the dispatch worker"),
        ("run", "run HTTP and dispatch worker in one process"),
    ):
        p = sub.add_parser(name, help=help_text)
        _common(p)
        if name != "worker":
            _server_flags(p)
        else:
            p.add_argument("--public-url", help="base URL carriers use to reach the webhooks (env ENGINE_PUBLIC_URL)")
            p.add_argument("--processes", type=int, default=1,
                           help="run N worker processes (one per core), supervised; DID leases keep limits exact")
        if name != "serve":
            _worker_flags(p)


async def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def go(_: Any) -> int:
        print("schema is up to date")
        return 0

    return await _with_db(settings, go)


async def _cmd_engine(settings: Settings, args: argparse.Namespace) -> int:
    from engine.app import run_engine

    if getattr(args, "processes", 1) != 1:
        from engine.supervisor import child_argv, supervise

        if args.processes < 1:
            raise EngineError("--processes must be >= 1")
        return await supervise(args.processes, child_argv(args.argv))

    stop = asyncio.Event()
    _stop_on_signals(stop)
    gctune.tune()
    await run_engine(settings, stop, serve=args.command in ("serve", "run"), dispatch=args.command != "serve")
    return 0


COMMANDS: dict[str, Handler] = {
    "migrate": _cmd_migrate, "serve": _cmd_engine, "worker": _cmd_engine, "run": _cmd_engine,
}
