"""Message lifetime and notification class (pure: no I/O, the clock is passed in).

A message may carry an expiry (``valid_for`` from when it is due, or an explicit ``expires_at``); one still
unsent when it expires ends ``expired`` and is never sent late. The rest of its validity goes to the carrier
(Twilio's ``ValidityPeriod``, 1–36,000 s) so the carrier's own queue cannot deliver it late either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

__all__ = [
    "CATEGORIES",
    "MAX_TYPE_CHARS",
    "MAX_VALID_FOR",
    "TWILIO_MAX_VALIDITY",
    "TWILIO_MIN_VALIDITY",
    "Category",
    "DurationError",
    "Notification",
    "carrier_validity",
    "expiry",
    "format_duration",
    "parse_duration",
    "parse_retention",
]

Category = Literal["transactional", "marketing"]
CATEGORIES: Final[tuple[Category, ...]] = ("transactional", "marketing")
MAX_TYPE_CHARS: Final = 64
MAX_VALID_FOR: Final = timedelta(days=365)  # a lifetime longer than a year is a typo, not a policy
TWILIO_MIN_VALIDITY: Final = 1  # seconds: Twilio's ValidityPeriod range
TWILIO_MAX_VALIDITY: Final = 36_000

_UNITS: Final = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.ASCII)
_WORDS: Final = {
    "weeks": "w", "week": "w", "wk": "w", "days": "d", "day": "d", "hours": "h", "hour": "h", "hrs": "h", "hr": "h",
    "minutes": "m", "minute": "m", "mins": "m", "min": "m", "seconds": "s", "second": "s", "secs": "s", "sec": "s",
}
_WORD: Final = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)", re.ASCII)
_ISO: Final = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", re.ASCII)


class DurationError(ValueError):
    """A duration that cannot be read, or is out of range."""


def parse_duration(text: str) -> timedelta:
    """A positive duration written as seconds (``3600``), units (``90s``, ``15m``, ``2h``, ``1d``, ``1h30m``,
    ``2 hours``) or ISO 8601 (``PT2H``, ``P1DT12H``); at most a year."""
    raw = text.strip().lower()
    if not raw:
        raise DurationError("empty duration")
    seconds: float | None = None
    if re.fullmatch(r"\d+(?:\.\d+)?", raw, re.ASCII):
        seconds = float(raw)
    elif (iso := _ISO.fullmatch(raw.upper())) and any(iso.groups()):
        d, h, m, s = (int(g or 0) for g in iso.groups())
        seconds = d * 86_400 + h * 3_600 + m * 60 + s
    else:
        compact = raw.replace(" ", "")
        if re.fullmatch(r"(?:\d+(?:\.\d+)?(?:w|d|h|m|s))+", compact, re.ASCII):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(compact))
        else:
            words = _WORD.findall(raw)
            rebuilt = " ".join(f"{n} {w}" for n, w in words)
            if words and all(w in _WORDS for _, w in words) and re.sub(r"\s+", " ", raw.replace(",", " ")).strip() \
                    in (rebuilt, rebuilt.replace(" ", "")):
                seconds = sum(float(n) * _UNITS[_WORDS[w]] for n, w in words)
    if seconds is None:
        raise DurationError(f"{text.strip()!r} is not a duration (try 3600, 90m, 2h, 1d or PT2H)")
    value = timedelta(seconds=seconds)
    if value <= timedelta(0):
        raise DurationError("must be longer than zero")
    if value > MAX_VALID_FOR:
        raise DurationError("must be at most 365 days")
    return value


_RETENTION: Final = re.compile(
    r"(\d+)(years?|yrs?|y|months?|mos?|weeks?|wks?|w|days?|d|hours?|hrs?|h)", re.ASCII)
_RETENTION_UNITS: Final = {"y": "years", "m": "months", "w": "weeks", "d": "days", "h": "hours"}
MIN_RETENTION_HOURS: Final = 24
MAX_RETENTION_YEARS: Final = 100


def parse_retention(text: str) -> str:
    """A retention period (``18 months``, ``18mo``, ``2y``, ``540d``, ``12w``, ``48h``, ``1y6mo``) as the text of a
    PostgreSQL interval (``'18 months'``): calendar months and years stay calendar ones. At least a day."""
    raw = text.strip().lower()
    compact = raw.replace(" ", "").replace(",", "")
    parts = _RETENTION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise DurationError(f"{text.strip()!r} is not a retention period (try 18 months, 2y, 540d or 12w)")
    amounts: dict[str, int] = {}
    for number, unit in parts:
        key = _RETENTION_UNITS["m" if unit.startswith("mo") else unit[0]]
        amounts[key] = amounts.get(key, 0) + int(number)
    hours = (amounts.get("years", 0) * 365 + amounts.get("months", 0) * 28 + amounts.get("weeks", 0) * 7
             + amounts.get("days", 0)) * 24 + amounts.get("hours", 0)
    if hours < MIN_RETENTION_HOURS:
        raise DurationError("must be at least a day")
    if hours > MAX_RETENTION_YEARS * 366 * 24:
        raise DurationError(f"must be at most {MAX_RETENTION_YEARS} years")
    return " ".join(f"{n} {unit}" for unit, n in amounts.items() if n)


def format_duration(value: timedelta) -> str:
    """``2h30m``-style text for a duration (what ``parse_duration`` reads back)."""
    seconds = int(value.total_seconds())
    parts = []
    for unit in ("d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNITS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts) or "0s"


def expiry(due: datetime, valid_for: timedelta | None, expires_at: datetime | None) -> datetime | None:
    """When a message expires: the earlier of *expires_at* and *due* + *valid_for* (None: never)."""
    candidates = [t for t in (expires_at, due + valid_for if valid_for is not None else None) if t is not None]
    return min(candidates) if candidates else None


def carrier_validity(expires_at: datetime | None, now: datetime) -> int | None:
    """Seconds of validity left to hand the carrier (clamped to Twilio's 1–36,000); None when the message has no
    expiry or more than the carrier's maximum left (the carrier's own default then applies)."""
    if expires_at is None:
        return None
    left = (expires_at - now).total_seconds()
    if left > TWILIO_MAX_VALIDITY:
        return None
    return max(TWILIO_MIN_VALIDITY, int(left))


@dataclass(frozen=True, slots=True)
class Notification:
    """What a door says about a message besides its body: free ``type`` label, ``category``, expiry."""

    type: str | None = None
    category: Category = "transactional"
    expires_at: datetime | None = None
