"""One scheduler for every DID: who sends what, and when. Pure: no I/O, clock values passed in.

- Every message is pinned to one DID when it enters: its tag's sticky DID, or the least-loaded DID
  of its pool (a per-pool min-heap on projected free time, O(log n)).
- A global min-heap holds, for each DID with queued work, the time its head message may go:
  `pop_due(now)` pops only what is due, so 100,000 idle DIDs cost nothing (no task per DID).
- `project()` tells the caller when a message would go if queued now; the dispatcher uses it to
  leave far-future work in the database instead of its memory (no head-of-line blocking).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from engine.throttle.limiter import DEFAULT_GUARD, DEFAULT_WINDOW, DidLimiter

T = TypeVar("T")

INF = float("inf")


class UnknownPool(LookupError):
    """No enabled DID exists for the pool a message needs."""


@dataclass(slots=True)
class DidState(Generic[T]):
    """Scheduler-side state of one DID."""

    did_id: int
    pool_id: int
    limiter: DidLimiter
    enabled: bool = True
    queue: deque[tuple[int, T]] = field(default_factory=deque)  # (cost, payload)
    queued_cost: int = 0
    reserved_until: float = INF * -1  # end of work this DID was promised but left in the database
    scheduled: bool = False  # has an entry in the due heap
    pool_key: float = INF * -1  # the key of its entry in the pool heap

    def busy_until(self, now: float) -> float:
        """Projected time at which this DID has sent everything queued on it in memory."""
        base = self.limiter.tat if self.limiter.tat > now else now
        return base + self.queued_cost * self.limiter.interval

    def load(self, now: float) -> float:
        """Projected time at which this DID has sent everything promised to it (memory + reserved)."""
        busy = self.busy_until(now)
        return busy if busy > self.reserved_until else self.reserved_until


@dataclass(frozen=True, slots=True)
class Decision(Generic[T]):
    """Send *payload* through *did_id* now; *decided_at* identifies the send for `confirm`."""

    did_id: int
    cost: int
    payload: T
    decided_at: float


class Scheduler(Generic[T]):
    """Pacing and DID choice for all pools of one worker."""

    def __init__(self, *, window: float = DEFAULT_WINDOW, guard: float = DEFAULT_GUARD) -> None:
        self.window = window
        self.guard = guard
        self.dids: dict[int, DidState[T]] = {}
        self.pools: dict[int, list[tuple[float, int]]] = {}  # pool -> heap of (load key, did)
        self.due: list[tuple[float, int, int]] = []  # (ready time, seq, did)
        self.delayed: list[tuple[float, int, int, int, T]] = []  # (not before, seq, did, cost, payload)
        self.seq = itertools.count()
        self.queued = 0  # messages held in DID queues and the delayed heap
        self.orphans: list[T] = []  # delayed items whose DID went away with no replacement: caller re-queues

    # ---- DIDs ---------------------------------------------------------------------------
    def set_did(self, did_id: int, pool_id: int, limit_per_min: int, burst: int = 1) -> None:
        """Add a DID, or change its limit (pacing history is kept on a change)."""
        state = self.dids.get(did_id)
        if state is None:
            limiter = DidLimiter(limit_per_min, burst=burst, window=self.window, guard=self.guard)
            state = DidState(did_id=did_id, pool_id=pool_id, limiter=limiter)
            self.dids[did_id] = state
            heapq.heappush(self.pools.setdefault(pool_id, []), (state.pool_key, did_id))
            return
        if (state.limiter.limit, state.limiter.burst) != (limit_per_min, burst):
            old = state.limiter
            new = DidLimiter(limit_per_min, burst=burst, window=self.window, guard=self.guard)
            new.tat, new.ledger, new.in_window = old.tat, old.ledger, old.in_window
            state.limiter = new
            # A higher limit shrinks the DID's load below its pool key, which must stay a lower bound for
            # choose(): give it a fresh -inf entry (choose drops the superseded one when it surfaces).
            if state.pool_key != -INF:
                state.pool_key = -INF
                if state.enabled:
                    heapq.heappush(self.pools[state.pool_id], (state.pool_key, did_id))
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
        held = list(state.queue)
        state.queue.clear()
        state.queued_cost = 0
        self.queued -= len(held)
        self._rebuild_pool(state.pool_id)
        return held

    def _rebuild_pool(self, pool_id: int) -> None:
        heap = [(s.pool_key, s.did_id) for s in self.dids.values() if s.pool_id == pool_id and s.enabled]
        heapq.heapify(heap)
        self.pools[pool_id] = heap

    def has_pool(self, pool_id: int) -> bool:
        """True when the pool has at least one enabled DID."""
        return bool(self.pools.get(pool_id))

    def max_cost(self, did_id: int) -> int:
        """The largest message (in segments) this DID can ever send under its limit."""
        return self.dids[did_id].limiter.limit

    # ---- choosing and projecting --------------------------------------------------------
    def choose(self, pool_id: int, now: float) -> int:
        """The least-loaded enabled DID of *pool_id*."""
        heap = self.pools.get(pool_id)
        if not heap:
            raise UnknownPool(pool_id)
        while True:
            key, did_id = heap[0]
            state = self.dids[did_id]
            if key != state.pool_key:  # superseded by a lower entry for the same DID (see set_did)
                heapq.heappop(heap)
                continue
            true_key = state.load(now)
            if true_key <= key or true_key <= now:
                return did_id  # its key is exact, or it is idle (every idle DID is equally free)
            # Loads only grow, so a stale key is too small: fix it and look again.
            state.pool_key = true_key
            heapq.heapreplace(heap, (true_key, did_id))

    def project(self, did_id: int, now: float, *, reserved: bool = True) -> float:
        """When a message queued on *did_id* now would start going out.

        reserved=False ignores reservations: for a message coming back to take its reserved turn.
        """
        state = self.dids[did_id]
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
    def push(self, did_id: int, cost: int, payload: T, now: float) -> None:
        """Queue *payload* (costing *cost* segments) on *did_id*."""
        state = self.dids[did_id]
        if not state.enabled:
            raise UnknownPool(state.pool_id)
        state.queue.append((cost, payload))
        state.queued_cost += cost
        self.queued += 1
        if not state.scheduled:
            self._schedule(state, now)

    def push_later(self, did_id: int, cost: int, payload: T, not_before: float) -> None:
        """Queue *payload* on *did_id*, but not before *not_before* (retry after a 429/5xx)."""
        heapq.heappush(self.delayed, (not_before, next(self.seq), did_id, cost, payload))
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
        """Every send that may happen at *now* (at most *limit*), already charged to its DID."""
        self._release_delayed(now)
        out: list[Decision[T]] = []
        due = self.due
        dids = self.dids
        while due and due[0][0] <= now and (limit is None or len(out) < limit):
            _, _, did_id = heapq.heappop(due)
            state = dids[did_id]
            state.scheduled = False
            if not state.queue:
                continue
            cost = state.queue[0][0]
            ready = state.limiter.ready_at(cost, now)
            if ready > now:  # the DID was restamped since it was scheduled
                heapq.heappush(due, (ready, next(self.seq), did_id))
                state.scheduled = True
                continue
            cost, payload = state.queue.popleft()
            state.queued_cost -= cost
            self.queued -= 1
            state.limiter.record(cost, now)
            out.append(Decision(did_id, cost, payload, now))
            if state.queue:
                self._schedule(state, now)
        return out

    def _release_delayed(self, now: float) -> None:
        delayed = self.delayed
        while delayed and delayed[0][0] <= now:
            _, _, did_id, cost, payload = heapq.heappop(delayed)
            self.queued -= 1
            state = self.dids.get(did_id)
            if state is None or not state.enabled:
                # Its DID went away meanwhile: the pool's least-loaded DID takes it.
                pool = state.pool_id if state is not None else None
                if pool is None or not self.has_pool(pool):
                    self.orphans.append(payload)
                    continue
                did_id = self.choose(pool, now)
            if cost > self.dids[did_id].limiter.limit:
                # Too big for this DID's window (a smaller DID took over, or the limit dropped): sending it would
                # break the limit, so it goes back to the caller like a message without a DID.
                self.orphans.append(payload)
                continue
            self.push(did_id, cost, payload, now)

    def confirm(self, decision: Decision[T], actual: float) -> None:
        """The send of *decision* really left at *actual*; keep the window exact."""
        state = self.dids.get(decision.did_id)
        if state is not None:
            state.limiter.restamp(decision.decided_at, actual, decision.cost)
