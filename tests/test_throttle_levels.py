"""10DLC levels on an injected clock: a campaign's throughput (segments/s over its DIDs) and a brand's daily cap
(segments per carrier-day), in one scheduler and split over two workers by their shares; the carrier day's bounds
(midnight US Pacific, daylight saving included) and the daily cap's own rules.

Driven by tests/helpers/sim.py like tests/test_throttle_hierarchy.py: time only moves forward, pop_due() is called at
next_due(). Carrier days are injected (ShortDay: days of a few dozen seconds) so that many of them pass in one run.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.dispatch.leases import cap_share, reserve_share
from engine.throttle import DEFAULT_GUARD, DEFAULT_WINDOW, Scheduler
from engine.throttle.daily import BULK, EXEMPT, URGENT, CarrierDay, DailyCap
from tests.helpers.sim import Sent, Sim
from tests.helpers.windows import max_window_load

PROPS = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
LA = ZoneInfo("America/Los_Angeles")
POOL = 100
CAMPAIGN_BASE = 500
BRAND_BASE = 900
EPS = 1e-9


class ShortDay(CarrierDay):
    """Carrier days of *length* seconds from time 0: the scheduler only asks a CarrierDay for bounds."""

    def __init__(self, length: float) -> None:
        super().__init__()
        self.length = length

    def bounds(self, t: float) -> tuple[float, float]:
        start = math.floor(t / self.length) * self.length
        return start, start + self.length


# ---- the carrier day and the daily cap ---------------------------------------------------------------------------


def test_carrier_day_is_midnight_pacific_and_follows_daylight_saving() -> None:
    day = CarrierDay("America/Los_Angeles")
    cases = [
        (datetime(2026, 1, 15, 12, tzinfo=LA), datetime(2026, 1, 15, tzinfo=LA), 24),
        (datetime(2026, 3, 8, 12, tzinfo=LA), datetime(2026, 3, 8, tzinfo=LA), 23),  # clocks go forward at 2 am
        (datetime(2026, 11, 1, 12, tzinfo=LA), datetime(2026, 11, 1, tzinfo=LA), 25),  # and back
        (datetime(2026, 7, 4, 23, 59, 59, tzinfo=LA), datetime(2026, 7, 4, tzinfo=LA), 24),
    ]
    for moment, midnight, hours in cases:
        start, end = day.bounds(moment.timestamp())
        assert start == midnight.timestamp() and end - start == hours * 3600
    # Midnight in Los Angeles is 08:00 UTC in winter, 07:00 in summer.
    assert day.bounds(datetime(2026, 1, 15, 7, 59, 59, tzinfo=UTC).timestamp())[1] == datetime(
        2026, 1, 15, 8, tzinfo=UTC).timestamp()
    assert day.bounds(datetime(2026, 7, 15, 7, 0, 0, tzinfo=UTC).timestamp())[0] == datetime(
        2026, 7, 15, 7, tzinfo=UTC).timestamp()


def test_carrier_day_on_an_injected_clock() -> None:
    """The scheduler's clock is not the wall clock: its time 0 is 10 s before a Pacific midnight here."""
    wall0 = datetime(2026, 1, 15, 8, tzinfo=UTC).timestamp() - 10.0
    day = CarrierDay(to_wall=lambda t: t + wall0)
    assert day.bounds(0.0) == pytest.approx((-86_390.0, 10.0))
    assert day.bounds(10.0) == pytest.approx((10.0, 86_410.0))


def test_daily_cap_classes_reserve_reset_carry_and_exhaustion() -> None:
    cap = DailyCap(10, 3, ShortDay(100.0), guard=0.5)
    assert cap.allows(7, BULK, 1.0) and not cap.allows(8, BULK, 1.0)
    cap.record(7, 1.0)
    assert not cap.allows(1, BULK, 2.0) and cap.allows(3, URGENT, 2.0) and not cap.allows(4, URGENT, 2.0)
    assert cap.allows(1000, EXEMPT, 2.0)
    assert cap.blocked_until(1, BULK, 2.0) == 100.0 and cap.blocked_until(1, URGENT, 2.0) == 2.0
    cap.record(3, 3.0)
    assert not cap.allows(1, URGENT, 3.0) and cap.blocked_until(1, URGENT, 3.0) == 100.0
    assert cap.allows(7, BULK, 100.0) and cap.used == 0  # a new day
    cap.record(2, 199.6)  # within the guard of midnight: the carrier may count it tomorrow
    cap.roll(200.0)
    assert cap.used == 2
    cap.record(1, 250.0)
    cap.late(1, 250.0, 299.9)  # reached the carrier within the guard of midnight: tomorrow's too
    cap.roll(300.0)
    assert cap.used == 1
    cap.record(1, 350.0)
    cap.roll(400.0)
    cap.late(1, 350.0, 400.2)  # learnt after midnight that yesterday's send reached the carrier today
    assert cap.used == 1
    cap.exhaust(450.0)  # the carrier said 30023 until 450
    assert not cap.allows(1, URGENT, 410.0) and cap.allows(1, EXEMPT, 410.0)
    assert cap.blocked_until(1, BULK, 410.0) == 500.0 and cap.allows(1, URGENT, 451.0)
    replay = DailyCap(5, 0, ShortDay(100.0))
    replay.record(3, 120.0)
    replay.record(4, 50.0)  # yesterday's: not today's count
    assert replay.used == 3


class JitteryDay(ShortDay):
    """Day bounds through a wall-clock mapping read at different moments: off by a few microseconds each time."""

    def __init__(self, length: float) -> None:
        super().__init__(length)
        self.calls = 0

    def bounds(self, t: float) -> tuple[float, float]:
        self.calls += 1
        jitter = (self.calls % 3 - 1) * 1e-6
        start, end = super().bounds(t - jitter)
        return start + jitter, end + jitter


def test_a_replay_at_the_days_start_counts_today_whatever_the_jitter() -> None:
    """What a brand sent today, replayed as one sum at the day's start (a worker starting), is today's count even when
    the day's bounds come back a microsecond apart (the replay may land in the last instant of the day before)."""
    for shift in (-1e-6, 0.0, 1e-6):
        cap = DailyCap(30, 5, JitteryDay(100.0), guard=0.2)
        cap.record(20, 100.0 + shift)
        assert cap.allows(5, BULK, 150.0) and not cap.allows(6, BULK, 150.0)
        assert cap.used == 20


# ---- invariants over simulated sends ------------------------------------------------------------------------------


def _campaign_of(sched: Scheduler[int], did: int) -> int | None:
    return sched.dids[did].campaign_id


def assert_campaign_rates(sends: Iterable[Sent], campaigns: dict[int, int], campaign_of: dict[int, int | None],
                          *, actual: bool) -> None:
    """Per campaign (limit per 60 s, spaced evenly at limit/60 segments/s): no 60-s window over the limit; on decision
    times each send starts only when the previous one's segments have had their time (cost / rate)."""
    per: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for s in sends:
        campaign = campaign_of[s.decision.did_id]
        if campaign is not None:
            per[campaign].append((s.actual if actual else s.decision.decided_at, s.decision.cost))
    for campaign, limit in campaigns.items():
        sends_of = sorted(per[campaign])
        assert max_window_load(sends_of, DEFAULT_WINDOW) <= limit, f"campaign {campaign} over its limit"
        if actual:
            continue
        rate = limit / 60.0
        for (t0, c0), (t1, _c1) in itertools.pairwise(sends_of):
            assert t1 >= t0 + c0 / rate - 1e-6, f"campaign {campaign} faster than {rate}/s"


def assert_daily_caps(sends: Iterable[Sent], brands: dict[int, tuple[int, int]], brand_of: dict[int, int | None],
                      day: ShortDay, exempt: set[int], urgent: set[int]) -> None:
    """Per brand and carrier day, in decision order: every send the cap may hold went only while the day's count
    (exempt sends included) left room for it: the whole cap for urgent work, the cap less the reserve for bulk."""
    per: dict[tuple[int, float], list[Sent]] = defaultdict(list)
    for s in sends:
        brand = brand_of[s.decision.did_id]
        if brand is not None:
            per[(brand, day.bounds(s.decision.decided_at)[0])].append(s)
    for (brand, _start), day_sends in per.items():
        cap, reserve = brands[brand]
        used = 0
        for s in sorted(day_sends, key=lambda x: x.decision.decided_at):
            item = s.decision.payload
            if item not in exempt:
                limit = cap if item in urgent else cap - reserve
                assert used + s.decision.cost <= limit, f"brand {brand} over its daily cap"
            used += s.decision.cost


# ---- one scheduler ---------------------------------------------------------------------------------------------


did_shapes = st.tuples(st.integers(1, 600), st.integers(1, 4), st.one_of(st.none(), st.integers(0, 2)))
gaps = st.one_of(st.just(0.0), st.floats(0, 0.5), st.floats(0, 3), st.floats(0, 40))


@PROPS
@given(
    st.lists(st.sampled_from([60, 120, 180, 300, 15, 75, 225]), min_size=3, max_size=3),
    st.lists(did_shapes, min_size=1, max_size=8),
    st.lists(st.tuples(gaps, st.integers(0, 30), st.integers(1, 8), st.integers(1, 4)), min_size=3, max_size=60),
    st.lists(st.floats(0, 1.0), min_size=1, max_size=4),
)
def test_no_campaign_over_its_rate(
    campaigns: list[int], dids: list[tuple[int, int, int | None]], ops: list[tuple[float, int, int, int]],
    delays: list[float],
) -> None:
    """Random campaigns (segments per minute: 1/s, 2/s, 3/s, 5/s, 0.25/s, 1.25/s, 3.75/s) over random DIDs; sends leave
    up to 1 s late and are confirmed then. Each campaign holds on decision and actual times; nothing lost or twice."""
    sched: Scheduler[int] = Scheduler()
    limits = {CAMPAIGN_BASE + i: limit for i, limit in enumerate(campaigns)}
    for campaign, limit in limits.items():
        sched.set_cap("campaign", campaign, limit)
    campaign_of: dict[int, int | None] = {}
    for i, (limit, burst, index) in enumerate(dids, start=1):
        campaign_of[i] = None if index is None else CAMPAIGN_BASE + index
        sched.set_did(i, POOL, limit, burst, campaign_id=campaign_of[i])
    sim = Sim(sched, delays)
    seq = itertools.count()
    for gap, index, count, cost in ops:
        sim.step_to(sim.now + gap)
        did = index % len(dids) + 1
        for _ in range(count):
            sched.push(did, min(cost, sched.max_cost(did)), next(seq), sim.now)
    sim.drain()
    assert sorted(s.decision.payload for s in sim.sent) == list(range(next(seq)))
    used = {c: limit for c, limit in limits.items() if any(v == c for v in campaign_of.values())}
    assert_campaign_rates(sim.sent, used, campaign_of, actual=False)
    assert_campaign_rates(sim.sent, used, campaign_of, actual=True)


def test_unit_messages_never_exceed_a_campaign_rate_in_any_second() -> None:
    """A 3 segments/s campaign over 20 fast DIDs with a backlog: never more than 3 in any second, and it gets its
    full rate (10 minutes: ≥ 99 %)."""
    sched: Scheduler[int] = Scheduler()
    sched.set_cap("campaign", CAMPAIGN_BASE, 180)
    for did in range(1, 21):
        sched.set_did(did, POOL, 6000, 10, campaign_id=CAMPAIGN_BASE)
    item = itertools.count()
    for _ in range(200):
        for did in range(1, 21):
            sched.push(did, 1, next(item), 0.0)
    sim = Sim(sched)
    sim.step_to(600.0)
    times = [s.decision.decided_at for s in sim.sent]
    assert max_window_load([(t, 1) for t in times], 1.0 - EPS) <= 3
    assert len(times) >= 0.99 * 3 * 600


@PROPS
@given(
    st.lists(st.tuples(st.integers(1, 30), st.integers(0, 29)), min_size=2, max_size=2),  # (cap, reserve) per brand
    st.lists(st.tuples(st.integers(60, 600), st.one_of(st.none(), st.integers(0, 1))), min_size=1, max_size=6),
    st.lists(st.tuples(gaps, st.integers(0, 30), st.integers(1, 6), st.integers(1, 3), st.booleans(), st.booleans()),
             min_size=3, max_size=60),
    st.sampled_from([20.0, 45.0, 100.0]),
    st.lists(st.floats(0, DEFAULT_GUARD), min_size=1, max_size=3),
)
def test_no_brand_over_its_daily_cap(
    caps: list[tuple[int, int]], dids: list[tuple[int, int | None]],
    ops: list[tuple[float, int, int, int, bool, bool]], day_length: float, delays: list[float],
) -> None:
    """Random brands (cap, reserve) over random DIDs; urgent, exempt and bulk work; days of 20-100 s. Whatever the cap
    holds back is taken back and comes again at the next day (as the worker returns it to the queue): every item is
    sent exactly once, none beyond its class's share of a day, and no day of a brand without exempt work goes over
    its cap on the carrier's (actual) times either."""
    day = ShortDay(day_length)
    exempt_items: set[int] = set()
    sched: Scheduler[int] = Scheduler(carrier_day=day, cap_exempt=exempt_items.__contains__)
    brands = {BRAND_BASE + i: (cap, min(reserve, cap - 1)) for i, (cap, reserve) in enumerate(caps)}
    for brand, (cap, reserve) in brands.items():
        sched.set_brand_cap(brand, cap, reserve)
    brand_of: dict[int, int | None] = {}
    for i, (limit, index) in enumerate(dids, start=1):
        brand_of[i] = None if index is None else BRAND_BASE + index
        sched.set_did(i, POOL, limit, brand_id=brand_of[i])
    sim = Sim(sched, delays)
    item = itertools.count()
    urgent_items: set[int] = set()
    pushed: dict[int, tuple[int, int, bool]] = {}
    for gap, index, count, cost, urgent, exempt in ops:
        sim.step_to(sim.now + gap)
        _requeue(sched, pushed)
        did = index % len(dids) + 1
        fits = min(b[0] - b[1] for b in brands.values()) if brand_of[did] is not None else cost
        for _ in range(count):
            n = next(item)
            pushed[n] = (did, min(cost, fits, sched.max_cost(did)), urgent)
            if urgent:
                urgent_items.add(n)
                if exempt:
                    exempt_items.add(n)
            sched.push(did, pushed[n][1], n, sim.now, urgent=urgent)
    for _ in range(10_000):  # drain: what the cap held back comes again the next day
        sim.step_to(math.inf)
        if not _requeue(sched, pushed):
            break
    assert sched.queued == 0 and not sched.capped
    assert sorted(s.decision.payload for s in sim.sent) == list(range(next(item))), "lost or sent twice"
    assert_daily_caps(sim.sent, brands, brand_of, day, exempt_items, urgent_items)
    for brand, (cap, _reserve) in brands.items():
        if any(brand_of[s.decision.did_id] == brand and s.decision.payload in exempt_items for s in sim.sent):
            continue
        per_day: dict[float, int] = defaultdict(int)
        for s in sim.sent:
            if brand_of[s.decision.did_id] == brand:
                per_day[day.bounds(s.actual)[0]] += s.decision.cost
        assert max(per_day.values(), default=0) <= cap, f"brand {brand} over its cap on the carrier's clock"


def _requeue(sched: Scheduler[int], pushed: dict[int, tuple[int, int, bool]]) -> bool:
    """What a daily cap held back comes again when the cap allows it (the worker defers it in the database)."""
    capped = sched.take_capped()
    for payload, until in capped:
        did, cost, urgent = pushed[payload]
        sched.push_later(did, cost, payload, until, urgent=urgent)
    return bool(capped)


def test_a_reached_cap_takes_the_rest_back_and_max_cost_respects_it() -> None:
    day = ShortDay(1000.0)
    sched: Scheduler[int] = Scheduler(carrier_day=day, cap_exempt=lambda p: p >= 100)
    sched.set_brand_cap(BRAND_BASE, 5, 2)
    sched.set_did(1, POOL, 6000, 10, brand_id=BRAND_BASE)
    assert sched.max_cost(1) == 3  # a bulk message bigger than cap - reserve could never go
    for n in range(6):
        sched.push(1, 1, n, 0.0)  # bulk
    sched.push(1, 1, 100, 0.0, urgent=True)  # exempt: goes whatever the cap
    sched.push(1, 1, 50, 0.0, urgent=True)  # urgent: may use the reserve
    sent = [d.payload for d in sched.pop_due(0.0)]
    assert sent == [100, 50, 0]  # urgent first; bulk until 5 - 2 = 3 segments are counted (the exempt one too)
    assert sched.held_until(1, 1, 0.0) == 1000.0  # bulk waits for the next day …
    assert sched.held_until(1, 2, 0.0, urgent=True) == 0.0  # urgent still has room (3 of 5)
    assert sched.held_until(1, 3, 0.0, urgent=True) == 1000.0
    assert sched.held_until(1, 30, 0.0, urgent=True, exempt=True) == 0.0
    assert sched.take_capped() == [(1, 1000.0), (2, 1000.0), (3, 1000.0), (4, 1000.0), (5, 1000.0)]
    assert sched.queued == 0 and not sched.dids[1].queue
    assert sched.brand_usage(BRAND_BASE, 0.0) == (3, 5)
    sched.exhaust_brand(BRAND_BASE, 1000.0)  # the carrier said 30023: urgent waits too
    assert sched.held_until(1, 1, 1.0, urgent=True) == 1000.0


# ---- two workers ------------------------------------------------------------------------------------------------


class Workers:
    """Two schedulers sharing DIDs, a campaign and a brand the way LeaseKeeper shares them: each DID is held by one
    worker; each worker enforces its share of the campaign's and the brand's caps (cap_share, by the DIDs it holds);
    a share shrinks at once (keeping history) and grows only with everyone's recent sends replayed."""

    def __init__(self, day: ShortDay, cap: int, reserve: int, campaign_limit: int,
                 dids: list[tuple[int, bool]]) -> None:
        self.cap, self.reserve, self.campaign_limit = cap, reserve, campaign_limit
        self.workers = [Scheduler[int](carrier_day=day), Scheduler[int](carrier_day=day)]
        self.sims = [Sim(w) for w in self.workers]
        self.limits = {i: limit for i, (limit, _c) in enumerate(dids, start=1)}
        self.campaign_of = {i: CAMPAIGN_BASE if c else None for i, (_l, c) in enumerate(dids, start=1)}
        self.holder = {i: (i - 1) % 2 for i in self.limits}  # the DIDs alternate between the workers
        self.pushed: dict[int, tuple[int, int, bool]] = {}
        for w, sched in enumerate(self.workers):
            for did in self.limits:
                if self.holder[did] == w:
                    sched.set_did(did, POOL + w, self.limits[did], campaign_id=self.campaign_of[did],
                                  brand_id=BRAND_BASE)
            self.apply_shares(w, increase=True)

    @property
    def sent(self) -> list[Sent]:
        return self.sims[0].sent + self.sims[1].sent

    def _current(self, w: int, kind: str) -> int | None:
        sched = self.workers[w]
        if kind == "campaign":
            gate = sched.campaign_gates.get(CAMPAIGN_BASE)
            return gate.limiter.limit if gate is not None else None
        cap = sched.daily.get(BRAND_BASE)
        return cap.cap if cap is not None else None

    def apply_shares(self, w: int, *, increase: bool) -> None:
        sched, now = self.workers[w], self.sims[w].now
        held = {d for d in self.limits if self.holder[d] == w}
        in_campaign = [d for d in self.limits if self.campaign_of[d] is not None]
        for kind, total, members in (("campaign", self.campaign_limit, in_campaign),
                                     ("brand", self.cap, list(self.limits))):
            share = cap_share(total, len(held.intersection(members)), len(members)) if members else None
            kept = reserve_share(self.cap, self.reserve, share) if kind == "brand" and share else 0
            current = self._current(w, kind)
            if not share:
                sched.set_cap(kind, BRAND_BASE if kind == "brand" else CAMPAIGN_BASE, None)
                continue
            key = BRAND_BASE if kind == "brand" else CAMPAIGN_BASE
            if current is not None and share <= current:
                sched.set_cap(kind, key, share, kept)  # a cut applies at once, with the history kept
                continue
            if not increase:
                continue
            sched.set_cap(kind, key, None)
            sched.set_cap(kind, key, share, kept)
            for s in self.sent:  # everyone's sends, as the database has them
                d = s.decision
                if kind == "campaign" and self.campaign_of[d.did_id] and d.decided_at > now - DEFAULT_WINDOW - 5:
                    sched.replay_cap(kind, key, d.cost, d.decided_at)
                if kind == "brand" and d.decided_at >= sched.day_start(now):
                    sched.replay_cap(kind, key, d.cost, d.decided_at)

    def step_to(self, t: float) -> None:
        for sim in self.sims:
            sim.step_to(t)

    def push(self, did: int, cost: int, urgent: bool, n: int) -> None:
        sched = self.workers[self.holder[did]]
        self.pushed[n] = (did, max(1, min(cost, sched.max_cost(did))), urgent)
        sched.push(did, self.pushed[n][1], n, self.sims[0].now, urgent=urgent)

    def move(self, did: int) -> None:
        """*did* goes from its holder to the other worker: the giver's shares shrink first, the taker replays the
        DID's recent sends and grows its shares with everyone's, then gets the DID's queued work."""
        giver, taker = self.holder[did], 1 - self.holder[did]
        now = self.sims[0].now
        back = self.workers[giver].disable_did(did)
        self.holder[did] = taker
        self.apply_shares(giver, increase=False)
        self.workers[taker].set_did(did, POOL + taker, self.limits[did], campaign_id=self.campaign_of[did],
                                    brand_id=BRAND_BASE)
        for s in self.sent:
            if s.decision.did_id == did and s.decision.decided_at > now - DEFAULT_WINDOW - 5:
                self.workers[taker].replay(did, s.decision.cost, s.decision.decided_at)
        self.apply_shares(taker, increase=True)
        for cost, payload in back:
            self.workers[taker].push(did, cost, payload, now, urgent=self.pushed[payload][2])

    def requeue(self) -> bool:
        """What a daily cap held back comes again at the next day, on whoever holds its DID then."""
        moved = False
        for sched in self.workers:
            for payload, until in sched.take_capped():
                did, cost, urgent = self.pushed[payload]
                self.workers[self.holder[did]].push_later(did, cost, payload, until, urgent=urgent)
                moved = True
        return moved


@PROPS
@given(
    st.integers(100, 400),  # the brand's daily cap (per 200-s day: the campaign binds within a minute)
    st.integers(0, 40),  # its reserve
    st.sampled_from([60, 120, 180]),  # the campaign's segments per minute
    st.lists(st.tuples(st.integers(60, 6000), st.booleans()), min_size=2, max_size=8),  # DIDs: limit, in the campaign
    st.lists(st.tuples(gaps, st.integers(0, 30), st.integers(1, 6), st.integers(1, 3), st.booleans()),
             min_size=3, max_size=50),
    st.integers(0, 49),  # the op after which a DID moves from one worker to the other
)
def test_two_workers_share_a_campaign_and_a_brand(
    cap: int, reserve: int, campaign_limit: int, dids: list[tuple[int, bool]],
    ops: list[tuple[float, int, int, int, bool]], move_at: int,
) -> None:
    """Together the two workers never exceed the campaign's rate nor the brand's cap (bulk work never its cap less
    the reserve) in any carrier-day, across a DID moving between them mid-run, and lose nothing."""
    day = ShortDay(200.0)
    pair = Workers(day, cap, reserve, campaign_limit, dids)
    item = itertools.count()
    for step, (gap, index, count, cost, urgent) in enumerate(ops):
        pair.step_to(pair.sims[0].now + gap)
        pair.requeue()
        did = index % len(dids) + 1
        for _ in range(count):
            pair.push(did, cost, urgent, next(item))
        if step == move_at:
            pair.move(did)
    for _ in range(10_000):
        pair.step_to(math.inf)
        if not pair.requeue():
            break
    assert not any(w.orphans or w.queued for w in pair.workers)
    assert sorted(s.decision.payload for s in pair.sent) == list(range(next(item))), "lost or sent twice"
    campaign_sends = [(s.decision.decided_at, s.decision.cost) for s in pair.sent
                      if pair.campaign_of[s.decision.did_id] is not None]
    assert max_window_load(campaign_sends, DEFAULT_WINDOW) <= campaign_limit, "campaign over its limit"
    totals: dict[float, list[int]] = defaultdict(lambda: [0, 0])
    for s in pair.sent:
        bulk = not pair.pushed[s.decision.payload][2]
        totals[day.bounds(s.decision.decided_at)[0]][bulk] += s.decision.cost
    for urgent_segments, bulk_segments in totals.values():
        assert bulk_segments <= cap - reserve, "bulk work over the brand's cap less its reserve"
        assert urgent_segments + bulk_segments <= cap, "brand over its daily cap"
