"""Daily caps (pure): a count of segments per carrier-day, with the day's bounds from an injected wall clock.

T-Mobile counts what a 10DLC brand sends per calendar day and resets the count at midnight US Pacific. The
scheduler runs on its own float clock (monotonic in production, injected in tests); `CarrierDay` maps a
scheduler time to the bounds of its carrier day through *to_wall* (scheduler time -> epoch seconds), so the
day changes at the right moment whatever the clock, and daylight-saving days last 23 or 25 hours (zoneinfo).

A `DailyCap` is a fixed window, not a sliding one: ``used`` counts the segments sent since the current day
began and nothing sends past the cap until the next day. Three classes of work:

- EXEMPT never waits (an app's transactional messages when it does not hold them at the cap);
- URGENT (transactional, replies) may use the whole cap;
- BULK (marketing, jobs) stops ``reserve`` segments earlier, keeping that room for urgent work.

A send decided just before midnight may reach the carrier just after it, and count in the new day there: sends
within ``guard`` seconds of the day's end are also carried into the next day's count, so the carrier's count
never exceeds the cap on its side either (a few segments of margin, once a day).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["BULK", "EXEMPT", "URGENT", "CarrierDay", "DailyCap"]

EXEMPT = 0
URGENT = 1
BULK = 2
SAME_INSTANT = 1.0  # seconds: two day bounds this close are the same midnight


def _identity(t: float) -> float:
    return t


class CarrierDay:
    """The carrier day's bounds for a scheduler time, in scheduler time."""

    __slots__ = ("timezone", "to_wall")

    def __init__(self, timezone: str = "America/Los_Angeles", to_wall: Callable[[float], float] = _identity) -> None:
        self.timezone = ZoneInfo(timezone)
        self.to_wall = to_wall

    def bounds(self, t: float) -> tuple[float, float]:
        """[start, end) of the carrier day holding scheduler time *t*."""
        wall = self.to_wall(t)
        offset = wall - t
        day = datetime.fromtimestamp(wall, self.timezone).date()
        start = datetime(day.year, day.month, day.day, tzinfo=self.timezone)
        following = day + timedelta(days=1)
        end = datetime(following.year, following.month, following.day, tzinfo=self.timezone)
        return start.timestamp() - offset, end.timestamp() - offset


class DailyCap:
    """A brand's daily cap (or this worker's share of it) and what was sent against it today."""

    __slots__ = ("cap", "carry", "day", "end", "exhausted_until", "guard", "reserve", "start", "used")

    def __init__(self, cap: int, reserve: int, day: CarrierDay, *, guard: float = 0.2) -> None:
        if cap < 0 or reserve < 0:
            raise ValueError("cap and reserve must be >= 0")
        self.cap = cap
        self.reserve = min(reserve, cap)
        self.day = day
        self.guard = guard
        self.start = self.end = float("-inf")  # no day yet: the first roll() sets it
        self.used = 0  # segments counted in the current day
        self.carry = 0  # segments sent within `guard` of the day's end: counted in the next day too
        self.exhausted_until = float("-inf")  # the carrier said the cap is reached (30023): nothing holdable before

    def roll(self, now: float) -> None:
        """Move to the day holding *now* (a new day starts from what the last one carried into it)."""
        if now < self.end:
            return
        start, end = self.day.bounds(now)
        # The next day, or a later one? (Bounds come through a wall-clock mapping read at different moments: equal
        # only to within microseconds.)
        self.used = self.carry if abs(start - self.end) < SAME_INSTANT else 0
        self.carry = 0
        self.start, self.end = start, end

    def limit_for(self, cls: int) -> int:
        return self.cap if cls == URGENT else self.cap - self.reserve

    def allows(self, cost: int, cls: int, now: float) -> bool:
        """May *cost* segments of class *cls* go at *now*?"""
        if cls == EXEMPT:
            return True
        self.roll(now)
        if now < self.exhausted_until:
            return False
        return self.used + cost <= self.limit_for(cls)

    def blocked_until(self, cost: int, cls: int, now: float) -> float:
        """When work of class *cls* costing *cost* may go (now when it may go now; else the next day's start)."""
        if self.allows(cost, cls, now):
            return now
        return max(self.end, self.exhausted_until) if self.exhausted_until > now else self.end

    def record(self, cost: int, at: float) -> None:
        """Count a send at *at* (now, or earlier today for a replay)."""
        self.roll(at)
        if at < self.start - self.guard:
            return  # an earlier day's send: not today's
        self.used += cost
        if at >= self.end - self.guard:
            self.carry += cost

    def late(self, cost: int, decided_at: float, actual: float) -> None:
        """A send counted at *decided_at* reached the carrier at *actual*: if that crossed into the next carrier day
        unnoticed (not carried already), count it there too."""
        if decided_at < self.end - self.guard <= actual:
            self.carry += cost  # today's send the carrier may count tomorrow
        elif decided_at < self.start - self.guard <= actual:
            self.used += cost  # yesterday's send (not carried) the carrier counts today

    def exhaust(self, until: float) -> None:
        """The carrier says the cap is reached: nothing holdable goes before *until* (its next reset)."""
        self.exhausted_until = max(self.exhausted_until, until)
