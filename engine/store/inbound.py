"""MOs in the database: stored by the webhook, claimed in per-phone order, handled in one transaction each.

The module chain (engine/inbound/chain.py) decides; this module reads the facts it needs and writes what it
decided (blacklist, the consent record, sessions, confirmations and replies, callback events) together with
the MO's 'done' mark, so a worker dying mid-chain leaves nothing half-applied and the MO runs again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import asyncpg
import orjson

from engine.store import inbound_queries as iq
from engine.store import topology_queries as tq
from engine.store import vault
from engine.store.database import Pool

__all__ = [
    "AnswerEffects",
    "AnswerFacts",
    "AppFacts",
    "KeywordRow",
    "LoopLimits",
    "LoopRow",
    "Mo",
    "MoEffects",
    "MoFacts",
    "MoTx",
    "ReplyRow",
    "auth_token",
    "carrier_opt_outs",
    "claim_mos",
    "handle_next_answer",
    "mo_transaction",
    "recover_mos",
    "store_mo",
]

PHONE_BLACKLISTED: Final = "phone_blacklisted"
PHONE_UNBLACKLISTED: Final = "phone_unblacklisted"
SESSION_CLOSED: Final = "session_closed"
INCOMING_MESSAGE: Final = "incoming_message"
AUTO_REPLY_LOOP: Final = "auto_reply_loop"


def _app_facts(app: asyncpg.Record, f: asyncpg.Record) -> AppFacts:
    loop = LoopRow(
        tuple(f["reply_times"] or ()), f["last_body"], f["last_mo_at"], f["repeats"] or 0, f["cooldown_until"],
        bool(f["optout_sent"]), bool(f["help_sent"]),
    )
    return AppFacts(
        app["id"], app["name"], app["help_text"], app["welcome_text"], app["optout_text"], app["optin_text"],
        app["nomatch_text"], f["session_opened"], f["texted"], f["blacklisted"], f["contact"],
        app["session_idle_seconds"],
        LoopLimits(app["loop_max_replies"], app["loop_window_seconds"], app["loop_max_repeats"],
                   app["loop_cooldown_seconds"]),
        None if f["pending_tags"] is None else tuple(f["pending_tags"]), f["last_tag"], loop,
    )


@dataclass(frozen=True, slots=True)
class Mo:
    id: int
    provider_id: int | None
    message_sid: str
    phone: str
    to_number: str
    body: str
    received_at: datetime
    depth: int = 0  # how many times a gateway's `reprocess` led to this MO


@dataclass(frozen=True, slots=True)
class LoopRow:
    """The stored auto-reply-loop state of one (phone, app) (see engine/inbound/loops.py)."""

    reply_times: tuple[float, ...] = ()
    last_body: int | None = None
    last_mo_at: float | None = None
    repeats: int = 0
    cooldown_until: float | None = None
    optout_sent: bool = False
    help_sent: bool = False


@dataclass(frozen=True, slots=True)
class LoopLimits:
    max_replies: int = 10
    window_seconds: int = 60
    max_repeats: int = 5
    cooldown_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class KeywordRow:
    keyword: str
    mode: int
    app_id: int
    auto_subscribe: bool
    tags: tuple[str, ...]
    double_opt_in: bool
    start_session: bool
    auto_response: str | None


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
    session_idle_seconds: int = 86400
    loop_limits: LoopLimits = field(default_factory=LoopLimits)
    pending_tags: tuple[str, ...] | None = None  # a double opt-in awaiting the phone's YES
    last_tag: str | None = None  # the tag of the app's latest tagged MT to the phone
    loop: LoopRow = field(default_factory=LoopRow)


@dataclass(frozen=True, slots=True)
class MoFacts:
    did_id: int | None  # None: the number texted is not one of our DIDs (any more)
    carrier_handles_optout: bool = False
    apps: list[AppFacts] = field(default_factory=list)  # the SMSC's owner first
    keywords: list[KeywordRow] = field(default_factory=list)  # the SMSC's routing keywords, oldest first


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
    session_seconds: int | None = None  # open or extend the phone's session with app_id for this long
    subscribe: Sequence[str] = ()  # tags for app_id ('' = subscribed without a tag)
    subscribe_source: str = "keyword"
    await_confirmation: tuple[str, Sequence[str]] | None = None  # (keyword, tags) of a double opt-in
    confirmed: bool = False  # the pending double opt-in of app_id is done
    loop: LoopRow | None = None  # app_id's loop-detection state after this MO
    loop_event: bool = False  # fire auto_reply_loop for app_id
    possible_opt_out: bool = False  # listed for an operator's review (engine inbound review)


async def store_mo(pool: Pool, provider_id: int, params: Mapping[str, str], token: str | None) -> int | None:
    """Store an MO as received; None when it was stored before (a retried webhook)."""
    body = params.get("Body", "")
    segments = params.get("NumSegments", "")
    return await pool.fetchval(  # type: ignore[no-any-return]
        iq.STORE_MO, provider_id, params["MessageSid"], token, params["From"], params["To"], body,
        int(segments) if segments.isdigit() and len(segments) < 4 else None, orjson.dumps(dict(params)).decode(),
    )


async def auth_token(pool: Pool, provider_id: int) -> str | None:
    """The carrier account's auth token (webhook signatures are made with it)."""
    row = await pool.fetchrow(tq.PROVIDER_TOKEN, provider_id)
    return None if row is None else vault.reveal(row["auth_token"])


async def claim_mos(pool: Pool, worker_id: str, limit: int, lease_seconds: float) -> list[Mo]:
    """The next MOs to handle: the oldest open one of each phone whose earlier MOs are all done."""
    rows = await pool.fetch(iq.CLAIM_MOS, worker_id, limit, lease_seconds)
    return [Mo(r["id"], r["provider_id"], r["message_sid"], r["phone"], r["to_number"], r["body"], r["received_at"],
               r["depth"]) for r in rows]


async def carrier_opt_outs(pool: Pool, pairs: Sequence[tuple[int, str]]) -> None:
    """(app, phone) pairs the carrier says unsubscribed (Twilio 21610): blacklisted like a STOP, recorded, told."""
    if pairs:
        await pool.execute(iq.CARRIER_OPT_OUTS, [a for a, _ in pairs], [p for _, p in pairs])


async def recover_mos(pool: Pool) -> None:
    await pool.execute(iq.RECOVER_MOS)


class MoTx:
    """One MO's transaction: read its facts, then apply the chain's decision and mark it done."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def facts(self, mo: Mo, now: datetime) -> MoFacts:
        did = await self.conn.fetchrow(iq.MO_DID, mo.to_number)
        if did is None:
            return MoFacts(None)
        apps = await self.conn.fetch(iq.SMSC_APPS, did["smsc_id"])
        rows = await self.conn.fetch(iq.PHONE_FACTS, mo.phone, [a["id"] for a in apps], now)
        facts = {r["app_id"]: r for r in rows}
        keywords = [
            KeywordRow(k["keyword"], k["mode"], k["app_id"], k["auto_subscribe"], tuple(k["auto_subscribe_tags"]),
                       k["double_opt_in"], k["start_session"], k["auto_response"])
            for k in await self.conn.fetch(iq.SMSC_KEYWORDS, did["smsc_id"])
        ]
        return MoFacts(did["did_id"], did["carrier_handles_optout"], [_app_facts(a, facts[a["id"]]) for a in apps],
                       keywords)

    async def events(self, apps: Sequence[int], kind: str, payload: Mapping[str, str]) -> None:
        if apps:
            text = orjson.dumps(dict(payload)).decode()
            await self.conn.execute(iq.PHONE_EVENTS, list(apps), kind, [text] * len(apps))

    async def apply(self, mo: Mo, did_id: int | None, effects: MoEffects, now: datetime) -> None:
        conn, phone = self.conn, mo.phone
        consent = (phone, effects.keyword, did_id, mo.message_sid)
        if effects.opt_out:
            opted = list(effects.opt_out)
            added = [r["app_id"] for r in await conn.fetch(iq.BLACKLIST_KEYWORD, opted, phone, "keyword")]
            await conn.execute(iq.RECORD_CONSENT, list(effects.opt_out), consent[0], "opt_out", "keyword", *consent[1:])
            await self.events(added, PHONE_BLACKLISTED, {"phone_number": phone})
            closed = [r["app_id"] for r in await conn.fetch(iq.CLOSE_PHONE_SESSIONS, list(effects.opt_out), phone)]
            await self.events(closed, SESSION_CLOSED, {"phone_numbers": phone})
        if effects.opt_in:
            removed = [r["app_id"] for r in await conn.fetch(iq.UNBLACKLIST_APPS, list(effects.opt_in), phone)]
            await conn.execute(iq.RECORD_CONSENT, list(effects.opt_in), consent[0], "opt_in", "keyword", *consent[1:])
            await self.events(removed, PHONE_UNBLACKLISTED, {"phone_number": phone})
        if effects.replies:
            if any(r.kind == "compliance" for r in effects.replies):
                await conn.execute("SELECT set_config('engine.compliance', 'on', true)")
            await conn.execute(
                iq.QUEUE_REPLIES, phone, did_id, mo.id,
                [r.app_id for r in effects.replies], [r.body for r in effects.replies],
                [r.kind for r in effects.replies],
            )
        app = effects.app_id
        if app is not None:
            await self._app_effects(mo, did_id, app, effects, now)
        await conn.execute(iq.MO_DONE, mo.id, did_id, effects.app_id, effects.outcome, effects.possible_opt_out)

    async def _app_effects(self, mo: Mo, did_id: int | None, app: int, effects: MoEffects, now: datetime) -> None:
        conn, phone = self.conn, mo.phone
        if effects.new_contact:
            await conn.execute(iq.ADD_CONTACT, app, phone)
        if effects.session_seconds is not None:
            await conn.execute(iq.TOUCH_SESSION, app, phone, did_id, now, float(effects.session_seconds))
        if effects.subscribe:
            await conn.execute(iq.SUBSCRIBE, app, phone, list(effects.subscribe), effects.subscribe_source)
        if effects.await_confirmation is not None:
            keyword, tags = effects.await_confirmation
            await conn.execute(iq.AWAIT_CONFIRMATION, app, phone, keyword, list(tags), now)
        if effects.confirmed:
            await conn.execute(iq.CLEAR_CONFIRMATION, app, phone)
        if effects.loop is not None:
            await _save_loop(conn, app, phone, effects.loop)
        if effects.loop_event:
            await self.events([app], AUTO_REPLY_LOOP, {"phone_number": phone})
        if effects.incoming is not None:
            await conn.execute(iq.INCOMING_EVENT, app, orjson.dumps(dict(effects.incoming)).decode(), mo.id)


async def _save_loop(conn: asyncpg.Connection, app_id: int, phone: str, loop: LoopRow) -> None:
    await conn.execute(iq.SAVE_LOOP_STATE, app_id, phone, list(loop.reply_times), loop.last_body, loop.last_mo_at,
                       loop.repeats, loop.cooldown_until, loop.optout_sent, loop.help_sent)


# ---- gateways' answers to incoming_message ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerFacts:
    """A gateway's answer to an MO, with the MO and what loop detection knows of the phone and app."""

    id: int
    app_id: int
    body: str | None
    close_session: bool
    reprocess: str | None
    mo: Mo
    did_id: int | None
    loop: LoopRow
    loop_limits: LoopLimits


@dataclass(frozen=True, slots=True)
class AnswerEffects:
    reply: str | None = None  # queued from the DID the phone texted (None: none, or suppressed as a loop)
    close_session: bool = False
    reprocess: str | None = None  # handled as a new MO from the phone, one level deeper
    loop: LoopRow | None = None
    loop_event: bool = False


async def handle_next_answer(pool: Pool, decide: Callable[[AnswerFacts], AnswerEffects]) -> bool:
    """Handle the oldest pending gateway answer in one transaction with its effects; False when none is left."""
    async with pool.acquire() as conn, conn.transaction():
        r = await conn.fetchrow(iq.NEXT_ANSWER)
        if r is None:
            return False
        loop = LoopRow(tuple(r["reply_times"] or ()), r["last_body"], r["last_mo_at"], r["repeats"] or 0,
                       r["cooldown_until"], bool(r["optout_sent"]), bool(r["help_sent"]))
        mo = Mo(r["inbound_id"], r["provider_id"], r["message_sid"], r["phone"], r["to_number"], "", datetime.now(UTC),
                r["depth"])
        facts = AnswerFacts(r["id"], r["app_id"], r["body"], r["close_session"], r["reprocess"], mo, r["did_id"], loop,
                            LoopLimits(r["loop_max_replies"], r["loop_window_seconds"], r["loop_max_repeats"],
                                       r["loop_cooldown_seconds"]))
        effects = decide(facts)
        tx = MoTx(conn)
        if effects.reply is not None:
            await conn.execute(iq.QUEUE_REPLIES, mo.phone, facts.did_id, mo.id, [facts.app_id], [effects.reply],
                               ["reply"])
        if effects.close_session:
            closed = [x["app_id"] for x in await conn.fetch(iq.CLOSE_PHONE_SESSIONS, [facts.app_id], mo.phone)]
            await tx.events(closed, SESSION_CLOSED, {"phone_numbers": mo.phone})
        if effects.reprocess is not None:
            await conn.execute(iq.REPROCESS_MO, mo.provider_id, f"{mo.message_sid}-r{facts.id}", mo.phone,
                               mo.to_number, effects.reprocess, mo.depth + 1)
        if effects.loop is not None:
            await _save_loop(conn, facts.app_id, mo.phone, effects.loop)
        if effects.loop_event:
            await tx.events([facts.app_id], AUTO_REPLY_LOOP, {"phone_number": mo.phone})
        await conn.execute(iq.ANSWER_DONE, facts.id)
    return True


@asynccontextmanager
async def mo_transaction(pool: Pool) -> AsyncIterator[MoTx]:
    async with pool.acquire() as conn, conn.transaction():
        yield MoTx(conn)


# ---- the operator's review of possible opt-outs -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PossibleOptOut:
    id: int
    received_at: datetime
    phone: str
    body: str
    app: str | None


async def possible_opt_outs(pool: Pool, app_id: int | None = None, limit: int = 100) -> list[PossibleOptOut]:
    """MOs an operator should look at: an ambiguous opt-out word followed by text, not reviewed yet, oldest first."""
    rows = await pool.fetch(iq.POSSIBLE_OPT_OUTS, app_id, limit)
    return [PossibleOptOut(r["id"], r["received_at"], r["phone"], r["body"], r["app"]) for r in rows]


async def review(pool: Pool, ids: Sequence[int], *, opt_out: bool) -> list[int]:
    """Mark possible opt-outs reviewed; with *opt_out*, also opt their phones out of the app they went to (reason
    'operator', recorded, phone_blacklisted). Returns the ids reviewed now (one transaction)."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(iq.MARK_REVIEWED, list(ids))
        targets = [r for r in rows if r["app_id"] is not None]
        if opt_out and targets:
            await conn.execute(iq.OPERATOR_OPT_OUTS, [r["app_id"] for r in targets], [r["phone"] for r in targets],
                               [r["did_id"] for r in targets], [r["message_sid"] for r in targets])
    return sorted(r["id"] for r in rows)


async def inbound_settled(pool: Pool) -> bool:
    """True when every MO and gateway answer is handled and every message is final (the demo waits for it)."""
    return bool(await pool.fetchval(iq.INBOUND_SETTLED))


async def inbound_summary(pool: Pool, app_id: int) -> dict[str, int]:
    """What came in for the app and what went back: MOs by outcome, app replies, STOP/HELP answers."""
    row = await pool.fetchrow(iq.INBOUND_SUMMARY, app_id)
    return dict(row)
