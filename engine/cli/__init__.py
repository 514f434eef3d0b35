"""Command line: `engine <command>` (also `python -m engine`). Flags override ENGINE_* variables.

One module per command group; each defines register(sub), adding its parsers, and COMMANDS, its handlers. A
handler imports what it needs when it runs, so `engine --help` and each command start quickly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from engine.cli import (
    apps,
    bench,
    dids,
    inbound,
    jobs,
    lifetime,
    local,
    messages,
    operators,
    providers,
    run,
    send,
    senders,
    smsc,
)
from engine.cli.common import _settings
from engine.errors import EngineError
from engine.logsafe import install_redaction
from engine.store.database import CONNECT_ERRORS

if TYPE_CHECKING:
    from engine.cli.common import Handler

log = logging.getLogger("engine")

# In the order `engine --help` lists their commands.
_GROUPS = (run, apps, smsc, inbound, lifetime, providers, dids, senders, send, jobs, messages, operators, local, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine", description="SMS sending engine")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in _GROUPS:
        group.register(sub)
    return parser


COMMANDS: dict[str, Handler] = {name: handler for group in _GROUPS for name, handler in group.COMMANDS.items()}


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop missing on this platform
        return asyncio.run
    runner: Callable[[Coroutine[Any, Any, int]], int] = uvloop.run
    return runner


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        settings = _settings(args)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, str(settings.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    install_redaction()
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # its INFO lines are pg_ctl chatter
    try:
        return _event_loop_runner()(COMMANDS[args.command](settings, args))
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except CONNECT_ERRORS as exc:  # never the password: asyncpg's messages name the user and the database only
        print(f"error: cannot reach the database ({type(exc).__name__}: {exc}); check ENGINE_DSN, or unset it "
              "to use the embedded server", file=sys.stderr)
        return 1
