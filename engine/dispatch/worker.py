"""The dispatch worker: claim from Postgres, segment, pace through the scheduler, send, record.

Loops (each an owned task): LISTEN for new rows, claim batches, dispatch due sends, write results,
keep leases alive and recover dead workers' rows, refresh the DID topology.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import orjson

from engine import statuses as st
from engine.callbacks import events as ev
from engine.config import Settings
from engine.dispatch.batcher import Batcher
from engine.dispatch.breaker import ProviderGate
from engine.dispatch.tasks import TaskGroup
from engine.metrics import Metrics
from engine.phone import is_test_number
from engine.providers import OutboundRequest, Provider, SendResult
from engine.providers.factory import carrier_client
from engine.segment import UCS2, analyze
from engine.store import lease_queries as lq
from engine.store import outbox_queries as oq
from engine.store import queries as q
from engine.throttle import Decision, Scheduler

log = logging.getLogger(__name__)

Clock = Callable[[], float]



@dataclass(slots=True)
class Pending:
    """A claimed message held in memory until it is sent."""

    id: int
    app_id: int
    smsc_id: int
    recipient: str
    body: str
    segments: int
    encoding: str
    attempts: int
    tag: str | None = None
    returning: bool = False  # was left in the queue for its turn and now takes its reserved slot
    queued_at: float = 0.0  # clock time it entered a DID queue (throttle wait metric)


@dataclass(frozen=True, slots=True)
class Outcome:
    """An engine-side status change to write."""

    id: int
    change: st.StatusChange
    code: int | None = None
    message: str | None = None
    segments: int | None = None
    encoding: str | None = None


@dataclass(frozen=True, slots=True)
class AppInfo:
    id: int
    smsc_id: int | None
    smart: bool


@dataclass(frozen=True, slots=True)
class ProviderBinding:
    provider_id: int
    client: Provider
    gate: ProviderGate


class Worker:
    """One dispatch worker process's engine. `await run(stop)`; set *stop* to drain and exit."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        settings: Settings,
        *,
        clock: Clock | None = None,
        worker_id: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        self.settings = settings
        self.clock: Clock = clock or time.monotonic
        self.metrics = metrics or Metrics()
        # Metric children resolved once (labels() takes a lock and a dict lookup per call).
        self._send_outcome = {k: self.metrics.sends.labels(k) for k in ("accepted", "retryable", "rejected")}
        self.worker_id = worker_id or f"w-{uuid.uuid4().hex[:12]}"
        self.scheduler: Scheduler[Pending] = Scheduler()
        self.apps: dict[int, AppInfo] = {}
        self.did_numbers: dict[int, str] = {}
        self.providers: dict[int, ProviderBinding] = {}  # smsc_id -> provider
        self.sessions: list[aiohttp.ClientSession] = []
        self.wake = asyncio.Event()  # new rows may be due
        self.pushed = asyncio.Event()  # the scheduler got work
        self.in_flight = 0
        self.slots = asyncio.Semaphore(settings.max_in_flight)
        self.stopping = False
        self.sent_count = 0
        self.accepted = Batcher[tuple[int, str, str]](self._write_accepted, name="accepted")
        self.outcomes = Batcher[Outcome](self._write_outcomes, name="outcomes")
        self.retries = Batcher[tuple[int, int | None, str | None]](self._write_retries, name="retries")
        self._send_tasks: set[asyncio.Task[None]] = set()
        self._topology_sig: tuple[Any, ...] = ()
        self._warned_smsc: set[int] = set()
        self.all_dids: dict[int, asyncpg.Record] = {}  # every enabled DID, leased by us or not
        self.leased: set[int] = set()  # DIDs this worker holds (only these are paced and used)
        self.lease_valid_until = float("-inf")  # clock time our DID leases are known good until
        self.orphans: list[Pending] = []  # held in memory but no longer sendable here: back to the queue
        self.did_busy: dict[int, int] = {}  # DID -> sends decided but not yet answered
        self.gates: dict[int, ProviderGate] = {}  # provider account -> breaker + 429 pause
        self.smsc_limits: dict[int, int | None] = {}  # SMSC -> cap in segments/min (whole pool, all workers)
        self.smsc_account: dict[int, int] = {}  # SMSC -> carrier account it sends through
        self.account_ids: dict[tuple[str, str, str], int] = {}  # (kind, account sid, base url) -> account
        self.account_limits: dict[int, int | None] = {}  # account -> cap in segments/s
        self.limit_shares: dict[tuple[str, int], int] = {}  # this worker's share of each cap in force
        self.releasing: set[int] = set()  # DIDs we give back once their sends in flight are answered
        self.started_at = self.clock()

    # ---- lifecycle ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until *stop* is set, then stop claiming, finish in-flight sends and release claims."""
        await self.pool.execute(lq.REGISTER_WORKER, self.worker_id, socket.gethostname(), os.getpid())
        await self.refresh_topology()
        async with TaskGroup("worker") as tasks:
            for batcher in (self.accepted, self.outcomes, self.retries):
                tasks.spawn_resilient(batcher.run, name=f"batch-{batcher.name}")
            # Each loop survives anything (a database restart included): logged, then restarted.
            tasks.spawn_resilient(self._listen_loop, name="listen")
            tasks.spawn_resilient(self._fetch_loop, name="fetch")
            tasks.spawn_resilient(self._dispatch_loop, name="dispatch")
            tasks.spawn_resilient(self._lease_loop, name="leases")
            tasks.spawn_resilient(self._topology_loop, name="topology")
            await stop.wait()
            self.stopping = True
            self.wake.set()
            self.pushed.set()
            await self._drain_sends()
        for batcher in (self.accepted, self.outcomes, self.retries):
            await batcher.drain()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q.RELEASE, self.worker_id)
            await conn.execute(lq.RELEASE_ALL_LEASES, self.worker_id)
            await conn.execute(lq.DEREGISTER_WORKER, self.worker_id)
        for session in self.sessions:
            await session.close()

    async def _drain_sends(self) -> None:
        """Let in-flight sends finish, for at most the configured drain time."""
        if self._send_tasks:
            await asyncio.wait(list(self._send_tasks), timeout=self.settings.drain_seconds)

    def _on_notify(self, *_: object) -> None:
        self.wake.set()

    async def _listen_loop(self) -> None:
        """LISTEN for new rows on a dedicated connection; reconnect when it drops (a lost NOTIFY only
        costs the poll interval)."""
        while not self.stopping:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.dsn)
                await conn.add_listener("engine_outbound", self._on_notify)
                self.wake.set()  # anything inserted while we were not listening
                while not conn.is_closed() and not self.stopping:
                    await asyncio.sleep(0.5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("LISTEN connection lost (%s); polling until it is back", type(exc).__name__)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()
            if not self.stopping:
                await asyncio.sleep(1.0)

    # ---- topology ---------------------------------------------------------------------------------
    async def refresh_topology(self) -> None:
        """Load apps, DIDs and provider accounts, renew and rebalance DID leases, update the scheduler."""
        async with self.pool.acquire() as conn:
            apps = await conn.fetch(q.LOAD_APPS)
            dids = await conn.fetch(q.LOAD_DIDS)
            providers = await conn.fetch(q.LOAD_PROVIDERS)
            limits = await conn.fetch(q.LOAD_LIMITS)
        self.apps = {r["id"]: AppInfo(r["id"], r["smsc_id"], r["smart_encoding"]) for r in apps}
        self.all_dids = {r["id"]: r for r in dids}
        for r in dids:
            self.did_numbers[r["id"]] = r["number"]
        self._load_limits(limits)
        gained = await self._rebalance_leases()
        for did_id in self.leased - self.releasing:
            r = self.all_dids[did_id]
            self.scheduler.set_did(did_id, r["smsc_id"], r["limit_per_min"], r["burst"],
                                   account_id=self.smsc_account.get(r["smsc_id"]))
        if gained:
            await self._seed_pacing(sorted(gained))
        await self._apply_limit_shares(allow_increase=True)
        for did_id, state in list(self.scheduler.dids.items()):
            if state.enabled and (did_id not in self.leased or did_id in self.releasing):
                for _cost, pending in self.scheduler.disable_did(did_id):
                    self._reroute(pending)
        sig = tuple(tuple(r.values()) for r in providers)
        if sig != self._topology_sig:
            self._topology_sig = sig
            await self._bind_providers(providers)

    async def _rebalance_leases(self) -> set[int]:
        """Hold a fair share (per SMSC) of the enabled DIDs: renew, give back extras, take free ones.

        Returns the DIDs newly acquired (their recent sends must be replayed before use).
        """
        lease = self.settings.lease_seconds
        started = self.clock()
        async with self.pool.acquire() as conn:
            await conn.execute(lq.WORKER_HEARTBEAT, self.worker_id)
            alive = max(1, await conn.fetchval(lq.ALIVE_WORKERS, lease))
            if started - self.started_at < lease:
                # Just started: siblings started with us may not have registered yet (Settings.expected_workers).
                alive = max(alive, self.settings.expected_workers)
            held = {r["did_id"] for r in await conn.fetch(lq.RENEW_LEASES, self.worker_id, lease)}
            held &= set(self.all_dids)
            per_smsc: dict[int, list[int]] = {}
            for did_id, r in self.all_dids.items():
                per_smsc.setdefault(r["smsc_id"], []).append(did_id)
            extras: list[int] = []
            want_smsc: list[int] = []
            want_n: list[int] = []
            for smsc, members in per_smsc.items():
                target = math.ceil(len(members) / alive)
                mine = [d for d in members if d in held and d not in self.releasing]
                if len(mine) > target:
                    # Give back the least busy ones; their queued work moves to our other DIDs.
                    mine.sort(key=lambda d: self.scheduler.dids[d].queued_cost if d in self.scheduler.dids else 0)
                    extras.extend(mine[: len(mine) - target])
                elif len(mine) < target:
                    want_smsc.append(smsc)
                    want_n.append(target - len(mine))
            # Stop deciding on DIDs we give back now; hand each over only once nothing of ours is in
            # flight on it, so its next holder's replay of recent sends already includes ours.
            for did_id in extras:
                self.releasing.add(did_id)
                if did_id in self.scheduler.dids:
                    # Its backlog goes back to the queue (not onto our other DIDs), so the worker taking
                    # our place gets work at once instead of waiting for us to drain it.
                    self.orphans.extend(pending for _cost, pending in self.scheduler.disable_did(did_id))
            self.releasing &= held
            idle = [d for d in self.releasing if not self.did_busy.get(d)]
            if idle:
                # Our share of pool/account caps shrinks before anyone else can take these DIDs.
                self.leased = held - set(idle)
                await self._apply_limit_shares(allow_increase=False)
                await conn.execute(lq.RELEASE_LEASES, self.worker_id, idle)
                held -= set(idle)
                self.releasing -= set(idle)
            gained: set[int] = set()
            if want_smsc:
                rows = await conn.fetch(lq.ACQUIRE_LEASES, self.worker_id, lease, want_smsc, want_n)
                gained = {r["did_id"] for r in rows}
                held |= gained
        self.leased = held
        # Stop using the DIDs a little before a lease we could not renew would lapse.
        self.lease_valid_until = started + lease * 0.8
        return gained

    def _load_limits(self, rows: list[asyncpg.Record]) -> None:
        """SMSC caps (segments/min) and carrier-account caps (segments/s) from LOAD_LIMITS."""
        self.smsc_limits = {r["smsc_id"]: r["limit_per_min"] for r in rows}
        self.smsc_account = {}
        account_caps: dict[int, int | None] = {}
        for r in rows:
            if r["kind"] is None:
                continue
            # One carrier account may back several SMSCs (apps): they share its cap.
            key = (r["kind"], r["account_sid"], r["base_url"])
            account = self.account_ids.setdefault(key, len(self.account_ids) + 1)
            self.smsc_account[r["smsc_id"]] = account
            cap = r["max_per_second"]
            prev = account_caps.get(account)
            account_caps[account] = cap if prev is None else prev if cap is None else min(prev, cap)
        self.account_limits = account_caps

    async def _apply_limit_shares(self, *, allow_increase: bool) -> None:
        """Split each SMSC and account cap over the workers by the DIDs each holds (floor, so the shares
        never add up to more than the cap). A smaller share applies at once; a larger one only with the
        cap's recent sends — everyone's, from the database — replayed into it, so the sends of the worker
        that gave the DIDs up still count in the window."""
        mine = self.leased - self.releasing
        members: dict[int, list[int]] = {}
        for did_id, r in self.all_dids.items():
            members.setdefault(r["smsc_id"], []).append(did_id)
        for smsc, cap in self.smsc_limits.items():
            dids = members.get(smsc, [])
            await self._set_share("pool", smsc, cap, dids, mine, allow_increase)
        by_account: dict[int, list[int]] = {}
        for smsc, account in self.smsc_account.items():
            by_account.setdefault(account, []).extend(members.get(smsc, []))
        for account, cap in self.account_limits.items():
            await self._set_share("account", account, cap, by_account.get(account, []), mine, allow_increase)

    async def _set_share(
        self, kind: str, key: int, cap: int | None, dids: list[int], mine: set[int], allow_increase: bool
    ) -> None:
        held = sum(1 for d in dids if d in mine)
        # At least 1 while we hold any DID of it: with more workers than the cap, the cap can be exceeded
        # by at most one segment per extra worker per window (documented).
        share = None if cap is None else (max(1, cap * held // len(dids)) if held else 0)
        current = self.limit_shares.get((kind, key))
        setter = self.scheduler.set_pool_limit if kind == "pool" else self.scheduler.set_account_limit
        if share is None or share == 0:
            if current is not None:
                setter(key, None)
                del self.limit_shares[(kind, key)]
            return
        if current is not None and share <= current:
            if share < current:
                setter(key, share)  # keeps the history: the cut applies to the current window at once
                self.limit_shares[(kind, key)] = share
            return
        if not allow_increase:
            return
        setter(key, None)  # a fresh gate, seeded below with every worker's recent sends
        setter(key, share)
        self.limit_shares[(kind, key)] = share
        gates = self.scheduler.pool_gates if kind == "pool" else self.scheduler.account_gates
        window = self.scheduler.window if kind == "pool" else 1.0
        rows = await self.pool.fetch(q.RECENT_SENDS, window + 5, dids)
        offset = self.clock() - time.time()
        limiter = gates[key].limiter
        for r in rows:
            limiter.record(r["segments"], r["at"] + offset)

    async def _topology_loop(self) -> None:
        while not self.stopping:
            await asyncio.sleep(min(5.0, self.settings.lease_seconds / 4))
            try:
                await self.refresh_topology()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.exception("topology refresh failed")

    async def _seed_pacing(self, did_ids: list[int]) -> None:
        """Replay the last window of sends of newly held DIDs, whoever sent them, before using them."""
        rows = await self.pool.fetch(q.RECENT_SENDS, self.scheduler.window + 5, did_ids)
        offset = self.clock() - time.time()
        for r in rows:
            state = self.scheduler.dids.get(r["did_id"])
            if state is not None:
                state.limiter.record(r["segments"], r["at"] + offset)

    async def _bind_providers(self, rows: list[asyncpg.Record]) -> None:
        old_sessions = self.sessions
        self.sessions = []
        bindings: dict[int, ProviderBinding] = {}
        for r in rows:
            connector = aiohttp.TCPConnector(limit=self.settings.max_in_flight, ttl_dns_cache=300)
            session = aiohttp.ClientSession(connector=connector)
            self.sessions.append(session)
            client = carrier_client(
                session,
                kind=r["kind"],
                account_sid=r["account_sid"],
                auth_token=r["auth_token"],
                base_url=r["base_url"],
                messaging_service_sid=r["messaging_service_sid"],
                timeout=self.settings.request_timeout,
            )
            gate = self.gates.setdefault(r["provider_id"], ProviderGate())  # survives re-binding
            bindings[r["smsc_id"]] = ProviderBinding(r["provider_id"], client, gate)
        self.providers = bindings
        for session in old_sessions:
            asyncio.get_running_loop().call_later(self.settings.request_timeout + 5, _close_later, session)

    # ---- claiming ---------------------------------------------------------------------------------
    def _buffer_full(self) -> bool:
        return self.scheduler.queued >= self.settings.batch_size * 20

    async def _fetch_loop(self) -> None:
        while not self.stopping:
            await self._requeue_orphans()
            if self._buffer_full():
                await self._sleep_or_wake(0.05)
                continue
            self.wake.clear()
            servable, saturated = self._servable_apps()
            try:
                rows = await self.pool.fetch(
                    q.CLAIM, self.worker_id, self.settings.batch_size, self.settings.lease_seconds, servable
                ) if servable else []
                if rows:
                    await self._admit(rows)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("claim failed (%s); retrying", exc)
                await asyncio.sleep(self.settings.poll_seconds)
                continue
            if len(rows) < self.settings.batch_size:
                if saturated:
                    # Some pools are full: look again soon (their rows wait in the queue, in order).
                    await asyncio.sleep(min(0.2, self.settings.poll_seconds))
                else:
                    await self._sleep_or_wake(await self._idle_wait())

    def _servable_apps(self) -> tuple[list[int], bool]:
        """Apps this worker can send for now: it holds DIDs of their SMSC and that pool is not busy
        beyond the horizon (a saturated pool's messages wait in the queue, in order). Also says
        whether any pool was saturated."""
        now = self.clock()
        limit = now + self.settings.horizon_seconds
        ready: set[int] = set()
        saturated = False
        for smsc in self.scheduler.pools:
            if not self.scheduler.has_pool(smsc) or smsc not in self.providers:
                continue
            if self.scheduler.project(self.scheduler.choose(smsc, now), now, reserved=False) > limit:
                saturated = True
            else:
                ready.add(smsc)
        return [a.id for a in self.apps.values() if a.smsc_id in ready], saturated

    async def _requeue_orphans(self) -> None:
        """Claimed messages this worker can no longer send (their DIDs went elsewhere): back to the queue."""
        self.orphans.extend(self.scheduler.orphans)
        self.scheduler.orphans.clear()
        if not self.orphans:
            return
        batch, self.orphans = self.orphans, []
        try:
            # A short delay: the DID they wait for is being handed over (or their pool moved).
            await self.pool.execute(lq.REQUEUE_UNSENT, [p.id for p in batch], self.worker_id, 0.5)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self.orphans.extend(batch)
            raise

    async def _idle_wait(self) -> float:
        """How long to sleep when the queue is drained: until the next scheduled row, at most a poll."""
        nxt = await self.pool.fetchval(q.NEXT_DUE)
        if nxt is None:
            return self.settings.poll_seconds
        return max(0.0, min(float(nxt), self.settings.poll_seconds))

    async def _sleep_or_wake(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

    async def _admit(self, rows: list[asyncpg.Record]) -> None:
        """Turn claimed rows into scheduled sends, local outcomes, or deferrals (one query each)."""
        outcomes: list[Outcome] = []
        refused: list[Outcome] = []  # not sent, with an event for the app in the same transaction
        events: list[tuple[int, str, dict[str, str]]] = []
        candidates: list[Pending] = []
        unroutable: list[int] = []
        no_unicode = self.settings.no_unicode_destinations
        for r in rows:
            app = self.apps.get(r["app_id"])
            if app is None:
                await self.refresh_topology()
                app = self.apps.get(r["app_id"])
            info = analyze(r["body"], smart=bool(app and app.smart))
            if is_test_number(r["recipient"]):
                outcomes.append(Outcome(r["id"], st.TEST_DELIVERED, segments=info.segments, encoding=info.encoding))
                continue
            if len(r["body"]) > self.settings.max_body_chars or info.segments > self.settings.max_segments:
                # Inserted past the API's checks (SQL door): refused here, with the reason.
                reason = (f"body of {len(r['body'])} characters / {info.segments} segments is over the limit "
                          f"({self.settings.max_body_chars} / {self.settings.max_segments})")
                outcomes.append(Outcome(r["id"], st.SEND_FAILED, None, reason, info.segments, info.encoding))
                continue
            if no_unicode and info.encoding == UCS2 and r["recipient"].startswith(no_unicode):
                refused.append(Outcome(r["id"], st.SEND_FAILED, None, "no_unicode_support", info.segments, UCS2))
                events.append((r["app_id"], ev.NO_UNICODE_SUPPORT, ev.no_unicode_support(r["recipient"], r["body"])))
                continue
            if info.replacements:
                chars = ev.invalid_characters(sorted({orig for orig, _ in info.replacements}))
                events.append((r["app_id"], ev.INVALID_CHARACTERS, {**chars, "message_id": str(r["id"])}))
            if app is None or app.smsc_id is None or not self._routable(app.smsc_id):
                unroutable.append(r["id"])
                continue
            candidates.append(
                Pending(
                    r["id"], r["app_id"], app.smsc_id, r["recipient"], info.body,  # after smart encoding
                    info.segments, info.encoding, r["attempts"], r["tag"] or None, r["defers"] > 0,
                )
            )
        dupes: set[int] = set()
        if candidates:
            dupes = {
                rec["id"] for rec in await self.pool.fetch(q.FIND_DUPLICATES, [p.id for p in candidates])
            }
        for p in candidates:
            if p.id in dupes:
                outcomes.append(Outcome(p.id, st.SUPPRESSED, None, "duplicate within the app's window"))
        fresh = [p for p in candidates if p.id not in dupes]
        pinned = await self._sticky_dids(fresh)
        await self._place(fresh, pinned)
        for o in outcomes:
            self.outcomes.put_nowait(o)
        if refused or events:
            await self._write_refusals(refused, events)
        if unroutable:
            await self.pool.execute(
                q.DEFER_SECONDS, unroutable, [30.0] * len(unroutable), self.worker_id
            )

    async def _write_refusals(self, refused: list[Outcome], events: list[tuple[int, str, dict[str, str]]]) -> None:
        """Messages not sent for a reason the app must hear about: the final status and the events
        in one transaction. (An invalid_characters event rides along: the message itself goes on.)"""
        async with self.pool.acquire() as conn, conn.transaction():
            if refused:
                await conn.execute(q.MARK_OUTCOME, *_outcome_columns(refused))
            if events:
                await conn.execute(
                    oq.ENQUEUE_MANY,
                    [e[0] for e in events], [e[1] for e in events], [orjson.dumps(e[2]).decode() for e in events],
                )

    def _routable(self, smsc_id: int) -> bool:
        ok = smsc_id in self.providers and self.scheduler.has_pool(smsc_id)
        if not ok and smsc_id not in self._warned_smsc:
            self._warned_smsc.add(smsc_id)
            log.warning("SMSC %s has no provider or no enabled DID; its messages wait", smsc_id)
        return ok

    async def _sticky_dids(self, fresh: list[Pending]) -> dict[tuple[int, str, str], int]:
        """The stored sticky DID of each tagged message's (app, recipient, tag), where one exists."""
        keys = list({(p.app_id, p.recipient, p.tag) for p in fresh if p.tag is not None})
        if not keys:
            return {}
        rows = await self.pool.fetch(q.TAGS_LOOKUP, *(list(col) for col in zip(*keys, strict=True)))
        return {keys[r["i"] - 1]: r["did_id"] for r in rows}

    def _usable(self, did: int | None) -> bool:
        return did is not None and did in self.scheduler.dids and self.scheduler.dids[did].enabled

    async def _place(self, fresh: list[Pending], sticky: dict[tuple[int, str, str], int]) -> None:
        """Queue what can go within the horizon; leave the rest in the database until its turn.

        A tag without a usable DID gets the least-loaded one, chosen as the batch is placed so
        new conversations spread over the pool; the choice is stored before anything is sent.
        """
        now = self.clock()
        horizon = self.settings.horizon_seconds
        deferred: list[int] = []
        delays: list[float] = []
        new_tags: dict[tuple[int, str, str], int] = {}
        for p in fresh:
            key = (p.app_id, p.recipient, p.tag) if p.tag is not None else None
            did = sticky.get(key) if key is not None else None
            if did is not None and did in self.all_dids and (did not in self.leased or did in self.releasing):
                self.orphans.append(p)  # its DID is between workers: the holder will send it
                continue
            if not self._usable(did):
                did = self.scheduler.choose(p.smsc_id, now)
                if key is not None:
                    sticky[key] = new_tags[key] = did
            assert did is not None
            if p.segments > self.scheduler.max_cost(did):
                self.outcomes.put_nowait(
                    Outcome(p.id, st.SEND_FAILED, None, "message has more segments than the DID's limit")
                )
                continue
            # A conversation's DID is fixed: a new message queues behind what is reserved for it, and a
            # returning one takes its reserved turn. Untagged work is never reserved (it may return
            # to any DID); the claim skips saturated pools, so it rarely lands here.
            start = self.scheduler.project(did, now, reserved=key is not None and not p.returning)
            if start - now > horizon:
                if key is not None and not p.returning:
                    start = self.scheduler.reserve(did, p.segments, now)
                deferred.append(p.id)
                delays.append(max(1.0, start - now - horizon / 2))
                continue
            p.queued_at = now
            self.scheduler.push(did, p.segments, p, now)
        if new_tags:
            cols = [list(c) for c in zip(*new_tags, strict=True)]
            await self.pool.execute(q.TAGS_ASSIGN, *cols, list(new_tags.values()))
        if deferred:
            await self.pool.execute(q.DEFER_SECONDS, deferred, delays, self.worker_id)
        self.pushed.set()

    def _reroute(self, p: Pending) -> None:
        """Place a message whose DID went away on another DID of its pool (or leave it to its lease)."""
        if p.tag is None and self.scheduler.has_pool(p.smsc_id):
            now = self.clock()
            did = self.scheduler.choose(p.smsc_id, now)
            if p.segments <= self.scheduler.max_cost(did):
                self.scheduler.push(did, p.segments, p, now)
                return
        # A conversation stays on its DID: whoever holds that DID now sends it.
        self.orphans.append(p)

    # ---- dispatching ------------------------------------------------------------------------------
    async def _dispatch_loop(self) -> None:
        # On stop, queued messages stay claimed and RELEASE returns them; in-flight sends finish.
        while not self.stopping:
            free = self.settings.max_in_flight - self.in_flight
            if free <= 0:
                await self._wait_pushed(0.01)
                continue
            now = self.clock()
            if now >= self.lease_valid_until:
                # Our DID leases could not be renewed: another worker may hold them now.
                await self._wait_pushed(0.1)
                continue
            decisions = self.scheduler.pop_due(now, limit=free)
            if not decisions:
                nxt = self.scheduler.next_due()
                await self._wait_pushed(self.settings.poll_seconds if nxt is None else max(0.0, nxt - now))
                continue
            await self._launch(decisions)

    async def _wait_pushed(self, seconds: float) -> None:
        self.pushed.clear()
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.pushed.wait(), seconds)

    def _gated(self, decisions: list[Decision[Pending]]) -> list[Decision[Pending]]:
        """Hold back sends whose carrier account is paused (429) or whose circuit is open."""
        now = self.clock()
        passed: list[Decision[Pending]] = []
        for d in decisions:
            binding = self.providers.get(d.payload.smsc_id)
            if binding is None or binding.gate.allow(now):
                passed.append(d)
            else:
                retry_at = max(binding.gate.reopen_at(), now + 0.2)
                self.scheduler.push_later(d.did_id, d.cost, d.payload, retry_at)
        return passed

    async def _launch(self, decisions: list[Decision[Pending]]) -> None:
        """Record 'sending' for the batch in one round trip, then fire the requests."""
        decisions = self._gated(decisions)
        if not decisions:
            return
        ids = [d.payload.id for d in decisions]
        busy = self.did_busy
        for d in decisions:  # a DID with a send between decision and reply is never handed over
            busy[d.did_id] = busy.get(d.did_id, 0) + 1
        try:
            marked: list[int] = await self.pool.fetchval(
                q.MARK_SENDING,
                ids,
                [d.did_id for d in decisions],
                [self.did_numbers[d.did_id] for d in decisions],
                [d.payload.segments for d in decisions],
                [d.payload.encoding for d in decisions],
                self.worker_id,
                self.settings.lease_seconds,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            log.exception("marking %d messages as sending failed; they go back to the queue", len(ids))
            # Not sent (their tokens are spent, which only errs on the safe side).
            self.orphans.extend(d.payload for d in decisions)
            for d in decisions:
                self._done_with(d.did_id)
            return
        ok = set(marked)
        base = self.settings.callback_base
        for d in decisions:
            p = d.payload
            if p.id not in ok:
                self._done_with(d.did_id)
                continue  # lost our claim (lease expired and someone else took it)
            binding = self.providers.get(p.smsc_id)
            if binding is None:
                self._done_with(d.did_id)
                self.outcomes.put_nowait(Outcome(p.id, st.SEND_FAILED, None, "no provider configured"))
                continue
            request = OutboundRequest(
                message_id=p.id,
                to=p.recipient,
                from_=self.did_numbers[d.did_id],
                body=p.body,
                status_callback=f"{base}/webhooks/twilio/status/{binding.provider_id}/{p.id}",
            )
            self.in_flight += 1
            task = asyncio.create_task(self._send(d, binding, request))
            self._send_tasks.add(task)
            task.add_done_callback(self._send_tasks.discard)

    async def _send(self, d: Decision[Pending], binding: ProviderBinding, request: OutboundRequest) -> None:
        p = d.payload
        metrics = self.metrics
        try:
            started = self.clock()
            self.scheduler.confirm(d, started)
            if p.queued_at:
                metrics.throttle_wait.observe(max(0.0, d.decided_at - p.queued_at))
            result = await binding.client.send(request)
            answered = self.clock()
            # The carrier counted this send at some moment before its answer reached us: keep the
            # 60-s window from that latest moment, so carrier-side delays cannot squeeze the window.
            self.scheduler.settle(d, started, answered)
            metrics.provider_latency.observe(answered - started)
        except Exception as exc:  # a provider must not raise; if it does, treat as ambiguous
            log.exception("provider raised for message %s", p.id)
            result = SendResult(ok=False, retryable=True, ambiguous=True, error_message=repr(exc))
        finally:
            self.in_flight -= 1
            self._done_with(d.did_id)
            self.pushed.set()
        p.attempts += 1
        now = self.clock()
        if result.http_status == 429:
            binding.gate.pause(now + (result.retry_after if result.retry_after is not None else 1.0))
            binding.gate.record(True, now)  # throttled, not sick
        else:
            binding.gate.record(result.ok or not result.retryable, now)
        self._send_outcome["accepted" if result.ok else "retryable" if result.retryable else "rejected"].inc()
        self._record(d, result)

    def _done_with(self, did_id: int) -> None:
        left = self.did_busy.get(did_id, 0) - 1
        if left > 0:
            self.did_busy[did_id] = left
        else:
            self.did_busy.pop(did_id, None)

    def _record(self, d: Decision[Pending], result: SendResult) -> None:
        p = d.payload
        if result.ok:
            self.sent_count += 1
            self.accepted.put_nowait((p.id, result.provider_message_id or "", result.provider_status or "queued"))
            return
        may_retry = result.retryable and (not result.ambiguous or self.settings.delivery == "at-least-once")
        if may_retry and p.attempts < self.settings.max_attempts and not self.stopping:
            delay = result.retry_after if result.retry_after is not None else _backoff(p.attempts)
            delay = max(delay, 0.2)  # lets the retry mark land before the next attempt
            self.retries.put_nowait((p.id, result.error_code, result.error_message))
            self.scheduler.push_later(d.did_id, p.segments, p, self.clock() + delay)
            self.pushed.set()
            return
        if result.ambiguous:
            self.outcomes.put_nowait(Outcome(p.id, st.UNKNOWN, result.error_code, result.error_message))
            return
        self.outcomes.put_nowait(
            Outcome(p.id, st.SEND_FAILED, result.error_code, result.error_message or "send failed")
        )

    # ---- writing results --------------------------------------------------------------------------
    async def _write_accepted(self, batch: list[tuple[int, str, str]]) -> None:
        await self.pool.execute(q.MARK_ACCEPTED, *map(list, zip(*batch, strict=True)))

    async def _write_outcomes(self, batch: list[Outcome]) -> None:
        await self.pool.execute(q.MARK_OUTCOME, *_outcome_columns(batch))

    async def _write_retries(self, batch: list[tuple[int, int | None, str | None]]) -> None:
        ids, codes, msgs = (list(x) for x in zip(*batch, strict=True))
        await self.pool.execute(q.MARK_RETRY, ids, codes, msgs, self.settings.lease_seconds)

    # ---- leases -------------------------------------------------------------------------------------
    async def _lease_loop(self) -> None:
        """Keep our claims alive; return dead workers' claims to the queue."""
        recover_sending = (
            q.RECOVER_SENDING_UNKNOWN if self.settings.delivery == "at-most-once" else q.RECOVER_SENDING_REQUEUE
        )
        while not self.stopping:
            try:
                async with self.pool.acquire() as conn:
                    await conn.execute(q.HEARTBEAT, self.worker_id, self.settings.lease_seconds)
                    recovered = await conn.execute(q.RECOVER_CLAIMED)
                    await conn.execute(recover_sending)
                if recovered != "UPDATE 0":
                    self.wake.set()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.exception("lease heartbeat failed")
            await asyncio.sleep(self.settings.lease_seconds / 3)


def _outcome_columns(batch: list[Outcome]) -> list[list[Any]]:
    """MARK_OUTCOME's array parameters for *batch*."""
    return [
        [o.id for o in batch],
        [o.change.state for o in batch],
        [o.change.status for o in batch],
        [o.change.rank for o in batch],
        [o.code for o in batch],
        [o.message for o in batch],
        [o.segments for o in batch],
        [o.encoding for o in batch],
    ]


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter, capped at 60 s."""
    return float(random.uniform(0.5, 1.0) * min(60.0, 2.0 ** attempt))


_closing: set[asyncio.Task[None]] = set()


def _close_later(session: aiohttp.ClientSession) -> None:
    """Close a replaced provider session once its in-flight requests have had time to finish."""
    task = asyncio.ensure_future(session.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)
