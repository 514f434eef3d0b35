"""10DLC brands and campaigns, sender mixes, what a brand sent today, and throttled deferrals (typed functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAlias

import asyncpg

from engine.errors import InvalidInput, NotFound
from engine.policy import senders
from engine.store import sender_queries as sq

__all__ = [
    "BrandCap",
    "CampaignCap",
    "Throttled",
    "app_senders",
    "brand_sent_since",
    "campaign_id",
    "carrier_throttled",
    "check_pool_mix",
    "create_brand",
    "create_campaign",
    "defer_throttled",
    "level_stats",
    "list_brands",
    "list_campaigns",
    "load_caps",
    "update_brand",
    "update_campaign",
]

Conn: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True, slots=True)
class CampaignCap:
    id: int
    brand_id: int
    mps: Decimal  # segments per second, all its DIDs together
    slowed: bool  # the carrier answered 30022 lately: run slower


@dataclass(frozen=True, slots=True)
class BrandCap:
    id: int
    daily_cap: int | None  # segments per carrier-day
    reserve: int  # kept for transactional messages
    capped_until: float | None  # epoch seconds: the carrier answered 30023, everything holdable waits until then


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def _name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise InvalidInput(what, "use 1-63 letters, digits, '_', '.', '-'")
    return value


def _cap_and_reserve(daily_cap: int | None, reserve: int | None) -> tuple[int | None, int]:
    if daily_cap is not None and daily_cap < 1:
        raise InvalidInput("--daily-cap", "must be >= 1 (or 'none')")
    if reserve is not None and reserve < 0:
        raise InvalidInput("--reserve", "must be >= 0")
    if daily_cap is None:
        return None, 0
    chosen = senders.brand_reserve(daily_cap) if reserve is None else reserve
    if chosen >= daily_cap:
        raise InvalidInput("--reserve", f"must be below the daily cap ({daily_cap})")
    return daily_cap, chosen


async def create_brand(
    pool: asyncpg.Pool, name: str, *, tier: str | None = None, daily_cap: int | None = None,
    reserve: int | None = None, no_cap: bool = False,
) -> int:
    """A brand with its tier's daily cap (or *daily_cap*; *no_cap*: none) and reserve (default: a tenth)."""
    try:
        chosen_tier = senders.tier(tier)
    except senders.SenderError as exc:
        raise InvalidInput("--tier", str(exc)) from None
    cap, kept = _cap_and_reserve(None if no_cap else daily_cap or chosen_tier.daily_cap, reserve)
    try:
        return int(await pool.fetchval(sq.CREATE_BRAND, _name(name, "name"), chosen_tier.name, cap, kept))
    except asyncpg.UniqueViolationError:
        raise InvalidInput("name", f"a brand named {name!r} already exists") from None


async def update_brand(
    pool: asyncpg.Pool, name: str, *, tier: str | None = None, daily_cap: int | None = None,
    reserve: int | None = None, no_cap: bool = False,
) -> None:
    """Change a brand's tier (and with it its cap, unless given), daily cap or reserve; one statement."""
    row = await pool.fetchrow(sq.BRAND_BY_NAME, name)
    if row is None:
        raise NotFound(f"no brand named {name!r} (engine brand create NAME)")
    try:
        chosen_tier = senders.tier(tier if tier is not None else row["tier"])
    except senders.SenderError as exc:
        raise InvalidInput("--tier", str(exc)) from None
    cap = None if no_cap else daily_cap or (chosen_tier.daily_cap if tier is not None else row["daily_cap"])
    if reserve is None and cap == row["daily_cap"]:
        reserve = row["reserve"]
    cap, kept = _cap_and_reserve(cap, reserve)
    await pool.execute(sq.UPDATE_BRAND, row["id"], chosen_tier.name, cap, kept)


async def create_campaign(pool: asyncpg.Pool, name: str, brand: str, mps: str | Decimal | None = None) -> int:
    """A 10DLC campaign of *brand*, at *mps* segments/s (default: its brand's tier's figure)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(sq.BRAND_BY_NAME, brand)
        if row is None:
            raise NotFound(f"no brand named {brand!r} (engine brand create NAME)")
        try:
            rate = senders.tier(row["tier"]).campaign_mps if mps is None else senders.parse_mps(mps, field="--mps")
        except senders.SenderError as exc:
            raise InvalidInput(exc.field, str(exc)) from None
        try:
            return int(await conn.fetchval(sq.CREATE_CAMPAIGN, _name(name, "name"), row["id"], rate))
        except asyncpg.UniqueViolationError:
            raise InvalidInput("name", f"a campaign named {name!r} already exists") from None


async def update_campaign(pool: asyncpg.Pool, name: str, mps: str | Decimal) -> None:
    try:
        rate = senders.parse_mps(mps, field="--mps")
    except senders.SenderError as exc:
        raise InvalidInput(exc.field, str(exc)) from None
    if await pool.fetchval(sq.UPDATE_CAMPAIGN, name, rate) is None:
        raise NotFound(f"no campaign named {name!r} (engine campaign create NAME --brand BRAND)")


async def campaign_id(conn: Conn, name: str) -> int:
    found = await conn.fetchval(sq.CAMPAIGN_ID, name)
    if found is None:
        raise NotFound(f"no campaign named {name!r} (engine campaign create NAME --brand BRAND)")
    return int(found)


async def list_brands(pool: asyncpg.Pool, day_start: datetime) -> list[dict[str, Any]]:
    """Every brand with the segments its campaigns sent since *day_start* (the carrier day's start)."""
    return [dict(r) for r in await pool.fetch(sq.LIST_BRANDS, day_start)]


async def list_campaigns(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(sq.LIST_CAMPAIGNS)]


async def check_pool_mix(conn: Conn, smsc_id: int, new: list[tuple[str, str, str | None]]) -> None:
    """What may share an SMSC: the scheduler gives any message to any sender of the pool, so a sender ID (it texts
    its own country only) shares it only with sender IDs of that country, and a Messaging Service row (Twilio
    chooses the sender) stands alone."""
    members = {r["number"]: (r["sender_type"], r["country"]) for r in await conn.fetch(sq.SMSC_SENDERS, smsc_id)}
    members.update({number: (kind, country) for number, kind, country in new})
    kinds = {kind for kind, _ in members.values()}
    if senders.MESSAGING_SERVICE in kinds and len(members) > 1:
        raise InvalidInput("type", "an SMSC that sends through a Messaging Service has no other senders")
    if "alphanumeric" in kinds:
        alpha_countries = {country for kind, country in members.values() if kind == "alphanumeric"}
        if kinds != {"alphanumeric"} or len(alpha_countries) > 1:
            raise InvalidInput(
                "type", "a sender ID texts only its own country: give it an SMSC of sender IDs of that country only")


async def brand_sent_since(pool: asyncpg.Pool, brand_id: int, since_epoch: float) -> int:
    """Segments *brand_id*'s campaigns sent since *since_epoch* (wall clock), by any worker."""
    return int(await pool.fetchval(sq.BRAND_SENT_SINCE, brand_id, since_epoch))


async def load_caps(conn: Conn) -> tuple[list[CampaignCap], list[BrandCap]]:
    campaigns = await conn.fetch(sq.LOAD_CAMPAIGNS)
    brands = await conn.fetch(sq.LOAD_BRANDS)
    return (
        [CampaignCap(r["id"], r["brand_id"], r["mps"], r["slowed"]) for r in campaigns],
        [BrandCap(r["id"], r["daily_cap"], r["reserve"], r["capped_until"]) for r in brands],
    )


async def app_senders(pool: asyncpg.Pool, app_id: int) -> tuple[list[dict[str, Any]], int]:
    """The app's senders grouped by type and campaign (with its brand), and how many of its messages wait for a
    daily cap to reset."""
    async with pool.acquire() as conn:
        rows = [dict(r) for r in await conn.fetch(sq.APP_SENDERS, app_id)]
        throttled = int(await conn.fetchval(sq.APP_THROTTLED, app_id))
    return rows, throttled


async def defer_throttled(pool: asyncpg.Pool, worker_id: str, ids: list[int], delays: list[float]) -> None:
    """Our claimed messages *ids* wait in the queue for *delays* seconds (their brand's cap resets), reason
    'throttled' meanwhile."""
    if ids:
        await pool.execute(sq.DEFER_THROTTLED, ids, delays, worker_id)


@dataclass(frozen=True, slots=True)
class Throttled:
    """A message the carrier refused for a rate or daily cap, now back in the queue."""

    message_id: int
    code: int
    campaign: str | None
    brand: str | None


async def carrier_throttled(
    pool: asyncpg.Pool, refused: list[tuple[int, int, str | None]], *, reset_epoch: float,
    errors: senders.CarrierErrors,
) -> list[Throttled]:
    """(message id, Twilio code, sid) the carrier refused with 30022/30023: back to the queue (until *reset_epoch*
    for a daily cap), their campaign slowed or brand held, in one statement. Returns those requeued (a message sent
    too often already, or a stale callback, is not)."""
    if not refused:
        return []
    rows = await pool.fetch(
        sq.CARRIER_THROTTLED, [r[0] for r in refused], [r[1] for r in refused], [r[2] for r in refused], reset_epoch,
        sorted(errors.brand_daily_cap), errors.retry_seconds, errors.max_requeues, errors.slowdown_seconds,
    )
    return [Throttled(r["id"], r["code"], r["campaign"], r["brand"]) for r in rows]


async def level_stats(pool: asyncpg.Pool, day_start: datetime) -> list[dict[str, Any]]:
    """Per brand (segments since *day_start*, daily cap, held) and campaign (segments in the last minute, mps,
    slowed): what /metrics shows."""
    return [dict(r) for r in await pool.fetch(sq.LEVEL_STATS, day_start)]
