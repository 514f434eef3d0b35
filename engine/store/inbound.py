"""MOs in the database: stored by the webhook, claimed in per-phone order, handled in one transaction each.

The module chain (engine/inbound/chain.py) decides; this module reads the facts it needs and writes what it
decided (blacklist, the consent record, sessions, confirmations and replies, callback events) together with
the MO's 'done' mark, so a worker dying mid-chain leaves nothing half-applied and the MO runs again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import asyncpg
import orjson

from engine.store import inbound_queries as iq
from engine.store import queries as q

__all__ = [
    "AppFacts",
    "Mo",
    "MoEffects",
    "MoFacts",
    "MoTx",
    "ReplyRow",
    "auth_token",
    "carrier_opt_outs",
    "claim_mos",
    "mo_transaction",
    "recover_mos",
    "store_mo",
]

PHONE_BLACKLISTED: Final = "phone_blacklisted"
PHONE_UNBLACKLISTED: Final = "phone_unblacklisted"
SESSION_CLOSED: Final = "session_closed"
INCOMING_MESSAGE: Final = "incoming_message"


@dataclass(frozen=True, slots=True)
class Mo:
    id: int
    provider_id: int | None
    message_sid: str
    phone: str
    to_number: str
    body: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class AppFacts:
    """An app on the SMSC the phone texted: its module texts and what it has to do with the phone."""

    id: int
    name: str
    help_text: str | None
    welcome_text: str | None
    optout_text: str | None
    optin_text: str | None
    nomatch_text: str | None
    session_opened: datetime | None  # an open, unexpired session with the phone
    texted: bool  # the app sent the phone a message
    blacklisted: bool
    contact: bool  # the phone texted the app before


@dataclass(frozen=True, slots=True)
class MoFacts:
    did_id: int | None  # None: the number texted is not one of our DIDs (any more)
    carrier_handles_optout: bool = False
    apps: list[AppFacts] = field(default_factory=list)  # the SMSC's owner first


@dataclass(frozen=True, slots=True)
class ReplyRow:
    app_id: int
    body: str
    kind: str  # 'reply' or 'compliance' (the engine's STOP/HELP answers, which reach a blacklisted phone)


@dataclass(frozen=True, slots=True)
class MoEffects:
    """What the module chain decided for one MO."""

    app_id: int | None
    outcome: str
    keyword: str | None = None
    opt_out: Sequence[int] = ()
    opt_in: Sequence[int] = ()
    replies: Sequence[ReplyRow] = ()
    incoming: Mapping[str, str] | None = None  # the incoming_message payload for app_id, when it hears the MO
    new_contact: bool = False


async def store_mo(pool: asyncpg.Pool, provider_id: int, params: Mapping[str, str], token: str | None) -> int | None:
    """Store an MO as received; None when it was stored before (a retried webhook)."""
    body = params.get("Body", "")
    segments = params.get("NumSegments", "")
    return await pool.fetchval(  # type: ignore[no-any-return]
        iq.STORE_MO, provider_id, params["MessageSid"], token, params["From"], params["To"], body,
        int(segments) if segments.isdigit() and len(segments) < 4 else None, orjson.dumps(dict(params)).decode(),
    )


async def auth_token(pool: asyncpg.Pool, provider_id: int) -> str | None:
    """The carrier account's auth token (webhook signatures are made with it)."""
    row = await pool.fetchrow(q.PROVIDER_TOKEN, provider_id)
    return None if row is None else str(row["auth_token"])


async def claim_mos(pool: asyncpg.Pool, worker_id: str, limit: int, lease_seconds: float) -> list[Mo]:
    """The next MOs to handle: the oldest open one of each phone whose earlier MOs are all done."""
    rows = await pool.fetch(iq.CLAIM_MOS, worker_id, limit, lease_seconds)
    return [Mo(r["id"], r["provider_id"], r["message_sid"], r["phone"], r["to_number"], r["body"], r["received_at"])
            for r in rows]


async def carrier_opt_outs(pool: asyncpg.Pool, pairs: Sequence[tuple[int, str]]) -> None:
    """(app, phone) pairs the carrier says unsubscribed (Twilio 21610): blacklisted like a STOP, recorded, told."""
    if pairs:
        await pool.execute(iq.CARRIER_OPT_OUTS, [a for a, _ in pairs], [p for _, p in pairs])


async def recover_mos(pool: asyncpg.Pool) -> None:
    await pool.execute(iq.RECOVER_MOS)


class MoTx:
    """One MO's transaction: read its facts, then apply the chain's decision and mark it done."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def facts(self, mo: Mo) -> MoFacts:
        did = await self.conn.fetchrow(iq.MO_DID, mo.to_number)
        if did is None:
            return MoFacts(None)
        apps = await self.conn.fetch(iq.SMSC_APPS, did["smsc_id"])
        facts = {r["app_id"]: r for r in await self.conn.fetch(iq.PHONE_FACTS, mo.phone, [a["id"] for a in apps])}
        return MoFacts(did["did_id"], did["carrier_handles_optout"], [
            AppFacts(a["id"], a["name"], a["help_text"], a["welcome_text"], a["optout_text"], a["optin_text"],
                     a["nomatch_text"], facts[a["id"]]["session_opened"], facts[a["id"]]["texted"],
                     facts[a["id"]]["blacklisted"], facts[a["id"]]["contact"])
            for a in apps
        ])

    async def _events(self, apps: Sequence[int], kind: str, payload: Mapping[str, str]) -> None:
        if apps:
            text = orjson.dumps(dict(payload)).decode()
            await self.conn.execute(iq.PHONE_EVENTS, list(apps), kind, [text] * len(apps))

    async def apply(self, mo: Mo, did_id: int | None, effects: MoEffects) -> None:
        conn, phone = self.conn, mo.phone
        consent = (phone, effects.keyword, did_id, mo.message_sid)
        if effects.opt_out:
            opted = list(effects.opt_out)
            added = [r["app_id"] for r in await conn.fetch(iq.BLACKLIST_KEYWORD, opted, phone, "keyword")]
            await conn.execute(iq.RECORD_CONSENT, list(effects.opt_out), consent[0], "opt_out", "keyword", *consent[1:])
            await self._events(added, PHONE_BLACKLISTED, {"phone_number": phone})
            closed = [r["app_id"] for r in await conn.fetch(iq.CLOSE_PHONE_SESSIONS, list(effects.opt_out), phone)]
            await self._events(closed, SESSION_CLOSED, {"phone_numbers": phone})
        if effects.opt_in:
            removed = [r["app_id"] for r in await conn.fetch(iq.UNBLACKLIST_APPS, list(effects.opt_in), phone)]
            await conn.execute(iq.RECORD_CONSENT, list(effects.opt_in), consent[0], "opt_in", "keyword", *consent[1:])
            await self._events(removed, PHONE_UNBLACKLISTED, {"phone_number": phone})
        if effects.replies:
            if any(r.kind == "compliance" for r in effects.replies):
                await conn.execute("SELECT set_config('engine.compliance', 'on', true)")
            await conn.execute(
                iq.QUEUE_REPLIES, phone, did_id, mo.id,
                [r.app_id for r in effects.replies], [r.body for r in effects.replies],
                [r.kind for r in effects.replies],
            )
        if effects.app_id is not None and effects.new_contact:
            await conn.execute(iq.ADD_CONTACT, effects.app_id, phone)
        if effects.app_id is not None and effects.incoming is not None:
            await self._events([effects.app_id], INCOMING_MESSAGE, effects.incoming)
        await conn.execute(iq.MO_DONE, mo.id, did_id, effects.app_id, effects.outcome)


@asynccontextmanager
async def mo_transaction(pool: asyncpg.Pool) -> AsyncIterator[MoTx]:
    async with pool.acquire() as conn, conn.transaction():
        yield MoTx(conn)
