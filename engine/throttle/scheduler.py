"""One scheduler for every DID: who sends what, and when. Pure: no I/O, clock values passed in.

- Every message is pinned to one DID when it enters: its tag's sticky DID, or the least-loaded DID
  of its pool (a per-pool min-heap on projected free time, O(log n)).
- A global min-heap holds, for each DID with queued work, the time its head message may go:
  `pop_due(now)` pops only what is due, so 100,000 idle DIDs cost nothing (no task per DID).
- `project()` tells the caller when a message would go if queued now; the dispatcher uses it to
  leave far-future work in the database instead of its memory (no head-of-line blocking).
- Optional limits above the DID (engine/throttle/gates.py, a mixin of this class): pool (SMSC), 10DLC campaign
  and provider-account gates, each DID parked in a gate's FIFO while the gate is not ready, and a brand's daily cap
  checked before them. `project()`/`choose()` ignore gates (they rank DIDs of one pool, which share the pool gate
  anyway); `held_until()` tells when a brand's daily cap lets a message go.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterator

from engine.throttle.daily import CarrierDay, DailyCap
from engine.throttle.gates import Gates
from engine.throttle.limiter import DEFAULT_GUARD, DEFAULT_WINDOW, DidLimiter
from engine.throttle.state import (
    ACCOUNT_GUARD,
    ACCOUNT_WINDOW,
    INF,
    NO_QUEUE,
    Decision,
    DidState,
    Gate,
    T,
    UnknownPool,
)

__all__ = ["ACCOUNT_GUARD", "ACCOUNT_WINDOW", "Decision", "DidState", "Gate", "Scheduler", "UnknownPool"]


class Scheduler(Gates[T]):
    """Pacing and DID choice for all pools of one worker."""

    def __init__(
        self,
        *,
        window: float = DEFAULT_WINDOW,
        guard: float = DEFAULT_GUARD,
        carrier_day: CarrierDay | None = None,
        cap_exempt: Callable[[T], bool] | None = None,
    ) -> None:
        """*carrier_day* maps this scheduler's clock to the carrier's day (daily caps; default: the clock is epoch
        seconds, days at midnight US Pacific). *cap_exempt* says which urgent payloads a reached daily cap does not
        hold (default: none)."""
        self.window = window
        self.guard = guard
        self.carrier_day = carrier_day if carrier_day is not None else CarrierDay()
        self.cap_exempt = cap_exempt
        self.daily: dict[int, DailyCap] = {}  # brand -> its daily cap (or this worker's share of it)
        self.capped: list[tuple[T, float]] = []  # (payload, not before) held back by a daily cap: caller re-queues
        self.campaign_gates: dict[int, Gate] = {}  # campaign -> its segments-per-minute limit
        self.dids: dict[int, DidState[T]] = {}
        self.pools: dict[int, list[tuple[float, int]]] = {}  # pool -> heap of (load key, did) of its busy DIDs
        self.idle: dict[int, deque[int]] = {}  # pool -> FIFO of its DIDs with pool_key -inf (idle when last seen)
        self.due: list[tuple[float, int, int | Gate]] = []  # (ready time, seq, did or gate)
        # (not before, seq, did, cost, payload, urgent)
        self.delayed: list[tuple[float, int, int, int, T, bool]] = []
        self.seq = itertools.count()
        self.queued = 0  # messages held in DID queues and the delayed heap
        self.orphans: list[T] = []  # delayed items whose DID went away with no replacement: caller re-queues
        self.pool_gates: dict[int, Gate] = {}  # pool -> its segments-per-minute limit
        self.account_gates: dict[int, Gate] = {}  # provider account -> its segments-per-second limit
        self.clock = -INF  # latest time seen by push()/pop_due(), for rescheduling from setters

    # ---- DIDs ---------------------------------------------------------------------------
    def set_did(
        self, did_id: int, pool_id: int, limit_per_min: int, burst: int = 1, *, account_id: int | None = None,
        campaign_id: int | None = None, brand_id: int | None = None,
    ) -> None:
        """Add a DID, or change its limit (pacing history is kept on a change).

        *account_id* ties the DID to a provider account's limit (see set_account_limit), *campaign_id* to a 10DLC
        campaign's (set_cap("campaign", ...)), *brand_id* to a brand's daily cap (set_brand_cap); every call sets
        them, so None unties it.
        """
        state = self.dids.get(did_id)
        if state is None:
            limiter = DidLimiter(limit_per_min, burst=burst, window=self.window, guard=self.guard)
            state = DidState(did_id=did_id, pool_id=pool_id, limiter=limiter, account_id=account_id,
                             campaign_id=campaign_id, brand_id=brand_id)
            self.dids[did_id] = state
            self.pools.setdefault(pool_id, [])
            self.idle.setdefault(pool_id, deque()).append(did_id)  # pool_key -inf: in the idle FIFO
            return
        state.brand_id = brand_id
        if (state.account_id, state.campaign_id) != (account_id, campaign_id):
            state.account_id, state.campaign_id = account_id, campaign_id
            self._drop_hold(state)
            if state.parked is not None:  # it may wait for a gate it no longer has: let it look again
                self._unpark(state)
                self._schedule(state, self.clock)
        if (state.limiter.limit, state.limiter.burst) != (limit_per_min, burst):
            old = state.limiter
            new = DidLimiter(limit_per_min, burst=burst, window=self.window, guard=self.guard)
            new.tat, new.ledger, new.in_window = old.tat, old.ledger, old.in_window
            state.limiter = new
            # A higher limit shrinks the DID's load below its pool key, which must stay a lower bound for
            # choose(): back to the idle FIFO, where choose() looks at its true load (its heap entry is superseded).
            if state.pool_key != -INF:
                state.pool_key = -INF
                if state.enabled:
                    self.idle[state.pool_id].append(did_id)
        if not state.enabled:
            state.enabled = True
            self._rebuild_pool(state.pool_id)

    def disable_did(self, did_id: int) -> list[tuple[int, T]]:
        """Stop using a DID; returns the (cost, payload) it still held, for the caller to re-route."""
        state = self.dids.get(did_id)
        if state is None or not state.enabled:
            return []
        state.enabled = False
        state.pool_key = -INF  # its queue goes: the old key would overstate its load once re-enabled
        self._drop_hold(state)
        if state.parked is not None:
            self._unpark(state)
        held = list(state.queue)
        state.queue = NO_QUEUE
        state.queued_cost = state.urgent = state.urgent_cost = 0
        self.queued -= len(held)
        self._rebuild_pool(state.pool_id)
        return held

    def _rebuild_pool(self, pool_id: int) -> None:
        members = [s for s in self.dids.values() if s.pool_id == pool_id and s.enabled]
        heap = [(s.pool_key, s.did_id) for s in members if s.pool_key != -INF]
        heapq.heapify(heap)
        self.pools[pool_id] = heap
        self.idle[pool_id] = deque(s.did_id for s in members if s.pool_key == -INF)

    def has_pool(self, pool_id: int) -> bool:
        """True when the pool has at least one enabled DID."""
        return bool(self.pools.get(pool_id) or self.idle.get(pool_id))

    def is_enabled(self, did_id: int | None) -> bool:
        """True when *did_id* is a DID this scheduler may place work on."""
        state = self.dids.get(did_id) if did_id is not None else None
        return state is not None and state.enabled

    def enabled_dids(self) -> list[int]:
        """Every DID currently in use."""
        return [did_id for did_id, state in self.dids.items() if state.enabled]

    def pool_ids(self) -> list[int]:
        """Every pool that has (or had) a DID here."""
        return list(self.pools)

    def queued_cost(self, did_id: int) -> int:
        """Segments held in memory for *did_id* (0 for a DID unknown here)."""
        state = self.dids.get(did_id)
        return state.queued_cost if state is not None else 0

    def backlog(self) -> int:
        """Messages held in DID queues and waiting for a retry."""
        return self.queued

    def payloads(self) -> Iterator[T]:
        """Everything held: queued on a DID, waiting for a retry or a DID, or held back by a daily cap."""
        for state in self.dids.values():
            for _cost, payload in state.queue:
                yield payload
        for entry in self.delayed:
            yield entry[4]
        for payload, _until in self.capped:
            yield payload
        yield from self.orphans

    def take_orphans(self) -> list[T]:
        """Delayed work whose DID went away with no replacement: the caller returns it to the queue."""
        orphans, self.orphans = self.orphans, []
        return orphans

    def replay(self, did_id: int, cost: int, at: float) -> None:
        """Count a send made at *at* (by anyone, e.g. the DID's previous holder) in *did_id*'s window."""
        state = self.dids.get(did_id)
        if state is not None:
            state.limiter.record(cost, at)

    # ---- choosing and projecting --------------------------------------------------------
    def choose(self, pool_id: int, now: float) -> int:
        """The least-loaded enabled DID of *pool_id*.

        Every idle DID (load <= now) is equally free; they wait in the pool's idle FIFO and are handed out in
        turn (round robin), which spreads traffic over the pool. DIDs with work projected into the future are
        in the busy heap keyed by load; only when no DID is idle does the heap's least-loaded one come out.
        The heap holds only the busy DIDs (about rate x pace of them), not the whole pool: with 100,000 DIDs
        choose() no longer sifts through a 100,000-entry heap for every message.
        """
        heap = self.pools.get(pool_id)
        idle = self.idle.get(pool_id)
        if not heap and not idle:
            raise UnknownPool(pool_id)
        assert heap is not None and idle is not None
        dids = self.dids
        # Busy DIDs whose projected load has passed may be idle now: back to the FIFO (or re-keyed).
        while heap and heap[0][0] <= now:
            key, did_id = heap[0]
            state = dids[did_id]
            if key != state.pool_key:  # superseded (see set_did)
                heapq.heappop(heap)
                continue
            true_key = state.load(now)
            if true_key <= now:
                heapq.heappop(heap)
                state.pool_key = -INF
                idle.append(did_id)
            else:
                state.pool_key = true_key
                heapq.heapreplace(heap, (true_key, did_id))
        while idle:
            did_id = idle[0]
            state = dids[did_id]
            if state.pool_key != -INF or not state.enabled:  # moved to the heap since (a stale entry)
                idle.popleft()
                continue
            true_key = state.load(now)
            if true_key <= now:
                return did_id  # stays at the head until work makes it busy
            idle.popleft()
            state.pool_key = true_key
            heapq.heappush(heap, (true_key, did_id))
        while True:
            key, did_id = heap[0]
            state = dids[did_id]
            if key != state.pool_key:  # superseded
                heapq.heappop(heap)
                continue
            true_key = state.load(now)
            if true_key <= key:
                return did_id  # its key is exact: the least loaded
            # Loads only grow, so a stale key is too small: fix it and look again.
            state.pool_key = true_key
            heapq.heapreplace(heap, (true_key, did_id))

    def project(self, did_id: int, now: float, *, reserved: bool = True, urgent: bool = False) -> float:
        """When a message queued on *did_id* now would start going out.

        reserved=False ignores reservations: for a message coming back to take its reserved turn. An urgent
        message goes ahead of everything but earlier urgent work.
        """
        state = self.dids[did_id]
        if urgent:
            return state.urgent_until(now)
        return state.load(now) if reserved else state.busy_until(now)

    def reserve(self, did_id: int, cost: int, now: float) -> float:
        """Promise *cost* segments of *did_id* to work left in the database; returns its projected start.

        Later projections on this DID start after the reservation, so deferred and new work keep
        their order.
        """
        state = self.dids[did_id]
        start = state.load(now)
        state.reserved_until = start + cost * state.limiter.interval
        return start

    # ---- queueing ---------------------------------------------------------------------------
    def push(self, did_id: int, cost: int, payload: T, now: float, *, urgent: bool = False) -> None:
        """Queue *payload* (costing *cost* segments) on *did_id*; an *urgent* one goes ahead of the DID's
        non-urgent work (behind earlier urgent work: urgent messages keep their order)."""
        state = self.dids[did_id]
        if not state.enabled:
            raise UnknownPool(state.pool_id)
        queue = state.queue
        if queue is NO_QUEUE:
            queue = state.queue = deque()
        if urgent:
            queue.insert(state.urgent, (cost, payload))
            state.urgent += 1
            state.urgent_cost += cost
        else:
            queue.append((cost, payload))
        state.queued_cost += cost
        self.queued += 1
        if now > self.clock:
            self.clock = now
        if not state.scheduled and state.parked is None:
            self._schedule(state, now)

    def push_later(self, did_id: int, cost: int, payload: T, not_before: float, *, urgent: bool = False) -> None:
        """Queue *payload* on *did_id*, but not before *not_before* (retry after a 429/5xx)."""
        heapq.heappush(self.delayed, (not_before, next(self.seq), did_id, cost, payload, urgent))
        self.queued += 1

    def _schedule(self, state: DidState[T], now: float) -> None:
        cost = state.queue[0][0]
        ready = state.limiter.ready_at(cost, now)
        heapq.heappush(self.due, (ready, next(self.seq), state.did_id))
        state.scheduled = True

    def next_due(self) -> float | None:
        """Time of the next decision, or None when nothing is queued."""
        t = self.due[0][0] if self.due else INF
        if self.delayed and self.delayed[0][0] < t:
            t = self.delayed[0][0]
        return None if t == INF else t

    def pop_due(self, now: float, limit: int | None = None) -> list[Decision[T]]:
        """Every send that may happen at *now* (at most *limit*), already charged to its DID and its gates."""
        if now > self.clock:
            self.clock = now
        self._release_delayed(now)
        out: list[Decision[T]] = []
        due = self.due
        dids = self.dids
        heappop, heappush, seq_next = heapq.heappop, heapq.heappush, self.seq.__next__
        if limit is None:
            limit = -1  # len(out) never equals it
        while due and due[0][0] <= now and len(out) != limit:
            _, seq, key = heappop(due)
            if isinstance(key, Gate):
                if key.entry != seq:
                    continue  # superseded by a sooner entry, or the gate was removed
                key.entry = None
                decision = self._release(key, now)
            else:
                state = dids[key]
                state.scheduled = False
                queue = state.queue
                if not queue:
                    continue
                cost = queue[0][0]
                ready = state.limiter.ready_at(cost, now)
                if ready > now:  # the DID was restamped since it was scheduled
                    heappush(due, (ready, seq_next(), key))
                    state.scheduled = True
                    continue
                decision = self._admit(state, cost, now, None)
            if decision is not None:
                out.append(decision)
        return out

    def _release_delayed(self, now: float) -> None:
        delayed = self.delayed
        while delayed and delayed[0][0] <= now:
            _, _, did_id, cost, payload, urgent = heapq.heappop(delayed)
            self.queued -= 1
            state = self.dids.get(did_id)
            if state is None or not state.enabled:
                # Its DID went away meanwhile: the pool's least-loaded DID takes it.
                pool = state.pool_id if state is not None else None
                if pool is None or not self.has_pool(pool):
                    self.orphans.append(payload)
                    continue
                did_id = self.choose(pool, now)
            if cost > self.max_cost(did_id):
                # Too big for this DID's window (a smaller DID took over, or the limit dropped): sending it would
                # break the limit, so it goes back to the caller like a message without a DID.
                self.orphans.append(payload)
                continue
            self.push(did_id, cost, payload, now, urgent=urgent)

    def settle(self, decision: Decision[T], sent_at: float, answered_at: float) -> None:
        """The carrier answered the send of *decision* (which left at *sent_at*) at *answered_at*.

        The carrier counted the send somewhere in between; its window entries move to the latest
        possible moment, so later sends are spaced from it whatever the network and carrier delays
        were. The bucket's spacing is left alone (it would cost throughput, not safety).
        """
        state = self.dids.get(decision.did_id)
        if state is None:
            return
        state.limiter.restamp(sent_at, answered_at, decision.cost, spacing=False)
        for gate in self._gates(state):
            gate.limiter.restamp(sent_at, answered_at, decision.cost, spacing=False)
        self._late(state, decision.cost, sent_at, answered_at)

    def confirm(self, decision: Decision[T], actual: float) -> None:
        """The send of *decision* really left at *actual*; keep the windows (DID, pool, account) exact.

        The pool and account are the DID's current ones: if its account changed in between, the old account's
        ledger keeps the decision time.
        """
        state = self.dids.get(decision.did_id)
        if state is not None:
            state.limiter.restamp(decision.decided_at, actual, decision.cost)
            for gate in self._gates(state):
                gate.limiter.restamp(decision.decided_at, actual, decision.cost)
            self._late(state, decision.cost, decision.decided_at, actual)
