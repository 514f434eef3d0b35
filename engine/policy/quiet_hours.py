"""Quiet hours for marketing messages: when, in the recipient's local time, one may reach a phone (pure).

The rules are data (``quiet_hours.toml`` next to this module, with the law each comes from): the federal
default 08:00–21:00 and stricter US states, which the number's area code selects. A window is ``[start, end)``:
21:00 itself is quiet. The recipient's time zone is the one stored for it if known, else the number's
(``phonenumbers``); a number spanning several zones may be texted only when every one of them allows it.

:func:`next_allowed` is the earliest instant at or after a given one at which a message may go: a held
marketing message is due again exactly then (never dropped). Daylight-saving gaps and folds are handled on
the wall clock: an instant is allowed when its local time falls in the day's window.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from phonenumbers import timezone as pn_timezone

__all__ = [
    "DAYS",
    "DEFAULT_WINDOW",
    "QuietTable",
    "Rule",
    "Window",
    "allowed",
    "load_table",
    "next_allowed",
    "parse_window",
    "quiet_until",
    "recipient_zones",
    "valid_zone",
]

DAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HORIZON_DAYS: Final = 8  # every rule opens at least one day a week: the next start is within 8 local days
_UNKNOWN_ZONE: Final = "Etc/Unknown"
_TICK: Final = timedelta(microseconds=1)  # clock jumps are located exactly (datetimes count microseconds)


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """Allowed from *start* (inclusive) to *end* (exclusive), local wall time, within one day."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"a window must start before it ends ({self.start:%H:%M}-{self.end:%H:%M})")

    def __contains__(self, t: time) -> bool:
        return self.start <= t < self.end

    def __and__(self, other: Window) -> Window | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Window(start, end) if start < end else None

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


DEFAULT_WINDOW: Final = Window(time(8), time(21))


@dataclass(frozen=True, slots=True)
class Rule:
    """One jurisdiction's windows, Monday first (None: no marketing that day), and where they come from."""

    name: str
    days: tuple[Window | None, ...]
    sources: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if len(self.days) != 7:
            raise ValueError("a rule has one entry per weekday")
        if not any(self.days):
            raise ValueError(f"{self.name}: a rule must allow some time in the week")

    def window(self, day: date) -> Window | None:
        return self.days[day.weekday()]

    def narrowed(self, other: Rule | Window | None) -> Rule | None:
        """This rule intersected with another rule or an every-day window; None when nothing is left."""
        if other is None:
            return self
        theirs = other.days if isinstance(other, Rule) else (other,) * 7
        days = tuple(a & b if a is not None and b is not None else None for a, b in zip(self.days, theirs, strict=True))
        return replace(self, days=days) if any(days) else None


@dataclass(frozen=True, slots=True)
class QuietTable:
    """The federal default, the stricter states (already intersected with it) and their area codes."""

    default: Rule
    states: Mapping[str, Rule]
    area_codes: Mapping[int, str]  # NANP area code -> state

    def state_of(self, e164: str) -> str | None:
        """The US state a +1 number's area code belongs to, when it is one with its own rule."""
        if not e164.startswith("+1") or len(e164) != 12 or not e164[2:5].isdigit():
            return None
        return self.area_codes.get(int(e164[2:5]))

    def rule_for(self, e164: str) -> Rule:
        state = self.state_of(e164)
        return self.states[state] if state is not None else self.default


def parse_window(raw: object, *, where: str = "window") -> Window:
    """``["08:00", "21:00"]`` or ``"08:00-21:00"`` as a :class:`Window`; ValueError saying what is wrong."""
    if isinstance(raw, str):
        parts: Sequence[object] = [p.strip() for p in raw.split("-")]
    elif isinstance(raw, list | tuple):
        parts = raw
    else:
        raise ValueError(f"{where}: expected HH:MM-HH:MM, got {raw!r}")
    if len(parts) != 2 or not all(isinstance(p, str) for p in parts):
        raise ValueError(f"{where}: expected HH:MM-HH:MM, got {raw!r}")
    try:
        start, end = (time.fromisoformat(str(p)) for p in parts)
    except ValueError:
        raise ValueError(f"{where}: expected HH:MM-HH:MM, got {raw!r}") from None
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError(f"{where}: local times only, got {raw!r}")
    try:
        return Window(start, end)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _rule(key: str, doc: Mapping[str, Any]) -> Rule:
    every = parse_window(doc["window"], where=f"{key}.window")
    days: list[Window | None] = []
    for name in DAYS:
        raw = doc.get(name, None)
        if raw is None:
            days.append(every)
        elif raw == []:
            days.append(None)
        else:
            days.append(parse_window(raw, where=f"{key}.{name}"))
    sources = tuple(doc.get("sources", ()))
    if not sources:
        raise ValueError(f"{key}: every rule names its sources")
    return Rule(str(doc.get("name", key)), tuple(days), sources)


def table_from(doc: Mapping[str, Any]) -> QuietTable:
    """Build (and check) a table from the TOML document's structure."""
    default = _rule("default", doc["default"])
    states: dict[str, Rule] = {}
    codes: dict[int, str] = {}
    for state, entry in doc.get("states", {}).items():
        rule = _rule(f"states.{state}", entry).narrowed(default)  # a state can only be stricter
        if rule is None:
            raise ValueError(f"states.{state}: leaves no time in the week")
        states[state] = rule
        for code in entry.get("area_codes", ()):
            if code in codes:
                raise ValueError(f"area code {code} is listed for {codes[code]} and {state}")
            codes[int(code)] = state
    return QuietTable(default, states, codes)


@cache
def load_table() -> QuietTable:
    """The table shipped with the engine (read once)."""
    text = resources.files(__package__).joinpath("quiet_hours.toml").read_text(encoding="utf-8")
    return table_from(tomllib.loads(text))


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def valid_zone(name: str) -> bool:
    """Whether *name* is an IANA time zone this machine knows (e.g. ``America/Chicago``)."""
    return name in _zone_names()


@lru_cache(maxsize=4096)
def recipient_zones(e164: str, stored: str | None = None) -> tuple[ZoneInfo, ...]:
    """The recipient's time zone(s): the stored one if known, else the number's (every zone its prefix spans);
    UTC when neither is known."""
    if stored:
        try:
            return (ZoneInfo(stored),)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # the zone database changed under a stored name: fall back to the number's
    try:
        parsed = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return (ZoneInfo("UTC"),)
    names = [n for n in pn_timezone.time_zones_for_number(parsed) if n != _UNKNOWN_ZONE]
    zones: list[ZoneInfo] = []
    for name in names:
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return tuple(zones) or (ZoneInfo("UTC"),)


def _allowed_in(at: datetime, rule: Rule, zone: ZoneInfo) -> bool:
    local = at.astimezone(zone)
    window = rule.window(local.date())
    return window is not None and local.time().replace(tzinfo=None) in window


def allowed(at: datetime, rule: Rule, zones: Sequence[ZoneInfo]) -> bool:
    """Whether a marketing message may reach the recipient at *at* (aware): inside the window in every zone."""
    return all(_allowed_in(at, rule, z) for z in zones)


def _first_at_or_after(lo: datetime, hi: datetime, wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant in [lo, hi] whose local wall time in *zone* reaches *wall* (a clock jump in between)."""
    while hi - lo > _TICK:
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    if lo.astimezone(zone).replace(tzinfo=None) >= wall:
        return lo
    return hi


def _entries(day: date, start: time, zone: ZoneInfo) -> Iterator[datetime]:
    """The instants at which the local wall clock reaches *start* on *day*: one usually, two when the clock is set
    back over it, or the moment the clock jumps past it (a daylight-saving gap)."""
    wall = datetime.combine(day, start)
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    for t in {first, second}:
        if t.astimezone(zone).replace(tzinfo=None) == wall:
            yield t
    if first.astimezone(zone).replace(tzinfo=None) != wall:  # in a gap: the clock jumps over *wall*
        yield _first_at_or_after(min(first, second), max(first, second), wall, zone)


def _transitions(lo: datetime, hi: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    """The instants in (lo, hi] at which *zone*'s UTC offset changes (found hourly, then exactly)."""
    step = timedelta(hours=1)
    t = lo
    while t < hi:
        nxt = min(t + step, hi)
        if t.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            a, b = t, nxt
            offset = a.astimezone(zone).utcoffset()
            while b - a > _TICK:
                mid = a + (b - a) / 2
                if mid.astimezone(zone).utcoffset() == offset:
                    a = mid
                else:
                    b = mid
            yield b
        t = nxt


def _starts(at: datetime, rule: Rule, zone: ZoneInfo) -> Iterator[datetime]:
    today = at.astimezone(zone).date()
    for offset in range(-1, HORIZON_DAYS + 1):
        day = today + timedelta(days=offset)
        window = rule.window(day)
        if window is not None:
            yield from _entries(day, window.start, zone)


def _earliest(at: datetime, rule: Rule, zones: Sequence[ZoneInfo]) -> datetime | None:
    starts = sorted({t for z in zones for t in _starts(at, rule, z) if t > at})
    for candidate in starts:
        if allowed(candidate, rule, zones):
            found = candidate
            break
    else:
        return None
    # A clock set back can reopen a window (or another zone's) before the next start: check those instants too.
    moments = sorted({t for z in zones for t in _transitions(at, found, z) if t > at})
    return next((t for t in moments if t < found and allowed(t, rule, zones)), found)


def next_allowed(at: datetime, rule: Rule, zones: Sequence[ZoneInfo]) -> datetime:
    """The earliest instant at or after *at* when a marketing message may go (*at* itself when allowed).

    When several zones never agree within the horizon, the first zone alone decides (its own next start).
    """
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    if allowed(at, rule, zones):
        return at
    return _next_start(at, rule, tuple(zones))


@lru_cache(maxsize=1024)
def _next_start(at: datetime, rule: Rule, zones: tuple[ZoneInfo, ...]) -> datetime:
    # Cached: one claimed batch asks the same question (one *at*) for every recipient of a zone and rule.
    found = _earliest(at, rule, zones)
    if found is None and len(zones) > 1:
        found = _earliest(at, rule, zones[:1])
    if found is None:  # pragma: no cover - a rule allows some time every week (checked when it is built)
        raise ValueError(f"{rule.name}: no allowed time within {HORIZON_DAYS} days")
    return found


def quiet_until(
    at: datetime, e164: str, *, stored_zone: str | None = None, window: Window | None = None,
    table: QuietTable | None = None,
) -> datetime | None:
    """None when a marketing message to *e164* may go at *at*; else when it may (the next window's start).

    *window* is the application's own window, which only narrows the law's; if it leaves no time at all in the
    recipient's week, the law's rule alone applies.
    """
    table = table or load_table()
    legal = table.rule_for(e164)
    rule = legal.narrowed(window) or legal
    zones = recipient_zones(e164, stored_zone)
    if allowed(at, rule, zones):
        return None
    return next_allowed(at, rule, zones)
