"""Scheduler on an injected clock (plain floats, never sleeping): the per-DID window from its decisions, no loss or
duplication, FIFO per DID, least-loaded choice (against brute force), throughput, disable/re-enable, delayed
retries, reservations, no head-of-line blocking, and a scale run.

The simulation drives the scheduler the way the dispatcher does: time only moves forward, and between two
external events it jumps to next_due() and calls pop_due() there.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.throttle.limiter import DEFAULT_GUARD, DEFAULT_WINDOW, DidLimiter
from engine.throttle.scheduler import Scheduler, UnknownPool
from tests.helpers.sim import Sent, Sim
from tests.helpers.windows import max_window_load

PROPS = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
GUARDS = (0.0, DEFAULT_GUARD)
POOL_BASE = 100  # pool ids are POOL_BASE + index, so they never collide with DID ids


def assert_least_loaded(sched: Scheduler[int], pool_id: int, chosen: int, now: float) -> None:
    """choose() picked a DID whose projected load is the minimum over the pool's enabled DIDs (ties allowed)."""
    loads = {s.did_id: s.load(now) for s in sched.dids.values() if s.pool_id == pool_id and s.enabled}
    assert chosen in loads, "chose a DID outside the pool or a disabled one"
    assert loads[chosen] == min(loads.values())


def choose_checked(sched: Scheduler[int], pool_id: int, now: float) -> int:
    did = sched.choose(pool_id, now)
    assert_least_loaded(sched, pool_id, did, now)
    return did


def assert_ledger_rule(sends: Sequence[Sent], window: float) -> None:
    """Decision order: each send plus every earlier one still within *window* of it stays within its DID's limit
    at that moment (the rule the ledger enforces; limits may change over time)."""
    held: list[tuple[float, int]] = []
    total = 0
    last = -math.inf
    for s in sends:
        t = s.decision.decided_at
        assert t >= last, "decisions of a DID must come in time order"
        last = t
        while held and held[0][0] + window <= t:
            total -= held.pop(0)[1]
        held.append((t, s.decision.cost))
        total += s.decision.cost
        assert total <= s.limit


def assert_windows(sim: Sim, *, on_actual: bool = False) -> None:
    """Every DID: the carrier's 60 s rule and the 60 s + guard rule, on decision (or actual) times."""
    for did_id, sends in sim.by_did().items():
        limiter = sim.sched.dids[did_id].limiter
        if on_actual:
            times = [(s.actual, s.decision.cost) for s in sends]
            assert max_window_load(times, DEFAULT_WINDOW) <= limiter.limit
            assert max_window_load(times, limiter.window) <= limiter.limit
        else:
            assert_ledger_rule(sends, DEFAULT_WINDOW)
            assert_ledger_rule(sends, limiter.window)


def make_scheduler(pools: Sequence[Sequence[tuple[int, int]]], guard: float) -> tuple[Scheduler[int], list[int]]:
    """DIDs numbered from 1 in pool order; returns the scheduler and each DID's pool id."""
    sched: Scheduler[int] = Scheduler(guard=guard)
    pool_of: list[int] = [0]  # index 0 unused: DID ids start at 1
    for p, dids in enumerate(pools):
        for limit, burst in dids:
            did_id = len(pool_of)
            sched.set_did(did_id, POOL_BASE + p, limit, burst)
            pool_of.append(POOL_BASE + p)
    return sched, pool_of


# ---- random traffic ------------------------------------------------------------------------------------------

did_shapes = st.tuples(st.integers(1, 120), st.integers(1, 5))
pool_shapes = st.lists(st.lists(did_shapes, min_size=1, max_size=5), min_size=1, max_size=3)
gaps = st.one_of(st.just(0.0), st.just(0.0), st.floats(0, 3), st.floats(0, 80))
pop_limits = st.one_of(st.none(), st.integers(1, 4))


@dataclass
class Book:
    """What the test pushed, to check what came out."""

    pushed_at: dict[int, float] = field(default_factory=dict)  # seq -> time pushed (or released for later)
    not_before: dict[int, float] = field(default_factory=dict)  # seq -> push_later's not_before
    retry_did: dict[int, int] = field(default_factory=dict)  # seq -> the DID push_later named
    min_limit: dict[int, int] = field(default_factory=dict)  # pool -> smallest limit any of its DIDs ever had
    cost: dict[int, int] = field(default_factory=dict)
    order: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))  # did -> direct pushes, in order
    seq: itertools.count[int] = field(default_factory=itertools.count)

    def push(self, sim: Sim, did: int, cost: int, *, seq: int | None = None) -> int:
        if seq is None:
            seq = next(self.seq)
        sim.sched.push(did, cost, seq, sim.now)
        self.pushed_at.setdefault(seq, sim.now)
        self.cost[seq] = cost
        if seq not in self.not_before:  # retries re-enter at the tail when released: outside the FIFO check
            self.order[did].append(seq)
        return seq

    def check(self, sim: Sim) -> None:
        decided = [s.decision.payload for s in sim.sent]
        assert len(decided) == len(set(decided)), "an item was sent twice"
        missing = set(self.cost) - set(decided)
        for seq in missing:
            # Only a retry rerouted to a DID too small for it may go back to the database (see _release_delayed).
            assert seq in self.not_before, "an item was lost"
            assert self.cost[seq] > self.min_limit[sim.sched.dids[self.retry_did[seq]].pool_id]
        decided_order: dict[int, list[int]] = defaultdict(list)
        for s in sim.sent:
            d = s.decision
            assert d.cost == self.cost[d.payload]
            assert d.decided_at >= self.pushed_at[d.payload]
            assert d.decided_at >= self.not_before.get(d.payload, -math.inf), "a retry went before not_before"
            if d.payload not in self.not_before:
                decided_order[d.did_id].append(d.payload)
        for did, seqs in self.order.items():
            assert decided_order[did] == seqs, f"DID {did} broke FIFO"


def assert_queued_consistent(sched: Scheduler[int]) -> None:
    held = sum(len(s.queue) for s in sched.dids.values())
    assert sched.queued == held + len(sched.delayed)
    for s in sched.dids.values():
        assert s.queued_cost == sum(c for c, _ in s.queue)


@PROPS
@given(
    pool_shapes,
    st.sampled_from(GUARDS),
    st.lists(
        st.tuples(gaps, st.integers(0, 2), st.one_of(st.none(), st.integers(0, 4)), st.integers(1, 10), pop_limits),
        min_size=5,
        max_size=150,
    ),
)
def test_random_traffic(
    pools: list[list[tuple[int, int]]],
    guard: float,
    ops: list[tuple[float, int, int | None, int, int | None]],
) -> None:
    """Pushes (least-loaded or pinned) at random times, pops at next_due(): windows, exactly-once, FIFO."""
    sched, pool_of = make_scheduler(pools, guard)
    sim, book = Sim(sched), Book()
    members = {pool: [d for d in range(1, len(pool_of)) if pool_of[d] == pool] for pool in set(pool_of[1:])}
    for gap, pool_index, pin, cost, pop_limit in ops:
        sim.step_to(sim.now + gap, pop_limit)
        pool = POOL_BASE + pool_index % len(pools)
        did = members[pool][pin % len(members[pool])] if pin is not None else choose_checked(sched, pool, sim.now)
        book.push(sim, did, min(cost, sched.max_cost(did)))
        assert_queued_consistent(sched)
    sim.drain()
    book.check(sim)
    assert_windows(sim)


@st.composite
def lifecycle_ops(draw: st.DrawFn) -> list[tuple[str, float, int, int]]:
    kind = st.sampled_from(["push", "push", "push", "pin", "later", "disable", "enable", "limit"])
    return draw(st.lists(st.tuples(kind, gaps, st.integers(0, 20), st.integers(1, 10)), min_size=5, max_size=150))


@PROPS
@given(pool_shapes, st.sampled_from(GUARDS), lifecycle_ops())
def test_random_lifecycle(
    pools: list[list[tuple[int, int]]], guard: float, ops: list[tuple[str, float, int, int]]
) -> None:
    """Traffic mixed with disable/re-enable, limit changes and delayed retries.

    Held items of a disabled DID are re-routed like the dispatcher does; no decision ever comes from a disabled
    DID; choose() stays least-loaded; retries never leave before not_before.
    """
    sched, pool_of = make_scheduler(pools, guard)
    sim, book = Sim(sched), Book()
    book.min_limit = {POOL_BASE + p: min(limit for limit, _ in dids) for p, dids in enumerate(pools)}
    n_dids = len(pool_of) - 1
    for kind, gap, index, cost in ops:
        sim.step_to(sim.now + gap)
        did = 1 + index % n_dids
        pool = pool_of[did]
        state = sched.dids[did]
        if kind == "push":
            target = choose_checked(sched, pool, sim.now)
            book.push(sim, target, min(cost, sched.max_cost(target)))
        elif kind == "pin" and state.enabled:
            book.push(sim, did, min(cost, sched.max_cost(did)))
        elif kind == "later":
            target = choose_checked(sched, pool, sim.now)
            seq = next(book.seq)
            not_before = sim.now + cost * 1.5
            sched.push_later(target, min(cost, sched.max_cost(target)), seq, not_before)
            book.pushed_at[seq], book.not_before[seq], book.retry_did[seq] = sim.now, not_before, target
            book.cost[seq] = min(cost, sched.max_cost(target))
        elif kind == "disable":
            enabled_in_pool = [s for s in sched.dids.values() if s.pool_id == pool and s.enabled]
            if len(enabled_in_pool) < 2:
                continue  # keep every pool usable: with none left, work goes back to the database (tested apart)
            held = sched.disable_did(did)
            decided = {x.decision.payload for x in sim.sent}
            direct = [seq for _, seq in held if seq not in book.not_before]
            assert direct == [seq for seq in book.order[did] if seq not in decided]
            for c, seq in held:
                if seq in book.order[did]:
                    book.order[did].remove(seq)
                target = choose_checked(sched, pool, sim.now)
                assert target != did
                if c <= sched.max_cost(target):
                    book.push(sim, target, c, seq=seq)
                else:  # the dispatcher fails such a message; here: forget it
                    del book.cost[seq]
        elif kind == "enable":
            sched.set_did(did, pool, state.limiter.limit, state.limiter.burst)
            assert state.enabled
        elif kind == "limit":
            # Only limits every queued item still fits (costs are at most 10).
            new_limit = 10 + (index * 7 + cost * 13) % 111
            sched.set_did(did, pool, new_limit, 1 + cost % 5)
            book.min_limit[pool] = min(book.min_limit[pool], new_limit)
        assert_queued_consistent(sched)
        for p in set(pool_of[1:]):
            choose_checked(sched, p, sim.now)
    sim.drain()
    book.check(sim)
    assert_windows(sim)


@PROPS
@given(
    pool_shapes,
    st.sampled_from(GUARDS),
    st.lists(st.tuples(gaps, st.integers(0, 2), st.integers(1, 10)), min_size=5, max_size=120),
    st.lists(st.sampled_from([0.0, 0.3, 1.0, 2.0]) | st.floats(0, 2), min_size=1, max_size=10),
)
def test_confirm_keeps_windows_on_actual_times(
    pools: list[list[tuple[int, int]]],
    guard: float,
    ops: list[tuple[float, int, int]],
    delays: list[float],
) -> None:
    """Sends leave 0..2 s after their decision and are confirmed then: the window holds on the actual times."""
    sched, _ = make_scheduler(pools, guard)
    sim, book = Sim(sched, delays), Book()
    for gap, pool_index, cost in ops:
        sim.step_to(sim.now + gap)
        did = choose_checked(sched, POOL_BASE + pool_index % len(pools), sim.now)
        book.push(sim, did, min(cost, sched.max_cost(did)))
    sim.drain()
    book.check(sim)
    assert_windows(sim, on_actual=True)


def test_confirm_moves_the_right_send_of_a_burst() -> None:
    """Two sends of one DID decided at the same instant, of different sizes; only the larger one leaves late.

    Regression: confirm() did not pass the size, so the 1-segment send was moved instead and the 3-segment one
    left the window 2 s early, letting the next send overflow it.
    """
    sched: Scheduler[int] = Scheduler(guard=0.0)
    sched.set_did(1, POOL_BASE, 5, burst=4)
    sched.push(1, 3, 0, 0.0)
    sched.push(1, 1, 1, 0.0)
    big, small = sched.pop_due(0.0)
    assert (big.cost, small.cost) == (3, 1)
    sched.confirm(small, 0.0)
    sched.confirm(big, 2.0)
    sched.push(1, 4, 2, 2.0)
    nxt = sched.next_due()
    assert nxt is not None
    (last,) = sched.pop_due(nxt)
    assert last.decided_at >= 2.0 + DEFAULT_WINDOW  # 3 + 4 > 5 while the late 3-segment send is in the window
    assert max_window_load([(0.0, 1), (2.0, 3), (last.decided_at, 4)], DEFAULT_WINDOW) <= 5


# ---- throughput and balance ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "cost"), [(1, 1), (20, 1), (20, 2), (7, 3)])
def test_backlogged_pool_throughput(n: int, cost: int) -> None:
    """A pool of N DIDs at 60/min, always backlogged, sends >= 95 % of N * 60 segments per minute over 5 min."""
    sched: Scheduler[int] = Scheduler()
    for did in range(1, n + 1):
        sched.set_did(did, POOL_BASE, 60)
    sim = Sim(sched)
    for seq in range(n * 60 * 6 // cost):
        sched.push(choose_checked(sched, POOL_BASE, 0.0), cost, seq, 0.0)
    queues = [len(s.queue) for s in sched.dids.values()]
    assert max(queues) - min(queues) <= 1  # least-loaded choice spreads the backlog evenly
    sim.step_to(300.0 - 1e-9)
    segments = sum(s.decision.cost for s in sim.sent)
    assert segments >= 0.95 * n * 60 * 5
    per_did = [sum(s.decision.cost for s in sends) for sends in sim.by_did().values()]
    assert min(per_did) >= 0.95 * 60 * 5
    assert_windows(sim)


def test_choose_prefers_idle_and_balances_mixed_limits() -> None:
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 120)
    sched.set_did(2, POOL_BASE, 30)
    counts = {1: 0, 2: 0}
    for seq in range(150):
        did = choose_checked(sched, POOL_BASE, 0.0)
        counts[did] += 1
        sched.push(did, 1, seq, 0.0)
    assert counts[1] == pytest.approx(4 * counts[2], abs=4)  # work in proportion to the limits


def test_choose_ignores_other_pools() -> None:
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 60)
    sched.set_did(2, POOL_BASE + 1, 60)
    for seq in range(10):
        sched.push(1, 1, seq, 0.0)
    assert sched.choose(POOL_BASE, 0.0) == 1
    assert sched.choose(POOL_BASE + 1, 0.0) == 2


# ---- disable, re-enable, limit changes ----------------------------------------------------------------------


def test_disable_returns_held_items_and_the_did_is_never_chosen_again() -> None:
    sched: Scheduler[int] = Scheduler()
    for did in (1, 2, 3):
        sched.set_did(did, POOL_BASE, 60)
    sim = Sim(sched)
    for seq in range(30):
        sched.push(1, 1, seq, 0.0)
    sim.step_to(2.5)
    sent_before = {s.decision.payload for s in sim.sent}
    held = sched.disable_did(1)
    assert [seq for _, seq in held] == [seq for seq in range(30) if seq not in sent_before]
    assert all(cost == 1 for cost, _ in held)
    assert sched.disable_did(1) == []  # already disabled
    assert sched.disable_did(99) == []  # unknown
    assert not sched.dids[1].queue
    assert sched.queued == 0
    with pytest.raises(UnknownPool):
        sched.push(1, 1, 99, sim.now)
    for _, seq in held:
        sched.push(choose_checked(sched, POOL_BASE, sim.now), 1, seq, sim.now)
    for seq in range(100, 400):
        sim.step_to(sim.now + 0.05)
        did = choose_checked(sched, POOL_BASE, sim.now)
        assert did != 1
        sched.push(did, 1, seq, sim.now)
    sim.drain()
    assert all(s.decision.did_id != 1 for s in sim.sent if s.decision.payload not in sent_before)
    assert sorted(s.decision.payload for s in sim.sent) == [*range(30), *range(100, 400)]


def test_reenabled_did_is_chosen_again_when_least_loaded() -> None:
    """Regression: disable_did kept the DID's pool key (its load with the queue it just dropped), so after
    set_did re-enabled it, choose() passed it over although it was idle."""
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 60)
    sched.set_did(2, POOL_BASE, 60)
    assert choose_checked(sched, POOL_BASE, 0.0) == 1
    for seq in range(100):
        sched.push(1, 1, seq, 0.0)
    assert choose_checked(sched, POOL_BASE, 0.0) == 2  # DID 1's key is now its 100 s backlog
    assert len(sched.disable_did(1)) == 100
    sched.set_did(1, POOL_BASE, 60)
    sched.push(2, 1, 100, 0.0)
    assert sched.dids[1].load(0.0) == 0.0
    assert choose_checked(sched, POOL_BASE, 0.0) == 1


def test_limit_increase_is_seen_by_choose() -> None:
    """Regression: a higher limit shrinks a DID's projected load; its pool key must not stay at the old load."""
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 6)
    sched.set_did(2, POOL_BASE, 6)
    assert choose_checked(sched, POOL_BASE, 0.0) == 1
    for seq in range(10):
        sched.push(1, 1, seq, 0.0)
    assert choose_checked(sched, POOL_BASE, 0.0) == 2  # DID 1's key is now 100 s
    sched.push(2, 1, 10, 0.0)  # DID 2: 10 s
    sched.set_did(1, POOL_BASE, 600)  # DID 1's 10 queued segments now take 1 s
    assert sched.dids[1].load(0.0) == pytest.approx(1.0)
    assert choose_checked(sched, POOL_BASE, 0.0) == 1


def test_limit_changes_do_not_grow_the_pool_heap() -> None:
    sched: Scheduler[int] = Scheduler()
    for did in (1, 2, 3):
        sched.set_did(did, POOL_BASE, 60)
    for seq in range(300):
        did = choose_checked(sched, POOL_BASE, 0.0)
        sched.push(did, 1, seq, 0.0)
        sched.set_did(1 + seq % 3, POOL_BASE, 60 + seq % 7)
    assert len(sched.pools[POOL_BASE]) <= 6  # one live entry per DID, plus superseded ones not yet surfaced


@settings(PROPS, max_examples=500)
@given(
    st.lists(st.tuples(st.integers(1, 120), st.integers(1, 5)), min_size=2, max_size=4),
    st.lists(
        st.tuples(
            st.sampled_from(["pin", "pin", "choose", "disable", "enable", "enable", "limit", "reserve", "tick"]),
            st.integers(0, 5),
            st.integers(1, 30),
        ),
        min_size=1,
        max_size=60,
    ),
)
def test_choose_is_least_loaded_under_churn(dids: list[tuple[int, int]], ops: list[tuple[str, int, int]]) -> None:
    """Uneven pinned backlogs, disable/re-enable, limit changes, reservations, time passing: after every step
    choose() returns a DID of minimum projected load among the pool's enabled DIDs."""
    sched, _ = make_scheduler([dids], 0.2)
    now = 0.0
    seq = itertools.count()
    for kind, index, amount in ops:
        did = 1 + index % len(dids)
        state = sched.dids[did]
        if kind == "pin" and state.enabled:
            for _ in range(amount):
                sched.push(did, 1, next(seq), now)
        elif kind == "choose":
            sched.push(choose_checked(sched, POOL_BASE, now), 1, next(seq), now)
        elif kind == "disable" and sum(s.enabled for s in sched.dids.values()) > 1:
            sched.disable_did(did)
        elif kind == "enable":
            sched.set_did(did, POOL_BASE, state.limiter.limit, state.limiter.burst)
        elif kind == "limit":
            sched.set_did(did, POOL_BASE, amount * 4, 1 + amount % 5)
        elif kind == "reserve" and state.enabled:
            sched.reserve(did, amount, now)
        elif kind == "tick":
            now += amount
            sched.pop_due(now)
        choose_checked(sched, POOL_BASE, now)


def test_limit_change_keeps_pacing_history() -> None:
    sched: Scheduler[int] = Scheduler(guard=0.0)
    sched.set_did(1, POOL_BASE, 10, burst=10)
    for seq in range(10):
        sched.push(1, 1, seq, 0.0)
    assert len(sched.pop_due(0.0)) == 10
    sched.set_did(1, POOL_BASE, 5)  # lower: the 10 sends at 0 still fill the window
    sched.push(1, 1, 10, 1.0)
    assert sched.pop_due(59.0) == []
    assert sched.next_due() == DEFAULT_WINDOW
    assert [d.payload for d in sched.pop_due(DEFAULT_WINDOW)] == [10]
    sched.set_did(1, POOL_BASE, 5)  # unchanged: nothing happens
    assert sched.dids[1].limiter.window_count(DEFAULT_WINDOW) == 1


# ---- delayed retries -----------------------------------------------------------------------------------------


def test_push_later_waits_for_not_before() -> None:
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 60)
    sched.push_later(1, 1, 7, 5.0)
    assert sched.queued == 1
    assert sched.next_due() == 5.0
    assert sched.pop_due(4.999) == []
    (d,) = sched.pop_due(5.0)
    assert (d.did_id, d.payload, d.decided_at) == (1, 7, 5.0)
    assert sched.queued == 0
    assert sched.next_due() is None


def test_push_later_behind_a_busy_did_keeps_pace() -> None:
    sched: Scheduler[int] = Scheduler(guard=0.0)
    sched.set_did(1, POOL_BASE, 60)
    sim = Sim(sched)
    for seq in range(5):
        sched.push(1, 1, seq, 0.0)
    sched.push_later(1, 1, 99, 0.5)
    sim.drain()
    assert [s.decision.payload for s in sim.sent] == [0, 1, 2, 3, 4, 99]
    assert [s.decision.decided_at for s in sim.sent] == pytest.approx([0, 1, 2, 3, 4, 5])


def test_push_later_to_a_disabled_did_is_rerouted() -> None:
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 60)
    sched.set_did(2, POOL_BASE, 60)
    sched.push_later(1, 1, 7, 3.0)
    sched.disable_did(1)
    (d,) = sched.pop_due(3.0)
    assert (d.did_id, d.payload) == (2, 7)


def test_push_later_too_big_for_the_rerouted_did_is_not_sent() -> None:
    """Regression: a retry rerouted (its DID went away) onto a DID whose limit is below its size was sent
    anyway, breaking that DID's window; now it goes back to the database like one with no DID left."""
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 10)
    sched.set_did(2, POOL_BASE, 2)
    sched.push_later(1, 5, 7, 3.0)
    sched.disable_did(1)
    assert sched.pop_due(3.0) == []
    assert sched.queued == 0
    assert sched.next_due() is None
    assert sched.dids[2].limiter.window_count(3.0) == 0


def test_push_later_with_no_did_left_goes_back_to_its_lease() -> None:
    """With no enabled DID in the pool the retry is dropped from memory (the dispatcher's lease brings it back)."""
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 60)
    sched.push_later(1, 1, 7, 3.0)
    sched.disable_did(1)
    assert sched.pop_due(3.0) == []
    assert sched.queued == 0
    assert sched.next_due() is None


# ---- projection, reservation, unknown pools -----------------------------------------------------------------


def test_reserve_makes_later_projections_later() -> None:
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 60)
    sched.set_did(2, POOL_BASE, 60)
    assert sched.project(1, 10.0) == 10.0
    start = sched.reserve(1, 30, 10.0)
    assert start == 10.0
    assert sched.project(1, 10.0) == pytest.approx(40.0)  # 30 segments at 1 s each
    second = sched.reserve(1, 10, 10.0)
    assert second == pytest.approx(40.0)  # deferred work keeps its order
    assert sched.project(1, 12.0) == pytest.approx(50.0)
    assert sched.project(1, 12.0, reserved=False) == 12.0  # a returning message takes its reserved turn
    assert choose_checked(sched, POOL_BASE, 12.0) == 2  # the reservation counts as load
    sched.push(1, 1, 0, 12.0)
    assert sched.project(1, 12.0) >= 50.0
    assert len(sched.pop_due(12.0)) == 1  # a reservation shapes projections only, not pacing
    assert sched.project(1, 100.0) == 100.0  # reservations expire with time


def test_project_follows_queue_and_pace() -> None:
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 30)  # 2 s per segment
    for seq in range(3):
        sched.push(1, 2, seq, 0.0)
    assert sched.project(1, 0.0) == pytest.approx(12.0)
    (d,) = sched.pop_due(0.0)
    assert d.cost == 2
    assert sched.project(1, 0.0) == pytest.approx(12.0)  # sending moves load from the queue to the bucket


def test_unknown_pool() -> None:
    sched: Scheduler[int] = Scheduler()
    with pytest.raises(UnknownPool):
        sched.choose(POOL_BASE, 0.0)
    assert not sched.has_pool(POOL_BASE)
    sched.set_did(1, POOL_BASE, 60)
    assert sched.has_pool(POOL_BASE)
    assert sched.choose(POOL_BASE, 0.0) == 1
    with pytest.raises(UnknownPool):
        sched.choose(POOL_BASE + 1, 0.0)
    sched.disable_did(1)
    assert not sched.has_pool(POOL_BASE)
    with pytest.raises(UnknownPool):
        sched.choose(POOL_BASE, 0.0)
    assert issubclass(UnknownPool, LookupError)
    sched.set_did(1, POOL_BASE, 60)  # re-enabled
    assert sched.choose(POOL_BASE, 0.0) == 1


def test_max_cost_is_the_limit() -> None:
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 7, burst=3)
    assert sched.max_cost(1) == 7


# ---- pop_due mechanics ------------------------------------------------------------------------------------


def test_pop_due_limit_and_next_due() -> None:
    sched: Scheduler[int] = Scheduler()
    assert sched.next_due() is None
    assert sched.pop_due(0.0) == []
    for did in range(1, 6):
        sched.set_did(did, POOL_BASE, 60)
        sched.push(did, 1, did, 0.0)
    first = sched.pop_due(0.0, limit=2)
    assert len(first) == 2
    assert sched.next_due() == 0.0
    rest = sched.pop_due(0.0)
    assert sorted(d.payload for d in first + rest) == [1, 2, 3, 4, 5]
    assert sched.pop_due(0.0, limit=0) == []
    assert sched.next_due() is None


def test_burst_goes_at_once_through_the_scheduler() -> None:
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 60, burst=4)
    for seq in range(6):
        sched.push(1, 1, seq, 100.0)
    assert [d.payload for d in sched.pop_due(100.0)] == [0, 1, 2, 3]
    assert sched.next_due() == pytest.approx(101.0)


def test_no_head_of_line_blocking() -> None:
    """A hot DID with a long pinned backlog does not delay other DIDs: each of their items leaves at its own
    ready time (here: the moment it is pushed, as those DIDs are idle or paced apart)."""
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 6)  # hot: one segment per 10 s
    for did in (2, 3):
        sched.set_did(did, POOL_BASE, 60)
    sim = Sim(sched)
    for seq in range(200):
        sched.push(1, 1, seq, 0.0)
    shadow = {2: DidLimiter(60), 3: DidLimiter(60)}
    expected: dict[int, float] = {}
    t = 0.0
    for seq in range(1000, 1100):
        t += 0.7
        sim.step_to(t)
        did = choose_checked(sched, POOL_BASE, sim.now)
        assert did != 1  # the hot DID is never the least loaded
        ready = shadow[did].ready_at(1, sim.now)
        shadow[did].record(1, ready)
        expected[seq] = ready
        sched.push(did, 1, seq, sim.now)
    sim.step_to(200.0)
    got = {s.decision.payload: s.decision.decided_at for s in sim.sent if s.decision.did_id != 1}
    assert got == pytest.approx(expected)
    assert all(expected[seq] == pytest.approx(0.7 * (seq - 999)) for seq in expected)
    hot = [s.decision.decided_at for s in sim.sent if s.decision.did_id == 1]
    assert hot[:3] == pytest.approx([0.0, 10.0, 20.0])
    assert len(hot) == 20  # the hot DID keeps its own pace meanwhile: 6 per 60.2 s


# ---- scale ----------------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_scale_100k_dids() -> None:
    """100,000 DIDs in one pool, 200,000 choose + push + pop decisions: every operation is O(log n)."""
    n, total = 100_000, 200_000
    sched: Scheduler[int] = Scheduler()
    for did in range(1, n + 1):
        sched.set_did(did, POOL_BASE, 60)
    per_did = [0] * (n + 1)
    decided = 0
    now = 0.0
    for seq in range(total):
        now = seq * 1e-3  # 1,000 decisions a second: each DID gets one every 100 s
        did = sched.choose(POOL_BASE, now)
        sched.push(did, 1, seq, now)
        out = sched.pop_due(now)
        decided += len(out)
        for d in out:
            per_did[d.did_id] += 1
    assert decided == total
    assert sched.queued == 0
    assert max(per_did) == 2
    assert min(per_did[1:]) == 2


def test_idle_dids_are_handed_out_in_turn() -> None:
    """Idle DIDs are equally free: choose() hands them out round robin (a FIFO), spreading a pool's traffic, and a
    DID that becomes idle again queues behind the ones idle longer."""
    sched: Scheduler[int] = Scheduler()
    for did in range(1, 6):
        sched.set_did(did, POOL_BASE, 60)
    order = []
    for seq in range(5):
        did = choose_checked(sched, POOL_BASE, 0.0)
        sched.push(did, 1, seq, 0.0)
        order.append(did)
    assert order == [1, 2, 3, 4, 5]
    assert len(sched.pop_due(0.0)) == 5
    # DIDs 1..5 are busy until t=1 (one send each at 60/min); at t=1 all are idle again, in the order they went.
    order = []
    for seq in range(5, 10):
        did = choose_checked(sched, POOL_BASE, 1.0)
        sched.push(did, 1, seq, 1.0)
        order.append(did)
    assert sorted(order) == [1, 2, 3, 4, 5]
    assert len(sched.pools[POOL_BASE]) <= 5 and len(sched.idle[POOL_BASE]) <= 5
