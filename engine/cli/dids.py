"""`engine did add|list|remove`: sender numbers; the ones added are pointed at the engine on the carrier."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from engine.cli.common import _common, _pool_flags, _print_json, _target, _with_db
from engine.cli.providers import _point_dids, _print_failures, _public_base, _unpoint_dids
from engine.config import Settings
from engine.policy.senders import SENDER_TYPES

if TYPE_CHECKING:
    from engine.cli.common import Handler, Subparsers
    from engine.store.admin import ProviderAccount


def register(sub: Subparsers) -> None:
    did = sub.add_parser("did", help="manage sender numbers").add_subparsers(dest="action", required=True)
    for action in ("add", "list", "remove"):
        p = did.add_parser(action)
        _common(p)
        _pool_flags(p)
        if action != "list":
            p.add_argument("numbers", nargs="+", metavar="NUMBER")
        if action == "add":
            p.add_argument("--type", dest="sender_type", choices=SENDER_TYPES,
                           help="sender type (default: toll_free for a toll-free number, else long_code); sets "
                                "the default limit and burst")
            p.add_argument("--country", help="ISO country a short code (default US) or a sender ID (required) serves")
            p.add_argument("--campaign", metavar="NAME",
                           help="the 10DLC campaign they send for (engine campaign create); '' takes them out")
            p.add_argument("--limit-per-min", type=int, help="segments per minute (default: the type's, e.g. 60)")
            p.add_argument("--burst", type=int, help="segments at once (default: the type's, e.g. 1)")
            p.add_argument("--public-url",
                           help="base URL the numbers' SmsUrl is set under (env ENGINE_PUBLIC_URL)")
        if action == "remove":
            p.add_argument("--public-url",
                           help="base URL the numbers' SmsUrl was set under: cleared where it still is (env "
                                "ENGINE_PUBLIC_URL)")
        if action == "list":
            p.add_argument("--json", action="store_true")


async def _did_add(settings: Settings, args: argparse.Namespace, pool: Any) -> int:
    """Store the DIDs (all or nothing), then point them at the engine on the app's carrier account.

    A number the carrier cannot point stays added (it can send; `engine provider sync` points it later):
    each is named on stderr and the exit status is 1.
    """
    from engine.errors import NotFound
    from engine.store import admin

    try:
        account: ProviderAccount | None = await admin.app_provider(pool, args.app, smsc=args.smsc)
    except NotFound:
        await admin.list_dids(pool, args.app, smsc=args.smsc)  # no such app or SMSC: that error, not the one below
        account = None
    base = _public_base(settings, account.kind) if account is not None else ""
    added = await admin.add_dids(pool, args.app, args.numbers, limit_per_min=args.limit_per_min, burst=args.burst,
                                 smsc=args.smsc, sender_type=args.sender_type, country=args.country,
                                 campaign=args.campaign)
    print("added " + ", ".join(added))
    added = await admin.inbound_numbers(pool, added)  # sender IDs and short codes get no SmsUrl here
    if not added:
        return 0
    if account is None:
        print(f"note: {_target(args)} has no carrier account yet, so no SmsUrl was set: after `engine provider add`, "
              f"run `engine provider sync {_target(args)}`", file=sys.stderr)
        return 0
    report = await _point_dids(base, account, added, settings.request_timeout)
    done = len(report.pointed) + len(report.unchanged)
    print(f"SmsUrl {report.sms_url} (HTTP POST) set on {done} of {len(added)}")
    if report.ok:
        return 0
    _print_failures(report)
    print(f"the numbers are added but cannot receive texts yet: fix the cause, then run "
          f"`engine provider sync {_target(args)}`", file=sys.stderr)
    return 1


async def _did_remove(settings: Settings, args: argparse.Namespace, pool: Any) -> int:
    """Remove the DIDs (all or none), then clear the SmsUrl of those still pointed at the engine, so their texts
    stop coming here. A number the carrier could not update is named on stderr (exit 1); it is removed anyway."""
    from engine.errors import NotFound
    from engine.store import admin

    removed = await admin.remove_dids(pool, args.app, args.numbers, smsc=args.smsc)
    print("removed " + ", ".join(removed))
    try:
        account = await admin.app_provider(pool, args.app, smsc=args.smsc)
    except NotFound:
        return 0  # no carrier account: nothing points at the engine
    report = await _unpoint_dids(settings.callback_base, account, removed, settings.request_timeout)
    print(f"SmsUrl cleared on {len(report.pointed)} of {len(removed)}"
          + (f" ({len(report.unchanged)} not pointed at the engine)" if report.unchanged else ""))
    for number, why in report.failed.items():
        print(f"error: {number}: SmsUrl not cleared: {why} (the DID is removed; clear its SmsUrl in the carrier's "
              "console)", file=sys.stderr)
    return 0 if report.ok else 1


async def _cmd_did(settings: Settings, args: argparse.Namespace) -> int:
    from engine.store import admin

    async def go(pool: Any) -> int:
        if args.action == "add":
            return await _did_add(settings, args, pool)
        if args.action == "remove":
            return await _did_remove(settings, args, pool)
        rows = await admin.list_dids(pool, args.app, smsc=args.smsc)
        if args.json:
            _print_json(rows)
        for r in rows if not args.json else []:
            state = "" if r["enabled"] else " (disabled)"
            where = f" {r['country']}" if r["country"] else ""
            campaign = f" campaign {r['campaign']}" if r["campaign"] else ""
            print(f"{r['number']}  {r['sender_type']}{where}  {r['limit_per_min']}/min burst {r['burst']}"
                  f"{campaign}{state}")
        return 0

    return await _with_db(settings, go)


COMMANDS: dict[str, Handler] = {"did": _cmd_did}
