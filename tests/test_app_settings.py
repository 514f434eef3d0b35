"""Validation of `engine app set` values (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.app_settings import (
    format_flood_limit,
    format_period,
    format_retention,
    parse_bool,
    parse_flood_limit,
    parse_gateway_url,
    parse_period,
    parse_retention_setting,
    validate_app_changes,
)
from engine.errors import InvalidInput


@pytest.mark.parametrize(("raw", "seconds"), [
    ("60s", 60), ("10m", 600), ("1h", 3600), ("1d", 86400), ("90S", 90), (" 2 h ", 7200), ("366d", 366 * 86400),
])
def test_periods(raw: str, seconds: float) -> None:
    assert parse_period(raw) == seconds


@pytest.mark.parametrize("raw", ["", "60", "0s", "1w", "1.5h", "-1m", "h", "1h30m", "367d"])
def test_bad_periods(raw: str) -> None:
    with pytest.raises(InvalidInput):
        parse_period(raw)


@given(st.integers(min_value=1, max_value=366 * 86400))
def test_a_period_formatted_reads_back_the_same(seconds: int) -> None:
    """The console shows stored periods as `engine app set` takes them: what it shows must read back unchanged
    (else saving an untouched form would change the setting)."""
    text = format_period(seconds)
    assert parse_period(text) == seconds
    assert text == min((f"{seconds // u}{n}" for n, u in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
                        if seconds % u == 0), key=len)


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=1, max_value=366 * 86400))
def test_a_flood_limit_formatted_reads_back_the_same(limit: int, seconds: int) -> None:
    assert parse_flood_limit(format_flood_limit(limit, float(seconds))) == (limit, seconds)
    assert format_flood_limit(None, None) == "off" and parse_flood_limit("off") is None


@pytest.mark.parametrize(("stored", "shown"), [
    ("1 year 6 mons", "1y6mo"), ("90 days", "90d"), ("1 day 02:00:00", "1d2h"), ("2 years", "2y"), ("18 mons", "18mo"),
])
def test_a_stored_retention_is_shown_as_retention_reads_it(stored: str, shown: str) -> None:
    assert format_retention(stored) == shown
    assert parse_retention_setting(shown)  # what the console shows, `--retention` reads (the same interval: a
    # round trip through PostgreSQL is in tests/test_console_pages.py)


def test_flood_limit() -> None:
    assert parse_flood_limit("10/1h") == (10, 3600.0)
    assert parse_flood_limit(" 3 / 60s ") == (3, 60.0)
    for off in ("off", "OFF", "none", ""):
        assert parse_flood_limit(off) is None
    for bad in ("10", "0/1h", "x/1h", "10/", "/1h", "10/1x", "-1/1h", "1.5/1h"):
        with pytest.raises(InvalidInput, match="--flood-limit"):
            parse_flood_limit(bad)


def test_carousel_booleans() -> None:
    for raw in ("1", "t", "true", "y", "yes", "YES", " True "):
        assert parse_bool(raw) is True
    for raw in ("0", "f", "false", "n", "no", "No"):
        assert parse_bool(raw) is False
    with pytest.raises(InvalidInput, match="--smart-encoding"):
        parse_bool("maybe", name="--smart-encoding")


def test_gateway_url() -> None:
    assert parse_gateway_url("https://app.example.com/sms") == "https://app.example.com/sms"
    assert parse_gateway_url("") is None
    for bad in ("ftp://x", "example.com/cb", "http://", "https:///path"):
        with pytest.raises(InvalidInput, match="--gateway-url"):
            parse_gateway_url(bad)


def test_validate_collects_every_setting() -> None:
    changes = validate_app_changes({
        "gateway_url": "https://app.example.com/cb", "help_text": "Reply STOP to stop", "welcome_text": "",
        "split_mode": "Word", "smart_encoding": "yes", "flood_limit": "5/10m", "dedup_window": "120",
        "callback_concurrency": "8", "optout_text": None,
    })
    assert changes.columns == {
        "gateway_url": "https://app.example.com/cb", "help_text": "Reply STOP to stop", "welcome_text": None,
        "split_mode": "word", "smart_encoding": True, "callback_concurrency": 8,
    }
    assert changes.flood_limit == (5, 600.0) and not changes.clear_flood_limit
    assert changes.dedup_seconds == 120.0
    assert "flood_limit = 5 per 600s" in changes.describe()
    assert validate_app_changes({"flood_limit": "off"}).clear_flood_limit
    assert not validate_app_changes({"help_text": None})


@pytest.mark.parametrize(("name", "raw", "flag"), [
    ("split_mode", "paragraph", "--split-mode"),
    ("smart_encoding", "perhaps", "--smart-encoding"),
    ("callback_concurrency", "0", "--callback-concurrency"),
    ("callback_concurrency", "many", "--callback-concurrency"),
    ("dedup_window", "-5", "--dedup-window"),
    ("dedup_window", "nan", "--dedup-window"),
    ("help_text", "x" * 1601, "--help-text"),
    ("flood_limit", "ten/1h", "--flood-limit"),
])
def test_validate_names_the_bad_flag(name: str, raw: str, flag: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_app_changes({"help_text": "fine", name: raw})
    assert str(info.value).startswith(flag + ":")


def test_inbound_settings() -> None:
    changes = validate_app_changes({"session_idle": "2h", "loop_max_replies": "4", "loop_window": "30s",
                                    "loop_max_repeats": "3", "loop_cooldown": "1h"})
    assert changes.columns == {"session_idle_seconds": 7200, "loop_max_replies": 4, "loop_window_seconds": 30,
                               "loop_max_repeats": 3, "loop_cooldown_seconds": 3600}
    for name, bad in [("session_idle", "0s"), ("loop_max_replies", "0"), ("loop_max_repeats", "1"),
                      ("loop_window", "x"), ("loop_cooldown", "-1m")]:
        with pytest.raises(InvalidInput, match="--" + name.replace("_", "-")):
            validate_app_changes({name: bad})
