"""`engine provider add|test|sync`: carrier accounts; pointing numbers at the engine (also `engine did add`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from engine.cli.common import _common, _pool_flags, _print_json, _target, _with_db
from engine.config import Settings
from engine.errors import EngineError

if TYPE_CHECKING:
    import aiohttp

    from engine.cli.common import Handler, Subparsers
    from engine.providers.numbers import PointReport
    from engine.providers.twilio import TwilioClient
    from engine.store.admin import ProviderAccount


def register(sub: Subparsers) -> None:
    prov = sub.add_parser("provider", help="manage carrier accounts").add_subparsers(dest="action", required=True)
    p = prov.add_parser("add", help="attach a carrier account to an application (or a shared SMSC)")
    _common(p)
    _pool_flags(p)
    p.add_argument("--kind", choices=["twilio", "fake"], required=True)
    p.add_argument("--account-sid")
    p.add_argument("--auth-token")
    p.add_argument("--messaging-service-sid")
    p.add_argument("--service-mps", metavar="N",
                   help="send through the Messaging Service alone (no DIDs of the app's own: Twilio picks the sender "
                        "from the service's pool), paced at its throughput of N segments/s")
    p.add_argument("--base-url")
    p.add_argument("--max-per-second", type=int, metavar="N",
                   help="the account's cap in segments per second (e.g. Twilio account MPS)")
    p.add_argument("--single-sms", action="store_true",
                   help="the carrier takes single SMS only: long bodies go out as '(i/n) ' parts")
    p.add_argument("--carrier-handles-optout", action="store_true",
                   help="the account answers STOP itself (Twilio Advanced Opt-Out): the engine records and obeys "
                        "opt-outs but sends no confirmation of its own")
    p = prov.add_parser("test", help="check the app's carrier credentials; print the webhook URLs for the console")
    _common(p)
    _pool_flags(p)
    p.add_argument("--public-url", help="base URL carriers use to reach our webhooks (env ENGINE_PUBLIC_URL)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the carrier")
    p = prov.add_parser(
        "sync", help="point every DID of the app at the engine: set each number's SmsUrl on the carrier",
        description="Set the SmsUrl of every DID of the app, on its carrier account, to the engine's inbound "
                    "webhook {public_url}/webhooks/twilio/inbound/{provider_id} (SmsMethod POST). Numbers already "
                    "pointed there are left alone. Exit 1 when some number could not be pointed (each is listed).",
    )
    _common(p)
    _pool_flags(p)
    p.add_argument("--public-url", help="base URL carriers use to reach our webhooks (env ENGINE_PUBLIC_URL)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for each carrier request")
    p.add_argument("--json", action="store_true", help="print one JSON object: sms_url, pointed, unchanged, failed")


def _carrier(session: aiohttp.ClientSession, account: ProviderAccount, timeout: float) -> TwilioClient:
    """The client for *account* on *session*: always through the factory."""
    from engine.providers.factory import account_client

    return account_client(session, account, timeout)


def _public_base(settings: Settings, kind: str) -> str:
    """The engine's public base URL, checked (before anything changes); a warning when a real carrier would get
    the local default."""
    base = settings.callback_base
    if not base.startswith(("http://", "https://")):
        raise EngineError(f"the public URL must be an http(s) URL, not {base!r} (--public-url / ENGINE_PUBLIC_URL)")
    if not settings.public_url and kind != "fake":
        print(f"warning: no public URL set (--public-url / ENGINE_PUBLIC_URL): using {base}, which a carrier on "
              "the internet cannot reach", file=sys.stderr)
    return base


async def _point_dids(base: str, account: ProviderAccount, numbers: list[str], timeout: float) -> PointReport:
    """Set the SmsUrl of *numbers* on *account* to the engine's inbound webhook under *base*."""
    import aiohttp

    from engine.providers.numbers import point_numbers
    from engine.providers.twilio import inbound_webhook_url

    async with aiohttp.ClientSession() as session:
        return await point_numbers(
            _carrier(session, account, timeout), numbers, inbound_webhook_url(base, account.id)
        )


async def _unpoint_dids(base: str, account: ProviderAccount, numbers: list[str], timeout: float) -> PointReport:
    """Clear the SmsUrl of those of *numbers* on *account* that still point at the engine's webhook under *base*."""
    import aiohttp

    from engine.providers.numbers import unpoint_numbers
    from engine.providers.twilio import inbound_webhook_url

    async with aiohttp.ClientSession() as session:
        return await unpoint_numbers(
            _carrier(session, account, timeout), numbers, inbound_webhook_url(base, account.id)
        )


def _print_failures(report: PointReport) -> None:
    for number, why in report.failed.items():
        print(f"error: {number} not pointed: {why}", file=sys.stderr)


async def _cmd_provider_test(settings: Settings, args: argparse.Namespace) -> int:
    """Call the carrier's account endpoint with the stored credentials; print the webhook URLs."""
    import aiohttp

    from engine.providers.twilio import inbound_webhook_url
    from engine.store import admin

    async def go(pool: Any) -> int:
        account = await admin.app_provider(pool, args.app, smsc=args.smsc)
        async with aiohttp.ClientSession() as session:
            ok, detail = await _carrier(session, account, args.timeout).fetch_account()
        where = f"{account.kind} account {account.account_sid}"
        if ok:
            print(f"OK: {where} ({detail})")
        else:
            print(f"error: {where}: {detail}")
        base = settings.callback_base
        print(f"inbound URL (\"A message comes in\", HTTP POST): {inbound_webhook_url(base, account.id)} "
              f"(`engine provider sync {_target(args)}` sets it on every DID)")
        print(f"status callback URL: {base}/webhooks/twilio/status/{account.id}/… "
              "(the engine sets it on every message, ending in the message id)")
        return 0 if ok else 1

    return await _with_db(settings, go)


async def _cmd_provider_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Point every DID of the app at the engine's inbound webhook; exit 1 when some could not be pointed."""
    from engine.store import admin

    async def go(pool: Any) -> int:
        account = await admin.app_provider(pool, args.app, smsc=args.smsc)
        base = _public_base(settings, account.kind)
        listed = [row["number"] for row in await admin.list_dids(pool, args.app, smsc=args.smsc)]
        numbers = await admin.inbound_numbers(pool, listed)  # sender IDs and short codes have no SmsUrl here
        report = await _point_dids(base, account, numbers, args.timeout)
        if args.json:
            _print_json(report.as_json())
        else:
            print(f"SmsUrl {report.sms_url} (HTTP POST): {len(report.pointed)} pointed now, "
                  f"{len(report.unchanged)} already pointed, {len(report.failed)} failed, of {len(numbers)} DIDs")
        _print_failures(report)
        return 0 if report.ok else 1

    return await _with_db(settings, go)


async def _cmd_provider(settings: Settings, args: argparse.Namespace) -> int:
    from engine.providers.factory import DEFAULT_BASE_URLS
    from engine.store import admin
    from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

    if args.action == "test":
        return await _cmd_provider_test(settings, args)
    if args.action == "sync":
        return await _cmd_provider_sync(settings, args)

    sid, token, base = args.account_sid, args.auth_token, args.base_url
    if args.kind == "fake":
        sid = sid or DEFAULT_ACCOUNT_SID
        token = token or DEFAULT_AUTH_TOKEN
        base = base or DEFAULT_BASE_URLS["fake"]
    if not sid or not token:
        raise EngineError("--account-sid and --auth-token are required for --kind twilio")

    async def go(pool: Any) -> int:
        pid = await admin.add_provider(
            pool, args.app, smsc=args.smsc, kind=args.kind, account_sid=sid, auth_token=token,
            messaging_service_sid=args.messaging_service_sid, base_url=base, single_sms=args.single_sms,
            max_per_second=args.max_per_second, carrier_handles_optout=args.carrier_handles_optout,
            service_mps=args.service_mps,
        )
        single = ", single SMS only" if args.single_sms else ""
        target = _target(args)
        print(f"provider {pid} ({args.kind}{single}, account {sid[:6]}…) attached to {target}")
        if args.service_mps:
            print(f"{target} sends through Messaging Service {args.messaging_service_sid} at {args.service_mps} "
                  "segments/s")
        elif await admin.list_dids(pool, args.app, smsc=args.smsc):
            print(f"its inbound URL is new: run `engine provider sync {target}` to point the DIDs at it")
        return 0

    return await _with_db(settings, go)


COMMANDS: dict[str, Handler] = {"provider": _cmd_provider}
