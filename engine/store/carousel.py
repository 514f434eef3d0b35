"""Store operations behind the Carousel-compatible HTTP API: each function is one transaction.

The SQL lives in :mod:`engine.store.carousel_queries`. Callback events (blacklisting, closed
sessions) are emitted with :func:`engine.store.outbox.enqueue_events` in the same transaction as the
change that caused them; delivering them is the callback task's job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import asyncpg

from engine import events as ev
from engine.errors import NotFound
from engine.policy.admission import BLACKLISTED as REFUSED_BLACKLISTED
from engine.policy.admission import AppRules, recipient_refusal
from engine.policy.lifetime import Notification
from engine.policy.senders import type_defaults
from engine.store import carousel_queries as cq
from engine.store import queries as q
from engine.store import vault
from engine.store.jobs import JobSpec, insert_job
from engine.store.outbox import NewEvent, enqueue_events

__all__ = [
    "BLACKLISTED",
    "FLOODED",
    "INVALID",
    "SESSION_SECONDS",
    "ApiApp",
    "Draft",
    "ProviderAccount",
    "app_by_key_hash",
    "app_by_name",
    "blacklist",
    "blacklisted_among",
    "cancel_messages",
    "close_sessions",
    "delivery_statuses",
    "did_smsc",
    "plan_outcomes",
    "queue_job_messages",
    "queue_messages",
    "record_did",
    "remove_did",
    "remove_tag",
    "smsc_dids",
    "unblacklist",
]

INVALID: Final = -1  # the phone number could not be understood
BLACKLISTED: Final = -2  # the phone opted out of this application
FLOODED: Final = -3  # the phone reached the app's flood limit for its period
SESSION_SECONDS: Final = 24 * 3600.0  # lifetime of a session opened by action_expected


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    """The carrier account of an app's SMSC."""

    id: int
    kind: str
    account_sid: str
    auth_token: str = field(repr=False)
    messaging_service_sid: str | None
    base_url: str | None
    single_sms: bool


@dataclass(frozen=True, slots=True)
class ApiApp:
    """What an API call needs to know about the calling application."""

    id: int
    name: str
    smsc_id: int | None
    split_mode: str
    smart_encoding: bool
    flood_limit: int | None
    flood_seconds: float | None
    provider: ProviderAccount | None

    @property
    def rules(self) -> AppRules:
        """The settings admission applies (the same policy as for messages from every other door)."""
        return AppRules(
            smart=self.smart_encoding,
            split_mode=self.split_mode,
            single_sms=self.provider is not None and self.provider.single_sms,
            flood_limit=self.flood_limit,
            flood_seconds=self.flood_seconds,
        )

    @property
    def flood_checked(self) -> bool:
        return self.rules.flood_checked


@dataclass(frozen=True, slots=True)
class Draft:
    """One recipient of a send call: its E.164 number (None when invalid) and its body's parts."""

    recipient: str | None
    parts: tuple[str, ...]


def _status_count(status: str) -> int:
    """Rows affected, from asyncpg's command tag ('UPDATE 3', 'DELETE 0', …)."""
    return int(status.rsplit(" ", 1)[-1])


async def app_by_key_hash(pool: asyncpg.Pool, key_hash: str) -> ApiApp | None:
    """The application whose API key hashes to *key_hash*, with its SMSC's carrier account."""
    row = await pool.fetchrow(cq.APP_BY_KEY_HASH, key_hash)
    return None if row is None else _api_app(row)


async def app_by_name(pool: asyncpg.Pool, name: str) -> ApiApp:
    """The application called *name* as an API call sees it (for commands acting as the app), or NotFound."""
    row = await pool.fetchrow(cq.APP_BY_NAME, name)
    if row is None:
        raise NotFound(f"no application named {name!r}")
    return _api_app(row)


def _api_app(row: asyncpg.Record) -> ApiApp:
    provider = None
    if row["provider_id"] is not None:
        provider = ProviderAccount(
            row["provider_id"], row["kind"], row["account_sid"], vault.reveal(row["auth_token"]),
            row["messaging_service_sid"], row["base_url"], row["single_sms"],
        )
    return ApiApp(
        row["id"], row["name"], row["smsc_id"], row["split_mode"], row["smart_encoding"],
        row["flood_limit"], row["flood_seconds"], provider,
    )


# ---- sending -----------------------------------------------------------------------------------


def plan_outcomes(
    drafts: Sequence[Draft], blocked: set[str], recent: dict[str, int], rules: AppRules
) -> list[int | None]:
    """Per draft: None to queue it, or INVALID / BLACKLISTED / FLOODED (pure).

    The refusals are admission's own (:func:`engine.policy.admission.recipient_refusal`), so the HTTP
    door answers at once what the dispatch stage would decide for the same message. Parts queued
    earlier in the same call count towards the flood limit like older messages.
    """
    used = Counter(recent)
    plan: list[int | None] = []
    for draft in drafts:
        if draft.recipient is None:
            plan.append(INVALID)
            continue
        refusal = recipient_refusal(
            blacklisted=draft.recipient in blocked, flood_used=used[draft.recipient], rules=rules
        )
        if refusal is None:
            used[draft.recipient] += len(draft.parts)
            plan.append(None)
        else:
            plan.append(BLACKLISTED if refusal == REFUSED_BLACKLISTED else FLOODED)
    return plan


async def _recent_counts(conn: asyncpg.Connection, app: ApiApp, phones: list[str]) -> dict[str, int]:
    if not app.flood_checked or not phones:
        return {}
    await conn.fetch(cq.LOCK_RECIPIENTS, app.id, phones)
    rows = await conn.fetch(cq.RECENT_COUNTS, app.id, phones, app.flood_seconds)
    return {r["recipient"]: r["n"] for r in rows}


async def queue_messages(
    pool: asyncpg.Pool,
    app: ApiApp,
    drafts: Sequence[Draft],
    *,
    tag: str | None,
    send_at: datetime | None,
    open_session: bool,
    to_subscribers: bool = False,
    notification: Notification = Notification(),  # noqa: B008 - frozen, so one shared default is safe
) -> list[list[int]]:
    """Queue every acceptable draft in one transaction; per draft its part ids, or [negative code].

    *send_at* is when to send (aware; None = now). With *open_session*, each accepted recipient gets a
    session with the app for SESSION_SECONDS so replies route here without a keyword. Every part carries
    *notification*'s type, category and expiry.
    """
    _, result = await queue_job_messages(pool, app, drafts, tag=tag, send_at=send_at, open_session=open_session,
                                         to_subscribers=to_subscribers, notification=notification)
    return result


async def queue_job_messages(
    pool: asyncpg.Pool,
    app: ApiApp,
    drafts: Sequence[Draft],
    *,
    tag: str | None,
    send_at: datetime | None,
    open_session: bool,
    to_subscribers: bool = False,
    notification: Notification = Notification(),  # noqa: B008 - frozen, so one shared default is safe
    job: JobSpec | None = None,
) -> tuple[int | None, list[list[int]]]:
    """:func:`queue_messages`, the accepted messages grouped in a new *job* (its id first; None without one)
    created in the same transaction (one with nothing accepted is finished at once)."""
    job_id = None
    async with pool.acquire() as conn, conn.transaction():
        phones = sorted({d.recipient for d in drafts if d.recipient is not None})
        blocked = {r["phone"] for r in await conn.fetch(cq.BLACKLISTED_AMONG, app.id, phones)} if phones else set()
        recent = await _recent_counts(conn, app, [p for p in phones if p not in blocked])
        plan = plan_outcomes(drafts, blocked, recent, app.rules)
        accepted = [d for d, code in zip(drafts, plan, strict=True) if code is None]
        recipients = [d.recipient for d in accepted for _ in d.parts]
        bodies = [part for d in accepted for part in d.parts]
        if job is not None:
            job_id, _ = await insert_job(conn, app.id, job, len(bodies))
        ids: list[int] = []
        if bodies:
            # One sequence, rows inserted in order: sorted ids are the parts in order.
            rows = await conn.fetch(cq.INSERT_MESSAGES, app.id, recipients, bodies, tag, send_at, to_subscribers,
                                    notification.type, notification.category, notification.expires_at, job_id)
            ids = sorted(r["id"] for r in rows)
            await _link_parts(conn, [len(d.parts) for d in accepted], ids)
        if open_session and accepted:
            sessions = sorted({d.recipient for d in accepted if d.recipient is not None})
            await conn.execute(cq.OPEN_SESSIONS, app.id, sessions, SESSION_SECONDS)
    result: list[list[int]] = []
    position = 0
    for draft, code in zip(drafts, plan, strict=True):
        if code is not None:
            result.append([code])
        else:
            result.append(ids[position : position + len(draft.parts)])
            position += len(draft.parts)
    return job_id, result


async def _link_parts(conn: asyncpg.Connection, counts: list[int], ids: list[int]) -> None:
    """Point parts 2..n of each split message at its part 1 (*counts*: parts per message, *ids* in order)."""
    parts: list[int] = []
    heads: list[int] = []
    position = 0
    for count in counts:
        parts.extend(ids[position + 1 : position + count])
        heads.extend([ids[position]] * (count - 1))
        position += count
    if parts:
        await conn.execute(cq.LINK_PARTS, parts, heads)


async def cancel_messages(pool: asyncpg.Pool, app_id: int, ids: list[int], *, subscription: bool = False) -> int:
    """Cancel this app's messages that are still queued (not yet claimed); returns how many. *subscription*:
    messages sent to subscribers by tag (cancel_subscription_messages), else the others (cancel_messages)."""
    if not ids:
        return 0
    async with pool.acquire() as conn, conn.transaction():
        return len(await conn.fetch(cq.CANCEL_QUEUED, app_id, ids, subscription))


async def delivery_statuses(pool: asyncpg.Pool, app_id: int, ids: list[int]) -> dict[int, int]:
    """Carousel status code of each of this app's messages among *ids* (others are left out)."""
    if not ids:
        return {}
    return {r["id"]: r["status"] for r in await pool.fetch(cq.STATUSES_OF, app_id, ids)}


async def remove_tag(pool: asyncpg.Pool, app_id: int, recipient: str, tag: str) -> bool:
    """Release the DID a conversation tag was pinned to; True when there was one."""
    return _status_count(await pool.execute(q.REMOVE_TAG, app_id, recipient, tag)) > 0


# ---- DIDs --------------------------------------------------------------------------------------


async def smsc_dids(pool: asyncpg.Pool, smsc_id: int) -> list[str]:
    return [r["number"] for r in await pool.fetch(cq.SMSC_DIDS, smsc_id)]


async def did_smsc(pool: asyncpg.Pool, number: str) -> int | None:
    """The SMSC a DID belongs to, if any."""
    smsc: int | None = await pool.fetchval(cq.DID_SMSC, number)
    return smsc


async def record_did(pool: asyncpg.Pool, smsc_id: int, number: str, sender_type: str = "long_code") -> bool:
    """Add a bought DID to the SMSC, paced as its type's default; False when another SMSC already has it."""
    pace = type_defaults(sender_type)
    async with pool.acquire() as conn, conn.transaction():
        found = await conn.fetchval(cq.INSERT_DID, smsc_id, number, sender_type, pace.limit_per_min, pace.burst)
        if found is not None:
            return True
        return bool(await conn.fetchval(cq.DID_SMSC, number) == smsc_id)


async def remove_did(
    pool: asyncpg.Pool, smsc_id: int, number: str, release: Callable[[], Awaitable[object]]
) -> bool:
    """Delete a DID of the SMSC after *release* (the carrier side) succeeds; False if it is not ours.

    The row stays locked during *release*; if it raises, nothing is deleted.
    """
    async with pool.acquire() as conn, conn.transaction():
        did_id = await conn.fetchval(cq.LOCK_DID, smsc_id, number)
        if did_id is None:
            return False
        await release()
        await conn.execute(cq.DELETE_DID, did_id)
    return True


# ---- sessions, blacklist -----------------------------------------------------------------------


async def close_sessions(pool: asyncpg.Pool, app_id: int, phones: list[str]) -> list[str]:
    """Close the app's sessions with *phones*; one session_closed event lists those that were open."""
    if not phones:
        return []
    async with pool.acquire() as conn, conn.transaction():
        closed = sorted(r["phone"] for r in await conn.fetch(cq.CLOSE_SESSIONS, app_id, phones))
        if closed:
            await enqueue_events(conn, [NewEvent(app_id, ev.SESSION_CLOSED, ev.session_closed(closed))])
    return closed


async def _change_blacklist(
    pool: asyncpg.Pool, app_id: int, phones: list[str], statement: str, event: str, action: str
) -> list[str]:
    """Run *statement* (it returns the phones whose state changed), emit *event* and record the consent change
    (*action*, source 'api') for each, in one transaction."""
    if not phones:
        return []
    async with pool.acquire() as conn, conn.transaction():
        changed = sorted(r["phone"] for r in await conn.fetch(statement, app_id, sorted(set(phones))))
        await enqueue_events(conn, [NewEvent(app_id, event, ev.phone_event(p)) for p in changed])
        if changed:
            await conn.execute(cq.RECORD_API_CONSENT, app_id, action, changed)
    return changed


async def blacklist(pool: asyncpg.Pool, app_id: int, phones: list[str]) -> list[str]:
    """Blacklist *phones* for the app; returns those newly blacklisted (each gets a phone_blacklisted event)."""
    return await _change_blacklist(pool, app_id, phones, cq.BLACKLIST_ADD, ev.PHONE_BLACKLISTED, "opt_out")


async def unblacklist(pool: asyncpg.Pool, app_id: int, phones: list[str]) -> list[str]:
    """Remove *phones* from the app's blacklist; returns those that were on it (phone_unblacklisted events)."""
    return await _change_blacklist(pool, app_id, phones, cq.BLACKLIST_REMOVE, ev.PHONE_UNBLACKLISTED, "opt_in")


async def blacklisted_among(pool: asyncpg.Pool, app_id: int, phones: list[str]) -> set[str]:
    if not phones:
        return set()
    return {r["phone"] for r in await pool.fetch(cq.BLACKLISTED_AMONG, app_id, phones)}
