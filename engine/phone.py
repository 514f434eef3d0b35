"""Phone numbers to E.164 (pure): 10 digits with or without country code, punctuation allowed."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata, PhoneNumberDesc

DEFAULT_REGION = "US"

# Already plain North American digits (+1NXXXXXXXXX, 1NXXXXXXXXX or NXXXXXXXXX, N = 2-9): the common case of a
# bulk job's CSV, decided without phonenumbers' general parser (10x faster; the same answer, tests/test_phone.py).
_PLAIN_NANP: Final = re.compile(r"(?:\+?1)?([2-9][0-9]{9})", re.ASCII)
# … also written with spaces, parentheses, dashes or dots between the digits: (212) 555-0100, 1-212-555-0100.
_PUNCTUATED: Final = re.compile(r"\+?[0-9 ().-]+", re.ASCII)
_SEPARATORS: Final = str.maketrans("", "", " ().-")
# The number types phonenumbers tells apart; a number is valid for a region when it is one of them there.
_TYPES: Final = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
                 "fixed_line", "mobile")


@dataclass(frozen=True, slots=True)
class _Region:
    """One region of +1 from phonenumbers' metadata, for 10-digit national numbers: the digits it claims a
    number by (None: by validity), its general pattern and (all in one) the patterns of its number types."""

    leading: re.Pattern[str] | None
    general: re.Pattern[str] | None
    types: re.Pattern[str] | None


def _pattern(desc: PhoneNumberDesc | None) -> str | None:
    """A description's pattern where it may match a 10-digit number (phonenumbers' _is_number_matching_desc)."""
    if desc is None or not desc.national_number_pattern:
        return None
    if desc.possible_length and 10 not in desc.possible_length:
        return None
    return str(desc.national_number_pattern)


@functools.cache
def _nanp_regions() -> tuple[_Region, ...]:
    regions = []
    for code in phonenumbers.region_codes_for_country_code(1):
        md = PhoneMetadata.metadata_for_region(code, None)
        if md is None:
            continue
        general = _pattern(md.general_desc)
        types = [p for t in _TYPES if (p := _pattern(getattr(md, t))) is not None]
        regions.append(_Region(
            re.compile(md.leading_digits) if md.leading_digits is not None else None,
            re.compile(general) if general is not None else None,
            re.compile("|".join(f"(?:{p})" for p in types)) if types else None,
        ))
    return tuple(regions)


def _valid_nanp(national: str) -> bool:
    """phonenumbers.is_valid_number for +1 and a 10-digit national number, with the library's metadata and its
    steps: the first region that claims the number (by its leading digits, or by the number being valid there)
    decides."""
    for region in _nanp_regions():
        valid = (region.general is not None and region.types is not None
                 and region.general.fullmatch(national) is not None and region.types.fullmatch(national) is not None)
        if region.leading is not None:
            if region.leading.match(national):
                return valid
        elif valid:
            return True
    return False


def to_e164(raw: str, region: str = DEFAULT_REGION) -> str | None:
    """Normalise *raw* (e.g. ``+1(347)264-3707``, ``3472643707``) to E.164, or None if it is not a number.

    Test numbers (national part starting 555) are accepted even though they are not assignable.
    """
    text = raw.strip()
    if not text or len(text) > 32:
        return None
    if region == "US" and _PUNCTUATED.fullmatch(text) is not None:
        plain = _PLAIN_NANP.fullmatch(text.translate(_SEPARATORS))
        if plain is not None:
            return _nanp(plain.group(1))
    return library_e164(text, region)


def library_e164(text: str, region: str = DEFAULT_REGION) -> str | None:
    """The general path: phonenumbers' own parse and validation of a stripped, non-empty *text* (to_e164 answers
    plain North American numbers without it, with the same result)."""
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
    if national.startswith("555") or _valid_nanp(national):
        return f"+1{national}"
    return None


def is_test_number(e164: str) -> bool:
    """Numbers whose national part starts with 555 never reach a carrier (Carousel test numbers)."""
    return e164.startswith("+1555")
