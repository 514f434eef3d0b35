"""Hierarchical limits on an injected clock: per-DID, per-pool (segments/minute) and per-account (segments/second)
limits enforced together by one Scheduler; exactly-once and FIFO per DID; throughput under a binding gate;
fairness across parked DIDs; runtime changes of gates; and a 10,000-DID scale run without churn.

Driven by tests/helpers/sim.py like tests/test_throttle_scheduler.py: time only moves forward, pop_due() is called at
next_due().
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.throttle import ACCOUNT_GUARD, ACCOUNT_WINDOW, DEFAULT_GUARD, DEFAULT_WINDOW, Gate, Scheduler
from tests.helpers.sim import Sim
from tests.helpers.windows import max_window_load

PROPS = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
POOL_BASE = 100
ACCOUNT_BASE = 1000


def assert_all_windows(sim: Sim, pool_limits: dict[int, int], account_limits: dict[int, int], *, actual: bool) -> None:
    """No DID, pool or account goes over its limit in any half-open window, on decision or actual times."""
    sched = sim.sched
    per_did: dict[int, list[tuple[float, int]]] = defaultdict(list)
    per_pool: dict[int, list[tuple[float, int]]] = defaultdict(list)
    per_account: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for s in sim.sent:
        d = s.decision
        t = s.actual if actual else d.decided_at
        state = sched.dids[d.did_id]
        per_did[d.did_id].append((t, d.cost))
        per_pool[state.pool_id].append((t, d.cost))
        if state.account_id is not None:
            per_account[state.account_id].append((t, d.cost))
    for did_id, sends in per_did.items():
        limiter = sched.dids[did_id].limiter
        assert max_window_load(sends, DEFAULT_WINDOW) <= limiter.limit
        assert max_window_load(sends, limiter.window) <= limiter.limit
    for pool_id, limit in pool_limits.items():
        sends = per_pool[pool_id]
        assert max_window_load(sends, DEFAULT_WINDOW) <= limit, f"pool {pool_id} over its limit"
        assert max_window_load(sends, sched.pool_gates[pool_id].limiter.window) <= limit
    for account_id, limit in account_limits.items():
        sends = per_account[account_id]
        assert max_window_load(sends, ACCOUNT_WINDOW) <= limit, f"account {account_id} over its limit"
        assert max_window_load(sends, sched.account_gates[account_id].limiter.window) <= limit


def assert_parking_consistent(sched: Scheduler[int]) -> None:
    """Every parked DID is in exactly its gate's FIFO, enabled, with work, and without a due entry of its own;
    every gate with parked DIDs has a live due entry, or keeps its token for a holder that will reschedule it."""
    seen: set[int] = set()
    for gates in (sched.pool_gates, sched.account_gates):
        for gate in gates.values():
            for did_id in gate.parked:
                state = sched.dids[did_id]
                assert state.parked is gate and state.enabled and state.queue and not state.scheduled
                assert did_id not in seen
                seen.add(did_id)
            if gate.parked and gate.holder is None:
                assert gate.entry is not None
            if gate.holder is not None:
                # The gate kept its token for a DID it let through that waits at its next gate (or on its
                # own pace): that DID gives the token back when it moves, which reschedules this gate.
                holder = sched.dids[gate.holder]
                assert holder.holds is gate and (holder.parked is not None or holder.scheduled)
    assert all(s.parked is None for s in sched.dids.values() if s.did_id not in seen)


# ---- the combined invariant ------------------------------------------------------------------------------------

did_shapes = st.tuples(st.integers(1, 120), st.integers(1, 5), st.one_of(st.none(), st.integers(0, 2)))
pool_shapes = st.tuples(
    st.one_of(st.none(), st.tuples(st.integers(1, 200), st.integers(1, 5))),
    st.lists(did_shapes, min_size=1, max_size=5),
)
account_shapes = st.lists(
    st.one_of(st.none(), st.tuples(st.integers(1, 20), st.integers(1, 3))), min_size=3, max_size=3
)
gaps = st.one_of(st.just(0.0), st.just(0.0), st.floats(0, 0.5), st.floats(0, 3), st.floats(0, 80))


@PROPS
@given(
    st.lists(pool_shapes, min_size=1, max_size=3),
    account_shapes,
    st.sampled_from((0.0, DEFAULT_GUARD)),
    st.lists(
        st.tuples(
            gaps, st.integers(0, 30), st.integers(1, 10), st.integers(1, 6), st.one_of(st.none(), st.integers(1, 4))
        ),
        min_size=5,
        max_size=120,
    ),
    # At most the account window: a send still unconfirmed a whole window after its decision cannot be counted.
    st.lists(st.sampled_from([0.0, 0.3, 1.0]) | st.floats(0, ACCOUNT_WINDOW), min_size=1, max_size=6),
)
def test_combined_invariant(
    pools: list[tuple[tuple[int, int] | None, list[tuple[int, int, int | None]]]],
    accounts: list[tuple[int, int] | None],
    guard: float,
    ops: list[tuple[float, int, int, int, int | None]],
    delays: list[float],
) -> None:
    """Random pools, accounts, DIDs, limits, costs and pushes; sends leave 0..1 s late and are confirmed then.
    DID, pool and account windows hold on decision and on actual times; every item once; FIFO per DID."""
    sched: Scheduler[int] = Scheduler(guard=guard)
    pool_limits: dict[int, int] = {}
    account_limits: dict[int, int] = {}
    for a, shape in enumerate(accounts):
        if shape is not None:
            sched.set_account_limit(ACCOUNT_BASE + a, shape[0], shape[1])
            account_limits[ACCOUNT_BASE + a] = shape[0]
    did_ids: list[int] = []
    for p, (pool_limit, dids) in enumerate(pools):
        if pool_limit is not None:
            sched.set_pool_limit(POOL_BASE + p, *pool_limit)
            pool_limits[POOL_BASE + p] = pool_limit[0]
        for limit, burst, account in dids:
            did_id = len(did_ids) + 1
            sched.set_did(
                did_id, POOL_BASE + p, limit, burst, account_id=None if account is None else ACCOUNT_BASE + account
            )
            did_ids.append(did_id)
    sim = Sim(sched, delays)
    order: dict[int, list[int]] = defaultdict(list)
    seq = itertools.count()
    for gap, index, count, cost, pop_limit in ops:
        sim.step_to(sim.now + gap, pop_limit)
        did = did_ids[index % len(did_ids)]
        for _ in range(count):
            item = next(seq)
            sched.push(did, min(cost, sched.max_cost(did)), item, sim.now)
            order[did].append(item)
        assert_parking_consistent(sched)
    sim.drain()
    assert_parking_consistent(sched)
    payloads = [s.decision.payload for s in sim.sent]
    assert sorted(payloads) == list(range(next(seq))), "an item was lost or sent twice"
    for did, items in order.items():
        assert [s.decision.payload for s in sim.sent if s.decision.did_id == did] == items, f"DID {did} broke FIFO"
    assert_all_windows(sim, pool_limits, account_limits, actual=False)
    assert_all_windows(sim, pool_limits, account_limits, actual=True)


# ---- throughput under a binding gate ------------------------------------------------------------------------------


def backlog(sched: Scheduler[int], dids: list[int], per_did: int) -> None:
    seq = itertools.count()
    for _ in range(per_did):
        for did in dids:
            sched.push(did, 1, next(seq), 0.0)


def test_pool_limit_is_reached_when_binding() -> None:
    """10 DIDs at 60/min (600/min together) behind a 120/min pool: over 10 minutes ≥ 95 % of the pool limit."""
    sched: Scheduler[int] = Scheduler()
    dids = list(range(1, 11))
    for did in dids:
        sched.set_did(did, POOL_BASE, 60)
    sched.set_pool_limit(POOL_BASE, 120, burst=2)
    backlog(sched, dids, 200)
    sim = Sim(sched)
    sim.step_to(600.0)
    sent = len(sim.sent)
    assert sent >= 0.95 * 120 * 10
    assert_all_windows(sim, {POOL_BASE: 120}, {}, actual=False)


def test_account_limit_is_reached_when_binding() -> None:
    """Two pools, 20 DIDs at 120/min each (40/s) on one 10/s account: ≥ 95 % of the account limit over 10 min."""
    sched: Scheduler[int] = Scheduler()
    dids = list(range(1, 21))
    for did in dids:
        sched.set_did(did, POOL_BASE + did % 2, 120, account_id=ACCOUNT_BASE)
    sched.set_account_limit(ACCOUNT_BASE, 10)
    backlog(sched, dids, 400)
    sim = Sim(sched)
    sim.step_to(600.0)
    assert len(sim.sent) >= 0.95 * 10 * 600
    assert_all_windows(sim, {}, {ACCOUNT_BASE: 10}, actual=False)


def test_parked_dids_share_the_pool_fairly() -> None:
    """A 60/min pool over 6 DIDs of 60/min with equal backlogs: sends spread evenly across the DIDs."""
    sched: Scheduler[int] = Scheduler()
    dids = list(range(1, 7))
    for did in dids:
        sched.set_did(did, POOL_BASE, 60, burst=3)
    sched.set_pool_limit(POOL_BASE, 60)
    backlog(sched, dids, 200)
    sim = Sim(sched)
    sim.step_to(600.0)
    counts = [sum(1 for s in sim.sent if s.decision.did_id == did) for did in dids]
    assert sum(counts) >= 0.95 * 600
    assert max(counts) <= min(counts) + 2
    # Round robin: any 6 consecutive sends come from 6 different DIDs.
    seq = [s.decision.did_id for s in sim.sent]
    assert all(len(set(seq[i : i + 6])) == 6 for i in range(len(seq) - 6))


def test_fair_with_pool_and_account_gates_together() -> None:
    """Both gates binding (pool 30/min, account 1/s) over 8 DIDs in two pools: no DID starves, the gated pool's
    DIDs share evenly, the account is used fully. (The account's FIFO holds one DID of the gated pool at a time,
    so that pool gets one turn per round of the account's queue: fairness is per queue, not per pool.)"""
    sched: Scheduler[int] = Scheduler()
    dids = list(range(1, 9))
    for did in dids:
        sched.set_did(did, POOL_BASE + did % 2, 60, account_id=ACCOUNT_BASE)
    sched.set_pool_limit(POOL_BASE, 30)
    sched.set_account_limit(ACCOUNT_BASE, 1)
    backlog(sched, dids, 1000)
    sim = Sim(sched)
    sim.step_to(600.0)
    counts = [sum(1 for s in sim.sent if s.decision.did_id == did) for did in dids]
    assert min(counts) >= 0.2 * max(counts)
    gated = counts[1::2]  # DIDs 2, 4, 6, 8
    assert max(gated) <= min(gated) + 2
    assert len(sim.sent) >= 0.95 * 600 / (1 + ACCOUNT_GUARD)
    assert_all_windows(sim, {POOL_BASE: 30}, {ACCOUNT_BASE: 1}, actual=False)


# ---- runtime changes ---------------------------------------------------------------------------------------------


def test_removing_a_pool_limit_releases_parked_dids_promptly() -> None:
    sched: Scheduler[int] = Scheduler()
    dids = list(range(1, 6))
    for did in dids:
        sched.set_did(did, POOL_BASE, 60)
    sched.set_pool_limit(POOL_BASE, 6)
    backlog(sched, dids, 100)
    sim = Sim(sched)
    sim.step_to(30.0)
    assert len(sim.sent) <= 6
    assert len(sched.pool_gates[POOL_BASE].parked) >= 4
    sched.set_pool_limit(POOL_BASE, None)
    assert POOL_BASE not in sched.pool_gates
    assert all(s.parked is None for s in sched.dids.values())
    nxt = sched.next_due()
    assert nxt is not None and nxt <= 30.0 + 1.0
    before = len(sim.sent)
    sim.step_to(31.0)
    assert {s.decision.did_id for s in sim.sent[before:]} == set(dids)  # every DID at its own pace again
    sim.step_to(90.0)
    assert len(sim.sent) - before >= 5 * 59  # 60/min per DID, no pool cap any more
    sim.drain()
    assert sorted(s.decision.payload for s in sim.sent) == list(range(500))


def test_pool_limit_change_keeps_history_and_reschedules() -> None:
    sched: Scheduler[int] = Scheduler(guard=0.0)
    for did in (1, 2):
        sched.set_did(did, POOL_BASE, 60, burst=10)
    sched.set_pool_limit(POOL_BASE, 10, burst=10)
    backlog(sched, [1, 2], 10)
    assert len(sched.pop_due(0.0)) == 10  # the pool's burst
    assert sched.pop_due(30.0) == []
    sched.set_pool_limit(POOL_BASE, 5)  # lower: the 10 sends at 0 still fill the window
    assert sched.pop_due(59.0) == []
    sched.set_pool_limit(POOL_BASE, 20, burst=20)  # higher: 10 more fit in the window right away
    assert len(sched.pop_due(59.0)) == 10
    assert sched.pool_gates[POOL_BASE].limiter.window_count(59.0) == 20
    assert sched.queued == 0


def test_disable_finds_parked_dids() -> None:
    sched: Scheduler[int] = Scheduler()
    for did in (1, 2, 3):
        sched.set_did(did, POOL_BASE, 60)
    sched.set_pool_limit(POOL_BASE, 1)
    backlog(sched, [1, 2, 3], 3)
    (first,) = sched.pop_due(0.0)
    gate = sched.pool_gates[POOL_BASE]
    assert first.did_id == 1 and list(gate.parked) == [2, 3]
    held = sched.disable_did(2)
    assert [p for _, p in held] == [1, 4, 7]
    assert list(gate.parked) == [3] and sched.dids[2].parked is None
    assert_parking_consistent(sched)
    sched.set_pool_limit(POOL_BASE, None)
    sim = Sim(sched)
    sim.drain()
    assert sorted(s.decision.payload for s in sim.sent) == [2, 3, 5, 6, 8]
    assert all(s.decision.did_id != 2 for s in sim.sent)


def test_retying_a_parked_did_to_another_account_unparks_it() -> None:
    sched: Scheduler[int] = Scheduler()
    sched.set_account_limit(ACCOUNT_BASE, 1)
    sched.set_account_limit(ACCOUNT_BASE + 1, 100)
    sched.set_did(1, POOL_BASE, 600, account_id=ACCOUNT_BASE)
    sched.set_did(2, POOL_BASE, 600, account_id=ACCOUNT_BASE)
    backlog(sched, [1, 2], 2)
    assert [d.did_id for d in sched.pop_due(0.0)] == [1]
    assert sched.dids[2].parked is sched.account_gates[ACCOUNT_BASE]
    sched.set_did(2, POOL_BASE, 600, account_id=ACCOUNT_BASE + 1)
    assert sched.dids[2].parked is None
    assert_parking_consistent(sched)
    assert [d.did_id for d in sched.pop_due(0.0)] == [2]
    assert sched.account_gates[ACCOUNT_BASE + 1].limiter.window_count(0.0) == 1


def test_max_cost_and_confirm_include_gates() -> None:
    sched: Scheduler[int] = Scheduler(guard=0.0)
    sched.set_did(1, POOL_BASE, 6000, account_id=ACCOUNT_BASE)
    assert sched.max_cost(1) == 6000
    sched.set_pool_limit(POOL_BASE, 40, burst=40)
    sched.set_account_limit(ACCOUNT_BASE, 7, burst=7)
    assert sched.max_cost(1) == 7
    sched.push(1, 5, 0, 0.0)
    (d,) = sched.pop_due(0.0)
    sched.confirm(d, 0.5)
    account = sched.account_gates[ACCOUNT_BASE].limiter
    pool = sched.pool_gates[POOL_BASE].limiter
    assert list(account.ledger) == [(0.5, 5)] and list(pool.ledger) == [(0.5, 5)]
    sched.push(1, 5, 1, 0.0)
    assert sched.pop_due(1.2) == []  # the account window runs from the actual time 0.5
    assert sched.next_due() == pytest.approx(0.5 + ACCOUNT_WINDOW)
    assert [x.payload for x in sched.pop_due(1.5)] == [1]


def test_retry_too_big_for_a_gate_goes_back() -> None:
    sched: Scheduler[int] = Scheduler()
    sched.set_did(1, POOL_BASE, 60)
    sched.set_pool_limit(POOL_BASE, 3, burst=3)
    sched.push_later(1, 5, 7, 1.0)
    assert sched.pop_due(1.0) == []
    assert sched.orphans == [7]
    assert sched.queued == 0


# ---- scale -------------------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_scale_10k_dids_behind_a_pool_limit() -> None:
    """10,000 DIDs of 60/min (10,000/min together) behind a 6,000/min pool, 10 items each: 100,000 decisions,
    with one due entry per DID or gate at most (parked DIDs are not re-pushed while they wait)."""
    n, per_did = 10_000, 10
    sched: Scheduler[int] = Scheduler()
    for did in range(1, n + 1):
        sched.set_did(did, POOL_BASE, 60, burst=2)
    sched.set_pool_limit(POOL_BASE, 6_000, burst=10)
    gate: Gate = sched.pool_gates[POOL_BASE]
    start = time.perf_counter()
    backlog(sched, list(range(1, n + 1)), per_did)
    decided = 0
    pops = 0
    max_heap = 0
    while True:
        nxt = sched.next_due()
        if nxt is None:
            break
        out = sched.pop_due(nxt)
        pops += 1
        decided += len(out)
        max_heap = max(max_heap, len(sched.due))
    elapsed = time.perf_counter() - start
    assert decided == n * per_did
    assert sched.queued == 0 and not gate.parked
    assert max_heap <= n + 2
    assert pops <= 2 * decided  # no churn: about one pop per decision
    assert gate.limiter.tat >= (n * per_did - 10) * 60 / 6_000 - 1e-6  # the pool paced all of it
    assert elapsed < 10.0, f"{elapsed:.1f}s"


def test_account_window_constants() -> None:
    assert ACCOUNT_WINDOW == 1.0
    sched: Scheduler[int] = Scheduler()
    sched.set_account_limit(1, 10)
    assert sched.account_gates[1].limiter.window == pytest.approx(1.0 + ACCOUNT_GUARD)
    assert math.isclose(sched.account_gates[1].limiter.interval, 0.1)
    sched.set_account_limit(1, None)
    assert not sched.account_gates
