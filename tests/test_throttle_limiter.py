"""DidLimiter on an injected clock (plain floats, never sleeping): the carrier's window rule, throughput, burst,
restamping, and the small contracts (ready_at >= now, window_count).

Window semantics used by every check, the same float arithmetic the ledger uses: a send at *s* still counts at
time *x* iff ``s + window > x``; the window starting at a send *s* is ``[s, s + window)``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.throttle.limiter import DEFAULT_GUARD, DEFAULT_WINDOW, DidLimiter
from tests.helpers.windows import Send, max_window_load

PROPS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
CARRIER_WINDOW = DEFAULT_WINDOW  # the carrier's rule: at most `limit` segments in any 60 s window
GUARDS = (0.0, DEFAULT_GUARD)


def brute_window_load(sends: Sequence[Send], window: float) -> int:
    """The quadratic definition, to check the checker."""
    return max((sum(c for t, c in sends if s <= t < s + window) for s, _ in sends), default=0)


def assert_window_rule(sends: Sequence[Send], limiter: DidLimiter) -> None:
    """The carrier's 60 s rule and the stricter 60 s + guard rule the ledger enforces."""
    assert max_window_load(sends, CARRIER_WINDOW) <= limiter.limit
    assert max_window_load(sends, limiter.window) <= limiter.limit


def backlogged(limiter: DidLimiter, cost: int, duration: float) -> list[Send]:
    """A DID that always has work: every send leaves at the earliest moment the limiter allows."""
    sends: list[Send] = []
    now = 0.0
    while True:
        t = limiter.ready_at(cost, now)
        assert t >= now
        if t >= duration:
            return sends
        limiter.record(cost, t)
        sends.append((t, cost))
        now = t


# ---- the checker itself ------------------------------------------------------------------------------------


@PROPS
@given(
    st.lists(st.tuples(st.floats(0, 200), st.integers(1, 10)), max_size=30),
    st.sampled_from([CARRIER_WINDOW, CARRIER_WINDOW + DEFAULT_GUARD, 1.0]),
)
def test_window_checker_matches_the_definition(sends: list[Send], window: float) -> None:
    assert max_window_load(sends, window) == brute_window_load(sends, window)


def test_window_checker_examples() -> None:
    assert max_window_load([], 60.0) == 0
    assert max_window_load([(0.0, 1), (59.999, 1)], 60.0) == 2
    assert max_window_load([(0.0, 1), (60.0, 1)], 60.0) == 1  # half-open: 60 s apart never share a window
    assert max_window_load([(0.0, 3), (30.0, 2), (60.0, 4)], 60.0) == 6


# ---- construction --------------------------------------------------------------------------------------------


def test_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="limit_per_window"):
        DidLimiter(0)
    with pytest.raises(ValueError, match="burst"):
        DidLimiter(10, burst=0)


def test_burst_is_capped_at_the_limit() -> None:
    limiter = DidLimiter(3, burst=10)
    assert limiter.burst == 3
    for _ in range(3):
        t = limiter.ready_at(1, 0.0)
        assert t == 0.0
        limiter.record(1, t)
    assert limiter.ready_at(1, 0.0) == pytest.approx(DEFAULT_WINDOW + DEFAULT_GUARD)


def test_window_includes_guard() -> None:
    assert DidLimiter(10).window == DEFAULT_WINDOW + DEFAULT_GUARD
    assert DidLimiter(10, guard=0.0).window == DEFAULT_WINDOW
    assert DidLimiter(10, window=1.0, guard=0.5).interval == pytest.approx(0.1)


# ---- the window invariant -----------------------------------------------------------------------------------

gaps = st.one_of(
    st.just(0.0),
    st.floats(0, 2),
    st.floats(0, 90),
    st.sampled_from([0.1, 0.5, 1.0, DEFAULT_WINDOW, DEFAULT_WINDOW + DEFAULT_GUARD, 120.0]),
)


Shape = tuple[int, int, float]  # (limit, burst, guard)
Ops = list[tuple[int, float]]  # (cost, gap since the previous request)
shapes = st.tuples(st.integers(1, 120), st.integers(1, 5), st.sampled_from(GUARDS))


def make(shape: Shape) -> DidLimiter:
    limit, burst, guard = shape
    return DidLimiter(limit, burst=burst, guard=guard)


@st.composite
def traffic(draw: st.DrawFn) -> tuple[Shape, Ops]:
    shape = draw(shapes)
    ops = draw(st.lists(st.tuples(st.integers(1, min(shape[0], 10)), gaps), min_size=1, max_size=200))
    return shape, ops


def _assert_earliest(limiter: DidLimiter, tat_before: float, sends: Sequence[Send], cost: int, t: float) -> None:
    """t > now only because the bucket or the window binds: a moment earlier the window would overflow."""
    if t == tat_before - limiter.tolerance:
        return  # the bucket binds
    just_before = math.nextafter(t, -math.inf)
    held = sum(c for s, c in sends if s + limiter.window > just_before)
    assert held + cost > limiter.limit, "ready_at delayed a send that fitted earlier"


@PROPS
@given(traffic(), st.booleans())
def test_sends_at_ready_at_keep_every_window(setup: tuple[Shape, Ops], wait: bool) -> None:
    """Request times only move forward; each send leaves at ready_at(cost, now). With *wait*, the next request
    comes no earlier than the previous send (a real sender); without it, requests may run ahead of the sends."""
    shape, ops = setup
    limiter = make(shape)
    sends: list[Send] = []
    now = 0.0
    for cost, gap in ops:
        now += gap
        if wait and sends:
            now = max(now, sends[-1][0])
        tat_before = limiter.tat
        t = limiter.ready_at(cost, now)
        assert t >= now
        assert not sends or t >= sends[-1][0], "sends must come out in time order"
        if t > now:
            _assert_earliest(limiter, tat_before, sends, cost, t)
        if wait:
            assert limiter.ready_at(cost, t) == t  # asking again at the granted time grants it (pop_due relies on it)
        limiter.record(cost, t)
        sends.append((t, cost))
        if wait:
            count = limiter.window_count(t)
            assert count == sum(c for s, c in sends if s + limiter.window > t)
            assert count <= limiter.limit
    assert_window_rule(sends, limiter)
    # A full window after the last send, the DID is free again for anything up to its limit.
    free_at = sends[-1][0] + limiter.window
    assert limiter.ready_at(limiter.limit, free_at) == free_at
    assert limiter.window_count(free_at) == 0


@PROPS
@given(shapes, st.floats(0, 1e6))
def test_ready_at_never_before_now(shape: Shape, start: float) -> None:
    limiter = make(shape)
    limit = limiter.limit
    assert limiter.ready_at(1, start) == start  # idle
    limiter.record(limit, start)
    for now in (start, start + 0.5, start + 30.0, start + 1000.0):
        for cost in {1, limit}:
            assert limiter.ready_at(cost, now) >= now


def test_window_count() -> None:
    limiter = DidLimiter(10, burst=10, guard=0.0)
    assert limiter.window_count(0.0) == 0
    limiter.record(3, 0.0)
    limiter.record(2, 10.0)
    assert limiter.window_count(10.0) == 5
    assert limiter.window_count(59.999) == 5
    assert limiter.window_count(60.0) == 2  # the send at 0 left the window [0, 60)
    assert limiter.window_count(69.999) == 2
    assert limiter.window_count(70.0) == 0
    assert not limiter.ledger


def test_window_count_with_guard() -> None:
    limiter = DidLimiter(10, burst=10)
    limiter.record(4, 1.0)
    assert limiter.window_count(61.0) == 4  # still inside 60 s + guard
    assert limiter.window_count(1.0 + limiter.window) == 0


def test_multi_segment_after_single_cannot_overflow_the_window() -> None:
    """The case a bucket alone gets wrong: 9 single segments, then a 5-segment message."""
    limiter = DidLimiter(10, burst=10, guard=0.0)
    sends: list[Send] = []
    for _ in range(9):
        t = limiter.ready_at(1, 0.0)
        limiter.record(1, t)
        sends.append((t, 1))
    t = limiter.ready_at(5, 0.0)
    assert t == DEFAULT_WINDOW  # must wait for the first four singles to leave the window
    limiter.record(5, t)
    sends.append((t, 5))
    assert_window_rule(sends, limiter)


# ---- burst -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("burst", [1, 2, 3, 5])
@pytest.mark.parametrize("limit", [7, 12, 60])
def test_burst_lets_b_sends_go_at_once(limit: int, burst: int) -> None:
    limiter = DidLimiter(limit, burst=burst)
    start = 1000.0
    times: list[float] = []
    for _ in range(burst + 2):
        t = limiter.ready_at(1, start)
        limiter.record(1, t)
        times.append(t)
    # "At once" up to float rounding: the bucket adds the interval send by send, so with an interval like 60/7
    # the b-th send of a burst can come out 1 ulp (~1e-13 s) after the first.
    assert times[:burst] == pytest.approx([start] * burst, rel=0, abs=1e-9)
    # After the burst the bucket spaces sends one interval apart.
    assert times[burst] == pytest.approx(start + limiter.interval)
    assert times[burst + 1] == pytest.approx(start + 2 * limiter.interval)


def test_burst_counts_segments() -> None:
    limiter = DidLimiter(60, burst=4)  # 4 segments at once
    t1 = limiter.ready_at(2, 0.0)
    limiter.record(2, t1)
    t2 = limiter.ready_at(2, 0.0)
    limiter.record(2, t2)
    t3 = limiter.ready_at(2, 0.0)
    assert (t1, t2) == (0.0, 0.0)
    assert t3 == pytest.approx(limiter.interval)


def test_burst_refills_after_idle() -> None:
    limiter = DidLimiter(60, burst=3)
    for now in (0.0, 500.0):
        for _ in range(3):
            t = limiter.ready_at(1, now)
            assert t == now
            limiter.record(1, t)
        assert limiter.ready_at(1, now) > now


def test_burst_one_spaces_evenly() -> None:
    limiter = DidLimiter(30, burst=1, guard=0.0)  # one segment every 2 s
    sends = backlogged(limiter, 1, 30.0)
    assert [t for t, _ in sends] == pytest.approx([2.0 * i for i in range(15)])


# ---- throughput ---------------------------------------------------------------------------------------------


def best_per_window(limit: int, cost: int) -> int:
    """Most segments of *cost*-segment messages any 60 s window can hold: whole messages only."""
    return (limit // cost) * cost


@pytest.mark.parametrize("guard", GUARDS)
@pytest.mark.parametrize(
    ("limit", "cost", "burst"),
    [
        (1, 1, 1),
        (6, 1, 1),
        (60, 1, 1),
        (60, 1, 5),
        (120, 1, 1),
        (100, 1, 3),
        (60, 2, 1),
        (60, 3, 2),
        (120, 4, 1),
        (120, 10, 5),
        (10, 10, 1),
        (30, 5, 5),
        (90, 6, 3),
    ],
)
def test_backlogged_did_reaches_its_limit(limit: int, cost: int, burst: int, guard: float) -> None:
    """Over 10 minutes a DID that always has work sends >= 99 % of its limit (single or uniform multi-segment)."""
    assert limit % cost == 0
    limiter = DidLimiter(limit, burst=burst, guard=guard)
    sends = backlogged(limiter, cost, 600.0)
    assert_window_rule(sends, limiter)
    segments = sum(c for _, c in sends)
    assert segments >= 0.99 * limit * 10
    assert segments <= limit * 10


@PROPS
@given(st.integers(1, 120), st.integers(1, 10), st.integers(1, 5), st.sampled_from(GUARDS))
def test_backlogged_throughput_any_shape(limit: int, cost: int, burst: int, guard: float) -> None:
    """Any uniform message size: >= 99 % of what the 60 s rule allows for that size (whole messages only)."""
    cost = min(cost, limit)
    limiter = DidLimiter(limit, burst=burst, guard=guard)
    sends = backlogged(limiter, cost, 600.0)
    assert_window_rule(sends, limiter)
    assert sum(c for _, c in sends) >= 0.99 * best_per_window(limit, cost) * 10


def test_long_run_steady_rate() -> None:
    """One hour backlogged at 60/min with the default guard: the steady rate is limit per (60 s + guard)."""
    limiter = DidLimiter(60)
    sends = backlogged(limiter, 1, 3600.0)
    assert_window_rule(sends, limiter)
    rate = len(sends) / 60.0
    assert rate >= 0.995 * 60
    assert rate == pytest.approx(60 * DEFAULT_WINDOW / (DEFAULT_WINDOW + DEFAULT_GUARD), rel=2e-3)


# ---- restamp -----------------------------------------------------------------------------------------------

delays = st.one_of(st.just(0.0), st.floats(0, 2), st.sampled_from([0.5, 1.0, 2.0]))


def simulate_with_delays(
    limiter: DidLimiter, ops: Sequence[tuple[int, float]], delay_cycle: Sequence[float]
) -> list[Send]:
    """Decide at ready_at; the send really leaves *delay* later and is restamped at that moment.

    Events run in time order: a restamp due at or before a decision is applied first, so every decision sees
    exactly the sends that have really left by then (the others still at their decision time). After every
    step the ledger must hold exactly the model: each send at its actual time once restamped, else at its
    decision time, minus what left the window. Returns the (actual time, segments) of every send.
    """
    pending: list[tuple[float, int, float, int]] = []  # (actual, seq, decided, cost)
    stamps: list[Send] = []  # the model ledger, by seq: (time the limiter should hold, segments)
    actual_sends: list[Send] = []
    pruned_at = -math.inf  # the latest time the limiter pruned at

    def check_ledger() -> None:
        expected = sorted(e for e in stamps if e[0] + limiter.window > pruned_at)
        assert sorted(limiter.ledger) == expected
        assert list(limiter.ledger) == sorted(limiter.ledger, key=lambda e: e[0])  # time order for pruning
        assert limiter.in_window == sum(c for _, c in expected)

    def apply_restamps(until: float) -> None:
        while pending and pending[0][0] <= until:
            actual, seq, decided, cost = heapq.heappop(pending)
            limiter.restamp(decided, actual, cost)
            stamps[seq] = (actual, cost)
            actual_sends.append((actual, cost))
            check_ledger()

    now = 0.0
    for i, (cost, gap) in enumerate(ops):
        now += gap
        apply_restamps(now)  # before ready_at(now) prunes: a send must be moved before it can be forgotten
        while True:
            t = limiter.ready_at(cost, now)
            pruned_at = now
            assert t >= now
            if pending and pending[0][0] <= t:
                now = max(now, pending[0][0])
                apply_restamps(now)
                continue
            break
        limiter.record(cost, t)
        now = t
        heapq.heappush(pending, (t + delay_cycle[i % len(delay_cycle)], len(stamps), t, cost))
        stamps.append((t, cost))
        check_ledger()
    apply_restamps(math.inf)
    return actual_sends


@PROPS
@given(traffic(), st.lists(delays, min_size=1, max_size=20))
def test_restamp_keeps_the_window_on_actual_times(setup: tuple[Shape, Ops], delay_cycle: list[float]) -> None:
    shape, ops = setup
    limiter = make(shape)
    actual_sends = simulate_with_delays(limiter, ops, delay_cycle)
    assert len(actual_sends) == len(ops)
    assert_window_rule(actual_sends, limiter)
    assert [t for t, _ in limiter.ledger] == sorted(t for t, _ in limiter.ledger)


def test_restamp_moves_the_send_of_the_given_size() -> None:
    """Two sends decided at the same instant (burst) with different sizes: restamp must move the right one.

    Regression: restamp used to move the last ledger entry stamped *decided_at*, whatever its size, so the
    3-segment send that left late was kept at 0 and left the window 2 s too early.
    """
    limiter = DidLimiter(5, burst=4, guard=0.0)
    limiter.record(3, limiter.ready_at(3, 0.0))
    limiter.record(1, limiter.ready_at(1, 0.0))
    assert list(limiter.ledger) == [(0.0, 3), (0.0, 1)]
    limiter.restamp(0.0, 2.0, 3)  # the 3-segment send really left at 2.0; the 1-segment one at 0.0
    assert sorted(limiter.ledger) == [(0.0, 1), (2.0, 3)]
    t = limiter.ready_at(4, 2.0)
    assert t >= 2.0 + DEFAULT_WINDOW  # 3 + 4 > 5 while the 3-segment send is in the window
    assert_window_rule([(0.0, 1), (2.0, 3), (t, 4)], limiter)


def test_restamp_noop_cases() -> None:
    limiter = DidLimiter(10, burst=10)
    limiter.record(2, 5.0)
    before = (list(limiter.ledger), limiter.tat)
    limiter.restamp(5.0, 5.0, 2)  # not later
    limiter.restamp(5.0, 4.0, 2)  # earlier: ignored
    limiter.restamp(3.0, 9.0, 2)  # no such decision
    limiter.restamp(5.0, 9.0, 7)  # no send of that size at that time
    assert (list(limiter.ledger), limiter.tat) == before


def test_restamp_reorders_and_extends_the_bucket() -> None:
    limiter = DidLimiter(60, burst=5, guard=0.0)
    for _ in range(3):
        limiter.record(1, 0.0)
    limiter.record(1, 0.5)
    limiter.restamp(0.0, 1.5, 1)  # overtakes the decision at 0.5
    assert list(limiter.ledger) == [(0.0, 1), (0.0, 1), (0.5, 1), (1.5, 1)]
    assert limiter.tat >= 1.5 + limiter.interval
    assert limiter.window_count(60.0) == 2
    assert limiter.window_count(60.5) == 1
    assert limiter.window_count(61.5) == 0


def test_restamp_without_size_moves_some_send_at_that_time() -> None:
    limiter = DidLimiter(10, burst=10)
    limiter.record(1, 0.0)
    limiter.restamp(0.0, 1.0)
    assert list(limiter.ledger) == [(1.0, 1)]


@st.composite
def bursty_traffic(draw: st.DrawFn) -> tuple[Shape, Ops]:
    """Small limits, big bursts, mixed sizes, requests bunched together: many sends share a decision instant."""
    limit = draw(st.integers(2, 12))
    shape = (limit, draw(st.integers(2, 5)), draw(st.sampled_from(GUARDS)))
    gap = st.one_of(st.just(0.0), st.just(0.0), st.floats(0, 70))
    ops = draw(st.lists(st.tuples(st.integers(1, min(limit, 5)), gap), min_size=2, max_size=60))
    return shape, ops


@settings(PROPS, max_examples=500)
@given(bursty_traffic(), st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0]), min_size=1, max_size=8))
def test_restamp_bursts_of_mixed_sizes(setup: tuple[Shape, Ops], delay_cycle: list[float]) -> None:
    shape, ops = setup
    limiter = make(shape)
    assert_window_rule(simulate_with_delays(limiter, ops, delay_cycle), limiter)


def test_settle_moves_the_window_entry_to_the_answer_but_keeps_the_spacing() -> None:
    lim = DidLimiter(2, window=60.0, guard=0.0)  # 2 per minute: one every 30 s
    lim.record(1, 0.0)
    lim.restamp(0.0, 0.7, 1, spacing=False)  # the carrier answered 0.7 s after we sent
    assert lim.ready_at(1, 0.0) == 30.0  # spacing unchanged: the bucket still says 30 s
    lim.record(1, 30.0)
    # The window now counts the first send at 0.7 (its latest possible carrier time), not 0.0.
    assert lim.ready_at(1, 60.0) == 60.7
