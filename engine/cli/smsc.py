"""`engine smsc create|list`: shared SMSCs, one pool of DIDs for several applications."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from engine.cli.common import _common, _print_json, _with_db
from engine.config import Settings

if TYPE_CHECKING:
    from engine.cli.common import Handler, Subparsers


def register(sub: Subparsers) -> None:
    smsc = sub.add_parser("smsc", help="shared SMSCs: one pool of DIDs for several applications").add_subparsers(
        dest="action", required=True)
    p = smsc.add_parser("create", help="create a shared SMSC")
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--limit-per-min", type=int, metavar="N", help="cap for the whole pool, in segments per minute")
    p = smsc.add_parser("list", help="list SMSCs with their applications and DIDs")
    _common(p)
    p.add_argument("--json", action="store_true")


async def _cmd_smsc(settings: Settings, args: argparse.Namespace) -> int:
    from engine.app_settings import parse_smsc_name
    from engine.store import admin

    name = parse_smsc_name(args.name, name="NAME") if args.action == "create" else None

    async def go(pool: Any) -> int:
        if name is not None:
            smsc_id = await admin.create_smsc(pool, name, args.limit_per_min)
            print(f"smsc {smsc_id} ({name}) created: add apps with `engine app create --smsc {name}`")
            return 0
        rows = await admin.list_smscs(pool)
        if args.json:
            _print_json(rows)
            return 0
        for r in rows:
            cap = f"{r['limit_per_min']}/min" if r["limit_per_min"] else "no cap"
            owner = f"dedicated to {r['owner']}" if r["owner"] else "shared"
            print(f"{r['id']:>5}  {r['name']:<24} {owner:<28} dids={r['dids']:<5} {cap}  apps: {', '.join(r['apps'])}")
        return 0

    return await _with_db(settings, go)


COMMANDS: dict[str, Handler] = {"smsc": _cmd_smsc}
