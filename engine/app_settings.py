"""Validation of an application's settings as operators type them (`engine app set`). Pure.

Every value is checked before anything is written, and an error names the flag it came from.
An empty value clears an optional setting (texts, gateway URL; `--flood-limit off` too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from engine.errors import InvalidInput
from engine.policy.lifetime import DurationError, parse_duration, parse_retention
from engine.policy.quiet_hours import DEFAULT_WINDOW, parse_window

TRUE_WORDS: Final = frozenset({"1", "t", "true", "y", "yes"})
FALSE_WORDS: Final = frozenset({"0", "f", "false", "n", "no"})
SPLIT_MODES: Final = ("character", "word", "sentence")
TEXT_FLAGS: Final = ("help_text", "welcome_text", "optout_text", "optin_text", "nomatch_text")
MAX_TEXT: Final = 1600  # what one carrier request carries
MAX_PERIOD: Final = 366 * 86400.0
MAX_DEDUP: Final = 7 * 86400.0
MAX_CALLBACK_CONCURRENCY: Final = 100
_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PERIOD: Final = re.compile(r"(\d+)\s*([smhd])")
_CLEAR: Final = frozenset({"", "off", "none"})
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


MAX_SMSC_LIMIT = 100_000_000  # segments per minute for one pool: far above any real campaign
# Inbound settings: flag name -> column (periods as 60s/10m/1h/1d) …
PERIOD_COLUMNS: Final = {
    "session_idle": "session_idle_seconds",  # a session ends this long after the phone's last MO
    "loop_window": "loop_window_seconds",
    "loop_cooldown": "loop_cooldown_seconds",
}
# … and counts: flag name -> (column, lowest, highest).
COUNT_COLUMNS: Final = {
    "loop_max_replies": ("loop_max_replies", 1, 10_000),
    "loop_max_repeats": ("loop_max_repeats", 2, 10_000),
}


def flag(name: str) -> str:
    """The command-line spelling of a setting: help_text -> --help-text."""
    return "--" + name.replace("_", "-")


def parse_bool(raw: str, *, name: str = "value") -> bool:
    """Carousel booleans: 1 t true y yes / 0 f false n no, any case."""
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidInput(name, f"expected yes or no (1 t true y yes / 0 f false n no), got {raw!r}")


def parse_period(raw: str, *, name: str = "period") -> float:
    """'60s', '10m', '1h', '1d' -> seconds (> 0, at most a year)."""
    m = _PERIOD.fullmatch(raw.strip().lower())
    if m is None:
        raise InvalidInput(name, f"expected a period like 60s, 10m, 1h or 1d, got {raw!r}")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0 or seconds > MAX_PERIOD:
        raise InvalidInput(name, f"the period must be between 1s and 366d, got {raw!r}")
    return seconds


def format_period(seconds: float) -> str:
    """The inverse of :func:`parse_period`: 3600 -> '1h', 90 -> '90s' (the largest unit that divides it)."""
    whole = int(seconds)
    for unit in ("d", "h", "m"):
        size = int(_UNITS[unit])
        if whole > 0 and whole % size == 0 and whole == seconds:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def format_flood_limit(limit: int | None, seconds: float | None) -> str:
    """What `--flood-limit` takes for the stored limit: 'N/PERIOD', or 'off'."""
    if limit is None or seconds is None:
        return "off"
    return f"{limit}/{format_period(seconds)}"


def parse_flood_limit(raw: str, *, name: str = "--flood-limit") -> tuple[int, float] | None:
    """'N/PERIOD' (at most N messages to one phone per PERIOD) -> (N, seconds); 'off' or '' -> None."""
    text = raw.strip()
    if text.lower() in _CLEAR:
        return None
    count, slash, period = text.partition("/")
    if not slash or not count.strip().isdigit():
        raise InvalidInput(name, f"expected N/PERIOD like 10/1h (or off), got {raw!r}")
    n = int(count)
    if n < 1:
        raise InvalidInput(name, f"N must be >= 1, got {raw!r}")
    return n, parse_period(period, name=name)


def parse_gateway_url(raw: str, *, name: str = "--gateway-url") -> str | None:
    """An absolute http(s) URL; '' clears it."""
    text = raw.strip()
    if not text:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(name, f"expected an http(s) URL, got {raw!r}")
    return text


def parse_smsc_name(raw: str, *, name: str = "--smsc") -> str:
    """An SMSC's name: 1-63 letters, digits, '_', '.', '-'."""
    text = raw.strip()
    if not _NAME.fullmatch(text):
        raise InvalidInput(name, f"use 1-63 letters, digits, '_', '.', '-', got {raw!r}")
    return text


def parse_count(raw: str, *, name: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidInput(name, f"expected a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise InvalidInput(name, f"must be between {low} and {high}, got {value}")
    return value


def parse_seconds(raw: str, *, name: str, high: float) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise InvalidInput(name, f"expected a number of seconds, got {raw!r}") from None
    if not 0 <= value <= high:  # also refuses NaN
        raise InvalidInput(name, f"must be between 0 and {high:g} seconds, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class AppChanges:
    """Validated settings to write. `columns`: column -> value (None clears it)."""

    columns: dict[str, Any] = field(default_factory=dict)
    flood_limit: tuple[int, float] | None = None
    clear_flood_limit: bool = False
    dedup_seconds: float | None = None
    smsc: str | None = None  # move the app (and its keywords) to this SMSC

    def __bool__(self) -> bool:
        return bool(self.columns) or self.flood_limit is not None or self.clear_flood_limit or (
            self.dedup_seconds is not None or self.smsc is not None
        )

    def describe(self) -> list[str]:
        """One "name = value" line per change, for the operator."""
        lines = [f"{name} = {'(cleared)' if value is None else value!r}" for name, value in self.columns.items()]
        if self.flood_limit is not None:
            n, seconds = self.flood_limit
            lines.append(f"flood_limit = {n} per {seconds:g}s")
        if self.clear_flood_limit:
            lines.append("flood_limit = (off)")
        if self.dedup_seconds is not None:
            lines.append(f"dedup_window = {self.dedup_seconds:g}s")
        if self.smsc is not None:
            lines.append(f"smsc = {self.smsc!r}")
        return lines


def parse_lifetime(raw: str, *, name: str = "--valid-for") -> str | None:
    """The app's default message lifetime (``2h``, ``1d``, ``PT30M``…, at most 365 days) as interval text, or
    None for 'off' / '' (messages live until sent)."""
    if raw.strip().lower() in _CLEAR:
        return None
    try:
        return f"{parse_duration(raw).total_seconds():g} seconds"
    except DurationError as exc:
        raise InvalidInput(name, str(exc)) from None


def parse_retention_setting(raw: str, *, name: str = "--retention") -> str:
    """How long final messages and delivered callback events are kept (``18 months``, ``2y``, ``90d``)."""
    try:
        return parse_retention(raw)
    except DurationError as exc:
        raise InvalidInput(name, str(exc)) from None


_INTERVAL_UNITS: Final = {"year": "y", "years": "y", "mon": "mo", "mons": "mo", "day": "days", "days": "days"}


def format_retention(interval: str) -> str:
    """What `--retention` takes for a stored retention, from PostgreSQL's text of the interval: '1 year 6 mons' ->
    '1y6mo', '90 days' -> '90d', '1 day 02:00:00' -> '1d2h' (the console shows it so; it reads back the same)."""
    parts: list[str] = []
    words = interval.split()
    for i, word in enumerate(words):
        if ":" in word:  # the time part: whole hours are all a retention holds
            hours = int(word.split(":")[0])
            if hours:
                parts.append(f"{hours}h")
        elif i + 1 < len(words) and words[i + 1] in _INTERVAL_UNITS:
            unit = _INTERVAL_UNITS[words[i + 1]]
            parts.append(f"{int(word)}{'d' if unit == 'days' else unit}")
    return "".join(parts) or interval


def parse_quiet_window(raw: str, *, name: str = "--quiet-window") -> str:
    """The app's own marketing window, ``HH:MM-HH:MM`` local to the recipient; it only narrows the law's
    (08:00-21:00, stricter in some states), so it must overlap 08:00-21:00."""
    try:
        window = parse_window(raw.strip(), where=name)
    except ValueError as exc:
        raise InvalidInput(name, str(exc).removeprefix(f"{name}: ")) from None
    if window & DEFAULT_WINDOW is None:
        raise InvalidInput(name, f"{window} never overlaps the law's {DEFAULT_WINDOW}: no marketing could ever go")
    return f"{window.start:%H:%M}-{window.end:%H:%M}"


def _column(name: str, value: str, opt: str) -> tuple[str, Any]:
    """A setting that is one column of the app (or its SMSC): (column, validated value)."""
    if name in TEXT_FLAGS:
        if len(value) > MAX_TEXT:
            raise InvalidInput(opt, f"at most {MAX_TEXT} characters (got {len(value)})")
        return name, value if value.strip() else None
    if name == "gateway_url":
        return name, parse_gateway_url(value, name=opt)
    if name == "split_mode":
        mode = value.strip().lower()
        if mode not in SPLIT_MODES:
            raise InvalidInput(opt, f"expected one of {', '.join(SPLIT_MODES)}, got {value!r}")
        return name, mode
    if name in ("smart_encoding", "hold_transactional"):
        return name, parse_bool(value, name=opt)
    if name == "callback_concurrency":
        return name, parse_count(value, name=opt, low=1, high=MAX_CALLBACK_CONCURRENCY)
    if name == "smsc_limit_per_min":
        off = value.strip().lower() in ("off", "none", "")
        return name, None if off else parse_count(value, name=opt, low=1, high=MAX_SMSC_LIMIT)
    if name == "valid_for":
        return name, parse_lifetime(value, name=opt)
    if name == "retention":
        return name, parse_retention_setting(value, name=opt)
    if name == "quiet_hours":
        return name, parse_bool(value, name=opt)
    if name == "quiet_window":
        return name, parse_quiet_window(value, name=opt)
    if name in PERIOD_COLUMNS:
        return PERIOD_COLUMNS[name], int(parse_period(value, name=opt))
    if name in COUNT_COLUMNS:
        column, low, high = COUNT_COLUMNS[name]
        return column, parse_count(value, name=opt, low=low, high=high)
    raise InvalidInput(opt, "unknown setting")


def validate_app_changes(raw: dict[str, str | None]) -> AppChanges:
    """Check every given setting (None = flag absent); raise InvalidInput naming the first bad flag."""
    columns: dict[str, Any] = {}
    flood: tuple[int, float] | None = None
    clear_flood = False
    dedup: float | None = None
    smsc: str | None = None
    for name, value in raw.items():
        if value is None:
            continue
        opt = flag(name)
        if name == "flood_limit":
            flood = parse_flood_limit(value, name=opt)
            clear_flood = flood is None
        elif name == "dedup_window":
            dedup = parse_seconds(value, name=opt, high=MAX_DEDUP)
        elif name == "smsc":
            smsc = parse_smsc_name(value, name=opt)
        else:
            column, parsed = _column(name, value, opt)
            columns[column] = parsed
    return AppChanges(columns, flood, clear_flood, dedup, smsc)
