"""`engine operator add|list|remove|passwd`: the people who may log in to the console."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, Any

from engine.cli.common import _common, _print_json, _with_db
from engine.config import Settings
from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.cli.common import Handler, Subparsers


def register(sub: Subparsers) -> None:
    op = sub.add_parser("operator", help="manage console operators").add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("add", "add an operator (asks for the password, or reads it from stdin)"),
        ("passwd", "set an operator's password (their console sessions end)"),
    ):
        p = op.add_parser(action, help=help_text)
        _common(p)
        p.add_argument("name", metavar="NAME")
        p.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of stdin instead of asking for it")
    p = op.add_parser("list", help="list operators")
    _common(p)
    p.add_argument("--json", action="store_true")
    p = op.add_parser("remove", help="remove an operator (their console sessions end)")
    _common(p)
    p.add_argument("name", metavar="NAME")


def read_password(from_stdin: bool) -> str:
    """The new password: the first line of stdin, or typed twice at a terminal (never echoed, never logged)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise EngineError("no terminal to ask for the password: pipe it in with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != first:
        raise EngineError("the two passwords differ; nothing was changed")
    return first


async def _cmd_operator(settings: Settings, args: argparse.Namespace) -> int:
    from engine.console.passwords import hash_password
    from engine.store import operators

    password_hash = None
    if args.action in ("add", "passwd"):  # checked (and hashed) before the database is touched
        operators.validate_name(args.name)
        password_hash = hash_password(read_password(args.password_stdin))

    async def go(pool: Any) -> int:
        if args.action == "add":
            assert password_hash is not None
            await operators.create_operator(pool, args.name, password_hash)
            print(f"operator {args.name} added: log in at {settings.callback_base}/console/")
        elif args.action == "passwd":
            assert password_hash is not None
            await operators.set_password(pool, args.name, password_hash)
            print(f"password of {args.name} changed; their console sessions ended")
        elif args.action == "remove":
            await operators.remove_operator(pool, args.name)
            print(f"operator {args.name} removed; their console sessions ended")
        else:
            rows = await operators.list_operators(pool)
            if args.json:
                _print_json([{"name": r.name, "created_at": r.created_at.isoformat(),
                              "last_login_at": r.last_login_at.isoformat() if r.last_login_at else None,
                              "sessions": r.sessions} for r in rows])
            if not rows and not args.json:
                print("no operators yet: engine operator add NAME")
            for r in rows if not args.json else []:
                last = r.last_login_at.strftime("%Y-%m-%d %H:%M") if r.last_login_at else "never"
                print(f"{r.name:<24} last login {last:<17} sessions={r.sessions}")
        return 0

    return await _with_db(settings, go)


COMMANDS: dict[str, Handler] = {"operator": _cmd_operator}
