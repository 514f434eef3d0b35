"""`engine app create|list|set|status|rotate-key`: applications, their settings and API keys."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from engine.cli.common import _common, _print_json, _with_db
from engine.config import Settings
from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.cli.common import Handler, Subparsers


def register(sub: Subparsers) -> None:
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
                   help="cap the app's whole DID pool at N segments/minute; 'off' removes it (10DLC campaigns: "
                        "engine campaign)")
    p.add_argument("--hold-transactional", metavar="yes|no",
                   help="when its brand's daily cap is reached, hold transactional messages too until the reset "
                        "(default no: only marketing and bulk wait)")
    p.add_argument("--valid-for", metavar="DURATION",
                   help="default message lifetime (2h, 1d, PT30M; at most 365 days): a message still unsent this long "
                   "after it was due ends expired; 'off' (default) keeps messages until sent")
    p.add_argument("--retention", metavar="PERIOD",
                   help="keep final messages and delivered callbacks this long (default 18 months; 90d, 2y, 12w…)")
    p.add_argument("--quiet-hours", metavar="yes|no",
                   help="hold marketing messages inside the recipient's local quiet hours (default yes)")
    p.add_argument("--quiet-window", metavar="HH:MM-HH:MM",
                   help="the app's own marketing window, narrowing the law's 08:00-21:00 (and stricter states')")
    p = app.add_parser("rotate-key", help="give the application a new API key (printed once); the old one stops "
                                          "working at once")
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p = app.add_parser("status", help="queue and callback-outbox counts, recent dead-lettered callbacks")
    _common(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--dead", type=int, default=5, metavar="N", help="how many dead letters to show (default 5)")
    p.add_argument("--json", action="store_true")


APP_SETTINGS_FLAGS = (
    "gateway_url", "help_text", "welcome_text", "optout_text", "optin_text", "nomatch_text", "split_mode",
    "smart_encoding", "flood_limit", "dedup_window", "callback_concurrency", "smsc_limit_per_min",
    "session_idle", "loop_max_replies", "loop_window", "loop_max_repeats", "loop_cooldown", "smsc",
    "valid_for", "retention", "quiet_hours", "quiet_window", "hold_transactional",
)


def _print_status(status: dict[str, Any]) -> None:
    a = status["app"]
    flood = f"{a['flood_limit']} per {a['flood_seconds']:g}s" if a["flood_limit"] else "off"
    print(f"app {a['name']} (id {a['id']})")
    print(f"  gateway_url: {a['gateway_url'] or '-'}   callback_concurrency: {a['callback_concurrency']}")
    print(f"  split_mode: {a['split_mode']}   smart_encoding: {'yes' if a['smart_encoding'] else 'no'}   "
          f"flood_limit: {flood}   dedup_window: {a['dedup_seconds']:g}s")
    lifetime = f"{a['valid_for_seconds']:g}s" if a["valid_for_seconds"] else "off"
    quiet = a["quiet_window"] if a["quiet_hours"] else "off"
    print(f"  valid_for: {lifetime}   retention: {a['retention']}   quiet hours (marketing): {quiet}")
    queue = status["queue"]
    print("queue: " + (", ".join(f"{k}={v}" for k, v in queue.items()) if queue else "empty"))
    _print_senders(status["senders"])
    print("callbacks: " + ", ".join(f"{k}={v}" for k, v in status["outbox"].items()))
    if status["dead_letters"]:
        print("last dead-lettered callbacks:")
        for d in status["dead_letters"]:
            print(f"  {d['created_at']}  {d['type']:<19} {d['event_id']}  attempts={d['attempts']}  "
                  f"error: {d['last_error']}")


def _print_senders(senders: dict[str, Any]) -> None:
    """The app's senders by type and campaign, its brands' daily caps, and what waits for a cap to reset."""
    for g in senders["groups"]:
        line = f"senders: {g['count']} {g['type']}"
        if g["campaign"]:
            slowed = f", slowed by the carrier until {g['slowed_until']}" if g["slowed_until"] else ""
            line += f" in campaign {g['campaign']} ({g['mps']} segments/s{slowed})"
        print(line)
    for b in senders["brands"]:
        cap = f"{b['used_today']}/{b['daily_cap']} segments today, {b['reserve']} kept for transactional" \
            if b["daily_cap"] else "no daily cap"
        state = ""
        if b["held_until"]:
            state = f"; the carrier holds it (30023) until {b['held_until']}"
        elif b["daily_cap"] and b["used_today"] >= b["daily_cap"] - b["reserve"]:
            state = f"; daily cap reached: marketing waits until {b['resets_at']}"
        print(f"brand {b['name']}: {cap}{state}")
    if senders["throttled"]:
        print(f"throttled: {senders['throttled']} messages wait for their brand's daily cap to reset "
              f"(transactional ones too: {'yes' if senders['hold_transactional'] else 'no'})")


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
        if args.action == "rotate-key":
            key = await admin.rotate_api_key(pool, args.name)
            if args.json:
                _print_json({"app": args.name, "api_key": key})
            else:
                print(f"api_key: {key}\n(shown only now; it is stored hashed. The old key no longer works.)")
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


COMMANDS: dict[str, Handler] = {"app": _cmd_app}
