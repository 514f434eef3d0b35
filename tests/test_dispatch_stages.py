"""The dispatch stages' pure decisions, without Postgres: leases and cap shares, placement, retries, the DID book."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from engine import statuses as sts
from engine.dispatch.claim import servable_apps
from engine.dispatch.dids import Did, DidBook
from engine.dispatch.leases import CapShares, cap_share, plan_leases
from engine.dispatch.place import Pending, place, reroute
from engine.dispatch.record import Accept, Fail, RetryLater, backoff, next_step
from engine.providers import SendResult
from engine.store.topology import CapRow, DidRow
from engine.throttle import Scheduler

# ---- leases -------------------------------------------------------------------------------------------


def test_a_fair_share_per_smsc_giving_back_the_least_busy_first() -> None:
    members = {1: [10, 11, 12, 13], 2: [20, 21, 22]}
    queued = {10: 5, 11: 0, 12: 9, 13: 1}
    plan = plan_leases(members, held={10, 11, 12, 13}, releasing=set(), alive=2, queued_cost=lambda d: queued.get(d, 0))
    assert plan.give_back == [11, 13] and plan.wants == {2: 2}  # ceil(4/2) = 2 kept; ceil(3/2) = 2 wanted
    # DIDs already being handed back do not count as ours.
    plan = plan_leases(members, held={10, 11, 20}, releasing={11}, alive=2, queued_cost=lambda d: 0)
    assert plan.give_back == [] and plan.wants == {1: 1, 2: 1}


@given(st.lists(st.integers(1, 12), min_size=1, max_size=4), st.integers(1, 5), st.data())
def test_lease_plans_converge_on_the_fair_share(sizes: list[int], alive: int, data: st.DataObject) -> None:
    members = {smsc: [smsc * 100 + i for i in range(n)] for smsc, n in enumerate(sizes)}
    every = [d for dids in members.values() for d in dids]
    held = set(data.draw(st.lists(st.sampled_from(every), unique=True)))
    plan = plan_leases(members, held, set(), alive, queued_cost=lambda d: d % 7)
    for smsc, dids in members.items():
        target = math.ceil(len(dids) / alive)
        mine = [d for d in dids if d in held]
        given_back = [d for d in plan.give_back if d in dids]
        assert len(mine) - len(given_back) + plan.wants.get(smsc, 0) == max(target, len(mine) - len(given_back))
        assert len(mine) - len(given_back) <= target
        assert set(given_back) <= set(mine)


@given(st.integers(1, 500), st.integers(1, 50), st.data())
def test_cap_shares_never_add_up_to_more_than_the_cap(cap: int, total: int, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, total), max_size=4)))
    holdings = [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]  # DIDs per worker, summing to total
    shares = [cap_share(cap, held, total) or 0 for held in holdings]
    # Floor shares never add up to more than the cap; a worker holding a DID gets at least 1, so the documented
    # overshoot is one segment per worker whose floor share was 0.
    bumped = sum(1 for held in holdings if held and cap * held // total == 0)
    assert sum(shares) <= cap + bumped
    assert all(share >= 1 for share, held in zip(shares, holdings, strict=True) if held)
    assert cap_share(None, 3, 5) is None and cap_share(cap, 0, total) == 0


def test_caps_of_one_carrier_account_are_shared_by_its_smscs() -> None:
    caps = CapShares()
    caps.load([
        CapRow(1, 600, "twilio", "AC1", "", 10),
        CapRow(2, None, "twilio", "AC1", "", 5),  # the same account: its tighter cap wins
        CapRow(3, None, None, None, "", None),  # no carrier yet
    ])
    assert caps.smsc_account[1] == caps.smsc_account[2] and 3 not in caps.smsc_account
    targets = caps.targets({1: [11, 12], 2: [21], 3: [31]})
    account = caps.smsc_account[1]
    assert ("pool", 1, 600, [11, 12]) in targets and ("pool", 3, None, [31]) in targets
    assert ("account", account, 5, [11, 12, 21]) in targets


# ---- the DID book -------------------------------------------------------------------------------------


def _did(book: DidBook, did_id: int) -> Did:
    did = book.get(did_id)
    assert did is not None
    return did


def test_the_did_book_keeps_one_record_per_did() -> None:
    book = DidBook()
    book.load([DidRow(1, 7, "+16462000001", 60, 1), DidRow(2, 7, "+16462000002", 60, 1)])
    book.set_held({1, 2})
    _did(book, 2).releasing = True
    assert book.usable_ids() == {1} and book.held() == {1, 2} and book.held_elsewhere(2)
    book.start_send(1)
    book.load([DidRow(2, 7, "+16462000002", 60, 1)])  # DID 1 disabled while a send is in flight
    assert book.number(1) == "+16462000001" and _did(book, 1).busy == 1
    assert book.usable_ids() == set() and not book.held_elsewhere(1) and book.members() == {7: [2]}
    book.end_send(1)
    book.set_held(set())
    assert not _did(book, 2).releasing  # no longer ours: nothing to hand over


# ---- placement ------------------------------------------------------------------------------------------


def _pending(i: int, *, tag: str | None = None, segments: int = 1, recipient: str = "+13472643707",
             from_did: int | None = None) -> Pending:
    return Pending(i, 1, 7, recipient, "hi", segments, "GSM-7", 0, tag, from_did=from_did)


def _pool(limits: dict[int, int]) -> tuple[Scheduler[Pending], DidBook]:
    scheduler: Scheduler[Pending] = Scheduler()
    book = DidBook()
    book.load([DidRow(d, 7, f"+1646200000{d}", limit, 1) for d, limit in limits.items()])
    book.set_held(set(limits))
    for d, limit in limits.items():
        scheduler.set_did(d, 7, limit)
    return scheduler, book


def test_placement_pins_new_conversations_and_defers_beyond_the_horizon() -> None:
    scheduler, book = _pool({1: 60, 2: 60})
    msgs = [_pending(i, tag="t") for i in range(4)] + [_pending(10, segments=61)]
    placed = place(msgs, {}, scheduler, book, now=0.0, horizon=1.5)
    key = (1, "+13472643707", "t")
    assert list(placed.new_tags) == [key]
    # One DID at 1/s: the first sends now, the second within the 1.5-s horizon, the rest wait in the database.
    assert scheduler.backlog() == 2 and [i for i, _ in placed.deferred] == [2, 3]
    assert all(delay >= 1.0 for _, delay in placed.deferred)
    assert [(o.id, o.change) for o in placed.failed] == [(10, sts.SEND_FAILED)]  # more than a DID's minute


def test_a_conversation_pinned_to_a_did_held_elsewhere_goes_back_to_the_queue() -> None:
    scheduler, book = _pool({1: 60, 2: 60})
    book.load([DidRow(1, 7, "+16462000001", 60, 1), DidRow(2, 7, "+16462000002", 60, 1),
               DidRow(3, 7, "+16462000003", 60, 1)])  # DID 3: another worker's
    placed = place([_pending(1, tag="t"), _pending(4, from_did=3)], {(1, "+13472643707", "t"): 3},
                   scheduler, book, 0.0, 20.0)
    assert [p.id for p in placed.orphans] == [1, 4] and scheduler.backlog() == 0
    assert not reroute(_pending(2, tag="t"), scheduler, 0.0)  # a conversation never moves DID
    assert not reroute(_pending(5, from_did=1), scheduler, 0.0)  # nor does a reply
    assert reroute(_pending(3), scheduler, 0.0) and scheduler.backlog() == 1


def test_a_reply_goes_out_from_the_did_the_phone_texted() -> None:
    scheduler, book = _pool({1: 60, 2: 60})
    placed = place([_pending(i, from_did=2) for i in range(3)], {}, scheduler, book, 0.0, 20.0)
    assert placed.orphans == [] and placed.new_tags == {}
    decisions = [d for t in (0.0, 1.0, 2.0) for d in scheduler.pop_due(t)]
    assert [d.did_id for d in decisions] == [2, 2, 2]  # never DID 1, though it is idle


def test_servable_apps_skip_pools_busy_beyond_the_horizon() -> None:
    scheduler, _book = _pool({1: 60})
    scheduler.set_did(5, 8, 60)
    for i in range(30):
        scheduler.push(1, 1, _pending(i), 0.0)
    apps, saturated = servable_apps(scheduler, {100: 7, 200: 8, 300: None}, bound={7, 8}, now=0.0, horizon=20.0)
    assert apps == [200] and saturated
    apps, saturated = servable_apps(scheduler, {100: 7, 200: 8}, bound={7}, now=0.0, horizon=60.0)
    assert apps == [100] and not saturated


# ---- results --------------------------------------------------------------------------------------------


def _step(result: SendResult, attempts: int = 1, *, alo: bool = False, stopping: bool = False) -> object:
    return next_step(42, result, attempts, max_attempts=5, at_least_once=alo, stopping=stopping, rng=lambda a, b: b)


def test_what_a_carriers_answer_means() -> None:
    assert _step(SendResult(ok=True, provider_message_id="SM1", provider_status="queued")) == Accept("SM1", "queued")
    assert _step(SendResult(ok=False, retryable=True, retry_after=3.0)) == RetryLater(3.0)
    assert _step(SendResult(ok=False, retryable=True), attempts=3) == RetryLater(8.0)  # backoff, full jitter's top
    assert _step(SendResult(ok=False, retryable=True, retry_after=0.0)) == RetryLater(0.2)
    ambiguous = SendResult(ok=False, retryable=True, ambiguous=True, error_message="timeout")
    unknown = _step(ambiguous)
    assert isinstance(unknown, Fail) and unknown.outcome.change == sts.UNKNOWN  # at-most-once: never twice
    assert isinstance(_step(ambiguous, alo=True), RetryLater)
    assert isinstance(_step(SendResult(ok=False, retryable=True), attempts=5), Fail)  # out of attempts
    assert isinstance(_step(SendResult(ok=False, retryable=True), stopping=True), Fail)
    refused = _step(SendResult(ok=False, error_code=21211, error_message="invalid To"))
    assert isinstance(refused, Fail) and (refused.outcome.change, refused.outcome.code) == (sts.SEND_FAILED, 21211)


@given(st.integers(0, 20))
def test_backoff_is_jittered_and_capped(attempt: int) -> None:
    assert 0.5 * min(60.0, 2.0**attempt) <= backoff(attempt) <= 60.0
