"""One scheduler for every DID: who sends what, and when. Pure: no I/O, clock values passed in.

- Every message is pinned to one DID when it enters: its tag's sticky DID, or the least-loaded DID
  of its pool (a per-pool min-heap on projected free time, O(log n)).
- A global min-heap holds, for each DID with queued work, the time its head message may go:
  `pop_due(now)` pops only what is due, so 100,000 idle DIDs cost nothing (no task per DID).
- `project()` tells the caller when a message would go if queued now; the dispatcher uses it to
  leave far-future work in the database instead of its memory (no head-of-line blocking).
- Optional hierarchical limits ("gates"): a pool (SMSC) limit in segments per minute and a provider-account
  limit in segments per second, enforced together with each DID's own limit: a send happens only when the DID,
  its pool gate and its account gate all allow it, and is charged to all three. A DID that is ready while a
  gate is not is parked in that gate's FIFO; the gate holds ONE due-heap entry at its own ready time and
  releases parked DIDs one per token, in FIFO order (fair across DIDs, no per-DID re-push churn: every
  decision stays O(log n)). `project()`/`choose()` ignore gates (they rank DIDs of one pool, which share the
  pool gate anyway).
- A 10DLC campaign is one more gate of the same kind ("campaign": its segments per 60-second window, spaced evenly),
  over the DIDs tied to it (set_did(..., campaign_id=...)): pool, then campaign, then account.
- A brand's daily cap (engine/throttle/daily.py) is checked before the gates: a DID whose head message the cap holds
  back gives its holdable work back (`take_capped()`: the caller returns it to the database until the carrier day
  resets) instead of waiting in memory for hours; an app's exempt work (see *cap_exempt*) never waits.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from engine.throttle.daily import BULK, EXEMPT, URGENT, CarrierDay, DailyCap
from engine.throttle.limiter import DEFAULT_GUARD, DEFAULT_WINDOW, EMPTY, DidLimiter

T = TypeVar("T")

INF = float("inf")

NO_QUEUE = EMPTY  # the queue of a DID with nothing queued yet; push() swaps in a real deque

ACCOUNT_WINDOW = 1.0  # provider-account limits are per second
ACCOUNT_GUARD = 0.01  # the scheduler's guard, capped: 0.2 s on a 1 s window would cost 17 % of throughput
UNCAPPED = 1 << 62  # the daily count of a brand that has no cap (only the carrier's 30023 can hold it)


class UnknownPool(LookupError):
    """No enabled DID exists for the pool a message needs."""


@dataclass(slots=True, eq=False)
class Gate:
    """A limit shared by many DIDs (a pool or a provider account), with the DIDs waiting for it."""

    kind: str  # "pool", "campaign" or "account"
    key: int  # pool, campaign or account id
    limiter: DidLimiter
    parked: deque[int] = field(default_factory=deque)  # DIDs ready for their own limit, waiting for this one
    entry: int | None = None  # seq of this gate's live entry in the due heap (older entries are stale)
    entry_at: float = INF  # time of that entry
    holder: int | None = None  # DID it let through that now waits at its next gate: the next token is its own


@dataclass(slots=True)
class DidState(Generic[T]):
    """Scheduler-side state of one DID."""

    did_id: int
    pool_id: int
    limiter: DidLimiter
    enabled: bool = True
    # (cost, payload); NO_QUEUE until its first message (push swaps in a real deque)
    queue: deque[tuple[int, T]] = NO_QUEUE
    queued_cost: int = 0
    urgent: int = 0  # the first `urgent` queue entries are urgent (transactional, replies): they go first
    urgent_cost: int = 0
    reserved_until: float = INF * -1  # end of work this DID was promised but left in the database
    scheduled: bool = False  # has an entry in the due heap
    pool_key: float = INF * -1  # the key of its entry in the pool's busy heap; -inf: in the pool's idle FIFO
    account_id: int | None = None  # provider account whose limit it shares, if any
    campaign_id: int | None = None  # 10DLC campaign whose throughput it shares, if any
    brand_id: int | None = None  # brand whose daily cap it counts against, if any
    parked: Gate | None = None  # the gate whose FIFO holds it (then it has no due-heap entry)
    holds: Gate | None = None  # the gate that released it and waits for it (Gate.holder)

    def busy_until(self, now: float) -> float:
        """Projected time at which this DID has sent everything queued on it in memory."""
        base = self.limiter.tat if self.limiter.tat > now else now
        return base + self.queued_cost * self.limiter.interval

    def urgent_until(self, now: float) -> float:
        """Projected time at which this DID has sent the urgent work queued on it (an urgent message queues
        behind that only)."""
        base = self.limiter.tat if self.limiter.tat > now else now
        return base + self.urgent_cost * self.limiter.interval

    def load(self, now: float) -> float:
        """Projected time at which this DID has sent everything promised to it (memory + reserved).

        busy_until() written out: choose() calls this for every message.
        """
        limiter = self.limiter
        tat = limiter.tat
        busy = (tat if tat > now else now) + self.queued_cost * limiter.interval
        return busy if busy > self.reserved_until else self.reserved_until


class Decision(NamedTuple, Generic[T]):
    """Send *payload* through *did_id* now; *decided_at* identifies the send for `confirm`.

    A named tuple, not a frozen dataclass: one is built per send, and this is twice as fast to build.
    """

    did_id: int
    cost: int
    payload: T
    decided_at: float


class Scheduler(Generic[T]):
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

    def max_cost(self, did_id: int) -> int:
        """The largest message (in segments) this DID can ever send under its limit and its gates' limits."""
        state = self.dids[did_id]
        cost = state.limiter.limit
        for gate in self._gates(state):
            if gate.limiter.limit < cost:
                cost = gate.limiter.limit
        if state.brand_id is not None and self.daily:
            cap = self.daily.get(state.brand_id)
            if cap is not None and cap.cap - cap.reserve < cost:
                cost = max(1, cap.cap - cap.reserve)  # bulk work bigger than its share of a day could never go
        return cost

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

    def take_orphans(self) -> list[T]:
        """Delayed work whose DID went away with no replacement: the caller returns it to the queue."""
        orphans, self.orphans = self.orphans, []
        return orphans

    def replay(self, did_id: int, cost: int, at: float) -> None:
        """Count a send made at *at* (by anyone, e.g. the DID's previous holder) in *did_id*'s window."""
        state = self.dids.get(did_id)
        if state is not None:
            state.limiter.record(cost, at)

    def cap_window(self, kind: str) -> float:
        """The window of a pool or campaign (segments per minute) or account ("account": per second) limit."""
        return ACCOUNT_WINDOW if kind == "account" else self.window

    def replay_cap(self, kind: str, key: int, cost: int, at: float) -> None:
        """Count a send made at *at* in the window of pool, campaign or account *key*'s limit, or in brand *key*'s
        day (if it has one)."""
        if kind == "brand":
            cap = self.daily.get(key)
            if cap is not None:
                cap.record(cost, at)
            return
        gate = self._gate_map(kind).get(key)
        if gate is not None:
            gate.limiter.record(cost, at)

    def set_cap(self, kind: str, key: int, limit: int | None, reserve: int = 0) -> None:
        """set_pool_limit, set_campaign_limit, set_account_limit or set_brand_cap, by *kind*."""
        if kind == "pool":
            self.set_pool_limit(key, limit)
        elif kind == "campaign":
            self.set_campaign_limit(key, limit)
        elif kind == "brand":
            self.set_brand_cap(key, limit, reserve)
        else:
            self.set_account_limit(key, limit)

    def _gate_map(self, kind: str) -> dict[int, Gate]:
        return self.pool_gates if kind == "pool" else self.campaign_gates if kind == "campaign" else self.account_gates

    # ---- pool and account limits (gates) ------------------------------------------------------------
    def set_pool_limit(self, pool_id: int, per_minute: int | None, burst: int = 1) -> None:
        """Cap the whole pool (SMSC) at *per_minute* segments in any window (60 s + guard); None removes the cap.

        A change keeps the pool's pacing history (like set_did); removing it releases its parked DIDs at once.
        """
        self._set_gate(self.pool_gates, "pool", pool_id, per_minute, burst, self.window, self.guard)

    def set_campaign_limit(self, campaign_id: int, per_minute: int | None, burst: int = 1) -> None:
        """Cap a 10DLC campaign at *per_minute* segments in any window (60 s + guard), spaced evenly (a campaign of
        r segments/s gets r x 60 here: with burst 1, consecutive sends are 1/r s apart), over every DID tied to it;
        None removes the cap."""
        self._set_gate(self.campaign_gates, "campaign", campaign_id, per_minute, burst, self.window, self.guard)

    def set_brand_cap(self, brand_id: int, cap: int | None, reserve: int = 0) -> None:
        """Cap brand *brand_id* at *cap* segments per carrier-day, bulk work at *cap* - *reserve*; None removes it.
        A change keeps what was counted today."""
        if cap is None:
            self.daily.pop(brand_id, None)
            return
        current = self.daily.get(brand_id)
        if current is None:
            self.daily[brand_id] = DailyCap(cap, reserve, self.carrier_day, guard=self.guard)
        else:
            current.cap, current.reserve = cap, min(reserve, cap)

    def exhaust_brand(self, brand_id: int, until: float) -> None:
        """The carrier says brand *brand_id* reached its daily cap: nothing it may hold goes before *until*."""
        cap = self.daily.get(brand_id)
        if cap is None:  # a brand without a cap of its own here: only the carrier's word holds it
            cap = self.daily[brand_id] = DailyCap(UNCAPPED, 0, self.carrier_day, guard=self.guard)
        cap.exhaust(until)

    def brand_usage(self, brand_id: int, now: float) -> tuple[int, int] | None:
        """(segments counted today, cap) of a brand's daily cap here, or None."""
        cap = self.daily.get(brand_id)
        if cap is None:
            return None
        cap.roll(now)
        return cap.used, cap.cap

    def day_start(self, now: float) -> float:
        """The start of the carrier day holding *now*, on this scheduler's clock (replays of today's sends)."""
        return self.carrier_day.bounds(now)[0]

    def take_capped(self) -> list[tuple[T, float]]:
        """Work a daily cap held back, with the time it may go again (the next carrier day): the caller returns
        it to the queue until then."""
        capped, self.capped = self.capped, []
        return capped

    def set_account_limit(self, account_id: int, per_second: int | None, burst: int = 1) -> None:
        """Cap a provider account at *per_second* segments in any 1 s window (+ a guard of at most 10 ms), over
        every DID tied to it (set_did(..., account_id=...)); None removes the cap."""
        guard = min(self.guard, ACCOUNT_GUARD)
        self._set_gate(self.account_gates, "account", account_id, per_second, burst, ACCOUNT_WINDOW, guard)

    def _set_gate(
        self,
        gates: dict[int, Gate],
        kind: str,
        key: int,
        limit: int | None,
        burst: int,
        window: float,
        guard: float,
    ) -> None:
        gate = gates.get(key)
        if limit is None:
            if gate is not None:
                del gates[key]
                gate.entry = None  # its due-heap entry goes stale
                parked, gate.parked = gate.parked, deque()
                if gate.holder is not None:
                    self.dids[gate.holder].holds = None
                for did_id in parked:
                    state = self.dids[did_id]
                    state.parked = None
                    self._schedule(state, self.clock)
            return
        limiter = DidLimiter(limit, burst=burst, window=window, guard=guard)
        if gate is None:
            gates[key] = Gate(kind, key, limiter)
            return
        old = gate.limiter
        if (old.limit, old.burst) == (limiter.limit, limiter.burst):
            return
        limiter.tat, limiter.ledger, limiter.in_window = old.tat, old.ledger, old.in_window
        gate.limiter = limiter
        if gate.parked:  # its head may be ready sooner now
            self._schedule_gate(gate, self.clock)

    def _gates(self, state: DidState[T]) -> list[Gate] | tuple[()]:
        if not self.pool_gates and not self.account_gates and not self.campaign_gates:
            return ()  # no hierarchical limits anywhere: the common case, without a list per call
        out = []
        gate = self.pool_gates.get(state.pool_id)
        if gate is not None:
            out.append(gate)
        if state.campaign_id is not None:
            gate = self.campaign_gates.get(state.campaign_id)
            if gate is not None:
                out.append(gate)
        if state.account_id is not None:
            gate = self.account_gates.get(state.account_id)
            if gate is not None:
                out.append(gate)
        return out

    def _schedule_gate(self, gate: Gate, now: float) -> None:
        """Give a gate with parked DIDs a due-heap entry at the time its head DID may pass (unless one is sooner)."""
        cost = self.dids[gate.parked[0]].queue[0][0]
        at = gate.limiter.ready_at(cost, now)
        if gate.entry is not None and gate.entry_at <= at:
            return
        seq = next(self.seq)
        heapq.heappush(self.due, (at, seq, gate))
        gate.entry, gate.entry_at = seq, at

    def _park(self, state: DidState[T], gate: Gate, now: float, *, front: bool) -> None:
        if front:
            gate.parked.appendleft(state.did_id)
        else:
            gate.parked.append(state.did_id)
        state.parked = gate
        self._schedule_gate(gate, now)

    def _drop_hold(self, state: DidState[T]) -> None:
        """*state* gives up the token its gate keeps for it."""
        gate = state.holds
        if gate is None:
            return
        state.holds = None
        gate.holder = None
        if gate.parked:
            self._schedule_gate(gate, self.clock)

    def _unpark(self, state: DidState[T]) -> None:
        """Take a DID out of its gate's FIFO (O(parked); only for disable/re-tie, never per decision)."""
        gate = state.parked
        assert gate is not None
        head = gate.parked[0] == state.did_id
        gate.parked.remove(state.did_id)
        state.parked = None
        if head and gate.parked and gate.entry is not None:
            gate.entry = None  # the new head may be ready sooner
            self._schedule_gate(gate, self.clock)

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

    def held_until(self, did_id: int, cost: int, now: float, *, urgent: bool = False, exempt: bool = False) -> float:
        """Until when the daily cap of *did_id*'s brand holds back a message of *cost* segments (bulk, urgent, or
        urgent and *exempt*): *now* when it may go today."""
        state = self.dids[did_id]
        cap = self.daily.get(state.brand_id) if state.brand_id is not None else None
        if cap is None:
            return now
        return cap.blocked_until(cost, (EXEMPT if exempt else URGENT) if urgent else BULK, now)

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

    def _admit(self, state: DidState[T], cost: int, now: float, released_by: Gate | None) -> Decision[T] | None:
        """*state* is ready for its own limit: send its head through its gates, or park it at the first that is
        not ready. A DID coming fresh queues behind DIDs already parked at a gate (FIFO); one just released by a
        gate and stopped by its other gate only needs that gate's token (see the comment below)."""
        if state.brand_id is not None and self.daily:
            cap = self.daily.get(state.brand_id)
            if cap is not None and not cap.allows(cost, self._cap_class(state), now):
                self._hold_back(state, cap, now)
                return None
        passed: Gate | None = None  # the gate before this one (gates go in order: pool, campaign, account)
        for gate in self._gates(state):
            if gate is released_by:
                passed = gate
                continue
            if gate is state.holds:  # it passed this gate before: the gate let nobody else through since
                if gate.limiter.ready_at(cost, now) > now:  # (only after a restamp) its turn comes next
                    self._drop_hold(state)
                    self._park(state, gate, now, front=True)
                    return None
            elif gate.parked or gate.holder is not None or gate.limiter.ready_at(cost, now) > now:
                if passed is not None and state.holds is None:
                    # Through the gate before, stopped here: that gate keeps its token for this DID and lets
                    # nobody else through meanwhile (else one token would let every parked DID on at once).
                    passed.holder = state.did_id
                    state.holds = passed
                self._park(state, gate, now, front=False)
                return None
            passed = gate
        if state.holds is not None:
            self._drop_hold(state)
        cost, payload = state.queue.popleft()
        state.queued_cost -= cost
        if state.urgent:
            state.urgent -= 1
            state.urgent_cost -= cost
        self.queued -= 1
        state.limiter.record(cost, now)
        for gate in self._gates(state):
            gate.limiter.record(cost, now)
        if state.brand_id is not None and self.daily:
            cap = self.daily.get(state.brand_id)
            if cap is not None:
                cap.record(cost, now)
        if state.queue:
            self._schedule(state, now)
        return Decision(state.did_id, cost, payload, now)

    def _cap_class(self, state: DidState[T]) -> int:
        """The daily-cap class of *state*'s head: urgent work first (exempt when the caller says so), then bulk."""
        if not state.urgent:
            return BULK
        exempt = self.cap_exempt
        return EXEMPT if exempt is not None and exempt(state.queue[0][1]) else URGENT

    def _hold_back(self, state: DidState[T], cap: DailyCap, now: float) -> None:
        """The daily cap holds *state*'s head back: every queued item the cap would not let go now leaves memory
        (take_capped) until the next carrier day; exempt and still-fitting items stay, in order."""
        self._drop_hold(state)
        exempt = self.cap_exempt
        kept: deque[tuple[int, T]] = deque()
        urgent = urgent_cost = kept_cost = 0
        for i, (cost, payload) in enumerate(state.queue):
            is_urgent = i < state.urgent
            cls = (EXEMPT if exempt is not None and exempt(payload) else URGENT) if is_urgent else BULK
            if cap.allows(cost, cls, now):
                kept.append((cost, payload))
                kept_cost += cost
                if is_urgent:
                    urgent += 1
                    urgent_cost += cost
            else:
                self.capped.append((payload, cap.blocked_until(cost, cls, now)))
        self.queued -= len(state.queue) - len(kept)
        state.queue = kept if kept else NO_QUEUE
        state.queued_cost, state.urgent, state.urgent_cost = kept_cost, urgent, urgent_cost
        if kept:
            self._schedule(state, now)

    def _release(self, gate: Gate, now: float) -> Decision[T] | None:
        """The gate's due entry came up: let its head parked DID through if the gate has a token (one decision per
        due-heap pop), and schedule the gate again for the next one."""
        parked = gate.parked
        decision = None
        if gate.holder is not None:
            return None  # its token is kept for the holder; the holder reschedules the gate
        while parked:
            state = self.dids[parked[0]]
            cost = state.queue[0][0]
            if state.limiter.ready_at(cost, now) > now:  # restamped since it was parked: back to its own pace
                parked.popleft()
                state.parked = None
                self._schedule(state, now)
                continue
            if gate.limiter.ready_at(cost, now) > now:
                break
            parked.popleft()
            state.parked = None
            decision = self._admit(state, cost, now, gate)
            break
        if parked and gate.holder is None:
            self._schedule_gate(gate, now)
        return decision

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

    def _late(self, state: DidState[T], cost: int, counted_at: float, actual: float) -> None:
        if state.brand_id is not None and self.daily:
            cap = self.daily.get(state.brand_id)
            if cap is not None:
                cap.late(cost, counted_at, actual)

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
