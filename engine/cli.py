"""Command line: `engine <command>` (also `python -m engine`). Flags override ENGINE_* variables."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import orjson

from engine.config import Settings
from engine.errors import EngineError

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
        if name != "serve":
            _worker_flags(p)

    app = sub.add_parser("app", help="manage applications").add_subparsers(dest="action", required=True)
    p = app.add_parser("create", help="create an application; prints its id and API key")
    _common(p)
    p.add_argument("--name", required=True)
    p.add_argument("--gateway-url")
    p.add_argument("--json", action="store_true")
    p = app.add_parser("list", help="list applications")
    _common(p)
    p.add_argument("--json", action="store_true")

    prov = sub.add_parser("provider", help="manage carrier accounts").add_subparsers(dest="action", required=True)
    p = prov.add_parser("add", help="attach a carrier account to an application")
    _common(p)
    p.add_argument("--app", required=True)
    p.add_argument("--kind", choices=["twilio", "fake"], required=True)
    p.add_argument("--account-sid")
    p.add_argument("--auth-token")
    p.add_argument("--messaging-service-sid")
    p.add_argument("--base-url")

    did = sub.add_parser("did", help="manage sender numbers").add_subparsers(dest="action", required=True)
    for action in ("add", "list", "remove"):
        p = did.add_parser(action)
        _common(p)
        p.add_argument("--app", required=True)
        if action != "list":
            p.add_argument("numbers", nargs="+", metavar="NUMBER")
        if action == "add":
            p.add_argument("--limit-per-min", type=int, default=60)
            p.add_argument("--burst", type=int, default=1)
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


async def _cmd_app(settings: Settings, args: argparse.Namespace) -> int:
    from engine.store import admin

    async def go(pool: Any) -> int:
        if args.action == "create":
            new = await admin.create_app(pool, args.name, args.gateway_url)
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


async def _cmd_provider(settings: Settings, args: argparse.Namespace) -> int:
    from engine.providers.fake import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
    from engine.store import admin

    sid, token, base = args.account_sid, args.auth_token, args.base_url
    if args.kind == "fake":
        sid = sid or DEFAULT_ACCOUNT_SID
        token = token or DEFAULT_AUTH_TOKEN
        base = base or "http://127.0.0.1:8099"
    if not sid or not token:
        raise EngineError("--account-sid and --auth-token are required for --kind twilio")

    async def go(pool: Any) -> int:
        pid = await admin.add_provider(
            pool, args.app, kind=args.kind, account_sid=sid, auth_token=token,
            messaging_service_sid=args.messaging_service_sid, base_url=base,
        )
        print(f"provider {pid} ({args.kind}, account {sid[:6]}…) attached to {args.app}")
        return 0

    return await _with_db(settings, go)


async def _cmd_did(settings: Settings, args: argparse.Namespace) -> int:
    from engine.store import admin

    async def go(pool: Any) -> int:
        if args.action == "add":
            added = await admin.add_dids(pool, args.app, args.numbers, limit_per_min=args.limit_per_min,
                                         burst=args.burst)
            print("added " + ", ".join(added))
        elif args.action == "remove":
            for n in args.numbers:
                await admin.remove_did(pool, args.app, n)
            print("removed " + ", ".join(args.numbers))
        else:
            rows = await admin.list_dids(pool, args.app)
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

    stop = asyncio.Event()
    _stop_on_signals(stop)
    await run_engine(settings, stop, serve=args.command in ("serve", "run"), dispatch=args.command != "serve")
    return 0


async def _cmd_fake_carrier(settings: Settings, args: argparse.Namespace) -> int:
    from engine.providers.fake import run_fake_carrier

    kwargs: dict[str, Any] = {"latency": args.latency, "failure_rate": args.failure_rate,
                              "callbacks": args.callbacks, "seed": args.seed}
    if args.account_sid and args.auth_token:
        kwargs["accounts"] = {args.account_sid: args.auth_token}
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


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "migrate": _cmd_migrate,
    "app": _cmd_app,
    "provider": _cmd_provider,
    "did": _cmd_did,
    "serve": _cmd_engine,
    "worker": _cmd_engine,
    "run": _cmd_engine,
    "fake-carrier": _cmd_fake_carrier,
    "demo": _cmd_demo,
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
    try:
        return _event_loop_runner()(COMMANDS[args.command](settings, args))
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
