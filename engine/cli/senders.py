"""`engine brand create|set|list` and `engine campaign create|set|assign|unassign|list`: US A2P 10DLC.

A brand has a daily cap in segments per carrier-day (T-Mobile's count, reset at midnight US Pacific) with a reserve
kept for transactional messages; a campaign belongs to a brand and paces its DIDs together in segments per second.
Defaults come from the brand's tier (engine/policy/senders.toml, with their sources).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.cli.common import _common, _pool_flags, _print_json, _with_db
from engine.config import Settings

if TYPE_CHECKING:
    from engine.cli.common import Handler, Subparsers


def _cap_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tier", help="trust tier: sets the daily cap and campaigns' default throughput "
                                  "(default, sole_proprietor, low_volume, standard_low, standard_mid, standard_high, "
                                  "russell_3000)")
    cap = p.add_mutually_exclusive_group()
    cap.add_argument("--daily-cap", type=int, metavar="N", help="segments per carrier-day (default: the tier's)")
    cap.add_argument("--no-cap", action="store_true", help="no daily cap")
    p.add_argument("--reserve", type=int, metavar="N",
                   help="segments of the cap kept for transactional messages: marketing stops N earlier "
                        "(default: a tenth of the cap)")


def register(sub: Subparsers) -> None:
    brand = sub.add_parser("brand", help="10DLC brands: daily caps per carrier-day").add_subparsers(
        dest="action", required=True)
    for action in ("create", "set"):
        p = brand.add_parser(action, help=f"{action} a brand")
        _common(p)
        p.add_argument("name", metavar="NAME")
        _cap_flags(p)
    p = brand.add_parser("list", help="brands with their caps and what they sent today")
    _common(p)
    p.add_argument("--json", action="store_true")

    campaign = sub.add_parser("campaign", help="10DLC campaigns: throughput of a group of DIDs").add_subparsers(
        dest="action", required=True)
    p = campaign.add_parser("create", help="create a campaign of a brand")
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--brand", required=True, metavar="BRAND")
    p.add_argument("--mps", help="segments per second for all its DIDs together (default: its brand's tier's)")
    p = campaign.add_parser("set", help="change a campaign's throughput")
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--mps", required=True, help="segments per second for all its DIDs together")
    for action in ("assign", "unassign"):
        p = campaign.add_parser(action, help=f"{'put' if action == 'assign' else 'take'} DIDs "
                                             f"{'in' if action == 'assign' else 'out of'} a campaign "
                                             "(default: every long code of the SMSC)")
        _common(p)
        if action == "assign":
            p.add_argument("name", metavar="NAME")
        _pool_flags(p)
        p.add_argument("numbers", nargs="*", metavar="NUMBER")
    p = campaign.add_parser("list", help="campaigns with their brand, throughput and DIDs")
    _common(p)
    p.add_argument("--json", action="store_true")


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else "-"


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else str(v) if k == "mps" else v for k, v in row.items()}


async def _cmd_brand(settings: Settings, args: argparse.Namespace) -> int:
    from engine.policy.senders import carrier_day_timezone
    from engine.store import senders
    from engine.throttle.daily import CarrierDay

    async def go(pool: Any) -> int:
        if args.action in ("create", "set"):
            fn = senders.create_brand if args.action == "create" else senders.update_brand
            await fn(pool, args.name, tier=args.tier, daily_cap=args.daily_cap, reserve=args.reserve,
                     no_cap=args.no_cap)
            print(f"brand {args.name} {'created' if args.action == 'create' else 'changed'}")
            return 0
        start, _end = CarrierDay(carrier_day_timezone()).bounds(time.time())
        rows = await senders.list_brands(pool, datetime.fromtimestamp(start, UTC))
        if args.json:
            _print_json([_jsonable(r) for r in rows])
            return 0
        for r in rows:
            cap = f"{r['used_today']}/{r['daily_cap']} today (reserve {r['reserve']})" if r["daily_cap"] else "no cap"
            held = f"  held by the carrier until {_when(r['capped_until'])}" if r["capped_until"] else ""
            print(f"{r['name']:<24} tier {r['tier']:<15} campaigns={r['campaigns']:<3} {cap}{held}")
        return 0

    return await _with_db(settings, go)


async def _cmd_campaign(settings: Settings, args: argparse.Namespace) -> int:
    from engine.store import admin, senders

    async def go(pool: Any) -> int:
        if args.action == "create":
            await senders.create_campaign(pool, args.name, args.brand, args.mps)
            print(f"campaign {args.name} created: put DIDs in it with `engine campaign assign {args.name} --app APP`")
        elif args.action == "set":
            await senders.update_campaign(pool, args.name, args.mps)
            print(f"campaign {args.name} changed")
        elif args.action in ("assign", "unassign"):
            name = args.name if args.action == "assign" else None
            done = await admin.assign_campaign(pool, name, app=args.app, smsc=args.smsc, numbers=args.numbers)
            print(f"{len(done)} DIDs {'in campaign ' + args.name if name else 'out of their campaign'}"
                  + (": " + ", ".join(done) if done else ""))
        else:
            rows = await senders.list_campaigns(pool)
            if args.json:
                _print_json([_jsonable(r) for r in rows])
                return 0
            for r in rows:
                slowed = f"  slowed by the carrier until {_when(r['slowed_until'])}" if r["slowed_until"] else ""
                print(f"{r['name']:<24} brand {r['brand']:<20} {r['mps']} segments/s  dids={r['dids']}{slowed}")
        return 0

    return await _with_db(settings, go)


COMMANDS: dict[str, Handler] = {"brand": _cmd_brand, "campaign": _cmd_campaign}
