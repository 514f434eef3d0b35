"""Quiet hours for marketing messages (pure): the shipped table, windows by state and weekday, the recipient's zones,
and the two properties that matter — never allowed inside a quiet period, and the next start is the earliest
allowed instant — over arbitrary instants, zones (daylight-saving gaps and folds included) and rules."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from phonenumbers import geocoder

from engine.policy.quiet_hours import (
    DEFAULT_WINDOW,
    Rule,
    Window,
    allowed,
    load_table,
    next_allowed,
    parse_window,
    quiet_until,
    recipient_zones,
    table_from,
    valid_zone,
)

NY = ZoneInfo("America/New_York")
CHI = ZoneInfo("America/Chicago")
TABLE = load_table()
NYC, MIAMI, DALLAS, PROVIDENCE, BIRMINGHAM, SEATTLE = (
    "+16465550100", "+13055550100", "+12145550100", "+14015550100", "+12055550100", "+12065550100")


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
          microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)


# ---- the shipped table -------------------------------------------------------------------------------------------


def test_the_table_loads_with_the_federal_default_and_its_states() -> None:
    assert TABLE.default.days == (DEFAULT_WINDOW,) * 7
    assert {"FL", "OK", "MD", "WA", "TX", "MS", "CT", "RI", "AL", "LA"} <= set(TABLE.states)
    for code, rule in TABLE.states.items():
        assert rule.sources, code
        assert rule.narrowed(TABLE.default) == rule, f"{code} is looser than the federal default somewhere"
    assert TABLE.states["FL"].days == (Window(time(8), time(20)),) * 7
    assert TABLE.states["TX"].days[6] == Window(time(12), time(21))  # Sunday from noon
    assert TABLE.states["TX"].days[0] == Window(time(9), time(21))
    assert TABLE.states["RI"].days[5:] == (Window(time(10), time(17)), None)


# A US state's name as libphonenumber's geocoder writes it (descriptions are a state, or "City, ST").
_STATE_NAMES = {"Alabama": "AL", "California": "CA", "Connecticut": "CT", "Florida": "FL", "Kentucky": "KY",
                "Louisiana": "LA", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
                "Mississippi": "MS", "Nevada": "NV", "New Mexico": "NM", "Oklahoma": "OK", "Rhode Island": "RI",
                "Texas": "TX", "Washington State": "WA"}


def _geocoded_state(npa: int) -> str | None:
    """The state phonenumbers places an area code in, from a few numbers of it ('City, ST' or the state)."""
    for line in ("2345678", "5550100", "7654321", "3000000"):
        text = geocoder.description_for_number(phonenumbers.parse(f"+1{npa}{line}"), "en")
        if m := re.search(r", ([A-Z]{2})$", text):
            return m.group(1)
        if text:
            state: str = _STATE_NAMES.get(text, "other")
            return state
    return None


def test_area_codes_agree_with_phonenumbers() -> None:
    """Every area code in the table is where libphonenumber puts it, and none of a listed state is missing."""
    for npa, state in TABLE.area_codes.items():
        assert _geocoded_state(npa) == state, npa
    for npa in range(200, 1000):
        if phonenumbers.region_code_for_number(phonenumbers.parse(f"+1{npa}2345678")) != "US":
            continue
        found = _geocoded_state(npa)
        if found in TABLE.states:
            assert TABLE.area_codes.get(npa) == found, f"area code {npa} ({found}) is missing from the table"


def test_a_state_is_found_by_area_code_only_for_us_numbers() -> None:
    assert [TABLE.state_of(n) for n in (MIAMI, DALLAS, PROVIDENCE, SEATTLE, NYC)] == ["FL", "TX", "RI", "WA", None]
    assert TABLE.state_of("+447911123456") is None and TABLE.state_of("+1305") is None
    assert TABLE.rule_for(NYC) is TABLE.default and TABLE.rule_for(MIAMI) is TABLE.states["FL"]


@pytest.mark.parametrize(("doc", "problem"), [
    ({"default": {"window": ["21:00", "08:00"], "sources": ["x"]}}, "start before it ends"),
    ({"default": {"window": ["08:00", "21:00"]}}, "sources"),
    ({"default": {"window": "8am-9pm", "sources": ["x"]}}, "HH:MM-HH:MM"),
    ({"default": {"window": ["08:00", "21:00"], "sources": ["x"]},
      "states": {"ZZ": {"window": ["21:00", "22:00"], "sources": ["x"]}}}, "no time in the week"),
    ({"default": {"window": ["08:00", "21:00"], "sources": ["x"]},
      "states": {"AA": {"window": ["09:00", "20:00"], "sources": ["x"], "area_codes": [305]},
                 "BB": {"window": ["09:00", "20:00"], "sources": ["x"], "area_codes": [305]}}}, "listed for AA and BB"),
])
def test_a_broken_table_is_refused_when_loaded(doc: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        table_from(doc)


def test_a_state_can_only_narrow_the_federal_window() -> None:
    table = table_from({"default": {"window": ["08:00", "21:00"], "sources": ["x"]},
                        "states": {"ZZ": {"window": ["07:00", "22:00"], "sunday": ["09:00", "23:00"],
                                          "sources": ["x"], "area_codes": [305]}}})
    assert table.states["ZZ"].days == (DEFAULT_WINDOW,) * 6 + (Window(time(9), time(21)),)


def test_parse_window() -> None:
    assert parse_window("09:30-17:00") == Window(time(9, 30), time(17))
    assert parse_window(["08:00", "21:00"]) == DEFAULT_WINDOW
    for bad in ("9-5", "17:00-09:00", "08:00", "08:00-21:00-22:00", ["08:00"], 8, "25:00-26:00"):
        with pytest.raises(ValueError):
            parse_window(bad)


# ---- windows, states and weekdays -----------------------------------------------------------------------------


def test_the_default_window_is_8_to_21_and_21_itself_is_quiet() -> None:
    zones = (NY,)
    rule = TABLE.default
    assert allowed(local(NY, 2030, 1, 15, 8, 0), rule, zones)
    assert not allowed(local(NY, 2030, 1, 15, 7, 59, 59, 999999), rule, zones)
    assert allowed(local(NY, 2030, 1, 15, 20, 59, 59, 999999), rule, zones)
    assert not allowed(local(NY, 2030, 1, 15, 21, 0), rule, zones)
    assert next_allowed(local(NY, 2030, 1, 15, 21, 0), rule, zones) == local(NY, 2030, 1, 16, 8, 0)
    assert next_allowed(local(NY, 2030, 1, 15, 23, 0), rule, zones) == local(NY, 2030, 1, 16, 8, 0)
    assert next_allowed(local(NY, 2030, 1, 16, 3, 0), rule, zones) == local(NY, 2030, 1, 16, 8, 0)
    noon = local(NY, 2030, 1, 16, 12, 0)
    assert next_allowed(noon, rule, zones) == noon


@pytest.mark.parametrize(("phone", "at", "until"), [
    (NYC, local(NY, 2030, 1, 15, 20, 30), None),  # federal: 21:00
    (MIAMI, local(NY, 2030, 1, 15, 20, 0), local(NY, 2030, 1, 16, 8, 0)),  # Florida ends at 20:00
    (MIAMI, local(NY, 2030, 1, 15, 19, 59), None),
    (SEATTLE, local(ZoneInfo("America/Los_Angeles"), 2030, 1, 15, 20, 15),
     local(ZoneInfo("America/Los_Angeles"), 2030, 1, 16, 8, 0)),
    (DALLAS, local(CHI, 2030, 1, 15, 8, 30), local(CHI, 2030, 1, 15, 9, 0)),  # Texas starts at 09:00 …
    (DALLAS, local(CHI, 2030, 1, 13, 10, 0), local(CHI, 2030, 1, 13, 12, 0)),  # … and at noon on Sundays
    (PROVIDENCE, local(NY, 2030, 1, 12, 17, 30), local(NY, 2030, 1, 14, 9, 0)),  # RI: Saturday 10-17, no Sunday
    (PROVIDENCE, local(NY, 2030, 1, 14, 18, 0), local(NY, 2030, 1, 15, 9, 0)),  # weekdays 9-18
    (BIRMINGHAM, local(CHI, 2030, 1, 12, 20, 30), local(CHI, 2030, 1, 14, 8, 0)),  # Alabama: never on Sunday
])
def test_state_rules(phone: str, at: datetime, until: datetime | None) -> None:
    assert quiet_until(at, phone) == until


def test_the_stored_time_zone_wins_over_the_numbers() -> None:
    at = local(NY, 2030, 1, 15, 23, 0)  # 23:00 in New York, 13:00 in Tokyo
    assert quiet_until(at, NYC) == local(NY, 2030, 1, 16, 8, 0)
    assert quiet_until(at, NYC, stored_zone="Asia/Tokyo") is None
    assert quiet_until(at, NYC, stored_zone="Not/AZone") == local(NY, 2030, 1, 16, 8, 0)  # unknown: the number's
    # The state still comes from the area code: a Floridian in Chicago gets Florida's 20:00, in Chicago time.
    assert quiet_until(local(CHI, 2030, 1, 15, 20, 0), MIAMI, stored_zone="America/Chicago") == local(
        CHI, 2030, 1, 16, 8, 0)


def test_zones_of_a_number() -> None:
    assert recipient_zones(NYC) == (NY,)
    assert {z.key for z in recipient_zones("+19075550100")} == {"America/Adak", "America/Anchorage"}
    assert recipient_zones("+15555550100") == (ZoneInfo("UTC"),)  # no zone known: UTC
    assert recipient_zones("+447911123456")[-1] == ZoneInfo("Europe/London")
    assert valid_zone("America/Chicago") and not valid_zone("Mars/Olympus") and not valid_zone("../etc/passwd")


def test_a_number_spanning_zones_waits_for_all_of_them() -> None:
    """Alaska's numbers span Anchorage and Adak (an hour behind): 08:00 in Anchorage is still 07:00 in Adak."""
    at = local(ZoneInfo("America/Anchorage"), 2030, 1, 15, 8, 0)
    assert quiet_until(at, "+19075550100") == local(ZoneInfo("America/Anchorage"), 2030, 1, 15, 9, 0)


def test_the_apps_window_narrows_the_law_and_never_removes_all_time() -> None:
    evening = local(NY, 2030, 1, 15, 19, 30)
    assert quiet_until(evening, NYC, window=Window(time(9), time(19))) == local(NY, 2030, 1, 16, 9, 0)
    assert quiet_until(evening, NYC, window=Window(time(6), time(23))) is None  # cannot widen the law's
    # Rhode Island's hours never meet 08:00-09:00: the law's rule alone applies rather than holding forever.
    saturday = local(NY, 2030, 1, 12, 17, 30)
    assert quiet_until(saturday, PROVIDENCE, window=Window(time(8), time(9))) == local(NY, 2030, 1, 14, 9, 0)


def test_daylight_saving_days() -> None:
    # Spring forward (New York, 2030-03-10 02:00 -> 03:00): 08:00 EDT is 12:00 UTC.
    assert quiet_until(local(NY, 2030, 3, 10, 1, 30), NYC) == datetime(2030, 3, 10, 12, 0, tzinfo=UTC)
    # Fall back (2030-11-03 02:00 -> 01:00): 08:00 EST is 13:00 UTC, though 23:00 the evening before was EDT.
    assert quiet_until(local(NY, 2030, 11, 2, 23, 0), NYC) == datetime(2030, 11, 3, 13, 0, tzinfo=UTC)
    # A window starting inside the gap opens when the clock jumps over its start (03:00 EDT = 07:00 UTC) …
    gap = Rule("gap", (Window(time(2, 30), time(5)),) * 7)
    assert next_allowed(local(NY, 2030, 3, 10, 1, 0), gap, (NY,)) == datetime(2030, 3, 10, 7, 0, tzinfo=UTC)
    # … and one the clock is set back into reopens at that moment (01:59 EDT -> 01:00 EST, 06:00 UTC).
    fold = Rule("fold", (Window(time(1), time(1, 30)),) * 7)
    after_first_pass = datetime(2030, 11, 3, 5, 45, tzinfo=UTC)  # 01:45 EDT
    assert not allowed(after_first_pass, fold, (NY,))
    assert next_allowed(after_first_pass, fold, (NY,)) == datetime(2030, 11, 3, 6, 0, tzinfo=UTC)
    # Set back into the middle of a window (00:30-01:30): it reopens at the jump, not at tomorrow's 00:30.
    middle = Rule("middle", (Window(time(0, 30), time(1, 30)),) * 7)
    assert next_allowed(after_first_pass, middle, (NY,)) == datetime(2030, 11, 3, 6, 0, tzinfo=UTC)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_allowed(datetime(2030, 1, 1), TABLE.default, (NY,))


# ---- properties --------------------------------------------------------------------------------------------------

ZONES = [ZoneInfo(k) for k in (
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
    "America/Anchorage", "America/Adak", "Pacific/Honolulu", "America/St_Johns", "America/Havana",
    "America/Santiago", "America/Sao_Paulo", "Europe/London", "Europe/Dublin", "Europe/Berlin", "Asia/Beirut",
    "Asia/Tehran", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham", "Africa/Casablanca",
    "Pacific/Apia", "UTC",
)]
US_ZONES = ZONES[:8]
MINUTE = timedelta(minutes=1)

instants = st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2036, 12, 31),
                        timezones=st.just(UTC))


@st.composite
def windows(draw: st.DrawFn) -> Window:
    start = draw(st.integers(0, 24 * 60 - 2))
    end = draw(st.integers(start + 1, 24 * 60 - 1))
    return Window(time(start // 60, start % 60), time(end // 60, end % 60))


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    if draw(st.booleans()):
        return draw(st.sampled_from([TABLE.default, *TABLE.states.values()]))
    days = draw(st.lists(st.one_of(st.none(), windows()), min_size=7, max_size=7).filter(any))
    return Rule("random", tuple(days))


def _never_allowed_before(at: datetime, until: datetime, rule: Rule, zones: tuple[ZoneInfo, ...]) -> None:
    """The oracle: every whole UTC minute in [at, until) is quiet. Windows start and end on whole local minutes and
    every offset since 1972 is a whole number of minutes, so an allowed stretch always contains a whole minute."""
    t = at.replace(second=0, microsecond=0)
    while t < until:
        if t >= at:
            assert not allowed(t, rule, zones), f"{t} is allowed, before the next start {until}"
        t += MINUTE


@settings(max_examples=150, deadline=None)
@given(at=instants, rule=rules(), zone=st.sampled_from(ZONES))
def test_the_next_start_is_the_earliest_allowed_instant(at: datetime, rule: Rule, zone: ZoneInfo) -> None:
    zones = (zone,)
    n = next_allowed(at, rule, zones)
    assert n >= at
    assert allowed(n, rule, zones), "the next start must itself be allowed"
    assert (n == at) == allowed(at, rule, zones)
    if n > at:
        assert not allowed(n - timedelta(microseconds=1), rule, zones)
        _never_allowed_before(at, n, rule, zones)


@cache
def _transitions_of(zone: ZoneInfo, year: int) -> tuple[datetime, ...]:
    """The instants *zone*'s offset changed in *year* (hourly scan, then to the microsecond)."""
    found: list[datetime] = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    while t < end:
        nxt = t + timedelta(hours=1)
        if t.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            a, b = t, nxt
            while b - a > timedelta(microseconds=1):
                mid = a + (b - a) / 2
                a, b = (mid, b) if mid.astimezone(zone).utcoffset() == a.astimezone(zone).utcoffset() else (a, mid)
            found.append(b)
        t = nxt
    return tuple(found)


@st.composite
def near_a_clock_change(draw: st.DrawFn) -> tuple[datetime, ZoneInfo, Rule]:
    """An instant within a day and a half of a daylight-saving change, and windows that start or end around the
    wall times the clock jumps between: gaps, folds and reopened windows."""
    zone = draw(st.sampled_from([z for z in ZONES if z.key not in ("UTC", "Asia/Kolkata", "America/Phoenix",
                                                                   "Pacific/Honolulu")]))
    changes = _transitions_of(zone, draw(st.integers(1996, 2035)))
    assume(changes)
    change = draw(st.sampled_from(changes))
    at = change + timedelta(minutes=draw(st.integers(-36 * 60, 36 * 60)), seconds=draw(st.integers(0, 59)))
    wall = draw(st.sampled_from([(change - timedelta(microseconds=1)).astimezone(zone), change.astimezone(zone)]))
    start = min(max(wall.hour * 60 + wall.minute + draw(st.integers(-90, 90)), 0), 24 * 60 - 2)
    end = min(start + draw(st.integers(1, 240)), 24 * 60 - 1)
    window = Window(time(start // 60, start % 60), time(end // 60, end % 60))
    days = draw(st.lists(st.sampled_from([window, window, None]), min_size=7, max_size=7).filter(any))
    return at, zone, Rule("around a clock change", tuple(days))


@settings(max_examples=200, deadline=None)
@given(case=near_a_clock_change())
def test_the_next_start_is_the_earliest_allowed_instant_across_clock_changes(
    case: tuple[datetime, ZoneInfo, Rule],
) -> None:
    at, zone, rule = case
    n = next_allowed(at, rule, (zone,))
    assert n >= at and allowed(n, rule, (zone,)) and (n == at) == allowed(at, rule, (zone,))
    if n > at:
        assert not allowed(n - timedelta(microseconds=1), rule, (zone,))
        _never_allowed_before(at, n, rule, (zone,))


@settings(max_examples=80, deadline=None)
@given(at=instants, rule=rules(), zones=st.lists(st.sampled_from(US_ZONES), min_size=2, max_size=3, unique=True))
def test_several_zones_wait_for_the_earliest_instant_all_allow(at: datetime, rule: Rule, zones: list[ZoneInfo]) -> None:
    n = next_allowed(at, rule, zones)
    if not allowed(n, rule, zones):  # these zones' windows never meet: the first zone decides
        assert allowed(n, rule, zones[:1])
        return
    assert n >= at and (n == at) == allowed(at, rule, zones)
    _never_allowed_before(at, n, rule, tuple(zones))


@settings(max_examples=200, deadline=None)
@given(at=instants, zone=st.sampled_from(ZONES), rule=rules())
def test_never_allowed_inside_a_quiet_period(at: datetime, zone: ZoneInfo, rule: Rule) -> None:
    """Allowed means: the local wall time is inside that weekday's window. Nothing else ever is."""
    wall = at.astimezone(zone)
    window = rule.days[wall.weekday()]
    inside = window is not None and window.start <= wall.time().replace(tzinfo=None) < window.end
    assert allowed(at, rule, (zone,)) == inside


@settings(max_examples=100, deadline=None)
@given(at=instants, phone=st.sampled_from([NYC, MIAMI, DALLAS, PROVIDENCE, BIRMINGHAM, SEATTLE, "+19075550100",
                                           "+18085550100", "+447911123456", "+15555550100"]),
       zone=st.one_of(st.none(), st.sampled_from([z.key for z in ZONES])))
def test_quiet_until_holds_to_a_legal_instant_and_never_past_a_week(at: datetime, phone: str, zone: str | None) -> None:
    until = quiet_until(at, phone, stored_zone=zone)
    rule, zones = TABLE.rule_for(phone), recipient_zones(phone, zone)
    if until is None:
        assert allowed(at, rule, zones)
    else:
        assert until > at and allowed(until, rule, zones[:1]) and until - at < timedelta(days=8)
