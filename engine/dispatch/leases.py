"""Sharing DIDs and caps among workers: pure decisions, and the keeper that applies them each topology round.

Each DID is leased to one worker, so its pacing lives in exactly one process. Every worker holds a fair
share (per SMSC) of the enabled DIDs; an extra DID is handed over only once nothing of ours is in flight
on it, so its next holder's replay of recent sends already includes ours. Caps above the DIDs (an SMSC's
segments/min, a 10DLC campaign's segments/s, a brand's segments per carrier-day, a carrier account's segments/s) are
split over the workers by the DIDs each holds. A share grows only with the cap's recent sends (everyone's, from the
database) counted in it: the last window for rates, the carrier day so far for a daily cap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from engine.dispatch.dids import DidBook
from engine.policy.senders import carrier_errors, per_minute
from engine.store import leases as store
from engine.store.database import Pool
from engine.store.senders import BrandCap, CampaignCap, brand_sent_since
from engine.store.topology import CapRow, recent_sends
from engine.throttle import Scheduler

__all__ = ["CapShares", "LeaseKeeper", "LeasePlan", "cap_share", "plan_leases", "reserve_share"]

CapKind = Literal["pool", "campaign", "brand", "account"]
Clock = Callable[[], float]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LeasePlan:
    give_back: list[int]  # DIDs to stop deciding on now, released once idle
    wants: dict[int, int]  # SMSC -> how many more DIDs to take


def plan_leases(
    members: Mapping[int, Sequence[int]],
    held: set[int],
    releasing: set[int],
    alive: int,
    queued_cost: Callable[[int], int],
) -> LeasePlan:
    """Per SMSC, a fair share ceil(members / alive): give back extras (the least busy first), or ask for more."""
    give_back: list[int] = []
    wants: dict[int, int] = {}
    for smsc, dids in members.items():
        target = math.ceil(len(dids) / max(1, alive))
        mine = [d for d in dids if d in held and d not in releasing]
        if len(mine) > target:
            mine.sort(key=queued_cost)  # their queued work moves back to the queue: the least first
            give_back.extend(mine[: len(mine) - target])
        elif len(mine) < target:
            wants[smsc] = target - len(mine)
    return LeasePlan(give_back, wants)


def cap_share(cap: int | None, held: int, total: int) -> int | None:
    """This worker's share of a cap over *total* DIDs when it holds *held* of them (None: no cap).

    Floor, so the shares never add up to more than the cap; at least 1 while it holds any DID of it (with
    more workers than the cap, the cap can be exceeded by at most one segment per extra worker per window).
    """
    if cap is None:
        return None
    return max(1, cap * held // total) if held else 0


def reserve_share(cap: int, reserve: int, share: int) -> int:
    """The part of a worker's *share* of a daily cap kept for urgent work: what is left after its share of the bulk
    allowance (cap - reserve), rounded down. The bulk shares then add up to at most cap - reserve, so bulk work never
    eats into the reserve whatever the workers do."""
    bulk = (cap - reserve) * share // cap if cap else 0
    return share - bulk


@dataclass(slots=True)
class CapShares:
    """SMSC and carrier-account caps, and this worker's share of each in force in the scheduler."""

    smsc_limits: dict[int, int | None] = field(default_factory=dict)  # SMSC -> segments/min (whole pool)
    smsc_account: dict[int, int] = field(default_factory=dict)  # SMSC -> carrier account it sends through
    account_ids: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (kind, sid, base url) -> account
    account_limits: dict[int, int | None] = field(default_factory=dict)  # account -> segments/s
    campaign_limits: dict[int, int] = field(default_factory=dict)  # campaign -> segments/min (less while slowed)
    brand_caps: dict[int, tuple[int, int]] = field(default_factory=dict)  # brand -> (segments per day, reserve)
    brand_held: dict[int, float] = field(default_factory=dict)  # brand -> epoch the carrier holds it until (30023)
    shares: dict[tuple[CapKind, int], int] = field(default_factory=dict)

    def load_levels(self, campaigns: Sequence[CampaignCap], brands: Sequence[BrandCap]) -> None:
        """10DLC campaigns (their segments/s as a per-minute window; a campaign the carrier slowed down runs at the
        configured fraction) and brands (daily cap and reserve; held by the carrier's 30023 until a time)."""
        errors = carrier_errors()
        self.campaign_limits = {
            c.id: max(1, math.floor(per_minute(c.mps) * (errors.slowdown_factor if c.slowed else 1.0)))
            for c in campaigns
        }
        self.brand_caps = {b.id: (b.daily_cap, b.reserve) for b in brands if b.daily_cap is not None}
        self.brand_held = {b.id: b.capped_until for b in brands if b.capped_until is not None}

    def load(self, rows: Sequence[CapRow]) -> None:
        self.smsc_limits = {r.smsc_id: r.limit_per_min for r in rows}
        self.smsc_account = {}
        caps: dict[int, int | None] = {}
        for r in rows:
            if r.kind is None or r.account_sid is None:
                continue
            # One carrier account may back several SMSCs (apps): they share its cap.
            account = self.account_ids.setdefault((r.kind, r.account_sid, r.base_url), len(self.account_ids) + 1)
            self.smsc_account[r.smsc_id] = account
            prev = caps.get(account)
            cap = r.max_per_second
            caps[account] = cap if prev is None else prev if cap is None else min(prev, cap)
        self.account_limits = caps

    def targets(
        self, members: Mapping[int, Sequence[int]], campaigns: Mapping[int, Sequence[int]] | None = None,
        brands: Mapping[int, Sequence[int]] | None = None,
    ) -> list[tuple[CapKind, int, int | None, list[int]]]:
        """(kind, key, cap, DIDs under it) for every cap: *members* are each SMSC's DIDs, *campaigns* and *brands*
        each campaign's and brand's."""
        out: list[tuple[CapKind, int, int | None, list[int]]] = [
            ("pool", smsc, cap, list(members.get(smsc, []))) for smsc, cap in self.smsc_limits.items()
        ]
        for campaign, limit in self.campaign_limits.items():
            out.append(("campaign", campaign, limit, list((campaigns or {}).get(campaign, []))))
        for brand, (daily, _reserve) in self.brand_caps.items():
            out.append(("brand", brand, daily, list((brands or {}).get(brand, []))))
        by_account: dict[int, list[int]] = {}
        for smsc, account in self.smsc_account.items():
            by_account.setdefault(account, []).extend(members.get(smsc, []))
        for account, cap in self.account_limits.items():
            out.append(("account", account, cap, by_account.get(account, [])))
        return out


class LeaseKeeper(Generic[T]):
    """Renews, rebalances and releases this worker's DID leases, and keeps its cap shares in the scheduler."""

    def __init__(
        self, pool: Pool, worker_id: str, scheduler: Scheduler[T], book: DidBook, caps: CapShares,
        *, lease_seconds: float, expected_workers: int, clock: Clock,
    ) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.scheduler = scheduler
        self.book = book
        self.caps = caps
        self.lease_seconds = lease_seconds
        self.expected_workers = expected_workers
        self.clock = clock
        self.started_at = clock()
        self.valid_until = float("-inf")  # clock time our DID leases are known good until

    async def rebalance(self) -> tuple[set[int], list[T]]:
        """Renew, give back extras, take free DIDs. Returns the DIDs newly won (replay their recent sends before
        use) and the work held on DIDs we stopped using (back to the queue: the DID's next holder sends it)."""
        lease = self.lease_seconds
        started = self.clock()
        alive, held = await store.renew(self.pool, self.worker_id, lease)
        if started - self.started_at < lease:
            # Just started: siblings started with us may not have registered yet (Settings.expected_workers).
            alive = max(alive, self.expected_workers)
        members = self.book.members()
        held &= {d for dids in members.values() for d in dids}
        plan = plan_leases(members, held, self.book.releasing(), alive, self.scheduler.queued_cost)
        orphans: list[T] = []
        for did_id in plan.give_back:
            did = self.book.get(did_id)
            assert did is not None  # a member of its SMSC: known
            did.releasing = True
            # Its backlog goes back to the queue (not onto our other DIDs), so the worker taking our place
            # gets work at once instead of waiting for us to drain it.
            orphans.extend(payload for _cost, payload in self.scheduler.disable_did(did_id))
        self.book.set_held(held)
        idle = [d.id for d in self.book.enabled() if d.releasing and not d.busy]
        if idle:
            # Our share of pool/account caps shrinks before anyone else can take these DIDs.
            self.book.set_held(held - set(idle))
            await self.apply_shares(allow_increase=False)
            await store.release_leases(self.pool, self.worker_id, idle)
            held -= set(idle)
        gained = await store.acquire_leases(self.pool, self.worker_id, lease, plan.wants)
        self.book.set_held(held | gained)
        # Stop using the DIDs a little before a lease we could not renew would lapse.
        self.valid_until = started + lease * 0.8
        return gained, orphans

    async def apply_shares(self, *, allow_increase: bool) -> None:
        """Each cap's share by the DIDs we hold. A smaller share applies at once; a larger one only with the
        cap's recent sends (everyone's, from the database) replayed into it, so the sends of the worker that gave
        the DIDs up still count in the window."""
        mine = self.book.usable_ids()
        book = self.book
        targets = self.caps.targets(book.members(), book.grouped("campaign_id"), book.grouped("brand_id"))
        for gone in set(self.caps.shares) - {(kind, key) for kind, key, _cap, _dids in targets}:
            self.scheduler.set_cap(gone[0], gone[1], None)  # a campaign or brand cap that no longer exists
            del self.caps.shares[gone]
        for kind, key, cap, dids in targets:
            share = cap_share(cap, sum(1 for d in dids if d in mine), len(dids))
            current = self.caps.shares.get((kind, key))
            kept = reserve_share(cap, self.caps.brand_caps[key][1], share) if kind == "brand" and cap and share else 0
            if not share:
                if current is not None:
                    self.scheduler.set_cap(kind, key, None)
                    del self.caps.shares[(kind, key)]
                continue
            if current is not None and share <= current:
                if share < current or kind == "brand":  # (a brand's reserve may have changed)
                    self.scheduler.set_cap(kind, key, share, kept)  # keeps the history: the cut applies at once
                    self.caps.shares[(kind, key)] = share
                continue
            if not allow_increase:
                continue
            self.scheduler.set_cap(kind, key, None)  # a fresh gate, seeded below with every worker's recent sends
            self.scheduler.set_cap(kind, key, share, kept)
            self.caps.shares[(kind, key)] = share
            await self._replay_cap(kind, key, dids)
        self._apply_carrier_holds()

    async def _replay_cap(self, kind: CapKind, key: int, dids: list[int]) -> None:
        """Count every worker's recent sends under a cap in its fresh share: a rate's last window, or for a brand's
        daily cap what the brand sent since the carrier day began (one sum, at the day's start)."""
        now = self.clock()
        offset = now - time.time()
        if kind == "brand":
            start = self.scheduler.day_start(now)
            sent = await brand_sent_since(self.pool, key, start - offset)
            if sent:
                self.scheduler.replay_cap(kind, key, sent, start)
            return
        for row in await recent_sends(self.pool, self.scheduler.cap_window(kind) + 5, dids):
            self.scheduler.replay_cap(kind, key, row.segments, row.at + offset)

    def _apply_carrier_holds(self) -> None:
        """Brands the carrier said reached their daily cap (30023) hold their holdable work until the given time."""
        offset = self.clock() - time.time()
        for brand, until in self.caps.brand_held.items():
            self.scheduler.exhaust_brand(brand, until + offset)

    async def seed_pacing(self, did_ids: list[int]) -> None:
        """Replay the last window of sends of newly held DIDs, whoever sent them, before using them."""
        offset = self.clock() - time.time()
        for sent in await recent_sends(self.pool, self.scheduler.cap_window("pool") + 5, did_ids):
            self.scheduler.replay(sent.did_id, sent.segments, sent.at + offset)
