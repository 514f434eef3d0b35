"""What the command groups share: the common flags, Settings from flags and ENGINE_* variables, JSON output, a
database pool for one command, and stopping on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from engine.config import Settings

if TYPE_CHECKING:
    from typing import TypeAlias

    # What a group's register() adds its parsers to: the `engine` parser's subcommands.
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
    # A command: run with the settings and the parsed flags; returns the exit status.
    Handler: TypeAlias = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dsn", help="PostgreSQL DSN (env ENGINE_DSN); default: embedded server")
    p.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory (env ENGINE_DATA_DIR)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING… (env ENGINE_LOG_LEVEL)")


def _server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="listen address (env ENGINE_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (env ENGINE_PORT, default 8080)")
    p.add_argument("--public-url", help="base URL carriers use to reach our webhooks (env ENGINE_PUBLIC_URL)")


def _worker_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, help="rows claimed per query (env ENGINE_BATCH_SIZE)")
    p.add_argument("--max-in-flight", type=int, help="concurrent provider requests (env ENGINE_MAX_IN_FLIGHT)")
    p.add_argument(
        "--delivery", choices=["at-most-once", "at-least-once"], help="after a crash mid-send (env ENGINE_DELIVERY)"
    )


def _pool_flags(p: argparse.ArgumentParser) -> None:
    """--app NAME (its SMSC) or --smsc NAME (a shared one): exactly one."""
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--app", metavar="NAME", help="the application's SMSC")
    target.add_argument("--smsc", metavar="NAME", help="a shared SMSC (engine smsc create)")


def _target(args: argparse.Namespace) -> str:
    """How the operator named the pool: --app NAME or --smsc NAME."""
    return f"--app {args.app}" if args.app is not None else f"--smsc {args.smsc}"


def _settings(args: argparse.Namespace) -> Settings:
    flags = {
        k: getattr(args, k, None)
        for k in (
            "dsn", "data_dir", "log_level", "host", "port", "public_url", "batch_size", "max_in_flight", "delivery",
        )
    }
    return Settings.from_env().override(**flags)


def _print_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")
    sys.stdout.flush()


async def _with_db(settings: Settings, fn: Callable[[Any], Awaitable[int]]) -> int:
    from engine.store.database import Database

    db = await Database.open(settings, min_size=1, max_size=2)
    try:
        return await fn(db.pool)
    finally:
        await db.close()


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
