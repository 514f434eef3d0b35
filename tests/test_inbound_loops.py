"""Auto-reply loop detection on an injected clock (plain floats, never sleeping): the N-in-T rule, the K-repeats rule,
the opt-out confirmation and HELP exceptions, cool-down expiry, and properties against a full-history oracle.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.inbound.loops import (
    DEFAULT_LOOP_SETTINGS,
    LoopSettings,
    LoopState,
    ReplyKind,
    body_fingerprint,
    in_cooldown,
    may_reply,
    on_mo,
)

PROPS = settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
DEFAULT = LoopSettings()


@dataclass
class Phone:
    """One (phone, app) row driven through the state machine, with what reached the phone and the events fired."""

    settings: LoopSettings = DEFAULT
    state: LoopState = field(default_factory=LoopState)
    sent: list[tuple[float, ReplyKind]] = field(default_factory=list)
    events: list[float] = field(default_factory=list)

    def mo(self, body: str, now: float) -> None:
        verdict = on_mo(self.state, body, now, self.settings)
        self.state = verdict.state
        if verdict.fire_loop_event:
            self.events.append(now)

    def reply(self, kind: ReplyKind, now: float) -> bool:
        decision = may_reply(self.state, kind, now, self.settings)
        self.state = decision.state
        if decision.fire_loop_event:
            self.events.append(now)
        if decision.allowed:
            self.sent.append((now, kind))
        return decision.allowed

    def sent_between(self, start: float, end: float) -> int:
        return sum(1 for t, _ in self.sent if start <= t < end)


# ---- settings and state --------------------------------------------------------------------------------------------


def test_defaults_are_the_issues() -> None:
    assert (DEFAULT.max_replies, DEFAULT.window_seconds, DEFAULT.max_repeats, DEFAULT.cooldown_seconds) == (
        10,
        60.0,
        5,
        3600.0,
    )
    assert DEFAULT_LOOP_SETTINGS == DEFAULT


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_replies": 0}, "max_replies"),
        ({"max_repeats": 1}, "max_repeats"),
        ({"window_seconds": 0}, "window_seconds"),
        ({"window_seconds": math.nan}, "window_seconds"),
        ({"window_seconds": math.inf}, "window_seconds"),
        ({"cooldown_seconds": 59.0}, "cooldown_seconds"),
        ({"cooldown_seconds": math.nan}, "cooldown_seconds"),
        ({"cooldown_seconds": math.inf}, "cooldown_seconds"),
        ({"repeat_gap_seconds": 0}, "repeat_gap_seconds"),
        ({"repeat_gap_seconds": math.nan}, "repeat_gap_seconds"),
    ],
)
def test_settings_are_checked(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoopSettings(**kwargs)  # type: ignore[arg-type]


def test_settings_edges_accepted() -> None:
    LoopSettings(max_replies=1, window_seconds=0.5, max_repeats=2, cooldown_seconds=0.5, repeat_gap_seconds=math.inf)


def test_state_is_plain_values_that_survive_json() -> None:
    phone = Phone()
    for i in range(12):
        phone.mo("same", float(i))
        phone.reply("auto", i + 0.5)
    state = phone.state
    assert state.cooldown_until is not None and state.last_body is not None
    row = json.loads(json.dumps(dataclasses.asdict(state)))
    assert LoopState(**{**row, "reply_times": tuple(row["reply_times"])}) == state
    assert -(2**63) <= state.last_body < 2**63  # a Postgres bigint


def test_fingerprint() -> None:
    assert body_fingerprint("I'm on vacation") == body_fingerprint("I'm  on\nvacation ")
    assert body_fingerprint("I'm on vacation") != body_fingerprint("i'm on vacation")
    assert body_fingerprint("") == body_fingerprint("   ")
    assert body_fingerprint("\ud800") == body_fingerprint("\ud800")  # a lone surrogate never raises
    for body in ("", "a", "x" * 1600, "😀"):
        assert -(2**63) <= body_fingerprint(body) < 2**63


# ---- N replies in T seconds ----------------------------------------------------------------------------------------


def test_an_auto_responder_gets_n_replies_then_silence_for_the_cooldown() -> None:
    """Each of our replies draws an automatic answer 1 s later (with a counter, so the bodies differ)."""
    phone = Phone()
    now = 0.0
    for i in range(500):
        phone.mo(f"Out of office #{i}", now)
        phone.reply("auto", now + 0.5)
        now += 1.0
    # the first 10 got through within 10 s, then nothing for the hour
    assert [t for t, _ in phone.sent] == [i + 0.5 for i in range(10)]
    assert phone.events == [10.5]
    assert phone.state.cooldown_until == 10.5 + 3600
    assert in_cooldown(phone.state, 3610.0) and not in_cooldown(phone.state, 3610.5)


def test_replies_resume_after_the_cooldown_and_a_new_loop_fires_again() -> None:
    phone = Phone()
    now = 0.0
    while now < 2 * 3600 + 100:
        phone.mo(f"Auto-reply {now}", now)
        phone.reply("auto", now + 0.5)
        now += 1.0
    starts = [10.5, 10.5 + 3600 + 10, 10.5 + 2 * (3600 + 10)]  # each cool-down ends; 10 more, then the next
    assert phone.events == [s for s in starts if s < now]
    assert phone.sent_between(0, 3610.5) == 10
    assert phone.sent_between(3610.5, 3620.5) == 10  # resumed at once when the cool-down ended
    assert phone.sent_between(3620.5, 2 * 3600) == 0


def test_the_n_plus_first_reply_in_the_window_starts_the_cooldown() -> None:
    phone = Phone(LoopSettings(max_replies=3, window_seconds=10, cooldown_seconds=100))
    assert [phone.reply("auto", t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert phone.events == []
    assert not phone.reply("auto", 9.999)
    assert phone.events == [9.999]
    assert not phone.reply("auto", 50.0)
    assert phone.events == [9.999]  # once per cool-down
    assert not phone.reply("auto", 109.0)
    assert phone.reply("auto", 110.0)  # the cool-down is over
    assert phone.state.cooldown_until is None


def test_the_window_is_half_open() -> None:
    """A reply at s counts while s + window > now: at exactly s + window it no longer does."""
    phone = Phone(LoopSettings(max_replies=2, window_seconds=10, cooldown_seconds=100))
    assert phone.reply("auto", 0.0) and phone.reply("auto", 5.0)
    assert phone.reply("auto", 10.0)  # the reply at 0 has left
    assert not phone.reply("auto", 14.999)  # 5 and 10 are in
    assert phone.events == [14.999]


def test_slow_conversation_never_trips() -> None:
    phone = Phone()
    for i in range(1000):
        phone.mo(f"question {i}", i * 7.0)
        assert phone.reply("auto", i * 7.0 + 1)  # 60 / 7 < 10 replies per window
    assert phone.events == []


def test_state_keeps_at_most_n_reply_times() -> None:
    phone = Phone(LoopSettings(max_replies=4, window_seconds=1000, cooldown_seconds=1000))
    for t in range(20):
        phone.reply("help", float(t))
        assert len(phone.state.reply_times) <= 4


# ---- the same body K times in a row --------------------------------------------------------------------------------


def test_the_same_body_five_times_in_a_row_starts_a_cooldown() -> None:
    phone = Phone()
    for i in range(8):
        phone.mo("I'm on vacation until Monday", i * 2.0)
        phone.reply("auto", i * 2.0 + 1)
    assert [t for t, _ in phone.sent] == [1.0, 3.0, 5.0, 7.0]  # replies to the first four MOs
    assert phone.events == [8.0]  # the fifth MO
    assert phone.state.repeats == 5  # capped at K


def test_a_different_body_breaks_the_streak() -> None:
    phone = Phone()
    for i, body in enumerate(["ok", "ok", "ok", "ok", "okay", "ok", "ok", "ok", "ok"]):
        phone.mo(body, float(i))
    assert phone.events == []
    phone.mo("ok", 9.0)
    assert phone.events == [9.0]


def test_whitespace_differences_do_not_break_the_streak_but_case_does() -> None:
    phone = Phone()
    for i, body in enumerate(["Away", "Away ", " Away", "Away\n", "Away"]):
        phone.mo(body, float(i))
    assert phone.events == [4.0]
    other = Phone()
    for i, body in enumerate(["Away", "away", "Away", "away", "Away"]):
        other.mo(body, float(i))
    assert other.events == []


def test_identical_mos_far_apart_are_not_in_a_row() -> None:
    phone = Phone()
    for i in range(10):
        phone.mo("Yes", i * 601.0)  # a person answering "Yes" every ten minutes
    assert phone.events == []
    unlimited = Phone(LoopSettings(repeat_gap_seconds=math.inf))
    for i in range(5):
        unlimited.mo("Yes", i * 86400.0)
    assert unlimited.events == [4 * 86400.0]


def test_a_streak_that_goes_on_starts_the_next_cooldown_when_this_one_ends() -> None:
    phone = Phone()
    t = 0.0
    while t <= 3600 + 60:
        phone.mo("BEEP", t)
        t += 10.0
    assert phone.events == [40.0, 40.0 + 3600]


def test_traffic_during_a_cooldown_neither_extends_it_nor_fires_again() -> None:
    phone = Phone()
    for i in range(5):
        phone.mo("loop", float(i))
    assert phone.events == [4.0]
    until = phone.state.cooldown_until
    for i in range(5, 500):
        phone.mo("loop" if i % 2 else f"other {i}", float(i))
        phone.reply("auto", i + 0.5)
    assert phone.state.cooldown_until == until
    assert phone.events == [4.0]
    assert phone.sent == []


# ---- the opt-out confirmation and HELP exceptions ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["optout_confirmation", "help"])
def test_first_exception_in_a_cooldown_is_sent_the_second_is_not(kind: ReplyKind) -> None:
    phone = Phone()
    for i in range(5):
        phone.mo("loop", float(i))
    assert in_cooldown(phone.state, 5.0)
    assert not phone.reply("auto", 5.0)
    assert phone.reply(kind, 6.0)
    assert not phone.reply(kind, 7.0)
    assert not phone.reply(kind, 3000.0)
    other: ReplyKind = "help" if kind == "optout_confirmation" else "optout_confirmation"
    assert phone.reply(other, 8.0)  # each exception has its own "first"
    assert not phone.reply(other, 9.0)
    # the next cool-down has its own first
    for i in range(5):
        phone.mo("loop again", 3700.0 + i)
    assert phone.events == [4.0, 3704.0]
    assert phone.reply(kind, 3705.0)
    assert not phone.reply(kind, 3706.0)


@pytest.mark.parametrize("kind", ["optout_confirmation", "help"])
def test_an_exception_that_would_be_the_n_plus_first_reply_is_sent_and_starts_the_cooldown(kind: ReplyKind) -> None:
    phone = Phone()
    for i in range(10):
        assert phone.reply("auto", float(i))
    assert phone.reply(kind, 10.0)
    assert phone.events == [10.0]
    assert not phone.reply("auto", 11.0)
    assert not phone.reply(kind, 12.0)


def test_exceptions_outside_a_cooldown_are_ordinary_counted_replies() -> None:
    phone = Phone(LoopSettings(max_replies=3, window_seconds=10, cooldown_seconds=100))
    assert phone.reply("help", 0.0) and phone.reply("help", 1.0) and phone.reply("optout_confirmation", 2.0)
    assert not phone.reply("auto", 3.0)  # the three above filled the window
    assert phone.events == [3.0]
    assert phone.reply("help", 4.0)  # first HELP of this cool-down
    assert phone.reply("optout_confirmation", 5.0)


def test_help_sent_just_before_a_cooldown_does_not_use_up_its_first() -> None:
    phone = Phone()
    assert phone.reply("help", 0.0)
    for i in range(5):
        phone.mo("same", 1.0 + i)
    assert phone.reply("help", 6.0)
    assert not phone.reply("help", 7.0)


# ---- clocks --------------------------------------------------------------------------------------------------------


def test_a_clock_behind_the_stored_times_is_tolerated() -> None:
    """Another process's clock may lag: nothing raises, nothing assumes order, the state stays bounded."""
    phone = Phone(LoopSettings(max_replies=3, window_seconds=10, cooldown_seconds=100))
    for t in (100.0, 90.0, 101.0, 50.0, 102.0, 103.0, 99.0):
        phone.mo("x", t)
        phone.reply("auto", t)
        assert len(phone.state.reply_times) <= 3


def test_pure_functions_never_mutate_their_input() -> None:
    state = LoopState()
    verdict = on_mo(state, "x", 0.0)
    decision = may_reply(verdict.state, "auto", 1.0)
    assert state == LoopState()
    assert verdict.state.reply_times == ()
    assert decision.state.reply_times == (1.0,)


# ---- properties against a full-history oracle ----------------------------------------------------------------------


@dataclass
class Oracle:
    """The rules read literally, over the full history instead of the compact state."""

    settings: LoopSettings
    allowed: list[float] = field(default_factory=list)
    mos: list[tuple[float, str]] = field(default_factory=list)
    cooldown_start: float | None = None
    used: set[str] = field(default_factory=set)

    def active(self, now: float) -> bool:
        return self.cooldown_start is not None and now < self.cooldown_start + self.settings.cooldown_seconds

    def start(self, now: float) -> None:
        self.cooldown_start = now
        self.used = set()

    def mo(self, body: str, now: float) -> bool:
        self.mos.append((now, " ".join(body.split())))
        streak = 1
        for (t0, b0), (t1, b1) in zip(reversed(self.mos[:-1]), reversed(self.mos[1:]), strict=True):
            if b0 != b1 or t1 - t0 > self.settings.repeat_gap_seconds:
                break
            streak += 1
        if streak >= self.settings.max_repeats and not self.active(now):
            self.start(now)
            return True
        return False

    def reply(self, kind: ReplyKind, now: float) -> tuple[bool, bool]:
        fire = False
        recent = sum(1 for s in self.allowed if s + self.settings.window_seconds > now)
        if not self.active(now) and recent >= self.settings.max_replies:
            self.start(now)
            fire = True
        if not self.active(now):
            ok = True
        elif kind == "auto" or kind in self.used:
            ok = False
        else:
            ok = True
            self.used.add(kind)
        if ok:
            self.allowed.append(now)
        return ok, fire


@st.composite
def loop_settings(draw: st.DrawFn) -> LoopSettings:
    window = draw(st.sampled_from([1.0, 5.0, 10.0, 60.0]))
    return LoopSettings(
        max_replies=draw(st.integers(1, 5)),
        window_seconds=window,
        max_repeats=draw(st.integers(2, 5)),
        cooldown_seconds=window * draw(st.sampled_from([1.0, 1.5, 3.0])),
        repeat_gap_seconds=draw(st.sampled_from([1.0, 10.0, math.inf])),
    )


Event = tuple[float, str]  # (time step, "mo:<body>" or a reply kind)
events_strategy = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 12).map(float), st.floats(0, 30, allow_nan=False)),
        st.sampled_from(["mo:ping", "mo:ping", "mo:pong", "auto", "auto", "auto", "help", "optout_confirmation"]),
    ),
    max_size=120,
)


def run(config: LoopSettings, events: Sequence[Event]) -> tuple[Phone, list[list[ReplyKind]]]:
    """Drive a Phone and the oracle side by side; return the phone and the replies sent during each cool-down."""
    phone = Phone(config)
    oracle = Oracle(config)
    now = 0.0
    cooldowns: list[list[ReplyKind]] = []
    for step, what in events:
        now += step
        fired_before = len(phone.events)
        sent_before = len(phone.sent)
        if what.startswith("mo:"):
            phone.mo(what[3:], now)
            assert oracle.mo(what[3:], now) == (len(phone.events) > fired_before)
        else:
            kind: ReplyKind = "auto" if what == "auto" else "help" if what == "help" else "optout_confirmation"
            allowed, fire = oracle.reply(kind, now)
            phone.reply(kind, now)
            assert (len(phone.sent) > sent_before, len(phone.events) > fired_before) == (allowed, fire)
        if len(phone.events) > fired_before:
            cooldowns.append([])
        if len(phone.sent) > sent_before and in_cooldown(phone.state, now):
            cooldowns[-1].append(phone.sent[-1][1])
        assert phone.state.cooldown_until == (
            oracle.cooldown_start + config.cooldown_seconds
            if oracle.cooldown_start is not None and oracle.active(now)
            else None
        )
        assert len(phone.state.reply_times) <= config.max_replies
    return phone, cooldowns


def max_in_window(times: Sequence[float], window: float) -> int:
    """Most times in any window [s, s + window) (the densest one starts at one of them)."""
    return max((sum(1 for t in times if s <= t < s + window) for s in times), default=0)


@PROPS
@given(loop_settings(), events_strategy)
def test_the_state_machine_agrees_with_the_full_history_oracle(config: LoopSettings, events: list[Event]) -> None:
    run(config, events)


@PROPS
@given(loop_settings(), events_strategy)
def test_never_more_than_n_auto_replies_in_any_window(config: LoopSettings, events: list[Event]) -> None:
    phone, _ = run(config, events)
    autos = [t for t, kind in phone.sent if kind == "auto"]
    assert max_in_window(autos, config.window_seconds) <= config.max_replies
    # everything together: N, plus the two exceptions of a cool-down (two cool-downs back to back: 2 + 2)
    everything = [t for t, _ in phone.sent]
    assert max_in_window(everything, config.window_seconds) <= max(config.max_replies, 2) + 2


@PROPS
@given(loop_settings(), events_strategy)
def test_each_cooldown_fires_once_and_lets_through_only_the_two_firsts(
    config: LoopSettings, events: list[Event]
) -> None:
    phone, cooldowns = run(config, events)
    assert len(phone.events) == len(cooldowns)
    for earlier, later in zip(phone.events, phone.events[1:], strict=False):
        assert later >= earlier + config.cooldown_seconds  # at most once per cool-down
    for inside in cooldowns:
        assert "auto" not in inside
        assert inside.count("help") <= 1
        assert inside.count("optout_confirmation") <= 1


@PROPS
@given(loop_settings(), events_strategy, st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=120))
def test_any_clock_never_raises_and_keeps_the_state_small(
    config: LoopSettings, events: list[Event], times: list[float]
) -> None:
    state = LoopState()
    for (_, what), now in zip(events, times, strict=False):
        if what.startswith("mo:"):
            state = on_mo(state, what, now, config).state
        else:
            kind: ReplyKind = "auto" if what == "auto" else "help" if what == "help" else "optout_confirmation"
            state = may_reply(state, kind, now, config).state
        assert len(state.reply_times) <= config.max_replies
        assert 0 <= state.repeats <= config.max_repeats
