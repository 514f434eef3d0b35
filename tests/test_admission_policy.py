"""Admission policy and the admit stage's triage: pure, no database."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from engine import events as ev
from engine import statuses as sts
from engine.dispatch.admit import fact_requests, prepare_all, triage
from engine.policy import admission as policy
from engine.policy.admission import AppRules, BodyLimits, Facts
from engine.segment import GSM7, UCS2, split_message
from engine.store.carousel import BLACKLISTED, FLOODED, Draft, plan_outcomes
from engine.store.outbound import Claimed

PHONE = "+13472643707"
FLOOD = AppRules(flood_limit=2, flood_seconds=60.0)
DEFAULT_LIMITS = BodyLimits()
NOW = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)  # noon in New York: no message here waits for quiet hours


def _decide(facts: Facts, *, body: str = "hi", kind: str = "message", rules: AppRules = FLOOD,
            recipient: str = PHONE, first_part: bool = True, limits: BodyLimits = DEFAULT_LIMITS) -> policy.Verdict:
    return policy.decide(recipient=recipient, body=body, kind=kind, first_part=first_part,
                         prepared=policy.prepare(body, rules), facts=facts, rules=rules, limits=limits, now=NOW)


def _reason(verdict: policy.Verdict) -> str | None:
    return verdict.reason if isinstance(verdict, policy.Refuse) else None


def test_checks_in_order_first_match_wins() -> None:
    everything = Facts(blacklisted=True, flood_used=5, duplicate=True)
    assert _reason(_decide(everything)) == policy.BLACKLISTED
    assert _reason(_decide(Facts(flood_used=2, duplicate=True))) == policy.FLOOD_LIMIT
    assert _reason(_decide(Facts(flood_used=1, duplicate=True))) == policy.DUPLICATE
    # A test number is never sent, but an opted-out one is still refused first.
    assert isinstance(_decide(Facts(duplicate=True), recipient="+15551234567"), policy.TestDelivered)
    assert _reason(_decide(Facts(blacklisted=True), recipient="+15551234567")) == policy.BLACKLISTED
    assert isinstance(_decide(Facts()), policy.Admit)


def test_the_engines_own_stop_and_help_answers_pass_blacklist_flood_and_duplicates() -> None:
    assert isinstance(_decide(Facts(blacklisted=True, flood_used=9, duplicate=True), kind="compliance"), policy.Admit)
    # … but not the body limits: a confirmation is never over them, and if it were it could not go out anyway.
    assert _reason(_decide(Facts(), kind="compliance", body="x" * 1601)) == policy.BODY_TOO_LONG
    # App replies obey every rule.
    assert _reason(_decide(Facts(blacklisted=True), kind="reply")) == policy.BLACKLISTED


def test_later_parts_of_a_message_were_counted_with_its_first() -> None:
    assert isinstance(_decide(Facts(flood_used=7), first_part=False), policy.Admit)
    assert _reason(_decide(Facts(flood_used=7, blacklisted=True), first_part=False)) == policy.BLACKLISTED


def test_body_limits_count_segments_with_the_apps_smart_flag() -> None:
    curly = "“quoted” " * 100  # 900 characters: 6 GSM segments after smart encoding, 14 as UCS-2
    limits = BodyLimits(max_chars=1600, max_segments=10)
    assert isinstance(_decide(Facts(), body=curly, rules=AppRules(smart=True), limits=limits), policy.Admit)
    assert _reason(_decide(Facts(), body=curly, rules=AppRules(), limits=limits)) == policy.BODY_TOO_LONG
    assert _reason(_decide(Facts(), body="y" * 1601)) == policy.BODY_TOO_LONG
    assert policy.body_problem("y" * 20, None, BodyLimits(max_chars=10)) == "is 20 characters; at most 10 are allowed"
    assert policy.body_problem("y" * 20, 3, BodyLimits(max_chars=100, max_segments=2)) is not None
    assert policy.body_problem("y" * 20, 2, BodyLimits(max_chars=100, max_segments=2)) is None


def test_no_unicode_destinations() -> None:
    limits = BodyLimits(no_unicode_prefixes=("+7",))
    assert _reason(_decide(Facts(), body="привет", recipient="+79161234567", limits=limits)) == policy.NO_UNICODE
    assert isinstance(_decide(Facts(), body="privet", recipient="+79161234567", limits=limits), policy.Admit)
    assert isinstance(_decide(Facts(), body="привет", limits=limits), policy.Admit)


def test_prepare_splits_only_for_single_sms_carriers() -> None:
    body = "word " * 80
    assert policy.prepare(body, AppRules()).parts == (body,)
    split = policy.prepare(body, AppRules(single_sms=True, split_mode="word"))
    assert split.parts == tuple(split_message(body, "word")) and split.split and split.head == split.parts[0]
    assert policy.prepare("short", AppRules(single_sms=True)).parts == ("short",)
    # A part is one SMS: preparing it again changes nothing (parts that come back from the queue stay whole).
    assert all(policy.prepare(part, AppRules(single_sms=True)).parts == (part,) for part in split.parts)


@given(
    blacklisted=st.booleans(), flood_used=st.integers(0, 5), duplicate=st.booleans(),
    kind=st.sampled_from(["message", "reply", "compliance"]), first_part=st.booleans(),
    limit=st.one_of(st.none(), st.integers(1, 4)),
)
def test_an_opted_out_phone_only_ever_gets_the_engines_compliance_answers(
    blacklisted: bool, flood_used: int, duplicate: bool, kind: str, first_part: bool, limit: int | None
) -> None:
    rules = AppRules(flood_limit=limit, flood_seconds=60.0 if limit else None)
    verdict = _decide(Facts(blacklisted, flood_used, duplicate), kind=kind, rules=rules, first_part=first_part)
    if blacklisted and kind != "compliance":
        assert _reason(verdict) == policy.BLACKLISTED
    if isinstance(verdict, policy.Admit) and kind != "compliance":
        assert not blacklisted and not duplicate
        assert not first_part or limit is None or flood_used < limit


@given(st.lists(st.tuples(st.sampled_from(["+13472643701", "+13472643702", None]), st.integers(1, 3)), max_size=12),
       st.sets(st.sampled_from(["+13472643701", "+13472643702"])), st.integers(0, 3), st.integers(1, 4))
def test_the_http_doors_answers_are_the_policys_own(
    drafts: list[tuple[str | None, int]], blocked: set[str], earlier: int, limit: int
) -> None:
    """-2/-3 at the door are exactly what admission decides for the same messages, counted in order."""
    rules = AppRules(flood_limit=limit, flood_seconds=60.0)
    recent = {"+13472643701": earlier}
    plan = plan_outcomes([Draft(r, ("p",) * n) for r, n in drafts], blocked, recent, rules)
    used = Counter(recent)
    for (recipient, parts), code in zip(drafts, plan, strict=True):
        if recipient is None:
            continue
        reason = policy.recipient_refusal(blacklisted=recipient in blocked, flood_used=used[recipient], rules=rules)
        assert code == {None: None, policy.BLACKLISTED: BLACKLISTED, policy.FLOOD_LIMIT: FLOODED}[reason]
        if reason is None:
            used[recipient] += parts


def _claimed(i: int, body: str, *, recipient: str = PHONE, kind: str = "message", part_of: int | None = None,
             app_id: int = 1) -> Claimed:
    return Claimed(i, app_id, recipient, body, None, 0, 0, kind, part_of)


def test_triage_sorts_verdicts_into_what_happens_next() -> None:
    rules = {1: AppRules(smart=True, single_sms=True, flood_limit=1, flood_seconds=60.0)}
    limits = BodyLimits(no_unicode_prefixes=("+7",))
    long_body = "It’s storytime. " * 20
    messages = [
        _claimed(1, "plain"),
        _claimed(2, "blocked", recipient="+13472643702"),
        _claimed(3, "test", recipient="+15551234567"),
        _claimed(4, "привет", recipient="+79161234567"),
        _claimed(5, long_body),
        _claimed(6, "dup"),
        _claimed(7, "(2/3) part", part_of=5),
    ]
    prepared = prepare_all(messages, rules)
    requests = fact_requests(messages, prepared, rules)
    assert [r.flood_seconds for r in requests] == [60.0] * 6 + [0.0]  # parts are counted with their first part
    assert requests[4].head == prepared[4].parts[0] and requests[4].head.startswith("(1/")
    facts = [Facts(), Facts(blacklisted=True), Facts(), Facts(), Facts(), Facts(duplicate=True), Facts(flood_used=3)]
    out = triage(messages, prepared, facts, rules, limits, now=NOW)
    assert [(s.message.id, s.info.segments, s.info.encoding) for s in out.sendable] == [
        (1, 1, GSM7), (5, 1, GSM7), (7, 1, GSM7)]
    assert out.sendable[1].info.body == prepared[4].parts[0]  # the row now carries part 1, smart-encoded
    assert out.splits == [(5, prepared[4].parts)] and len(prepared[4].parts) == 3
    assert [(o.id, o.change, o.reason) for o in out.outcomes] == [
        (2, sts.SEND_FAILED, policy.BLACKLISTED), (3, sts.TEST_DELIVERED, None), (6, sts.SUPPRESSED, policy.DUPLICATE)]
    assert [(o.id, o.reason, o.encoding) for o in out.refused] == [(4, policy.NO_UNICODE, UCS2)]
    assert [(e.app_id, e.type) for e in out.events] == [(1, ev.NO_UNICODE_SUPPORT), (1, ev.INVALID_CHARACTERS)]
    assert out.events[1].payload["message_id"] == "5"


def test_compliance_messages_are_not_checked_against_the_duplicate_window() -> None:
    rules = {1: FLOOD}
    messages = [_claimed(1, "You are unsubscribed.", kind="compliance")]
    (request,) = fact_requests(messages, prepare_all(messages, rules), rules)
    assert (request.head, request.flood_seconds) == (None, 0.0)
