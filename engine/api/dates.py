"""Liberal date/time parsing for the Carousel `on` parameter (pure: no I/O, the clock is passed in).

Accepts what the Carousel API documents: ``16:30`` (today at that time), ``Aug 31`` / ``7/31``
(this year, 00:00), ``2/9/2007`` / ``2007-02-09``, ``02-09-2007 12:30:44 AM``,
``2007-09-02T00:30:44Z``, ``02-09-2007 12:30:44 PM EST``, ``2007-09-02T12:30:44-0500``,
``Wednesday, January 10, 2001``, ``10/12/2008 12:55AM -0500``, RFC 2822 dates, plus the words
``now``, ``today`` and ``tomorrow``. No zone means UTC.

Day/month order follows the documented examples: with slashes the month comes first
(``2/9/2007`` = 9 February, US style); with dashes and the year last the day comes first
(``02-09-2007`` = 2 September, as the documentation pairs it with ``2007-09-02``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Final

from dateutil import parser as _parser

__all__ = ["ZONE_OFFSETS", "DateParseError", "parse_when"]

MAX_LENGTH: Final = 64

# Zone abbreviations understood by name (hours east of UTC). Numeric offsets are always understood.
ZONE_OFFSETS: Final[dict[str, float]] = {
    "UTC": 0, "UT": 0, "GMT": 0, "Z": 0,
    "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
    "AKST": -9, "AKDT": -8, "HST": -10, "AST": -4, "ADT": -3, "NST": -3.5, "NDT": -2.5,
    "BST": 1, "CET": 1, "CEST": 2, "EET": 2, "EEST": 3, "WET": 0, "WEST": 1,
}

_DAY_FIRST: Final = re.compile(r"^\s*\d{1,2}-\d{1,2}-\d{2,4}(?!\d)")
# Typographic dashes and the minus sign (as in "12:55AM —0500") read as a plain hyphen.
_DASHES: Final = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
                                "\u2212": "-"})


class DateParseError(ValueError):
    """The text is not a date/time this parser understands."""


class _UnknownZone(ValueError):
    pass


def _zone(name: str | None, offset: int | None) -> tzinfo | None:
    """dateutil's tzinfos hook: a fixed-offset zone for a known name or a numeric offset."""
    if offset is not None:
        return UTC if offset == 0 else timezone(timedelta(seconds=offset))
    if name is None:
        return None
    hours = ZONE_OFFSETS.get(name.upper())
    if hours is None:
        raise _UnknownZone(f"unknown time zone {name!r}; use a numeric offset such as -0500")
    return UTC if hours == 0 else timezone(timedelta(hours=hours))


def _relative_word(word: str, midnight: datetime, now: datetime) -> datetime | None:
    if word == "now":
        return now
    if word == "today":
        return midnight
    if word == "tomorrow":
        return midnight + timedelta(days=1)
    return None


def parse_when(text: str, now: datetime) -> datetime:
    """Parse *text* into an aware UTC datetime; missing parts come from *now*'s date at 00:00 UTC.

    Raises DateParseError with a human-readable reason when it cannot.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    cleaned = " ".join(text.translate(_DASHES).split())
    if not cleaned:
        raise DateParseError("empty date/time")
    if len(cleaned) > MAX_LENGTH:
        raise DateParseError(f"longer than {MAX_LENGTH} characters")
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    relative = _relative_word(cleaned.lower(), midnight, now)
    if relative is not None:
        return relative
    try:
        parsed = _parser.parse(
            cleaned,
            default=midnight.replace(tzinfo=None),
            dayfirst=bool(_DAY_FIRST.match(cleaned)),
            tzinfos=_zone,
        )
    except _UnknownZone as exc:
        raise DateParseError(str(exc)) from None
    except (ValueError, OverflowError) as exc:
        raise DateParseError(f"cannot understand {text.strip()!r} as a date/time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+0500 or 9999-12-31T23:00-0500: outside datetime's range in UTC
        raise DateParseError(f"{text.strip()!r} is out of range") from None
