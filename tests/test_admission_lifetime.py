"""Lifetime, consent and quiet hours in the admission policy, and the settings that drive them (pure, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import statuses as sts
from engine.app_settings import parse_lifetime, parse_quiet_window, validate_app_changes
from engine.config import Settings
from engine.dispatch.admit import prepare_all, triage
from engine.errors import ConfigError, InvalidInput
from engine.policy import admission as policy
from engine.policy.admission import AppRules, BodyLimits, Facts
from engine.policy.lifetime import DurationError, parse_retention
from engine.policy.quiet_hours import Window
from engine.providers import OutboundRequest
from engine.providers.twilio import TwilioClient
from engine.store.outbound import Claimed

NYC = "+16465550100"
NIGHT = datetime(2030, 1, 16, 4, 0, tzinfo=UTC)  # 23:00 in New York
NOON = datetime(2030, 1, 16, 17, 0, tzinfo=UTC)  # 12:00 in New York
MORNING = datetime(2030, 1, 16, 13, 0, tzinfo=UTC)  # 08:00 in New York
RULES = AppRules()


def _decide(facts: Facts, *, now: datetime = NOON, kind: str = "message", rules: AppRules = RULES,
            recipient: str = NYC, body: str = "Sale today") -> policy.Verdict:
    return policy.decide(recipient=recipient, body=body, kind=kind, first_part=True,
                         prepared=policy.prepare(body, rules), facts=facts, rules=rules, limits=BodyLimits(), now=now)


def _reason(verdict: policy.Verdict) -> str | None:
    return verdict.reason if isinstance(verdict, policy.Refuse) else None


# ---- lifetime ------------------------------------------------------------------------------------------------


def test_a_message_past_its_expiry_is_refused_expired_and_the_expiry_instant_is_too_late() -> None:
    assert isinstance(_decide(Facts(expires_at=NOON + timedelta(microseconds=1))), policy.Admit)
    assert _reason(_decide(Facts(expires_at=NOON))) == policy.EXPIRED
    assert _reason(_decide(Facts(expires_at=NOON - timedelta(hours=1)))) == policy.EXPIRED
    assert isinstance(_decide(Facts(expires_at=None)), policy.Admit)


def test_expiry_comes_first_but_the_engines_own_answers_never_expire() -> None:
    past = NOON - timedelta(seconds=1)
    assert _reason(_decide(Facts(blacklisted=True, duplicate=True, expires_at=past))) == policy.EXPIRED
    assert _reason(_decide(Facts(expires_at=past), recipient="+15555550100")) == policy.EXPIRED  # not "delivered"
    assert isinstance(_decide(Facts(expires_at=past, blacklisted=True), kind="compliance"), policy.Admit)


# ---- consent -------------------------------------------------------------------------------------------------


def test_marketing_goes_only_to_subscribers() -> None:
    assert _reason(_decide(Facts(marketing=True, subscribed=False))) == policy.NO_CONSENT
    assert isinstance(_decide(Facts(marketing=True, subscribed=True)), policy.Admit)
    assert isinstance(_decide(Facts(marketing=False, subscribed=False)), policy.Admit)  # transactional
    # An opted-out phone is refused as blacklisted (the stronger reason), a flood after consent.
    assert _reason(_decide(Facts(marketing=True, blacklisted=True))) == policy.BLACKLISTED
    flood = AppRules(flood_limit=1, flood_seconds=60.0)
    assert _reason(_decide(Facts(marketing=True, flood_used=1), rules=flood)) == policy.NO_CONSENT
    assert _reason(_decide(Facts(marketing=True, subscribed=True, flood_used=1), rules=flood)) == policy.FLOOD_LIMIT


# ---- quiet hours ---------------------------------------------------------------------------------------------


def test_marketing_inside_quiet_hours_is_held_until_the_window_opens() -> None:
    subscriber = Facts(marketing=True, subscribed=True)
    held = _decide(subscriber, now=NIGHT)
    assert isinstance(held, policy.Hold) and held.until == MORNING
    assert isinstance(_decide(subscriber, now=MORNING), policy.Admit)
    assert isinstance(_decide(Facts(), now=NIGHT), policy.Admit)  # transactional: any time
    assert isinstance(_decide(subscriber, now=NIGHT, rules=AppRules(quiet_hours=False)), policy.Admit)
    # The stored zone decides: 23:00 in New York is 13:00 in Tokyo.
    assert isinstance(_decide(Facts(marketing=True, subscribed=True, time_zone="Asia/Tokyo"), now=NIGHT), policy.Admit)
    # The app's own window narrows the law's.
    late_start = _decide(subscriber, now=MORNING, rules=AppRules(quiet_window=Window(time(10), time(18))))
    assert isinstance(late_start, policy.Hold) and late_start.until == MORNING + timedelta(hours=2)


def test_a_held_message_keeps_its_expiry_and_a_refusal_beats_a_hold() -> None:
    """Held past its expiry it stays held (the expiry sweep ends it then); refused messages are never held."""
    held = _decide(Facts(marketing=True, subscribed=True, expires_at=NIGHT + timedelta(hours=1)), now=NIGHT)
    assert isinstance(held, policy.Hold)
    assert _reason(_decide(Facts(marketing=True, subscribed=False), now=NIGHT)) == policy.NO_CONSENT
    assert _reason(_decide(Facts(marketing=True, subscribed=True, duplicate=True), now=NIGHT)) == policy.DUPLICATE
    assert isinstance(_decide(Facts(marketing=True, subscribed=True), now=NIGHT, kind="compliance"), policy.Admit)


@given(expires=st.one_of(st.none(), st.integers(-3600, 3600)), marketing=st.booleans(), subscribed=st.booleans(),
       blacklisted=st.booleans(), kind=st.sampled_from(["message", "reply", "compliance"]),
       hour=st.integers(0, 23))
def test_nothing_expired_and_no_unconsented_marketing_is_ever_admitted(
    expires: int | None, marketing: bool, subscribed: bool, blacklisted: bool, kind: str, hour: int
) -> None:
    now = datetime(2030, 1, 16, hour, 30, tzinfo=UTC)
    expires_at = None if expires is None else now + timedelta(seconds=expires)
    verdict = _decide(Facts(blacklisted=blacklisted, expires_at=expires_at, marketing=marketing,
                            subscribed=subscribed), now=now, kind=kind)
    if isinstance(verdict, policy.Admit | policy.Hold) and kind != "compliance":
        assert expires_at is None or expires_at > now
        assert not marketing or subscribed
        assert not blacklisted
    if isinstance(verdict, policy.Hold):
        assert marketing and verdict.until > now


def test_triage_sorts_holds_and_expired_messages() -> None:
    rules = {1: RULES}
    messages = [Claimed(i, 1, NYC, f"body {i}", None, 0, 0, "message", None) for i in range(1, 5)]
    facts = [
        Facts(expires_at=NIGHT - timedelta(seconds=1)),  # expired
        Facts(marketing=True, subscribed=True),  # held until 08:00
        Facts(marketing=True),  # no consent
        Facts(expires_at=NIGHT + timedelta(hours=2)),  # sent, with its expiry
    ]
    out = triage(messages, prepare_all(messages, rules), facts, rules, BodyLimits(), now=NIGHT)
    assert out.held == [(2, MORNING)]
    assert [(o.id, o.change, o.reason) for o in out.outcomes] == [
        (1, sts.EXPIRED, policy.EXPIRED), (3, sts.SEND_FAILED, policy.NO_CONSENT)]
    assert [(s.message.id, s.expires_at) for s in out.sendable] == [(4, NIGHT + timedelta(hours=2))]


def test_expired_is_a_final_failed_state() -> None:
    assert (sts.EXPIRED.state, sts.EXPIRED.status, sts.EXPIRED.final) == ("expired", sts.FAILED, True)


# ---- settings ----------------------------------------------------------------------------------------------------


def test_retention_periods() -> None:
    assert parse_retention("18 months") == parse_retention("18mo") == "18 months"
    assert parse_retention("1y 6mo") == "1 years 6 months"
    assert parse_retention("540d") == "540 days" and parse_retention("12w") == "12 weeks"
    assert parse_retention("48h") == "48 hours"
    for bad, problem in (("18", "not a retention"), ("18 m", "not a retention"), ("3h", "at least a day"),
                         ("0d", "at least a day"), ("101y", "at most 100"), ("soon", "not a retention")):
        with pytest.raises(DurationError, match=problem):
            parse_retention(bad)


def test_app_settings_for_lifetime_retention_and_quiet_hours() -> None:
    changes = validate_app_changes({"valid_for": "2h", "retention": "90d", "quiet_hours": "no",
                                    "quiet_window": "09:00-20:00"})
    assert changes.columns == {"valid_for": "7200 seconds", "retention": "90 days", "quiet_hours": False,
                               "quiet_window": "09:00-20:00"}
    assert validate_app_changes({"valid_for": "off"}).columns == {"valid_for": None}
    assert parse_lifetime("PT30M") == "1800 seconds"
    for name, value, problem in (
        ("valid_for", "400d", "at most 365 days"), ("valid_for", "later", "not a duration"),
        ("retention", "2h", "at least a day"), ("quiet_hours", "maybe", "yes or no"),
        ("quiet_window", "21:00-08:00", "start before it ends"), ("quiet_window", "8-9", "HH:MM-HH:MM"),
        ("quiet_window", "21:00-23:00", "never overlaps"),
    ):
        with pytest.raises(InvalidInput, match=problem) as caught:
            validate_app_changes({name: value})
        assert caught.value.param == "--" + name.replace("_", "-")
    assert parse_quiet_window(" 07:00-22:00 ") == "07:00-22:00"  # wider than the law: the law still applies


def test_the_workers_purge_can_be_turned_off_but_not_made_negative() -> None:
    assert Settings().purge_seconds == 3600.0 and Settings(purge_seconds=0).purge_seconds == 0
    with pytest.raises(ConfigError, match="purge_seconds"):
        Settings(purge_seconds=-1)
    with pytest.raises(ConfigError, match="purge_batch"):
        Settings(purge_batch=0)


# ---- the carrier ---------------------------------------------------------------------------------------------------


async def test_twilio_gets_the_validity_period_only_when_there_is_one() -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        client = TwilioClient(session, account_sid="AC" + "0" * 32, auth_token="token", base_url="http://127.0.0.1:9")
        plain = OutboundRequest(1, "+16465550100", "+16465550199", "hi", None)
        timed = OutboundRequest(1, "+16465550100", "+16465550199", "hi", None, validity_period=3600)
        assert b"ValidityPeriod" not in client.encode_form(plain)
        assert client.encode_form(timed) == client.encode_form(plain) + b"&ValidityPeriod=3600"
