"""Sender types and US A2P 10DLC defaults (pure): what a sender may be, how fast it may send, and its checks.

The figures live in ``senders.toml`` next to this module, each with its source and the date it was read; this
module only reads them (once) and applies them:

- a DID's *sender type* (``long_code``, ``toll_free``, ``short_code``, ``alphanumeric``) sets its default pace
  (segments per minute and burst) and what its number must look like, per country;
- a brand's *tier* sets its daily cap (segments per carrier-day) and its campaigns' default throughput;
- the carrier day (T-Mobile's daily count) starts at midnight in ``carrier_day.timezone``.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any, Final, Literal

import phonenumbers

from engine.phone import to_e164

__all__ = [
    "MESSAGING_SERVICE",
    "SENDER_TYPES",
    "CarrierErrors",
    "SenderError",
    "SenderType",
    "Tier",
    "TypeDefaults",
    "brand_reserve",
    "carrier_day_timezone",
    "carrier_errors",
    "detect_type",
    "parse_mps",
    "per_minute",
    "sender",
    "service_pace",
    "service_sid",
    "tier",
    "tiers",
    "type_defaults",
]

SenderType = Literal["long_code", "toll_free", "short_code", "alphanumeric"]
SENDER_TYPES: Final[tuple[SenderType, ...]] = ("long_code", "toll_free", "short_code", "alphanumeric")
# Not a sender type an operator adds: the row that stands for an app's Twilio Messaging Service (no DIDs of its
# own: Twilio picks the sender from the service's pool), paced at the service's throughput.
MESSAGING_SERVICE: Final = "messaging_service"
_SERVICE_SID: Final = re.compile(r"MG[0-9a-fA-F]{32}", re.ASCII)
_DIGITS: Final = re.compile(r"[0-9]+", re.ASCII)
_COUNTRY: Final = re.compile(r"[A-Z]{2}", re.ASCII)
MAX_MPS: Final = Decimal(10_000)


class SenderError(ValueError):
    """A sender that its type does not allow (the message says why); *field* names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class TypeDefaults:
    limit_per_min: int
    burst: int
    inbound: bool  # can be texted (gets an SmsUrl); False for sender IDs


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    daily_cap: int  # segments per carrier-day (T-Mobile)
    campaign_mps: Decimal  # segments per second toward one carrier


@dataclass(frozen=True, slots=True)
class CarrierErrors:
    campaign_rate: frozenset[int]  # Twilio codes meaning "this campaign sends too fast" (30022)
    brand_daily_cap: frozenset[int]  # "this brand reached its daily cap" (30023)
    slowdown_factor: float
    slowdown_seconds: float
    retry_seconds: float = 5.0
    max_requeues: int = 5

    @property
    def codes(self) -> frozenset[int]:
        """Every code that slows a campaign or brand down instead of failing the message."""
        return self.campaign_rate | self.brand_daily_cap


@cache
def _data() -> dict[str, Any]:
    text = resources.files("engine.policy").joinpath("senders.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def type_defaults(sender_type: str) -> TypeDefaults:
    """The default pace of a sender type (a messaging service has none: its throughput is always given)."""
    entry = _data()["sender_types"][sender_type]
    return TypeDefaults(int(entry["limit_per_min"]), int(entry["burst"]), bool(entry["inbound"]))


def tiers() -> dict[str, Tier]:
    return {
        name: Tier(name, int(entry["daily_cap"]), Decimal(str(entry["campaign_mps"])))
        for name, entry in _data()["tiers"].items()
    }


def tier(name: str | None) -> Tier:
    """A brand tier by name (None: the default tier); SenderError naming the tiers there are."""
    known = tiers()
    key = name if name is not None else str(_data()["brands"]["default_tier"])
    if key not in known:
        raise SenderError("tier", f"unknown tier {key!r}: one of {', '.join(sorted(known))}")
    return known[key]


def brand_reserve(daily_cap: int) -> int:
    """The default reserve for transactional messages under a daily cap (always below the cap)."""
    reserve = math.floor(daily_cap * float(_data()["brands"]["reserve_fraction"]))
    return min(reserve, daily_cap - 1)


def carrier_day_timezone() -> str:
    return str(_data()["carrier_day"]["timezone"])


def carrier_errors() -> CarrierErrors:
    entry = _data()["carrier_errors"]
    return CarrierErrors(
        frozenset(int(c) for c in entry["campaign_rate"]), frozenset(int(c) for c in entry["brand_daily_cap"]),
        float(entry["slowdown_factor"]), float(entry["slowdown_seconds"]), float(entry["retry_seconds"]),
        int(entry["max_requeues"]),
    )


def parse_mps(text: str | float | Decimal, *, field: str = "mps") -> Decimal:
    """Segments per second, > 0, with at most two decimals (1.25 is Twilio's low-volume figure)."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise SenderError(field, f"{text!r} is not a number of segments per second") from None
    if not value.is_finite() or value <= 0 or value > MAX_MPS:
        raise SenderError(field, f"must be more than 0 and at most {MAX_MPS} segments per second")
    if value != value.quantize(Decimal("0.01")):
        raise SenderError(field, "use at most two decimals")
    return value


def per_minute(mps: Decimal) -> int:
    """A throughput in segments/s as the segments per 60-second window the scheduler enforces (rounded down:
    never faster than given; at least 1)."""
    return max(1, math.floor(mps * 60))


def _country(country: str | None, field: str = "country") -> str | None:
    if country is None:
        return None
    code = country.strip().upper()
    if not _COUNTRY.fullmatch(code):
        raise SenderError(field, f"{country!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def detect_type(raw: str) -> SenderType:
    """The type of a phone number: toll_free for a toll-free number, else long_code. (Short codes and sender IDs
    are never guessed: a typo must not become a sender ID.)"""
    e164 = to_e164(raw.strip())
    return "toll_free" if e164 is not None and _is_toll_free(e164) else "long_code"


def _is_toll_free(e164: str) -> bool:
    return phonenumbers.number_type(phonenumbers.parse(e164)) == phonenumbers.PhoneNumberType.TOLL_FREE


def sender(raw: str, sender_type: str | None = None, country: str | None = None) -> tuple[str, SenderType, str | None]:
    """Check a sender against its type: (the sender as stored, its type, its country or None).

    Phone numbers (long codes, toll-free) become E.164 and carry their own country; a short code is 5–6 digits
    (per country, see senders.toml) and needs the country it serves (default US); a sender ID is 1–11 letters,
    digits, spaces or ``+ _ & -`` with at least one letter, for a country that accepts sender IDs (required).
    Without *sender_type* a phone number is expected (toll_free or long_code, by the number).
    """
    code = _country(country)
    kind = detect_type(raw) if sender_type is None else sender_type
    text = raw.strip()
    if kind == "short_code":
        return _short_code(text, code or "US"), "short_code", code or "US"
    if kind == "alphanumeric":
        return _alphanumeric(text, code), "alphanumeric", code
    if kind not in ("long_code", "toll_free"):
        raise SenderError("type", f"unknown sender type {kind!r}: one of {', '.join(SENDER_TYPES)}")
    e164 = to_e164(text, code or "US")
    if e164 is None:
        hint = ""
        if sender_type is None and _DIGITS.fullmatch(text) and len(text) <= 8:
            hint = " (a short code? give its type: short_code)"
        elif sender_type is None and any(ch.isalpha() for ch in text) and len(text) <= 11:
            hint = " (a sender ID? give its type: alphanumeric)"
        raise SenderError("number", f"{raw!r} is not a valid phone number{hint}")
    toll_free = _is_toll_free(e164)
    if kind == "toll_free" and not toll_free:
        raise SenderError("type", f"{e164} is not a toll-free number")
    if kind == "long_code" and toll_free:
        raise SenderError("type", f"{e164} is a toll-free number: add it with type toll_free")
    return e164, "toll_free" if toll_free else "long_code", None


def _short_code(text: str, country: str) -> str:
    entry = _data()["short_codes"]
    lengths = entry.get(country, entry["default"])
    if not _DIGITS.fullmatch(text) or len(text) not in lengths or text.startswith("0"):
        allowed = " or ".join(str(n) for n in lengths)
        raise SenderError("number", f"a {country} short code is {allowed} digits, not {text!r}")
    return text


def _alphanumeric(text: str, country: str | None) -> str:
    entry = _data()["alphanumeric"]
    if country is None:
        raise SenderError("country", "a sender ID serves one country: give it (e.g. GB)")
    if country in entry["unsupported_countries"]:
        raise SenderError("country", f"{country} carriers do not accept alphanumeric sender IDs")
    if not re.fullmatch(entry["pattern"], text) or not any(ch.isalpha() for ch in text):
        raise SenderError(
            "number", f"a sender ID is 1-{entry['max_chars']} letters, digits, spaces or '+ _ & -', "
            f"with at least one letter, not {text!r}")
    return text


@dataclass(frozen=True, slots=True)
class ServicePace:
    sid: str
    limit_per_min: int
    burst: int


def service_pace(sid: str, mps: str | float | Decimal) -> ServicePace:
    """A Messaging Service sender: its SID, and its throughput as segments per 60-s window with a burst of a tenth
    of a second of it (like a short code: a dispatcher a few milliseconds late catches up)."""
    rate = parse_mps(mps, field="--service-mps")
    return ServicePace(service_sid(sid), per_minute(rate), max(1, math.floor(rate / 10)))


def service_sid(raw: str) -> str:
    """A Twilio Messaging Service SID ('MG' and 32 hex digits)."""
    text = raw.strip()
    if not _SERVICE_SID.fullmatch(text):
        raise SenderError("messaging_service_sid", "a Messaging Service SID is 'MG' followed by 32 hex characters")
    return text
