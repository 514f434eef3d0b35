"""Tracking: list an application's messages (filters, keyset pages), one message with its status timeline, and
resend a message (a person asked for it: sent even inside the duplicate window, every other rule still applies).

The SQL is in :mod:`engine.store.tracking_queries`; the timeline is written by a trigger (migration 0013).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from engine.errors import InvalidInput
from engine.policy.admission import BLACKLISTED, AppRules, recipient_refusal
from engine.store import carousel_queries as cq
from engine.store import tracking_queries as tq
from engine.store.database import MAX_ID, Pool

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "STATES_BY_STATUS",
    "Event",
    "Message",
    "MessageDetail",
    "MessageFilter",
    "Page",
    "Refused",
    "Resent",
    "apps",
    "decode_cursor",
    "encode_cursor",
    "list_messages",
    "message_detail",
    "parse_message_id",
    "resend",
    "states_for",
]

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500

# The Carousel code each engine state shows (README "Statuses"); a status filter may name either.
STATES_BY_STATUS: Final[Mapping[int, tuple[str, ...]]] = {
    0: ("queued", "claimed", "sending", "unknown"),
    4: ("sent",),
    1: ("delivered",),
    2: ("failed", "undelivered", "suppressed", "canceled", "expired"),
}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_CURSOR: Final = re.compile(r"([0-9]{1,19})\.([0-9]{1,19})", re.ASCII)
_ID: Final = re.compile(r"\+?[0-9]{1,19}", re.ASCII)


def states_for(text: str) -> tuple[str, ...]:
    """The states a ``status`` filter selects: comma-separated Carousel codes (0 pending, 1 delivered, 2 failed,
    4 queued at carrier) and/or state names (``undelivered``, ``expired``, …), any case; sorted."""
    states: set[str] = set()
    for raw in text.split(","):
        token = raw.strip().lower()
        if not token:
            continue
        if token.isdecimal() and token.isascii():
            codes = STATES_BY_STATUS.get(int(token))
            if codes is None:
                raise InvalidInput("status", f"{token!r} is not a status code (0, 1, 2 or 4)")
            states.update(codes)
        elif token in tq.STATES:
            states.add(token)
        else:
            raise InvalidInput("status", f"{raw.strip()[:40]!r} is neither a status code (0, 1, 2, 4) nor a state "
                               f"({', '.join(sorted(tq.STATES))})")
    if not states:
        raise InvalidInput("status", "name at least one status code or state")
    return tuple(sorted(states))


def parse_message_id(text: str | None, param: str = "message_id") -> int:
    """A message id (a positive bigint); InvalidInput naming *param* otherwise."""
    value = (text or "").strip()
    if not value:
        raise InvalidInput(param, "is required")
    if not _ID.fullmatch(value) or not 0 < int(value) <= MAX_ID:
        raise InvalidInput(param, f"{value[:40]!r} is not a message id")
    return int(value)


# ---- cursors -----------------------------------------------------------------------------------------------


def encode_cursor(created_at: datetime, message_id: int) -> str:
    """The opaque cursor after a message: its (created_at, id) key, in base64url."""
    micros = (created_at - _EPOCH) // _MICROSECOND
    return base64.urlsafe_b64encode(f"{micros}.{message_id}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, int]:
    """The (created_at, id) key a cursor from :func:`encode_cursor` holds; InvalidInput('cursor') otherwise."""
    raw = text.strip()
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        decoded = ""
    match = _CURSOR.fullmatch(decoded)
    if match is None or len(raw) > 64 or int(match.group(2)) > MAX_ID:
        raise InvalidInput("cursor", "is not a cursor this server gave (use next_cursor from the previous page)")
    try:
        at = _EPOCH + int(match.group(1)) * _MICROSECOND
    except OverflowError:
        raise InvalidInput("cursor", "is out of range") from None
    return at, int(match.group(2))


# ---- listing -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """What the list shows: every given filter must hold (*states* empty: any state)."""

    phone: str | None = None  # E.164
    states: tuple[str, ...] = ()
    type: str | None = None
    tag: str | None = None
    job_id: int | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _text_id(value: int | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Message:
    """One message as the list shows it."""

    id: int
    app_id: int
    phone_number: str
    sender: str | None  # the DID it went out from
    body: str
    tag: str | None
    type: str | None
    category: str
    job_id: int | None
    state: str
    status: int
    segments: int | None
    error_code: int | None
    reason: str | None
    resent_from: int | None
    part_of: int | None
    kind: str
    created_at: datetime
    send_at: datetime | None
    sent_at: datetime | None
    final_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Message:
        return cls(
            row["id"], row["app_id"], row["recipient"], row["sender"], row["body"], row["tag"], row["type"],
            row["category"], row["job_id"], row["state"], row["status"], row["segments"], row["error_code"],
            row["reason"], row["resent_from"], row["part_of"], row["kind"], row["created_at"], row["send_at"],
            row["sent_at"], row["final_at"], row["expires_at"],
        )

    def as_json(self) -> dict[str, Any]:
        """The API's form: ids as strings (as every Carousel call gives them), times ISO 8601 UTC."""
        return {
            "message_id": str(self.id),
            "phone_number": self.phone_number,
            "sender": self.sender,
            "body": self.body,
            "status": self.status,
            "state": self.state,
            "type": self.type,
            "category": self.category,
            "tag": self.tag,
            "job_id": _text_id(self.job_id),
            "segments": self.segments,
            "error_code": self.error_code,
            "reason": self.reason,
            "resent_from": _text_id(self.resent_from),
            "part_of": _text_id(self.part_of),
            "kind": self.kind,
            "created_at": _iso(self.created_at),
            "send_at": _iso(self.send_at),
            "sent_at": _iso(self.sent_at),
            "final_at": _iso(self.final_at),
            "expires_at": _iso(self.expires_at),
        }


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[Message]
    next_cursor: str | None  # None: this was the last page


async def list_messages(
    pool: Pool, app_ids: Sequence[int], flt: MessageFilter, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page:
    """The applications' messages matching *flt*, newest first, *limit* per page, after *cursor* (from the previous
    page's ``next_cursor``)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput("limit", f"must be between 1 and {MAX_LIMIT}")
    after = None if cursor is None else decode_cursor(cursor)
    if flt.job_id is not None:  # a job's messages are its application's: read them once, for that app only
        owner = await pool.fetchval(tq.JOB_APP, flt.job_id)
        app_ids = [a for a in app_ids if a == owner]
    if not app_ids:
        return Page([], None)
    sql, names = tq.list_messages(
        phone=flt.phone is not None, states=flt.states, type_=flt.type is not None, tag=flt.tag is not None,
        job=flt.job_id is not None, since=flt.since is not None, until=flt.until is not None,
        cursor=after is not None,
    )
    values: dict[str, object] = {
        "phone": flt.phone, "type": flt.type, "tag": flt.tag, "job_id": flt.job_id, "since": flt.since,
        "until": flt.until, "cursor_at": after and after[0], "cursor_id": after and after[1],
    }
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(tq.LIST_PLANNING)  # the driving index, in order (see tracking_queries)
        rows = await conn.fetch(sql, list(app_ids), limit + 1, *(values[n] for n in names))
    messages = [Message.from_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    last = messages[-1] if more else None
    return Page(messages, None if last is None else encode_cursor(last.created_at, last.id))


async def apps(pool: Pool, name: str | None = None) -> dict[int, str]:
    """Application ids -> names: the one called *name*, or all (empty when there is no such application)."""
    rows = await pool.fetch(tq.APPS)
    return {r["id"]: r["name"] for r in rows if name is None or r["name"] == name}


# ---- one message ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One step of a message's timeline."""

    at: datetime
    state: str
    status: int
    provider_status: str | None = None  # what the carrier said at this step
    error_code: int | None = None
    reason: str | None = None
    sender: str | None = None
    applied: bool = True  # False: a carrier callback that changed nothing (it ranked lower than what we had)
    created: bool = False  # the message was queued (its creation, from created_at)

    def as_json(self) -> dict[str, Any]:
        return {
            "at": _iso(self.at), "event": "created" if self.created else ("callback" if not self.applied else (
                "carrier" if self.provider_status is not None else "engine")),
            "state": self.state, "status": self.status, "provider_status": self.provider_status,
            "error_code": self.error_code, "reason": self.reason, "sender": self.sender, "applied": self.applied,
        }


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """A message with everything the engine knows of it."""

    message: Message
    app_name: str
    encoding: str | None
    carrier_sid: str | None
    provider_status: str | None
    error_message: str | None
    attempts: int
    due_at: datetime
    parts: list[int] = field(default_factory=list)  # parts 2..n, when it was split for a single-SMS carrier
    resends: list[int] = field(default_factory=list)  # messages resent from this one
    timeline: list[Event] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            **self.message.as_json(),
            "app": self.app_name,
            "encoding": self.encoding,
            "carrier_sid": self.carrier_sid,
            "provider_status": self.provider_status,
            "error_message": self.error_message,
            "attempts": self.attempts,
            "due_at": _iso(self.due_at),
            "parts": [str(i) for i in self.parts],
            "resends": [str(i) for i in self.resends],
            "timeline": [e.as_json() for e in self.timeline],
        }


async def message_detail(pool: Pool, message_id: int, app_id: int | None = None) -> MessageDetail | None:
    """The message with its timeline; None when there is none (or it belongs to another app than *app_id*)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        row = await conn.fetchrow(tq.MESSAGE, message_id)
        if row is None or (app_id is not None and row["app_id"] != app_id):
            return None
        parts = [r["id"] for r in await conn.fetch(tq.PARTS, message_id)]
        resends = [r["id"] for r in await conn.fetch(tq.RESENDS, message_id)]
        events = await conn.fetch(tq.TIMELINE, message_id)
    message = Message.from_row(row)
    created = Event(message.created_at, "queued", 0, created=True)
    timeline = [created, *(Event(**dict(e)) for e in events)]
    return MessageDetail(
        message, row["app_name"], row["encoding"], row["provider_message_id"], row["provider_status"],
        row["error_message"], row["attempts"], row["due_at"], parts, resends, timeline,
    )


# ---- resend ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resent:
    """The resend is queued: *message_id* is its (first part's) id."""

    message_id: int


@dataclass(frozen=True, slots=True)
class Refused:
    """Nothing was queued: *reason* (not_found, not_sent, compliance, expired, blacklisted, flood_limit), and why."""

    reason: str
    detail: str


_NOT_SENT: Final = frozenset({"queued", "claimed"})


def _refusal(original: Mapping[str, Any], recipient: str, now: datetime) -> Refused | None:
    """What forbids resending *original* to *recipient* by itself (the phone's rules are checked after)."""
    if original["kind"] == "compliance":
        return Refused("compliance", "the engine's own STOP/HELP answers are not resent")
    if original["state"] in _NOT_SENT:
        return Refused("not_sent", f"message {original['id']} has not been sent yet (state {original['state']}): "
                       "cancel it, or wait for it")
    expires = original["expires_at"]
    if expires is not None and expires <= now:
        return Refused("expired", f"message {original['id']} expired at {_iso(expires)}: its lifetime is over")
    return None


async def resend(
    pool: Pool, message_id: int, *, now: datetime, app_id: int | None = None, phone: str | None = None
) -> Resent | Refused:
    """Queue the message again, to *phone* (E.164, already validated) or its own recipient, as a new message linked
    to it (``resent_from``): same body, tag, type, category and expiry, due now. A part of a message split for a
    single-SMS carrier resends the whole message (every part). Admission then checks it like any other message,
    except for the duplicate window; the blacklist and flood limit are also checked here, at once, so a refusal is
    said now and nothing is queued. One transaction."""
    async with pool.acquire() as conn, conn.transaction():
        original = await conn.fetchrow(tq.ORIGINAL, message_id)
        if original is not None and original["part_of"] is not None:
            original = await conn.fetchrow(tq.ORIGINAL, original["part_of"])
        if original is None or (app_id is not None and original["app_id"] != app_id):
            return Refused("not_found", f"no message {message_id}" + ("" if app_id is None else " of this application"))
        recipient = phone or original["recipient"]
        refused = _refusal(original, recipient, now)
        if refused is not None:
            return refused
        parts = [(original["id"], original["body"])] + [
            (r["id"], r["body"]) for r in await conn.fetch(tq.PARTS, original["id"])
        ]
        app = original["app_id"]
        rules = AppRules(flood_limit=original["flood_limit"], flood_seconds=original["flood_seconds"])
        await conn.fetch(cq.LOCK_RECIPIENTS, app, [recipient])  # flood counts, serialised per phone
        blacklisted = bool(await conn.fetch(cq.BLACKLISTED_AMONG, app, [recipient]))
        used = 0
        if rules.flood_checked and not blacklisted:
            counts = await conn.fetch(cq.RECENT_COUNTS, app, [recipient], rules.flood_seconds)
            used = sum(r["n"] for r in counts)
        refusal = recipient_refusal(blacklisted=blacklisted, flood_used=used, rules=rules)
        if refusal is not None:
            detail = ("the phone opted out of this application" if refusal == BLACKLISTED else
                      f"the phone reached the app's flood limit ({rules.flood_limit} per {rules.flood_seconds:g} s)")
            return Refused(refusal, detail)
        ids = [r["id"] for r in await conn.fetch(
            tq.INSERT_RESEND, app, recipient, [body for _, body in parts], original["tag"], original["type"],
            original["category"], original["expires_at"], [orig for orig, _ in parts],
        )]
        ids.sort()  # one sequence, rows inserted in order: sorted ids are the parts in order
        if len(ids) > 1:
            await conn.execute(cq.LINK_PARTS, ids[1:], [ids[0]] * (len(ids) - 1))
    return Resent(ids[0])
