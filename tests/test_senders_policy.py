"""Sender types and 10DLC defaults as data (engine/policy/senders.toml) and the checks each type applies (pure)."""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.policy import senders
from engine.policy.senders import SenderError


def _data() -> dict[str, object]:
    return tomllib.loads(resources.files("engine.policy").joinpath("senders.toml").read_text("utf-8"))


def _entries(doc: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    for name, value in doc.items():
        if isinstance(value, dict) and ("sources" in value or any(isinstance(v, dict) for v in value.values())):
            if "sources" in value:
                out.append((name, value))
            else:
                out.extend((f"{name}.{k}", v) for k, v in value.items() if isinstance(v, dict))
    return out


def test_every_figure_names_its_source_and_the_day_it_was_read() -> None:
    entries = _entries(_data())
    assert {name for name, _ in entries} >= {
        "sender_types.long_code", "sender_types.toll_free", "sender_types.short_code", "sender_types.alphanumeric",
        "short_codes", "alphanumeric", "carrier_day", "brands", "tiers.default", "carrier_errors",
    }
    for name, entry in entries:
        sources = entry["sources"]
        assert isinstance(sources, list) and sources and all(isinstance(s, str) and s for s in sources), name
        assert date.fromisoformat(str(entry["read"])) <= date.today(), name


def test_type_defaults_are_the_documented_figures() -> None:
    assert senders.type_defaults("long_code") == senders.TypeDefaults(60, 1, True)  # 1 segment/s
    assert senders.type_defaults("toll_free") == senders.TypeDefaults(180, 1, True)  # 3 segments/s
    assert senders.type_defaults("short_code") == senders.TypeDefaults(6000, 10, True)  # 100 segments/s
    assert senders.type_defaults("alphanumeric").inbound is False  # send-only
    types = _data()["sender_types"]
    assert isinstance(types, dict) and set(senders.SENDER_TYPES) == set(types)


def test_tiers_and_reserve() -> None:
    assert senders.tier(None).name == "default" and senders.tier(None).daily_cap == 2000
    assert senders.tier("russell_3000").daily_cap == 200_000
    assert senders.tier("low_volume").campaign_mps == Decimal("1.25")
    with pytest.raises(SenderError, match="unknown tier"):
        senders.tier("platinum")
    assert senders.brand_reserve(2000) == 200
    assert senders.brand_reserve(1) == 0  # always below the cap
    assert senders.carrier_day_timezone() == "America/Los_Angeles"
    errors = senders.carrier_errors()
    assert errors.campaign_rate == {30022} and errors.brand_daily_cap == {30023}


@pytest.mark.parametrize(
    ("raw", "kind", "country", "expected"),
    [
        ("+1(646)200-0001", None, None, ("+16462000001", "long_code", None)),
        ("6462000001", "long_code", None, ("+16462000001", "long_code", None)),
        ("+18885550100", None, None, ("+18885550100", "toll_free", None)),  # detected
        ("8005551234", "toll_free", None, ("+18005551234", "toll_free", None)),
        ("12345", "short_code", None, ("12345", "short_code", "US")),
        ("123456", "short_code", "ca", ("123456", "short_code", "CA")),
        ("ACME Co", "alphanumeric", "GB", ("ACME Co", "alphanumeric", "GB")),
        ("A&B-2_x+1", "alphanumeric", "de", ("A&B-2_x+1", "alphanumeric", "DE")),
    ],
)
def test_senders_accepted_per_type(
    raw: str, kind: str | None, country: str | None, expected: tuple[str, str, str | None]
) -> None:
    assert senders.sender(raw, kind, country) == expected


@pytest.mark.parametrize(
    ("raw", "kind", "country", "field", "why"),
    [
        ("12345", None, None, "number", "short_code"),  # never guessed: the hint names the type
        ("ACME", None, None, "number", "alphanumeric"),
        ("1234", "short_code", None, "number", "5 or 6 digits"),
        ("1234567", "short_code", "US", "number", "5 or 6 digits"),
        ("01234", "short_code", None, "number", "digits"),
        ("12a45", "short_code", None, "number", "digits"),
        ("ACME", "alphanumeric", None, "country", "one country"),
        ("ACME", "alphanumeric", "US", "country", "do not accept"),
        ("ACME", "alphanumeric", "CA", "country", "do not accept"),
        ("123456", "alphanumeric", "GB", "number", "at least one letter"),
        ("TWELVECHARSX", "alphanumeric", "GB", "number", "1-11"),
        ("AC!ME", "alphanumeric", "GB", "number", "1-11"),
        ("+16462000001", "toll_free", None, "type", "not a toll-free"),
        ("+18885550100", "long_code", None, "type", "toll_free"),
        ("+1646200", "long_code", None, "number", "not a valid phone number"),
        ("+16462000001", "fax", None, "type", "unknown sender type"),
        ("12345", "short_code", "USA", "country", "alpha-2"),
    ],
)
def test_senders_refused_with_the_reason(raw: str, kind: str | None, country: str | None, field: str, why: str) -> None:
    with pytest.raises(SenderError) as caught:
        senders.sender(raw, kind, country)
    assert caught.value.field == field and why in str(caught.value)


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 +_&-", min_size=1,
               max_size=11).filter(lambda t: any(c.isalpha() for c in t) and t.strip() == t))
def test_any_well_formed_sender_id_is_accepted_as_is(text: str) -> None:
    assert senders.sender(text, "alphanumeric", "GB") == (text, "alphanumeric", "GB")


def test_mps_and_its_per_minute_window() -> None:
    assert senders.parse_mps("3") == Decimal(3)
    assert senders.parse_mps("1.25") == Decimal("1.25")
    assert senders.per_minute(Decimal("1.25")) == 75
    assert senders.per_minute(Decimal("0.25")) == 15
    assert senders.per_minute(Decimal("0.01")) == 1  # never 0: at least one segment a minute
    for bad in ("0", "-1", "abc", "1.255", "nan", "inf", "100000"):
        with pytest.raises(SenderError):
            senders.parse_mps(bad)
    assert senders.service_sid("MG" + "a" * 32) == "MG" + "a" * 32
    with pytest.raises(SenderError):
        senders.service_sid("MG123")
