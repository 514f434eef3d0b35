"""Limits above the DID (pure): pool, campaign and account gates, and a brand's daily cap; the Scheduler's mixin.

- A gate (a pool's segments per minute, a 10DLC campaign's segments/s as a 60-second window, a provider account's
  segments per second) is enforced together with each DID's own limit: a send happens only when the DID and all
  its gates allow it, and is charged to all of them. A DID that is ready while a gate is not is parked in that
  gate's FIFO; the gate holds ONE due-heap entry at its own ready time and releases parked DIDs one per token, in
  FIFO order (fair across DIDs, no per-DID re-push churn: every decision stays O(log n)). Gates go in order: pool,
  campaign, account.
- A brand's daily cap (engine/throttle/daily.py) is checked before the gates: a DID whose head message the cap holds
  back gives its holdable work back (`take_capped()`) instead of waiting in memory for hours.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import Generic

from engine.throttle.daily import BULK, EXEMPT, URGENT, CarrierDay, DailyCap
from engine.throttle.limiter import DidLimiter
from engine.throttle.state import ACCOUNT_GUARD, ACCOUNT_WINDOW, NO_QUEUE, UNCAPPED, Decision, DidState, Gate, T

__all__ = ["Gates"]


class Gates(Generic[T]):
    """The Scheduler's limits above the DID. A mixin: the Scheduler creates the state declared here."""

    window: float
    guard: float
    dids: dict[int, DidState[T]]
    due: list[tuple[float, int, int | Gate]]
    seq: itertools.count[int]
    queued: int
    clock: float
    carrier_day: CarrierDay
    cap_exempt: Callable[[T], bool] | None
    daily: dict[int, DailyCap]  # brand -> its daily cap (or this worker's share of it)
    capped: list[tuple[T, float]]  # (payload, not before) held back by a daily cap: the caller re-queues it
    pool_gates: dict[int, Gate]  # pool -> its segments-per-minute limit
    campaign_gates: dict[int, Gate]  # campaign -> its segments-per-minute limit
    account_gates: dict[int, Gate]  # provider account -> its segments-per-second limit

    def _schedule(self, state: DidState[T], now: float) -> None:
        raise NotImplementedError  # the Scheduler's: a due-heap entry at the DID's own ready time

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


    def held_until(self, did_id: int, cost: int, now: float, *, urgent: bool = False, exempt: bool = False) -> float:
        """Until when the daily cap of *did_id*'s brand holds back a message of *cost* segments (bulk, urgent, or
        urgent and *exempt*): *now* when it may go today."""
        state = self.dids[did_id]
        cap = self.daily.get(state.brand_id) if state.brand_id is not None else None
        if cap is None:
            return now
        return cap.blocked_until(cost, (EXEMPT if exempt else URGENT) if urgent else BULK, now)

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

    def _late(self, state: DidState[T], cost: int, counted_at: float, actual: float) -> None:
        if state.brand_id is not None and self.daily:
            cap = self.daily.get(state.brand_id)
            if cap is not None:
                cap.late(cost, counted_at, actual)

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
