"""`engine purge` (retention) and `engine contact zone` (a recipient's time zone, for quiet hours)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from engine.cli.common import _common, _print_json, _with_db
from engine.config import Settings
from engine.errors import InvalidInput

if TYPE_CHECKING:
    from engine.cli.common import Handler, Subparsers


def register(sub: Subparsers) -> None:
    p = sub.add_parser(
        "purge", help="delete final messages and delivered callback events older than the retention",
        description="Delete final messages (delivered, undelivered, failed, suppressed, canceled, expired, unknown; "
        "their parts go with them) and delivered callback events older than each application's retention "
        "(`engine app set NAME --retention 18mo`, the default), in small transactions that never block sending. "
        "Workers also purge every hour (ENGINE_PURGE_SECONDS, 0 = off).",
    )
    _common(p)
    p.add_argument("--app", metavar="NAME", help="only this application's (default: every application)")
    p.add_argument("--older-than", metavar="DURATION",
                   help="instead of each app's retention, everything older than this (90d, 18mo, 2y; at least 1d)")
    p.add_argument("--batch", type=int, default=1000, metavar="N",
                   help="rows looked at per transaction (default 1000)")
    p.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
    p.add_argument("--json", action="store_true")

    contact = sub.add_parser("contact", help="recipients").add_subparsers(dest="action", required=True)
    p = contact.add_parser(
        "zone", help="show, set or clear a recipient's time zone (quiet hours are judged in it)",
        description="Without ZONE, shows the stored time zone. A recipient without one is judged in its number's "
        "own zone (from its area code).",
    )
    _common(p)
    p.add_argument("--app", metavar="NAME", required=True)
    p.add_argument("phone", metavar="PHONE")
    p.add_argument("zone", metavar="ZONE", nargs="?", help="an IANA time zone, e.g. America/Chicago")
    p.add_argument("--clear", action="store_true", help="forget the stored time zone")
    p.add_argument("--json", action="store_true")


async def _cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from engine.app_settings import parse_retention_setting
    from engine.store import lifetime

    older_than = None if args.older_than is None else parse_retention_setting(args.older_than, name="--older-than")
    if not 1 <= args.batch <= 100_000:
        raise InvalidInput("--batch", "must be between 1 and 100000")

    async def go(pool: Any) -> int:
        report = await lifetime.purge(pool, datetime.now(UTC), app=args.app, older_than=older_than,
                                      batch=args.batch, dry_run=args.dry_run)
        if args.json:
            _print_json(report.as_dict())
            return 0
        verb = "would delete" if report.dry_run else "deleted"
        print(f"{verb} {report.messages} messages and {report.callback_events} delivered callback events "
              f"({report.batches} transactions)")
        for name, kept in report.apps.items():
            print(f"  {name}: older than {kept}")
        return 0

    return await _with_db(settings, go)


async def _cmd_contact(settings: Settings, args: argparse.Namespace) -> int:
    from engine.phone import to_e164
    from engine.policy.quiet_hours import recipient_zones, valid_zone
    from engine.store import admin, lifetime

    phone = to_e164(args.phone)
    if phone is None:
        raise InvalidInput("PHONE", f"{args.phone!r} is not a valid phone number")
    if args.clear and args.zone is not None:
        raise InvalidInput("--clear", "give either a ZONE or --clear, not both")
    if args.zone is not None and not valid_zone(args.zone):
        raise InvalidInput("ZONE", f"{args.zone!r} is not an IANA time zone (e.g. America/Chicago)")

    async def go(pool: Any) -> int:
        app = await admin.get_app(pool, args.app)
        if args.zone is not None or args.clear:
            await lifetime.set_contact_zone(pool, app.id, phone, args.zone)
        stored = await lifetime.contact_zone(pool, app.id, phone)
        effective = [z.key for z in recipient_zones(phone, stored)]
        if args.json:
            _print_json({"phone_number": phone, "time_zone": stored, "effective": effective})
        else:
            source = "stored" if stored else "from the number"
            print(f"{phone}: {', '.join(effective)} ({source})", file=sys.stdout)
        return 0

    return await _with_db(settings, go)


COMMANDS: dict[str, Handler] = {"purge": _cmd_purge, "contact": _cmd_contact}
