"""What the operator console reads and changes (SQL in :mod:`engine.store.console_queries`).

Reads are bounded (a page of at most *limit* rows, with a cursor for the next) and indexed. Changes reuse the
engine's own store functions where they exist (app settings: :func:`engine.store.admin.update_app`; keywords:
:mod:`engine.store.carousel`); the few that are the console's own are one statement or one transaction each.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg

from engine.errors import InvalidInput, NotFound
from engine.store import console_queries as cq
from engine.store import vault
from engine.store.carousel import ApiApp

__all__ = [
    "AppCounts",
    "Overview",
    "Smsc",
    "app_detail",
    "app_for_keywords",
    "blacklist_page",
    "change_blacklist",
    "consent_events",
    "conversation",
    "dead_letters",
    "did_page",
    "overview",
    "recent_conversations",
    "retry_dead_letter",
    "smsc",
    "smscs",
]

OPEN_STATES: Final = ("queued", "claimed", "sending", "sent", "unknown")
HOUR_SLICES: Final = 3  # the last hour read as this many time slices at once (with the rest: 4 connections)
DELIVERED: Final = "delivered"
NOT_DELIVERED: Final = frozenset({"undelivered", "failed", "expired"})


@dataclass
class AppCounts:
    """One app's line on the overview."""

    name: str
    open: dict[str, int] = field(default_factory=dict)  # open messages by state
    sent_hour: int = 0  # handed to the carrier in the last hour …
    delivered_hour: int = 0  # … and of those, delivered …
    failed_hour: int = 0  # … or not
    callbacks_pending: int = 0
    callbacks_dead: int = 0


@dataclass
class Overview:
    queue: dict[str, int]  # open messages by state, all apps
    minutes: list[tuple[int, int]]  # (minute start, epoch s; messages handed to the carrier), the last hour
    sent_hour: int
    delivered_hour: int
    failed_hour: int
    callbacks_pending: int
    callbacks_dead: int
    apps: list[AppCounts]

    @property
    def delivery_rate(self) -> float | None:
        """Delivered among last hour's sends with a final report (None before any)."""
        done = self.delivered_hour + self.failed_hour
        return None if done == 0 else self.delivered_hour / done


async def overview(pool: asyncpg.Pool) -> Overview:
    """Queue depth, the last hour minute by minute, callbacks, per app: indexed queries, the hour's in HOUR_SLICES
    slices, all at once on their own connections (the page waits for the slowest, not for their sum)."""
    now: datetime = await pool.fetchval(cq.NOW)
    edges = [now - timedelta(hours=1) * (1 - i / HOUR_SLICES) for i in range(HOUR_SLICES + 1)]
    open_and_callbacks, *slices = await asyncio.gather(
        _open_and_callbacks(pool), *(pool.fetch(cq.SENT_BETWEEN, a, b) for a, b in itertools.pairwise(edges)))
    open_rows, callback_rows = open_and_callbacks
    hour_rows = [r for rows in slices for r in rows]
    current = now.replace(second=0, microsecond=0)
    apps = {r["id"]: AppCounts(r["name"], callbacks_pending=r["pending"], callbacks_dead=r["dead"])
            for r in callback_rows}
    queue: dict[str, int] = dict.fromkeys(OPEN_STATES, 0)
    for r in open_rows:
        queue[r["state"]] += r["n"]
        if r["app_id"] in apps:
            apps[r["app_id"]].open[r["state"]] = r["n"]
    per_minute: dict[int, int] = defaultdict(int)
    for r in hour_rows:
        per_minute[int(r["minute"].timestamp())] += r["n"]
        app = apps.get(r["app_id"])
        if app is None:
            continue
        app.sent_hour += r["n"]
        app.delivered_hour += r["n"] if r["state"] == DELIVERED else 0
        app.failed_hour += r["n"] if r["state"] in NOT_DELIVERED else 0
    # 61 minutes: the hour's first, partial minute too, so the chart adds up to the hour's count.
    end = int(current.timestamp())
    minutes = [(m, per_minute.get(m, 0)) for m in range(end - 60 * 60, end + 60, 60)]
    listed = list(apps.values())
    return Overview(
        queue=queue, minutes=minutes,
        sent_hour=sum(a.sent_hour for a in listed), delivered_hour=sum(a.delivered_hour for a in listed),
        failed_hour=sum(a.failed_hour for a in listed),
        callbacks_pending=sum(a.callbacks_pending for a in listed),
        callbacks_dead=sum(a.callbacks_dead for a in listed), apps=listed,
    )


async def _open_and_callbacks(pool: asyncpg.Pool) -> tuple[list[asyncpg.Record], list[asyncpg.Record]]:
    async with pool.acquire() as conn:
        return await conn.fetch(cq.OPEN_BY_APP), await conn.fetch(cq.CALLBACKS_BY_APP)


# ---- inbound ----------------------------------------------------------------------------------


async def recent_conversations(
    pool: asyncpg.Pool, *, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Phones that texted lately, newest first: each with its latest MO and how many of the page's MOs are its.
    Returns (conversations, cursor for the next page or None)."""
    rows = await pool.fetch(cq.RECENT_MOS, before, limit)
    phones: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = phones.get(r["phone"])
        if entry is None:
            phones[r["phone"]] = dict(r) | {"count": 1}
        else:
            entry["count"] += 1
    cursor = rows[-1]["id"] if len(rows) == limit else None
    return list(phones.values()), cursor


async def conversation(
    pool: asyncpg.Pool, phone: str, *, before: datetime | None, limit: int
) -> tuple[list[dict[str, Any]], datetime | None]:
    """The phone's MOs and the messages sent to it, newest first (at most *limit*), and the cursor for older."""
    async with pool.acquire() as conn:
        mos = [dict(r) | {"direction": "in"} for r in await conn.fetch(cq.PHONE_MOS, phone, before, limit)]
        mts = [dict(r) | {"direction": "out"} for r in await conn.fetch(cq.PHONE_MTS, phone, before, limit)]
    items = sorted(mos + mts, key=lambda r: (r["at"], r["direction"] == "out", r["id"]), reverse=True)[:limit]
    cursor = items[-1]["at"] if len(items) == limit else None
    return items, cursor


async def consent_events(
    pool: asyncpg.Pool, *, phone: str | None, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    if phone is None:
        found = await pool.fetch(cq.CONSENT_EVENTS, before, limit)
    else:
        found = await pool.fetch(cq.PHONE_CONSENT_EVENTS, phone, before, limit)
    rows = [dict(r) for r in found]
    return rows, rows[-1]["id"] if len(rows) == limit else None


async def blacklist_page(
    pool: asyncpg.Pool, *, prefix: str | None, after: str | None, limit: int,
    before: tuple[datetime, int, str] | None = None,
) -> list[dict[str, Any]]:
    """Blacklisted phones starting with *prefix* (in phone order, after *after*), or the newest entries (before
    *before*: created_at, app id, phone) when no prefix is given."""
    if prefix:
        return [dict(r) for r in await pool.fetch(cq.BLACKLIST_SEARCH, prefix, prefix + ":", after, limit)]
    at, app_id, phone = before if before is not None else (None, None, None)
    return [dict(r) for r in await pool.fetch(cq.BLACKLIST_RECENT, at, app_id, phone, limit)]


async def change_blacklist(
    pool: asyncpg.Pool, app_id: int, phone: str, *, add: bool, operator: str, note: str | None
) -> bool:
    """An operator blacklists (or removes from the blacklist) *phone* for the app, with a note; recorded in the
    consent record with their name and the app told (phone_blacklisted / phone_unblacklisted), in one statement.
    False when there was nothing to change."""
    statement = cq.OPERATOR_BLACKLIST if add else cq.OPERATOR_UNBLACKLIST
    return await pool.fetchval(statement, app_id, phone, operator, note) is not None


# ---- apps -------------------------------------------------------------------------------------


async def app_detail(pool: asyncpg.Pool, name: str) -> dict[str, Any]:
    row = await pool.fetchrow(cq.APP_DETAIL, name)
    if row is None:
        raise NotFound(f"no application named {name!r}")
    detail = dict(row)
    detail["keywords"] = [dict(r) for r in await pool.fetch(cq.APP_KEYWORDS, row["id"])]
    return detail


def app_for_keywords(detail: dict[str, Any]) -> ApiApp:
    """The app as the keyword store functions (the API's own) take it."""
    return ApiApp(detail["id"], detail["name"], detail["smsc_id"], detail["split_mode"], detail["smart_encoding"],
                  detail["flood_limit"], detail["flood_seconds"], None)


async def dead_letters(
    pool: asyncpg.Pool, app_id: int, *, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    rows = [dict(r) for r in await pool.fetch(cq.DEAD_LETTERS, app_id, before, limit)]
    return rows, rows[-1]["id"] if len(rows) == limit else None


async def retry_dead_letter(pool: asyncpg.Pool, app_id: int, event_id: str) -> bool:
    """Give a dead-lettered callback one more attempt now; False when it is not (or no longer) dead."""
    try:
        event = uuid.UUID(event_id)
    except ValueError:
        raise InvalidInput("event_id", f"{event_id[:40]!r} is not an event id") from None
    async with pool.acquire() as conn, conn.transaction():
        retried = await conn.fetchval(cq.RETRY_DEAD, app_id, event) is not None
        if retried:
            await conn.execute(cq.WAKE_OUTBOX)
    return retried


# ---- carrier accounts and numbers ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Smsc:
    """An SMSC and its carrier account as the console shows it: the token only masked (``token_masked``); the
    token itself (``auth_token``) serves to build a client and never reaches a page."""

    id: int
    name: str
    provider_id: int | None = None
    kind: str | None = None
    account_sid: str | None = None
    auth_token: str = field(default="", repr=False)
    messaging_service_sid: str | None = None
    base_url: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def token_masked(self) -> str:
        return vault.mask(self.auth_token) if self.auth_token else ""


def _smsc(row: asyncpg.Record) -> Smsc:
    stored = row["auth_token"]
    facts = {k: v for k, v in dict(row).items() if k != "auth_token"}
    return Smsc(row["id"], row["name"], row["provider_id"], row["kind"], row["account_sid"],
                vault.reveal(stored) if stored else "", row["messaging_service_sid"], row["base_url"], facts)


async def smscs(pool: asyncpg.Pool) -> list[Smsc]:
    return [_smsc(r) for r in await pool.fetch(cq.SMSCS)]


async def smsc(pool: asyncpg.Pool, name: str) -> Smsc:
    row = await pool.fetchrow(cq.SMSC_BY_NAME, name)
    if row is None:
        raise NotFound(f"no SMSC named {name!r}")
    return _smsc(row)


async def did_page(
    pool: asyncpg.Pool, smsc_id: int, *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the SMSC's DIDs with the segments each sent in the last 60 s; and the cursor for the next."""
    async with pool.acquire() as conn:
        rows = [dict(r) for r in await conn.fetch(cq.SMSC_DID_PAGE, smsc_id, after, limit)]
        used = {r["did_id"]: r["segments"] for r in await conn.fetch(cq.DID_LAST_MINUTE, [r["id"] for r in rows])}
    for r in rows:
        r["last_minute"] = used.get(r["id"], 0)
    return rows, rows[-1]["number"] if len(rows) == limit else None
