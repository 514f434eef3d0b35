"""Applications, carrier accounts and DIDs: what operators set up from the command line."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from engine.app_settings import AppChanges
from engine.errors import InvalidInput, NotFound
from engine.phone import to_e164
from engine.policy import senders
from engine.store import admin_queries as aq
from engine.store import carousel, outbound, vault
from engine.store import outbox_queries as oq
from engine.store import sender_queries as sq
from engine.store import senders as sender_store
from engine.throttle.daily import CarrierDay


@dataclass(frozen=True, slots=True)
class NewApp:
    """A freshly created application; the API key is shown once and stored only hashed."""

    app_id: int
    name: str
    api_key: str
    callback_secret: str


@dataclass(frozen=True, slots=True)
class AppRow:
    id: int
    name: str
    gateway_url: str | None
    split_mode: str
    smart_encoding: bool
    smsc_id: int | None
    callback_secret: str
    dedup_seconds: float


def hash_api_key(api_key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(api_key.encode()).hexdigest()


async def create_app(
    pool: asyncpg.Pool, name: str, gateway_url: str | None = None, *, smsc: str | None = None
) -> NewApp:
    """Create an application with its dedicated SMSC (or on the shared SMSC *smsc*), in one transaction."""
    api_key = secrets.token_urlsafe(24)
    secret = secrets.token_hex(24)
    async with pool.acquire() as conn, conn.transaction():
        shared = None if smsc is None else await _smsc_id(conn, smsc)
        try:
            app_id = await conn.fetchval(aq.CREATE_APP, name, hash_api_key(api_key), secret, gateway_url)
        except asyncpg.UniqueViolationError:
            raise InvalidInput("name", f"an application named {name!r} already exists") from None
        except asyncpg.CheckViolationError:
            raise InvalidInput("name", "use 1-63 letters, digits, '_', '.', '-'") from None
        smsc_id = shared if shared is not None else await conn.fetchval(aq.CREATE_SMSC, f"{name}-smsc", app_id)
        await conn.execute(aq.SET_APP_SMSC, app_id, smsc_id)
    return NewApp(app_id, name, api_key, secret)


async def get_app(conn: asyncpg.Pool | asyncpg.Connection, name: str) -> AppRow:
    """The application called *name*, or NotFound."""
    row = await conn.fetchrow(aq.APP_BY_NAME, name)
    if row is None:
        raise NotFound(f"no application named {name!r}")
    return AppRow(**dict(row))


async def rotate_api_key(pool: asyncpg.Pool, name: str) -> str:
    """Give the application a new API key (returned, to be shown once; stored hashed). The old key stops working at
    once: API servers drop their cached keys when the change is committed (NOTIFY in the same transaction)."""
    api_key = secrets.token_urlsafe(24)
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(aq.ROTATE_API_KEY, name, hash_api_key(api_key)) is None:
            raise NotFound(f"no application named {name!r}")
        await conn.execute(aq.API_KEYS_CHANGED)
    return api_key


async def delete_app(pool: asyncpg.Pool, name: str) -> bool:
    """Delete the application called *name* with everything it owns; False when there was none."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(aq.DETACH_APP_INBOUND, name)
        status: str = await conn.execute(aq.DELETE_APP, name)
    return status != "DELETE 0"


async def list_apps(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(aq.LIST_APPS)]


async def set_dedup_window(pool: asyncpg.Pool, app: str, seconds: float) -> None:
    if seconds < 0:
        raise InvalidInput("dedup_window", "must be >= 0 seconds")
    row = await get_app(pool, app)
    await pool.execute(aq.SET_APP_DEDUP_WINDOW, row.id, float(seconds))


async def _pool_of(
    conn: asyncpg.Pool | asyncpg.Connection, app: str | None, smsc: str | None
) -> tuple[int, int | None]:
    """The SMSC an admin command acts on — the app's (*app*) or a shared one by name (*smsc*) — and its owner app."""
    if (app is None) == (smsc is None):
        raise InvalidInput("--app", "give the application (--app NAME) or a shared SMSC (--smsc NAME), one of them")
    if smsc is not None:
        return await _smsc_id(conn, smsc), None
    assert app is not None
    row = await get_app(conn, app)
    if row.smsc_id is None:
        raise NotFound(f"application {app!r} has no SMSC")
    return row.smsc_id, row.id


async def add_provider(
    pool: asyncpg.Pool,
    app: str | None = None,
    *,
    smsc: str | None = None,
    kind: str,
    account_sid: str,
    auth_token: str,
    messaging_service_sid: str | None = None,
    base_url: str | None = None,
    single_sms: bool = False,
    max_per_second: int | None = None,
    carrier_handles_optout: bool = False,
    service_mps: str | None = None,
) -> int:
    """Attach a carrier account to the app's SMSC, or to the shared SMSC *smsc* (replacing the previous one).

    *single_sms*: the carrier takes single SMS only (long bodies are split into "(i/n) " parts).
    *max_per_second*: the account's cap in segments per second (e.g. Twilio account MPS), shared by
    every app and worker sending through the same account.
    *carrier_handles_optout*: the account answers STOP itself (Twilio Advanced Opt-Out): the engine records and
    obeys every opt-out but sends no confirmation of its own (never two).
    *service_mps*: the SMSC sends through the Messaging Service alone (no From: Twilio picks the sender from the
    service's pool), paced at this many segments/s: one sender row stands for the service, alone in its SMSC.
    """
    service = None
    if service_mps is not None:
        if messaging_service_sid is None:
            raise InvalidInput("--service-mps", "needs the service: --messaging-service-sid MG…")
        try:
            service = senders.service_pace(messaging_service_sid, service_mps)
        except senders.SenderError as exc:
            raise InvalidInput(exc.field, str(exc)) from None
    if kind not in ("twilio", "fake"):
        raise InvalidInput("kind", "must be 'twilio' or 'fake'")
    if not account_sid.startswith("AC") or len(account_sid) != 34:
        raise InvalidInput("account_sid", "a Twilio Account SID is 'AC' followed by 32 hex characters")
    if not auth_token:
        raise InvalidInput("auth_token", "must not be empty")
    if messaging_service_sid is not None and not messaging_service_sid.startswith("MG"):
        raise InvalidInput("messaging_service_sid", "a Messaging Service SID starts with 'MG'")
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise InvalidInput("base_url", "must be an http(s) URL")
    if max_per_second is not None and max_per_second < 1:
        raise InvalidInput("max_per_second", "must be >= 1")
    async with pool.acquire() as conn, conn.transaction():
        smsc_id, owner = await _pool_of(conn, app, smsc)
        provider_id: int = await conn.fetchval(
            aq.CREATE_PROVIDER, owner, kind, account_sid, vault.seal(auth_token), messaging_service_sid, base_url,
            single_sms, max_per_second, carrier_handles_optout,
        )
        await conn.execute(aq.SET_SMSC_PROVIDER, smsc_id, provider_id)
        await conn.execute(sq.DROP_SERVICE_SENDERS, smsc_id)  # the new account decides how the SMSC sends
        if service is not None:
            taken = await conn.fetch(aq.DIDS_OWNED_ELSEWHERE, [service.sid], smsc_id)
            if taken:
                raise InvalidInput("--messaging-service-sid", f"{service.sid} is used by another SMSC")
            await sender_store.check_pool_mix(conn, smsc_id, [(service.sid, senders.MESSAGING_SERVICE, None)])
            await conn.execute(aq.ADD_DIDS, smsc_id, [service.sid], [service.limit_per_min], [service.burst],
                               [senders.MESSAGING_SERVICE], [None], None, False)
    return provider_id


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    """An application's carrier account (the token never leaves this object except to authenticate)."""

    id: int
    kind: str
    account_sid: str
    auth_token: str
    messaging_service_sid: str | None
    base_url: str | None
    single_sms: bool

    def __repr__(self) -> str:
        return (
            f"ProviderAccount(id={self.id}, kind={self.kind!r}, account_sid={self.account_sid!r}, auth_token=<hidden>)"
        )


async def app_provider(pool: asyncpg.Pool, app: str | None = None, *, smsc: str | None = None) -> ProviderAccount:
    """The carrier account *app* (or the shared SMSC *smsc*) sends through, or NotFound."""
    smsc_id, _owner = await _pool_of(pool, app, smsc)
    rec = await pool.fetchrow(aq.APP_PROVIDER, smsc_id)
    if rec is None:
        target = f"--app {app}" if app is not None else f"--smsc {smsc}"
        raise NotFound(f"{target} has no provider; add one with `engine provider add {target}`")
    return ProviderAccount(**(dict(rec) | {"auth_token": vault.reveal(rec["auth_token"])}))


async def update_app(pool: asyncpg.Pool, app: str, changes: AppChanges) -> None:
    """Apply validated settings to *app*, all in one transaction."""
    if not changes:
        raise InvalidInput("settings", "nothing to change (see `engine app set --help`)")
    async with pool.acquire() as conn, conn.transaction():
        row = await get_app(conn, app)
        try:
            for column, value in changes.columns.items():
                await conn.execute(aq.APP_SETTERS[column], row.id, value)
        except asyncpg.CheckViolationError as exc:
            if exc.constraint_name != "engine_app_loop_cooldown":
                raise
            # The loop rule (at most N replies per window) holds across cool-downs only if one outlasts the window.
            raise InvalidInput("--loop-cooldown", "must be at least the loop window (--loop-window)") from None
        if changes.flood_limit is not None:
            await conn.execute(aq.SET_APP_FLOOD_LIMIT, row.id, *changes.flood_limit)
        elif changes.clear_flood_limit:
            await conn.execute(aq.SET_APP_FLOOD_LIMIT, row.id, None, None)
        if changes.dedup_seconds is not None:
            await conn.execute(aq.SET_APP_DEDUP_WINDOW, row.id, changes.dedup_seconds)
        if changes.smsc is not None:
            smsc_id = await _smsc_id(conn, changes.smsc)
            await conn.execute(aq.SET_APP_SMSC, row.id, smsc_id)
            try:
                async with conn.transaction():
                    await conn.execute(aq.MOVE_APP_KEYWORDS, row.id, smsc_id)
            except asyncpg.UniqueViolationError:
                taken = f"a keyword of {app!r} is already taken on SMSC {changes.smsc!r}"
                raise InvalidInput("--smsc", taken) from None


async def _smsc_id(conn: asyncpg.Pool | asyncpg.Connection, name: str) -> int:
    smsc_id = await conn.fetchval(aq.SMSC_BY_NAME, name)
    if smsc_id is None:
        raise NotFound(f"no SMSC named {name!r} (engine smsc create NAME)")
    return int(smsc_id)


async def create_smsc(pool: asyncpg.Pool, name: str, limit_per_min: int | None = None) -> int:
    """A shared SMSC: a pool of DIDs several applications send from (keywords pick the app for an MO)."""
    if limit_per_min is not None and limit_per_min < 1:
        raise InvalidInput("--limit-per-min", "must be >= 1")
    try:
        return int(await pool.fetchval(aq.CREATE_SHARED_SMSC, name, limit_per_min))
    except asyncpg.UniqueViolationError:
        raise InvalidInput("name", f"an SMSC named {name!r} already exists") from None


async def list_smscs(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) | {"apps": list(r["apps"])} for r in await pool.fetch(aq.LIST_SMSCS)]


async def app_status(pool: asyncpg.Pool, app: str, *, dead: int = 5) -> dict[str, Any]:
    """Settings, queue counts by state, outbox counts by state and the last *dead* dead-lettered events."""
    async with pool.acquire() as conn:
        settings = await conn.fetchrow(aq.APP_SETTINGS, app)
        if settings is None:
            raise NotFound(f"no application named {app!r}")
        app_id = settings["id"]
        queue = await outbound.count_by_state(conn, app_id)
        outbox = {"pending": 0, "delivered": 0, "dead": 0}
        outbox.update({r["state"]: r["n"] for r in await conn.fetch(oq.COUNTS_BY_STATE, app_id)})
        dead_rows = await conn.fetch(oq.RECENT_DEAD, app_id, dead)
    sender_info = await _app_senders(pool, app_id, bool(settings["hold_transactional"]))
    return {
        "app": dict(settings),
        "queue": dict(sorted(queue.items())),
        "outbox": outbox,
        "dead_letters": [
            {"event_id": r["event_id"], "type": r["type"], "attempts": r["attempts"],
             "created_at": r["created_at"].isoformat(), "last_error": r["last_error"]}
            for r in dead_rows
        ],
        "senders": sender_info,
    }


async def _app_senders(pool: asyncpg.Pool, app_id: int, hold: bool) -> dict[str, Any]:
    """For `engine app status`: senders by type and campaign, their brands' day so far, messages held by a cap."""
    rows, throttled = await sender_store.app_senders(pool, app_id)
    start, end = CarrierDay(senders.carrier_day_timezone()).bounds(time.time())
    brands: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r["brand_id"] is not None and r["brand_id"] not in brands:
            held = r["capped_until"]
            brands[r["brand_id"]] = {
                "name": r["brand"], "daily_cap": r["daily_cap"], "reserve": r["reserve"],
                "used_today": await sender_store.brand_sent_since(pool, r["brand_id"], start),
                "resets_at": datetime.fromtimestamp(end, UTC).isoformat(),
                "held_until": held.isoformat() if held is not None and held.timestamp() > time.time() else None,
            }
    groups = [
        {"type": r["sender_type"], "count": r["n"], "campaign": r["campaign"],
         "mps": str(r["mps"]) if r["mps"] is not None else None,
         "slowed_until": r["slowed_until"].isoformat() if r["slowed_until"] is not None
         and r["slowed_until"].timestamp() > time.time() else None}
        for r in rows
    ]
    return {"groups": groups, "brands": list(brands.values()), "throttled": throttled, "hold_transactional": hold}


def _did_number(number: str) -> str:
    e164 = to_e164(number)
    if e164 is None:
        raise InvalidInput("number", f"{number!r} is not a valid phone number")
    return e164


@dataclass(frozen=True, slots=True)
class NewSender:
    """A sender as it will be stored: its number (E.164, short code or sender ID), type, country, pace."""

    number: str
    sender_type: str
    country: str | None
    limit_per_min: int
    burst: int


def check_senders(
    numbers: list[str], *, sender_type: str | None = None, country: str | None = None,
    limit_per_min: int | None = None, burst: int | None = None,
) -> list[NewSender]:
    """Each sender checked against its type (given, or detected from the sender); the type's pace unless a limit
    or burst is given (an explicit limit wins). InvalidInput names the first bad one."""
    if limit_per_min is not None and limit_per_min < 1:
        raise InvalidInput("limit_per_min", "must be >= 1")
    if burst is not None and burst < 1:
        raise InvalidInput("burst", "must be >= 1")
    out: list[NewSender] = []
    for raw in numbers:
        try:
            number, kind, where = senders.sender(raw, sender_type, country)
        except senders.SenderError as exc:
            raise InvalidInput(exc.field, str(exc)) from None
        pace = senders.type_defaults(kind)
        out.append(NewSender(number, kind, where, limit_per_min or pace.limit_per_min, burst or pace.burst))
    return out


async def add_dids(
    pool: asyncpg.Pool, app: str | None, numbers: list[str], *, limit_per_min: int | None = None,
    burst: int | None = None, smsc: str | None = None, sender_type: str | None = None, country: str | None = None,
    campaign: str | None = None,
) -> list[str]:
    """Add senders to the app's SMSC, or the shared SMSC *smsc* (re-adding one updates its type and pace).
    All or nothing.

    *sender_type* (default: detected from each sender) sets the default limit and burst; *country* is the country a
    short code or sender ID serves. *campaign* puts them in a 10DLC campaign ('' takes them out of theirs).
    A sender ID can only text its own country, so it shares its SMSC with sender IDs of that country only.
    """
    checked = check_senders(numbers, sender_type=sender_type, country=country, limit_per_min=limit_per_min,
                            burst=burst)
    async with pool.acquire() as conn, conn.transaction():
        smsc_id, _owner = await _pool_of(conn, app, smsc)
        values = [c.number for c in checked]
        taken = await conn.fetch(aq.DIDS_OWNED_ELSEWHERE, values, smsc_id)
        if taken:
            raise InvalidInput("number", f"{taken[0]['number']} belongs to another SMSC")
        campaign_id = await sender_store.campaign_id(conn, campaign) if campaign else None
        await sender_store.check_pool_mix(conn, smsc_id, [(c.number, c.sender_type, c.country) for c in checked])
        await conn.execute(
            aq.ADD_DIDS, smsc_id, values, [c.limit_per_min for c in checked], [c.burst for c in checked],
            [c.sender_type for c in checked], [c.country for c in checked], campaign_id, campaign is not None,
        )
    return values


async def assign_campaign(
    pool: asyncpg.Pool, campaign: str | None, *, app: str | None = None, smsc: str | None = None,
    numbers: list[str] | None = None,
) -> list[str]:
    """Put DIDs of the app's SMSC (or *smsc*) in *campaign* (None: out of theirs): *numbers*, or every long code
    of the pool. All or nothing; returns the numbers changed."""
    given = [s.number for s in check_senders(numbers)] if numbers else []
    async with pool.acquire() as conn, conn.transaction():
        smsc_id, _owner = await _pool_of(conn, app, smsc)
        target = await sender_store.campaign_id(conn, campaign) if campaign is not None else None
        done = sorted(r["number"] for r in await conn.fetch(sq.ASSIGN_CAMPAIGN, smsc_id, given, target))
        missing = sorted(set(given) - set(done))
        if missing:
            raise NotFound(f"{missing[0]} is not a DID of {app or smsc}")
    return done


async def inbound_numbers(pool: asyncpg.Pool, numbers: list[str]) -> list[str]:
    """Of *numbers* (in their order), the senders whose SmsUrl the engine points: phone numbers, not sender IDs
    nor short codes."""
    found = {r["number"] for r in await pool.fetch(sq.INBOUND_NUMBERS, numbers)}
    return [n for n in numbers if n in found]


async def list_dids(pool: asyncpg.Pool, app: str | None = None, *, smsc: str | None = None) -> list[dict[str, Any]]:
    smsc_id, _owner = await _pool_of(pool, app, smsc)
    return [dict(r) for r in await pool.fetch(aq.LIST_DIDS, smsc_id)]


async def remove_dids(pool: asyncpg.Pool, app: str | None, numbers: Sequence[str], *,
                      smsc: str | None = None) -> list[str]:
    """Remove *numbers* from the pool, all or none (one transaction: a number it does not have removes nothing);
    returns them in E.164."""
    wanted = [_did_number(n) for n in numbers]  # every number checked before anything changes
    async with pool.acquire() as conn, conn.transaction():
        smsc_id, _owner = await _pool_of(conn, app, smsc)
        missing = [raw for raw, e164 in zip(numbers, wanted, strict=True)
                   if await conn.fetchval(aq.REMOVE_DID, smsc_id, e164) is None]
        if missing:
            raise NotFound(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not a DID of "
                           f"{app or smsc}: nothing was removed")
    return wanted


async def remove_tag(pool: asyncpg.Pool, app: str, recipient: str, tag: str) -> bool:
    """Release a conversation's DID (the next message with this tag may use any DID)."""
    row = await get_app(pool, app)
    e164 = to_e164(recipient)
    if e164 is None:
        raise InvalidInput("phone_number", f"{recipient!r} is not a valid phone number")
    return await carousel.remove_tag(pool, row.id, e164, tag)
