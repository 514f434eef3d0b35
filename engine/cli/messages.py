"""`engine messages list|show|resend`: the tracking list, one message with its status timeline, and resends."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.cli.common import _common, _print_json, _with_db
from engine.config import Settings
from engine.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from rich.console import Console

    from engine.cli.common import Handler, Subparsers
    from engine.store.tracking import Event, MessageDetail, Page

# API parameter -> the flag that gives it (errors name the flag).
_FLAGS = {"phone_number": "--phone", "status": "--status", "type": "--type", "tag": "--tag", "job_id": "--job",
          "since": "--since", "until": "--until", "limit": "--limit", "cursor": "--cursor"}
_BODY_CHARS = 48


def register(sub: Subparsers) -> None:
    msgs = sub.add_parser("messages", help="the tracking list: list, show (with the status timeline), resend")
    action = msgs.add_subparsers(dest="action", required=True)
    p = action.add_parser("list", help="messages, newest first, filtered and paged (like GET /api/messages)")
    _common(p)
    p.add_argument("--app", metavar="NAME", help="only this application's messages (default: every application)")
    p.add_argument("--phone", "--phone-number", dest="phone", metavar="NUMBER", help="only messages to this phone")
    p.add_argument("--status", metavar="S[,S…]",
                   help="Carousel codes (0 pending, 1 delivered, 2 failed, 4 at carrier) and/or states "
                        "(queued, sent, delivered, undelivered, failed, suppressed, canceled, expired, …)")
    p.add_argument("--type", metavar="TYPE", help="only messages of this type (registration, reminder, …)")
    p.add_argument("--tag", metavar="TAG", help="only messages with this conversation tag")
    p.add_argument("--job", "--job-id", dest="job", metavar="ID", help="only the messages of this job")
    p.add_argument("--since", metavar="WHEN", help="created at or after (e.g. 2026-03-01, 'Aug 31', today)")
    p.add_argument("--until", metavar="WHEN", help="created before")
    p.add_argument("--limit", metavar="N", default="50", help="messages per page, 1-500 (default 50)")
    p.add_argument("--cursor", metavar="C", help="the next page: the cursor the previous page printed")
    p.add_argument("--json", action="store_true", help='print {"messages": [...], "next_cursor": …} as the API does')
    p = action.add_parser("show", help="one message: every field and its status timeline")
    _common(p)
    p.add_argument("id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print what GET /api/message gives")
    p = action.add_parser("resend", help="send a message again (as a new message linked to it), even inside the "
                          "duplicate window; a part of a split message resends the whole message")
    _common(p)
    p.add_argument("id", metavar="ID")
    p.add_argument("--to", metavar="NUMBER", help="a corrected phone number (default: the original's)")
    p.add_argument("--json", action="store_true")


def _console() -> Console:
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=200)


def _flag_error(exc: InvalidInput, action: str) -> InvalidInput:
    """The API's parameter error, naming the command's flag instead."""
    flag = "--to" if action == "resend" and exc.param == "phone_number" else _FLAGS.get(exc.param, exc.param)
    return InvalidInput(flag, str(exc).removeprefix(f"{exc.param}: "))


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _clip(text: str, width: int = _BODY_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _print_page(page: Page, names: dict[int, str]) -> None:
    from rich.table import Table

    table = Table(title=f"{len(page.messages)} message(s), newest first")
    several = len(names) > 1
    for name in ("id", "created (UTC)", *(("app",) if several else ()), "to", "from", "status", "type", "tag",
                 "job", "body", "error"):
        table.add_column(name, no_wrap=name != "body")
    for m in page.messages:
        error = " ".join(str(x) for x in (m.error_code, m.reason) if x is not None)
        table.add_row(
            str(m.id), _when(m.created_at), *((names.get(m.app_id, str(m.app_id)),) if several else ()),
            m.phone_number, m.sender or "-", f"{m.status} {m.state}", m.type or "-", m.tag or "-",
            str(m.job_id) if m.job_id is not None else "-", _clip(m.body), error or "-",
        )
    console = _console()
    console.print(table)
    if page.next_cursor is not None:
        console.print(f"more: add --cursor {page.next_cursor}", highlight=False)


def _event_note(e: Event) -> str:
    notes = []
    if e.created:
        notes.append("queued")
    if e.sender:
        notes.append(f"via {e.sender}")
    if e.reason:
        notes.append(e.reason)
    if not e.applied:
        notes.append("callback changed nothing (ranked lower)")
    return "; ".join(notes)


def _print_detail(d: MessageDetail) -> None:
    from rich.table import Table

    m = d.message
    fields = Table(show_header=False, title=f"message {m.id}")
    fields.add_column(style="bold")
    fields.add_column()
    rows: list[tuple[str, Any]] = [
        ("app", d.app_name), ("to", m.phone_number), ("from (DID)", m.sender), ("status", f"{m.status} ({m.state})"),
        ("carrier status", d.provider_status), ("carrier sid", d.carrier_sid), ("error code", m.error_code),
        ("error message", d.error_message), ("reason", m.reason), ("type", m.type), ("category", m.category),
        ("tag", m.tag), ("job", m.job_id), ("kind", m.kind), ("segments", m.segments), ("encoding", d.encoding),
        ("attempts", d.attempts), ("created", _when(m.created_at)), ("send at", _when(m.send_at)),
        ("sent", _when(m.sent_at)), ("final", _when(m.final_at)), ("expires", _when(m.expires_at)),
        ("resent from", m.resent_from), ("part of", m.part_of),
        ("parts", ", ".join(map(str, d.parts)) or None), ("resends", ", ".join(map(str, d.resends)) or None),
        ("body", m.body),
    ]
    for name, value in rows:
        fields.add_row(name, "-" if value is None else str(value))
    timeline = Table(title="timeline")
    for name in ("at (UTC)", "event", "state", "status", "carrier", "error", "note"):
        timeline.add_column(name, no_wrap=name != "note")
    for e in d.timeline:
        event = e.as_json()["event"]
        timeline.add_row(
            e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], event, e.state, str(e.status),
            e.provider_status or "-", "-" if e.error_code is None else str(e.error_code), _event_note(e),
        )
    console = _console()
    console.print(fields)
    console.print(timeline)


def _filter_params(args: argparse.Namespace) -> dict[str, str]:
    given = {"phone_number": args.phone, "status": args.status, "type": args.type, "tag": args.tag,
             "job_id": args.job, "since": args.since, "until": args.until, "limit": args.limit}
    return {k: v for k, v in given.items() if v is not None}


async def _cmd_messages(settings: Settings, args: argparse.Namespace) -> int:
    from engine.api import params as pp
    from engine.api.tracking import parse_filter, parse_phone
    from engine.store import tracking

    now = datetime.now(UTC)
    try:  # every flag is checked before the database is touched
        if args.action == "list":
            params = _filter_params(args)
            flt = parse_filter(params, now)
            limit = pp.parse_int(params, "limit", tracking.DEFAULT_LIMIT, low=1, high=tracking.MAX_LIMIT)
            cursor = args.cursor
            if cursor is not None:
                tracking.decode_cursor(cursor)
        else:
            message_id = tracking.parse_message_id(args.id, "ID")
            phone = parse_phone({"phone_number": args.to}) if args.action == "resend" and args.to else None
    except InvalidInput as exc:
        raise _flag_error(exc, args.action) from None

    async def go(pool: Any) -> int:
        if args.action == "list":
            names = await tracking.apps(pool, args.app)
            if args.app is not None and not names:
                raise NotFound(f"no application named {args.app!r}")
            page = await tracking.list_messages(pool, list(names), flt, limit=limit, cursor=cursor)
            if args.json:
                _print_json({"messages": [m.as_json() for m in page.messages], "next_cursor": page.next_cursor})
            else:
                _print_page(page, names)
            return 0
        if args.action == "show":
            detail = await tracking.message_detail(pool, message_id)
            if detail is None:
                raise NotFound(f"no message {message_id}")
            if args.json:
                _print_json(detail.as_json())
            else:
                _print_detail(detail)
            return 0
        result = await tracking.resend(pool, message_id, now=now, phone=phone)
        if isinstance(result, tracking.Refused):
            if result.reason == "not_found":
                raise NotFound(result.detail)
            raise Conflict(f"not resent ({result.reason}): {result.detail}", reason=result.reason)
        if args.json:
            _print_json({"message_id": str(result.message_id)})
        else:
            print(f"resent message {message_id} as message {result.message_id}", file=sys.stdout)
        return 0

    return await _with_db(settings, go)


COMMANDS: dict[str, Handler] = {"messages": _cmd_messages}
