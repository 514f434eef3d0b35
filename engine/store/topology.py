"""What a dispatch worker paces: applications, DIDs, carrier accounts and the caps above the DIDs (typed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from engine.policy.admission import AppRules
from engine.policy.quiet_hours import Window
from engine.store import sender_queries as sq
from engine.store import topology_queries as tq
from engine.store import vault
from engine.store.senders import BrandCap, CampaignCap, load_caps

__all__ = ["AppRow", "CapRow", "DidRow", "ProviderRow", "RecentSend", "Topology", "load_topology", "recent_sends"]


@dataclass(frozen=True, slots=True)
class AppRow:
    id: int
    smsc_id: int | None
    rules: AppRules


@dataclass(frozen=True, slots=True)
class DidRow:
    id: int
    smsc_id: int
    number: str
    limit_per_min: int
    burst: int
    sender_type: str = "long_code"
    campaign_id: int | None = None  # its 10DLC campaign, if any
    brand_id: int | None = None  # that campaign's brand


@dataclass(frozen=True, slots=True)
class ProviderRow:
    """The carrier account an SMSC sends through."""

    smsc_id: int
    provider_id: int
    kind: str
    account_sid: str
    auth_token: str = field(repr=False)
    messaging_service_sid: str | None = None
    base_url: str | None = None


@dataclass(frozen=True, slots=True)
class CapRow:
    """An SMSC's cap (segments/min) and its carrier account's (segments/s), with the account's identity."""

    smsc_id: int
    limit_per_min: int | None
    kind: str | None
    account_sid: str | None
    base_url: str
    max_per_second: int | None


@dataclass(frozen=True, slots=True)
class Topology:
    apps: list[AppRow]
    dids: list[DidRow]  # enabled ones
    providers: list[ProviderRow]
    caps: list[CapRow]
    campaigns: list[CampaignCap] = field(default_factory=list)
    brands: list[BrandCap] = field(default_factory=list)
    holding_apps: frozenset[int] = frozenset()  # apps whose transactional messages wait at a reached daily cap


@dataclass(frozen=True, slots=True)
class RecentSend:
    did_id: int
    at: float  # wall-clock epoch seconds
    segments: int


async def load_topology(pool: asyncpg.Pool) -> Topology:
    """Everything the worker paces, read on one connection."""
    async with pool.acquire() as conn:
        apps = await conn.fetch(tq.LOAD_APPS)
        dids = await conn.fetch(tq.LOAD_DIDS)
        providers = await conn.fetch(tq.LOAD_PROVIDERS)
        caps = await conn.fetch(tq.LOAD_LIMITS)
        campaigns, brands = await load_caps(conn)
        holding = await conn.fetch(sq.HOLDING_APPS)
    return Topology(
        apps=[
            AppRow(r["id"], r["smsc_id"], AppRules(
                r["smart_encoding"], r["split_mode"], r["single_sms"], r["flood_limit"], r["flood_seconds"],
                quiet_hours=r["quiet_hours"], quiet_window=Window(r["quiet_start"], r["quiet_end"])))
            for r in apps
        ],
        dids=[DidRow(r["id"], r["smsc_id"], r["number"], r["limit_per_min"], r["burst"], r["sender_type"],
                     r["campaign_id"], r["brand_id"]) for r in dids],
        providers=[
            ProviderRow(r["smsc_id"], r["provider_id"], r["kind"], r["account_sid"], vault.reveal(r["auth_token"]),
                        r["messaging_service_sid"], r["base_url"])
            for r in providers
        ],
        caps=[
            CapRow(r["smsc_id"], r["limit_per_min"], r["kind"], r["account_sid"], r["base_url"], r["max_per_second"])
            for r in caps
        ],
        campaigns=campaigns,
        brands=brands,
        holding_apps=frozenset(r["id"] for r in holding),
    )


async def recent_sends(pool: asyncpg.Pool, window: float, did_ids: list[int]) -> list[RecentSend]:
    """Sends of *did_ids* (by any worker) in the last *window* seconds, oldest first."""
    rows = await pool.fetch(tq.RECENT_SENDS, window, did_ids)
    return [RecentSend(r["did_id"], r["at"], r["segments"]) for r in rows]
