"""The dispatch worker: claim → admit → place → send → record, as stages around one scheduler.

Loops (each an owned task that restarts after a failure): LISTEN for new rows, claim batches (claim.py,
which hands them to admit.py and place.py), dispatch due sends (send.py), write results (record.py), keep
message claims alive and recover dead workers' rows, refresh the topology and the DID leases (leases.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime

from engine.config import Settings
from engine.dispatch.admit import admit
from engine.dispatch.carriers import Carriers
from engine.dispatch.claim import Claimer, servable_apps
from engine.dispatch.dids import DidBook
from engine.dispatch.leases import CapShares, LeaseKeeper
from engine.dispatch.place import Pending, place, reroute
from engine.dispatch.record import Recorder
from engine.dispatch.send import Sender
from engine.metrics import Metrics
from engine.policy.admission import AppRules, BodyLimits
from engine.policy.senders import carrier_day_timezone
from engine.runtime.clock import Clock
from engine.runtime.tasks import TaskGroup
from engine.store import leases, lifetime, notify, outbound, senders
from engine.store.database import DB_ERRORS, Pool
from engine.store.outbound import Claimed
from engine.store.topology import load_topology
from engine.throttle import Scheduler
from engine.throttle.daily import CarrierDay

log = logging.getLogger(__name__)


def _cap_exempt(p: Pending) -> bool:
    return p.cap_exempt



class Worker:
    """One dispatch worker process's engine. `await run(stop)`; set *stop* to drain and exit."""

    def __init__(
        self,
        pool: Pool,
        dsn: str,
        settings: Settings,
        *,
        clock: Clock | None = None,
        wall_clock: Clock | None = None,
        worker_id: str | None = None,
        metrics: Metrics | None = None,
        carrier_day: CarrierDay | None = None,
    ) -> None:
        """*carrier_day*: the day boundaries of daily caps on this worker's clock (default: midnight US Pacific by
        the wall clock)."""
        self.pool = pool
        self.dsn = dsn
        self.settings = settings
        self.clock: Clock = clock or time.monotonic  # pacing
        self.wall_clock: Clock = wall_clock or time.time  # lifetimes and quiet hours (epoch seconds)
        self.metrics = metrics or Metrics()
        self.worker_id = worker_id or f"w-{uuid.uuid4().hex[:12]}"
        self.limits = BodyLimits(settings.max_body_chars, settings.max_segments, settings.no_unicode_destinations)
        day = carrier_day or CarrierDay(carrier_day_timezone(), to_wall=lambda t: t - self.clock() + self.wall_clock())
        self.scheduler: Scheduler[Pending] = Scheduler(carrier_day=day, cap_exempt=_cap_exempt)
        self.holding: frozenset[int] = frozenset()  # apps whose transactional messages wait at a reached daily cap
        self.book = DidBook()
        self.apps: dict[int, tuple[int | None, AppRules]] = {}  # app -> (its SMSC, the rules admission applies)
        self.orphans: list[Pending] = []  # held in memory but no longer sendable here: back to the queue
        self.carriers = Carriers(max_in_flight=settings.max_in_flight, request_timeout=settings.request_timeout)
        self.caps = CapShares()
        self.leases = LeaseKeeper(
            pool, self.worker_id, self.scheduler, self.book, self.caps, lease_seconds=settings.lease_seconds,
            expected_workers=settings.expected_workers, clock=self.clock,
        )
        self.recorder = Recorder(pool, settings.lease_seconds)
        self.sender = Sender(
            pool, self.worker_id, settings, self.scheduler, self.book, self.carriers, self.recorder, self.orphans,
            clock=self.clock, metrics=self.metrics, lease_valid_until=lambda: self.leases.valid_until,
            wall_clock=self.wall_clock,
        )
        self.claimer = Claimer(
            pool, self.worker_id, settings, self.scheduler, self.orphans, self.handle_claimed, self._servable
        )
        self.stopping = False
        self._warned_smsc: set[int] = set()

    @property
    def leased(self) -> set[int]:
        """The DIDs this worker paces and sends through now."""
        return self.book.usable_ids()

    @property
    def sent_count(self) -> int:
        return self.sender.sent_count

    def now(self) -> datetime:
        """The wall-clock time lifetimes and quiet hours are judged by."""
        return datetime.fromtimestamp(self.wall_clock(), UTC)

    # ---- lifecycle ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until *stop* is set, then stop claiming, finish in-flight sends and release claims."""
        await leases.register_worker(self.pool, self.worker_id, socket.gethostname(), os.getpid())
        await self.refresh_topology()
        async with TaskGroup("worker") as tasks:
            for batcher in self.recorder.batchers:
                tasks.spawn_resilient(batcher.run, name=f"batch-{batcher.name}")
            tasks.spawn_resilient(self._listen_loop, name="listen")
            tasks.spawn_resilient(self.claimer.run, name="fetch")
            tasks.spawn_resilient(self.sender.run, name="dispatch")
            tasks.spawn_resilient(self._claims_loop, name="leases")
            tasks.spawn_resilient(self._topology_loop, name="topology")
            tasks.spawn_resilient(self._capped_loop, name="capped")
            if self.settings.purge_seconds > 0:
                tasks.spawn_resilient(self._purge_loop, name="purge")
            await stop.wait()
            self.stopping = True
            self.claimer.stop()
            self.sender.stop()
            await self.sender.drain()
        await self.recorder.drain()
        await leases.leave(self.pool, self.worker_id)
        await self.carriers.close()

    async def close_carriers(self) -> None:
        """Close the carrier HTTP sessions (for a worker that was never run)."""
        await self.carriers.close()

    async def _listen_loop(self) -> None:
        """LISTEN for new rows on a dedicated connection, reconnecting when it drops (a lost NOTIFY only
        costs the poll interval); ends with the task group."""
        await notify.listener(self.dsn, notify.NEW_MESSAGES, self.claimer.wake, name="worker").run()

    # ---- topology ---------------------------------------------------------------------------------
    async def refresh_topology(self) -> None:
        """Load apps, DIDs and carrier accounts, renew and rebalance DID leases, update the scheduler."""
        topology = await load_topology(self.pool)
        self.apps = {a.id: (a.smsc_id, a.rules) for a in topology.apps}
        self.holding = topology.holding_apps
        self.book.load(topology.dids)
        self.caps.load(topology.caps)
        self.caps.load_levels(topology.campaigns, topology.brands)
        gained, given_back = await self.leases.rebalance()
        self.orphans.extend(given_back)
        for did in self.book.usable():
            self.scheduler.set_did(did.id, did.smsc_id, did.limit_per_min, did.burst,
                                   account_id=self.caps.smsc_account.get(did.smsc_id),
                                   campaign_id=did.campaign_id, brand_id=did.brand_id)
        if gained:
            await self.leases.seed_pacing(sorted(gained))
        await self.leases.apply_shares(allow_increase=True)
        usable = self.book.usable_ids()
        now = self.clock()
        for did_id in self.scheduler.enabled_dids():
            if did_id not in usable:
                for _cost, pending in self.scheduler.disable_did(did_id):
                    if not reroute(pending, self.scheduler, now):
                        self.orphans.append(pending)
        self.carriers.bind(topology.providers)

    async def _topology_loop(self) -> None:
        while not self.stopping:
            await asyncio.sleep(min(5.0, self.settings.lease_seconds / 4))
            try:
                await self.refresh_topology()
            except DB_ERRORS:
                log.exception("topology refresh failed")

    # ---- claimed batches: admit, then place ---------------------------------------------------------
    def _servable(self) -> tuple[list[int], bool]:
        app_pools = {app_id: smsc for app_id, (smsc, _rules) in self.apps.items()}
        return servable_apps(self.scheduler, app_pools, self.carriers.bindings, self.clock(),
                             self.settings.horizon_seconds)

    def _routable(self, smsc_id: int) -> bool:
        ok = smsc_id in self.carriers and self.scheduler.has_pool(smsc_id)
        if not ok and smsc_id not in self._warned_smsc:
            self._warned_smsc.add(smsc_id)
            log.warning("SMSC %s has no provider or no enabled DID; its messages wait", smsc_id)
        return ok

    async def handle_claimed(self, rows: list[Claimed]) -> None:
        """Admission (the same policy for every door), then placement of what may be sent."""
        known = [m for m in rows if m.app_id in self.apps]  # the claim only takes apps we know
        rules = {app_id: app_rules for app_id, (_smsc, app_rules) in self.apps.items()}
        triage = await admit(self.pool, self.worker_id, known, rules, self.limits, now=self.now())
        for o in triage.outcomes:
            self.recorder.outcomes.put_nowait(o)
        if triage.refused or triage.events:
            await outbound.write_refusals(self.pool, triage.refused, triage.events)
        fresh: list[Pending] = []
        unroutable: list[int] = []
        for s in triage.sendable:
            m, info = s.message, s.info
            smsc_id = self.apps[m.app_id][0]
            if smsc_id is None or not self._routable(smsc_id):
                unroutable.append(m.id)
                continue
            urgent = m.priority < 2
            fresh.append(Pending(
                m.id, m.app_id, smsc_id, m.recipient, info.body,  # after smart encoding
                info.segments, info.encoding, m.attempts, m.tag, m.defers > 0, from_did=m.from_did,
                expires_at=s.expires_at,
                urgent=urgent, cap_exempt=urgent and m.app_id not in self.holding,
            ))
        await outbound.defer(self.pool, self.worker_id, unroutable, [30.0] * len(unroutable))
        keys = list({p.conversation for p in fresh if p.conversation is not None})
        sticky = await outbound.sticky_dids(self.pool, keys)
        placed = place(fresh, sticky, self.scheduler, self.book, self.clock(), self.settings.horizon_seconds)
        self.orphans.extend(placed.orphans)
        for o in placed.failed:
            self.recorder.outcomes.put_nowait(o)
        await outbound.pin_tags(self.pool, placed.new_tags)
        await outbound.defer(self.pool, self.worker_id, [i for i, _ in placed.deferred],
                             [delay for _, delay in placed.deferred])
        await senders.defer_throttled(self.pool, self.worker_id, [i for i, _ in placed.capped],
                                      [delay for _, delay in placed.capped])
        self.metrics.cap_held.labels().inc(len(placed.capped))
        self.sender.pushed.set()

    async def _capped_loop(self) -> None:
        """Work a brand's daily cap held back after it was placed goes back to the queue until the carrier day
        resets (reason 'throttled' meanwhile), instead of waiting in memory for hours."""
        while not self.stopping:
            await asyncio.sleep(0.2)
            capped = self.scheduler.take_capped()
            if not capped:
                continue
            now = self.clock()
            try:
                await senders.defer_throttled(self.pool, self.worker_id, [p.id for p, _ in capped],
                                              [max(0.0, until - now) for _, until in capped])
            except DB_ERRORS:
                self.scheduler.capped.extend(capped)  # the next round tries again
                raise
            self.metrics.cap_held.labels().inc(len(capped))

    # ---- message claims -----------------------------------------------------------------------------
    async def _claims_loop(self) -> None:
        """Keep our claims alive; return dead workers' claims to the queue; expire queued messages whose lifetime
        ended (so delivery_status says so even while their pool is too busy to claim them)."""
        requeue = self.settings.delivery != "at-most-once"
        while not self.stopping:
            try:
                if await outbound.keep_claims(self.pool, self.worker_id, self.settings.lease_seconds,
                                              self.held_claims(), requeue_sending=requeue):
                    self.claimer.wake.set()
            except DB_ERRORS:
                log.exception("lease heartbeat failed")
            await self.expire_sweep()
            await asyncio.sleep(self.settings.lease_seconds / 3)

    def held_claims(self) -> set[int]:
        """Ids of the claimed messages this worker holds in memory: the batch in admission, the scheduler's, the
        batch being marked 'sending', those going back to the queue and those whose outcome is not written yet.
        Only these claims are renewed; one dropped by any path runs out and returns to the queue."""
        held = {m.id for m in self.claimer.in_hand}
        held.update(p.id for p in self.scheduler.payloads())
        held.update(p.id for p in self.sender.marking)
        held.update(p.id for p in self.orphans)
        held.update(self.claimer.unfinished)
        held.update(o.id for o in self.recorder.outcomes.pending())
        return held

    async def expire_sweep(self, *, rounds: int = 10) -> int:
        """Expire queued messages past their lifetime, in rounds of 1,000 (each one short transaction)."""
        total = 0
        try:
            for _ in range(rounds):
                done = await lifetime.expire_queued(self.pool, self.now(), limit=1000)
                total += done
                if done < 1000:
                    break
        except DB_ERRORS:
            log.exception("expiry sweep failed")
        return total

    # ---- retention ---------------------------------------------------------------------------------------
    async def _purge_loop(self) -> None:
        """Purge what is older than each app's retention, now and then (small batches: never blocks sending)."""
        while not self.stopping:
            try:
                report = await lifetime.purge(self.pool, self.now(), batch=self.settings.purge_batch)
                if report.messages or report.callback_events:
                    log.info("purged %d messages and %d callback events past their retention",
                             report.messages, report.callback_events)
            except DB_ERRORS:
                log.exception("purge failed")
            await asyncio.sleep(self.settings.purge_seconds)
