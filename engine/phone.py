"""Phone numbers to E.164 (pure): 10 digits with or without country code, punctuation allowed."""

from __future__ import annotations

import re
from typing import Final

import phonenumbers

DEFAULT_REGION = "US"

# Already plain North American digits (+1NXXXXXXXXX, 1NXXXXXXXXX or NXXXXXXXXX, N = 2-9): the common case of a
# bulk job's CSV, decided without phonenumbers' general parser (4x faster, the same answer: see tests/test_phone.py).
_PLAIN_NANP: Final = re.compile(r"(?:\+?1)?([2-9][0-9]{9})", re.ASCII)


def to_e164(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """Normalise *raw* (e.g. ``+1(347)264-3707``, ``3472643707``) to E.164, or None if it is not a number.

    Test numbers (national part starting 555) are accepted even though they are not assignable.
    """
    text = raw.strip()
    if not text or len(text) > 32:
        return None
    if region == "US" and (plain := _PLAIN_NANP.fullmatch(text)) is not None:
        return _nanp(plain.group(1))
    digits = "".join(ch for ch in text if ch.isdigit())
    if region == "US" and not text.startswith("+") and len(digits) == 11 and digits[0] == "1":
        text = "+" + digits
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    national = str(parsed.national_number)
    if parsed.country_code == 1 and len(national) == 10 and national.startswith("555"):
        return f"+1{national}"
    if not phonenumbers.is_possible_number(parsed) or not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _nanp(national: str) -> str | None:
    """+1 and the 10 digits *national* (first digit 2-9) when the number is valid (or a 555 test number)."""
    if national.startswith("555"):
        return f"+1{national}"
    number = phonenumbers.PhoneNumber(country_code=1, national_number=int(national))
    # Valid for the US, or else for any other region of +1 (what is_valid_number checks, region by region).
    if phonenumbers.is_possible_number(number) and (
        phonenumbers.is_valid_number_for_region(number, "US") or phonenumbers.is_valid_number(number)
    ):
        return f"+1{national}"
    return None


def is_test_number(e164: str) -> bool:
    """Numbers whose national part starts with 555 never reach a carrier (Carousel test numbers)."""
    return e164.startswith("+1555")
