"""`engine inbound review`: possible opt-outs to look at, and the operator's verdict on them."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from engine.cli.common import _common, _print_json, _with_db
from engine.config import Settings

if TYPE_CHECKING:
    from engine.cli.common import Handler, Subparsers


def register(sub: Subparsers) -> None:
    inbound = sub.add_parser("inbound", help="incoming messages").add_subparsers(dest="action", required=True)
    p = inbound.add_parser("review", help="possible opt-outs (an ambiguous word like CANCEL with text) to look at")
    _common(p)
    p.add_argument("--app", metavar="NAME", help="only this application's")
    p.add_argument("--opt-out", type=int, nargs="+", metavar="ID", default=[],
                   help="these were opt-outs: blacklist their phones for the app (recorded as the operator's)")
    p.add_argument("--dismiss", type=int, nargs="+", metavar="ID", default=[], help="these were not opt-outs")
    p.add_argument("--json", action="store_true")


async def _cmd_inbound(settings: Settings, args: argparse.Namespace) -> int:
    from engine.store import admin
    from engine.store import inbound as store

    async def go(pool: Any) -> int:
        if args.opt_out or args.dismiss:
            opted = await store.review(pool, args.opt_out, opt_out=True) if args.opt_out else []
            dismissed = await store.review(pool, args.dismiss, opt_out=False) if args.dismiss else []
            print(f"opted out: {', '.join(map(str, opted)) or '-'}; dismissed: {', '.join(map(str, dismissed)) or '-'}")
            return 0
        app_id = (await admin.get_app(pool, args.app)).id if args.app else None
        items = await store.possible_opt_outs(pool, app_id)
        if args.json:
            _print_json([{"id": i.id, "received_at": i.received_at.isoformat(), "phone": i.phone, "body": i.body,
                          "app": i.app} for i in items])
            return 0
        if not items:
            print("nothing to review")
        for i in items:
            print(f"{i.id:>8}  {i.received_at:%Y-%m-%d %H:%M}  {i.phone:<16} {i.app or '-':<16} {i.body[:60]!r}")
        return 0

    return await _with_db(settings, go)


COMMANDS: dict[str, Handler] = {"inbound": _cmd_inbound}
