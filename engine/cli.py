"""Command line: `engine <command>` (also `python -m engine`). Flags override ENGINE_* variables."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from engine import gctune
from engine.config import Settings
from engine.errors import EngineError
from engine.logsafe import install_redaction

if TYPE_CHECKING:
    import aiohttp

    from engine.providers.numbers import PointReport
    from engine.providers.twilio import TwilioClient
    from engine.store.admin import ProviderAccount

log = logging.getLogger("engine")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="engine", description="SMS sending engine")
    sub = parser.add_subparsers(dest="command", required=True)

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

    app = sub.add_parser("app", help="manage applications").add_subparsers(dest="action", required=True)
    p = app.add_parser("create", help="create an application; prints its id and API key")
    _common(p)
    p.add_argument("--name", required=True)
    p.add_argument("--gateway-url")
    p.add_argument("--smsc", metavar="NAME",
                   help="join this shared SMSC (engine smsc create) instead of a dedicated one")
    p.add_argument("--json", action="store_true")
    p = app.add_parser("list", help="list applications")
    _common(p)
    p.add_argument("--json", action="store_true")
    p = app.add_parser(
        "set", help="change an application's settings (all checked first, written in one transaction)",
        description="Change an application's settings. An empty value clears a text or the gateway URL.",
    )
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--gateway-url", metavar="URL", help="where callbacks are POSTed ('' clears)")
    p.add_argument("--help-text", metavar="TEXT", help="reply to HELP (<= 160 characters recommended)")
    p.add_argument("--welcome-text", metavar="TEXT", help="sent once to a phone's first message")
    p.add_argument("--optout-text", metavar="TEXT", help="confirmation sent on STOP")
    p.add_argument("--optin-text", metavar="TEXT", help="confirmation sent on START")
    p.add_argument("--nomatch-text", metavar="TEXT", help="reply when no keyword matches")
    p.add_argument("--split-mode", metavar="MODE", help="character, word or sentence (single-SMS carriers)")
    p.add_argument("--smart-encoding", metavar="yes|no", help="replace look-alikes with GSM-7 characters")
    p.add_argument("--flood-limit", metavar="N/PERIOD",
                   help="at most N messages to one phone per PERIOD (60s, 10m, 1h, 1d); 'off' removes it")
    p.add_argument("--dedup-window", metavar="SECONDS", help="duplicate suppression window (0 disables)")
    p.add_argument("--callback-concurrency", metavar="N", help="callback requests in flight to the gateway")
    p.add_argument("--smsc", metavar="NAME", help="move the app (and its keywords) to this SMSC")
    p.add_argument("--session-idle", metavar="PERIOD", help="a session ends this long after the last MO (default 24h)")
    p.add_argument("--loop-max-replies", metavar="N", help="auto-reply loop: automatic replies allowed … (default 10)")
    p.add_argument("--loop-window", metavar="PERIOD", help="… in this window (default 60s)")
    p.add_argument("--loop-max-repeats", metavar="K", help="auto-reply loop: the same MO K times in a row (default 5)")
    p.add_argument("--loop-cooldown", metavar="PERIOD", help="automatic replies stop this long (default 1h)")
    p.add_argument("--smsc-limit-per-min", metavar="N",
                   help="cap the app's whole DID pool at N segments/minute (e.g. a 10DLC campaign); 'off' removes it")
    p = app.add_parser("status", help="queue and callback-outbox counts, recent dead-lettered callbacks")
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--dead", type=int, default=5, metavar="N", help="how many dead letters to show (default 5)")
    p.add_argument("--json", action="store_true")

    smsc = sub.add_parser("smsc", help="shared SMSCs: one pool of DIDs for several applications").add_subparsers(
        dest="action", required=True)
    p = smsc.add_parser("create", help="create a shared SMSC")
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--limit-per-min", type=int, metavar="N", help="cap for the whole pool, in segments per minute")
    p = smsc.add_parser("list", help="list SMSCs with their applications and DIDs")
    _common(p)
    p.add_argument("--json", action="store_true")

    inbound = sub.add_parser("inbound", help="incoming messages").add_subparsers(dest="action", required=True)
    p = inbound.add_parser("review", help="possible opt-outs (an ambiguous word like CANCEL with text) to look at")
    _common(p)
    p.add_argument("--app", metavar="NAME", help="only this application's")
    p.add_argument("--opt-out", type=int, nargs="+", metavar="ID", default=[],
                   help="these were opt-outs: blacklist their phones for the app (recorded as the operator's)")
    p.add_argument("--dismiss", type=int, nargs="+", metavar="ID", default=[], help="these were not opt-outs")
    p.add_argument("--json", action="store_true")

    prov = sub.add_parser("provider", help="manage carrier accounts").add_subparsers(dest="action", required=True)
    p = prov.add_parser("add", help="attach a carrier account to an application (or a shared SMSC)")
    _common(p)
    _pool_flags(p)
    p.add_argument("--kind", choices=["twilio", "fake"], required=True)
    p.add_argument("--account-sid")
    p.add_argument("--auth-token")
    p.add_argument("--messaging-service-sid")
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

    did = sub.add_parser("did", help="manage sender numbers").add_subparsers(dest="action", required=True)
    for action in ("add", "list", "remove"):
        p = did.add_parser(action)
        _common(p)
        _pool_flags(p)
        if action != "list":
            p.add_argument("numbers", nargs="+", metavar="NUMBER")
        if action == "add":
            p.add_argument("--limit-per-min", type=int, default=60)
            p.add_argument("--burst", type=int, default=1)
            p.add_argument("--public-url",
                           help="base URL the numbers' SmsUrl is set under (env ENGINE_PUBLIC_URL)")
        if action == "list":
            p.add_argument("--json", action="store_true")

    p = sub.add_parser("fake-carrier", help="run a local carrier speaking Twilio's REST API")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--latency", type=float, default=0.05, help="seconds before status callbacks")
    p.add_argument("--failure-rate", type=float, default=0.0)
    p.add_argument("--callbacks", choices=["all", "final", "none"], default="all")
    p.add_argument("--account-sid")
    p.add_argument("--auth-token")
    p.add_argument("--seed", type=int)

    p = sub.add_parser("demo", help="the main job on a fresh machine: a bulk send through a pool of DIDs")
    _common(p)
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--dids", type=int, default=50)
    p.add_argument("--limit-per-min", type=int, default=60)
    p.add_argument("--failure-rate", type=float, default=0.02)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    p = sub.add_parser("bench", help="throughput benchmarks: engine vs a per-message job queue, and the scheduler")
    _common(p)
    p.add_argument("--quick", action="store_true", help="small sizes (20,000 messages, 2 rounds each)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (logs go to stderr)")
    p.add_argument("--messages", type=int, help="messages per round (default 100,000; --quick 20,000)")
    p.add_argument("--rounds", type=int, help="rounds of each side, alternated (default 3; --quick 2)")
    p.add_argument("--dids", type=int, default=100, help="sender numbers (default 100)")
    p.add_argument("--limit-per-min", type=int, default=600_000, help="per-DID limit (default 600,000)")
    p.add_argument("--throttle-dids", type=int, help="scheduler DIDs (default 100,000; --quick 10,000)")
    p.add_argument("--throttle-decisions", type=int, help="scheduler decisions (default 1,000,000; --quick 100,000)")
    p.add_argument("--paced-dids", type=int, help="paced: DIDs at 60/min (default 300; --quick 100)")
    p.add_argument("--paced-seconds", type=float, help="paced: window in seconds (default 60; --quick 20)")
    p.add_argument("--backlog-messages", type=int, help="backlog: queued messages (default 1,000,000; --quick 100,000)")
    p.add_argument("--backlog-dids", type=int, help="backlog: DIDs at 60/min (default 100,000; --quick 10,000)")
    p.add_argument("--processes", type=int, default=2,
                   help="processes scenario: worker processes compared with one `engine run` (default 2)")
    p.add_argument("--scenarios", default="all",
                   help="comma list of e2e (engine vs baseline), processes (engine run vs engine worker "
                        "--processes N), throttle, paced, backlog (default all)")
    return parser


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


async def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def go(_: Any) -> int:
        print("schema is up to date")
        return 0

    return await _with_db(settings, go)


APP_SETTINGS_FLAGS = (
    "gateway_url", "help_text", "welcome_text", "optout_text", "optin_text", "nomatch_text", "split_mode",
    "smart_encoding", "flood_limit", "dedup_window", "callback_concurrency", "smsc_limit_per_min",
    "session_idle", "loop_max_replies", "loop_window", "loop_max_repeats", "loop_cooldown", "smsc",
)


def _print_status(status: dict[str, Any]) -> None:
    a = status["app"]
    flood = f"{a['flood_limit']} per {a['flood_seconds']:g}s" if a["flood_limit"] else "off"
    print(f"app {a['name']} (id {a['id']})")
    print(f"  gateway_url: {a['gateway_url'] or '-'}   callback_concurrency: {a['callback_concurrency']}")
    print(f"  split_mode: {a['split_mode']}   smart_encoding: {'yes' if a['smart_encoding'] else 'no'}   "
          f"flood_limit: {flood}   dedup_window: {a['dedup_seconds']:g}s")
    queue = status["queue"]
    print("queue: " + (", ".join(f"{k}={v}" for k, v in queue.items()) if queue else "empty"))
    print("callbacks: " + ", ".join(f"{k}={v}" for k, v in status["outbox"].items()))
    if status["dead_letters"]:
        print("last dead-lettered callbacks:")
        for d in status["dead_letters"]:
            print(f"  {d['created_at']}  {d['type']:<19} {d['event_id']}  attempts={d['attempts']}  "
                  f"error: {d['last_error']}")


async def _cmd_app(settings: Settings, args: argparse.Namespace) -> int:
    from engine.app_settings import validate_app_changes
    from engine.store import admin

    changes = None
    if args.action == "set":  # everything is validated before the database is touched
        changes = validate_app_changes({k: getattr(args, k) for k in APP_SETTINGS_FLAGS})
        if not changes:
            raise EngineError("nothing to set: give at least one setting (see `engine app set --help`)")
        help_text = changes.columns.get("help_text")
        if isinstance(help_text, str) and len(help_text) > 160:
            print(f"warning: --help-text is {len(help_text)} characters; carriers recommend at most 160",
                  file=sys.stderr)

    async def go(pool: Any) -> int:
        if changes is not None:
            await admin.update_app(pool, args.name, changes)
            print(f"updated {args.name}: " + "; ".join(changes.describe()))
            return 0
        if args.action == "status":
            status = await admin.app_status(pool, args.name, dead=max(0, args.dead))
            if args.json:
                _print_json(status)
            else:
                _print_status(status)
            return 0
        if args.action == "create":
            new = await admin.create_app(pool, args.name, args.gateway_url, smsc=args.smsc)
            if args.json:
                _print_json({"app_id": new.app_id, "api_key": new.api_key, "callback_secret": new.callback_secret})
            else:
                print(f"app_id: {new.app_id}\napi_key: {new.api_key}\ncallback_secret: {new.callback_secret}")
                print("(the API key is shown only now; it is stored hashed)")
            return 0
        apps = await admin.list_apps(pool)
        if args.json:
            _print_json(apps)
        else:
            for a in apps:
                print(f"{a['id']:>5}  {a['name']:<24} dids={a['dids']:<5} provider={a['provider'] or '-'}")
        return 0

    return await _with_db(settings, go)


def _carrier(session: aiohttp.ClientSession, account: ProviderAccount, timeout: float) -> TwilioClient:
    """The client for *account* on *session*: always through the factory."""
    from engine.providers.factory import carrier_client

    return carrier_client(
        session, kind=account.kind, account_sid=account.account_sid, auth_token=account.auth_token,
        base_url=account.base_url, messaging_service_sid=account.messaging_service_sid, timeout=timeout,
    )


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
        numbers = [row["number"] for row in await admin.list_dids(pool, args.app, smsc=args.smsc)]
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
        )
        single = ", single SMS only" if args.single_sms else ""
        target = _target(args)
        print(f"provider {pid} ({args.kind}{single}, account {sid[:6]}…) attached to {target}")
        if await admin.list_dids(pool, args.app, smsc=args.smsc):
            print(f"its inbound URL is new: run `engine provider sync {target}` to point the DIDs at it")
        return 0

    return await _with_db(settings, go)


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
                                 smsc=args.smsc)
    print("added " + ", ".join(added))
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


async def _cmd_did(settings: Settings, args: argparse.Namespace) -> int:
    from engine.store import admin

    async def go(pool: Any) -> int:
        if args.action == "add":
            return await _did_add(settings, args, pool)
        if args.action == "remove":
            for n in args.numbers:
                await admin.remove_did(pool, args.app, n, smsc=args.smsc)
            print("removed " + ", ".join(args.numbers))
        else:
            rows = await admin.list_dids(pool, args.app, smsc=args.smsc)
            if args.json:
                _print_json(rows)
            for r in rows if not args.json else []:
                state = "" if r["enabled"] else " (disabled)"
                print(f"{r['number']}  {r['limit_per_min']}/min burst {r['burst']}{state}")
        return 0

    return await _with_db(settings, go)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


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


async def _cmd_fake_carrier(settings: Settings, args: argparse.Namespace) -> int:
    from engine.testing import run_fake_carrier

    kwargs: dict[str, Any] = {"latency": args.latency, "failure_rate": args.failure_rate,
                              "callbacks": args.callbacks, "seed": args.seed}
    if args.account_sid and args.auth_token:
        kwargs["accounts"] = {args.account_sid: args.auth_token}
    gctune.tune()
    task = asyncio.ensure_future(run_fake_carrier(args.host, args.port, **kwargs))
    stop = asyncio.Event()
    _stop_on_signals(stop)
    await asyncio.wait([task, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return 0


async def _cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from engine.demo import run_demo

    return await run_demo(settings, messages=args.messages, dids=args.dids, limit_per_min=args.limit_per_min,
                          failure_rate=args.failure_rate, as_json=args.json)


async def _cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from benchmarks.runner import BenchConfig, format_table, parse_scenarios, run_bench

    try:
        scenarios = parse_scenarios(args.scenarios)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.processes < 1:
        print("error: --processes must be at least 1", file=sys.stderr)
        return 2
    if "e2e" in scenarios and importlib.util.find_spec("pgqueuer") is None:
        print("error: the e2e scenario's baseline needs PgQueuer: pip install -e '.[bench]' (or '.[dev]'), "
              "or leave e2e out with --scenarios", file=sys.stderr)
        return 2
    cfg = BenchConfig.make(
        quick=args.quick, messages=args.messages, rounds=args.rounds, dids=args.dids,
        limit_per_min=args.limit_per_min, throttle_dids=args.throttle_dids,
        throttle_decisions=args.throttle_decisions, paced_dids=args.paced_dids,
        paced_seconds=args.paced_seconds, backlog_messages=args.backlog_messages,
        backlog_dids=args.backlog_dids, scenarios=scenarios, processes=args.processes,
    )
    result = await run_bench(cfg, settings.dsn, "engine " + " ".join(sys.argv[1:]))
    if args.json:
        _print_json(result)
    else:
        print(format_table(result))
    return 0


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "migrate": _cmd_migrate,
    "app": _cmd_app,
    "provider": _cmd_provider,
    "did": _cmd_did,
    "smsc": _cmd_smsc,
    "inbound": _cmd_inbound,
    "serve": _cmd_engine,
    "worker": _cmd_engine,
    "run": _cmd_engine,
    "fake-carrier": _cmd_fake_carrier,
    "demo": _cmd_demo,
    "bench": _cmd_bench,
}


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
