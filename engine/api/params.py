"""Parsing Carousel API parameters (pure: plain strings in, typed values or InvalidInput out).

Every error is an :class:`~engine.errors.InvalidInput` naming the parameter, which the HTTP layer
turns into a 400 with that message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import orjson

from engine.api.dates import DateParseError, parse_when
from engine.errors import InvalidInput
from engine.policy.admission import BodyLimits, body_problem
from engine.policy.lifetime import (
    CATEGORIES,
    MAX_TYPE_CHARS,
    Category,
    DurationError,
    Notification,
    expiry,
    parse_duration,
)
from engine.segment import analyze
from engine.store.database import MAX_ID

__all__ = [
    "FALSE_WORDS",
    "MAX_BODY_CHARS",
    "MAX_IDS",
    "MAX_MESSAGE_ID",
    "MAX_RECIPIENTS",
    "MAX_TAG_CHARS",
    "OPT_OUT_KEYWORDS",
    "RESERVED_KEYWORDS",
    "TRUE_WORDS",
    "Params",
    "keyword_errors",
    "normalize_keyword",
    "optional",
    "parse_bool",
    "parse_country",
    "parse_int",
    "parse_message_ids",
    "parse_notification",
    "parse_on",
    "parse_recipients",
    "parse_tags",
    "phone_list",
    "placeholders",
    "render_template",
    "required",
    "split_csv",
    "validate_body",
    "validate_tag",
]

Params = Mapping[str, str]

TRUE_WORDS: Final = frozenset({"1", "t", "true", "y", "yes"})
FALSE_WORDS: Final = frozenset({"0", "f", "false", "n", "no"})
MAX_BODY_CHARS: Final = 1600  # Twilio's limit for one (concatenated) message
MAX_RECIPIENTS: Final = 1000  # phone numbers per call
MAX_IDS: Final = 10_000  # message ids per cancel_messages / delivery_status call
MAX_TAG_CHARS: Final = 255
MAX_MESSAGE_ID: Final = MAX_ID  # engine_outbound.id is a bigint

# Handled by the opt-out / opt-in / help modules before any keyword routing, so never an app's keyword.
OPT_OUT_KEYWORDS: Final = frozenset(
    {"STOP", "END", "QUIT", "CANCEL", "UNSUBSCRIBE", "Q", "STP", "REMOVE", "TERMINATE", "OPT OUT", "STOP ALL"}
)
RESERVED_KEYWORDS: Final = OPT_OUT_KEYWORDS | {"SUB", "SUBSCRIBE", "OPT-IN", "OPT IN", "START", "HELP", "HLP"}
MAX_TAGS: Final = 20
MAX_TAG_NAME_CHARS: Final = 64

_KEYWORD: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _-]{0,31}")
_PLACEHOLDER: Final = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
_COUNTRY: Final = re.compile(r"[A-Za-z]{2}")
_FRAGMENT: Final = re.compile(r"\+?[0-9A-Za-z*]{1,16}")
_MESSAGE_ID: Final = re.compile(r"[+-]?[0-9]+", re.ASCII)


def optional(params: Params, name: str) -> str | None:
    """The parameter with surrounding whitespace removed; None when absent or blank."""
    raw = params.get(name)
    if raw is None:
        return None
    text = raw.strip()
    return text or None


def required(params: Params, name: str) -> str:
    """The parameter (stripped), or InvalidInput when absent or blank."""
    value = optional(params, name)
    if value is None:
        raise InvalidInput(name, "is required")
    return value


def parse_bool(params: Params, name: str, default: bool = False) -> bool:
    """Carousel booleans: 1 t true y yes / 0 f false n no, any case; absent or blank = *default*."""
    value = optional(params, name)
    if value is None:
        return default
    word = value.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidInput(name, f"{value!r} is not a boolean (use 1/t/true/y/yes or 0/f/false/n/no)")


def parse_int(params: Params, name: str, default: int, *, low: int, high: int) -> int:
    """An integer within [low, high]; absent or blank = *default*."""
    value = optional(params, name)
    if value is None:
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise InvalidInput(name, f"{value!r} is not an integer") from None
    if not low <= number <= high:
        raise InvalidInput(name, f"must be between {low} and {high}")
    return number


def split_csv(raw: str) -> list[str]:
    """Comma-separated items, stripped, blanks dropped."""
    return [item for item in (part.strip() for part in raw.split(",")) if item]


def phone_list(params: Params, *, limit: int = MAX_RECIPIENTS) -> list[str]:
    """The raw numbers of ``phone_number`` and/or ``phone_numbers`` (comma-separated), in order."""
    raws: list[str] = []
    for name in ("phone_number", "phone_numbers"):
        value = optional(params, name)
        if value is not None:
            raws.extend(split_csv(value))
    if not raws:
        raise InvalidInput("phone_number", "phone_number or phone_numbers is required")
    if len(raws) > limit:
        raise InvalidInput("phone_numbers", f"at most {limit} phone numbers per call, got {len(raws)}")
    return raws


def parse_message_ids(params: Params, name: str = "message_ids") -> list[int]:
    """Comma-separated message ids; non-positive ones (the -1/-2/-3 codes) are ignored, and so are
    ids beyond the id column's range (bigint), which no message can have."""
    raws = split_csv(required(params, name))
    if len(raws) > MAX_IDS:
        raise InvalidInput(name, f"at most {MAX_IDS} ids per call, got {len(raws)}")
    ids: list[int] = []
    for raw in raws:
        # ASCII digits only: int() would also take '1_000', '٣' or '１２'.
        if not _MESSAGE_ID.fullmatch(raw):
            raise InvalidInput(name, f"{raw[:40]!r} is not a message id")
        digits = raw.lstrip("+-").lstrip("0")
        if len(digits) > len(str(MAX_MESSAGE_ID)):
            continue  # far out of range (and int() refuses very long digit strings)
        value = int(raw, 10)
        if 0 < value <= MAX_MESSAGE_ID:
            ids.append(value)
    return list(dict.fromkeys(ids))


def validate_body(
    name: str, body: str, *, max_chars: int = MAX_BODY_CHARS, max_segments: int | None = None, smart: bool = False
) -> str:
    """A message body: not blank, at most *max_chars* characters and (if given) *max_segments* segments,
    counted as admission counts them (with the app's smart encoding): the same rule as for every door."""
    if not body.strip():
        raise InvalidInput(name, "must not be empty")
    segments = None if max_segments is None or len(body) > max_chars else analyze(body, smart=smart).segments
    problem = body_problem(body, segments, BodyLimits(max_chars=max_chars, max_segments=max_segments or 0))
    if problem is not None:
        raise InvalidInput(name, problem)
    return body


def validate_tag(params: Params) -> str | None:
    tag = optional(params, "tag")
    if tag is not None and len(tag) > MAX_TAG_CHARS:
        raise InvalidInput("tag", f"at most {MAX_TAG_CHARS} characters")
    return tag


def parse_on(params: Params, now: datetime) -> datetime | None:
    """The ``on`` parameter as an aware UTC datetime (liberal parsing, UTC if no zone); None if absent."""
    value = optional(params, "on")
    if value is None:
        return None
    try:
        return parse_when(value, now)
    except DateParseError as exc:
        raise InvalidInput("on", str(exc)) from None


def parse_notification(params: Params, now: datetime, due: datetime | None) -> Notification:
    """``type`` (a free label), ``category`` (transactional, the default, or marketing) and the lifetime:
    ``valid_for`` (a duration from when the message is due: *due*, else *now*) and/or ``expires_at`` (a date,
    parsed as ``on`` is); the earlier wins. An expiry already past, or before *due*, is refused."""
    label = optional(params, "type")
    if label is not None and len(label) > MAX_TYPE_CHARS:
        raise InvalidInput("type", f"at most {MAX_TYPE_CHARS} characters")
    raw_category = (optional(params, "category") or "transactional").lower()
    if raw_category not in CATEGORIES:
        raise InvalidInput("category", "must be transactional or marketing")
    category: Category = "marketing" if raw_category == "marketing" else "transactional"
    valid_for = None
    if (text := optional(params, "valid_for")) is not None:
        try:
            valid_for = parse_duration(text)
        except DurationError as exc:
            raise InvalidInput("valid_for", str(exc)) from None
    expires_at = None
    if (text := optional(params, "expires_at")) is not None:
        try:
            expires_at = parse_when(text, now)
        except DateParseError as exc:
            raise InvalidInput("expires_at", str(exc)) from None
        if expires_at <= now:
            raise InvalidInput("expires_at", "is already past")
        if due is not None and expires_at <= due:
            raise InvalidInput("expires_at", "is not after the time the message is due (on)")
    return Notification(label, category, expiry(due or now, valid_for, expires_at))


def parse_country(params: Params) -> str:
    """ISO 3166-1 alpha-2 country code (default US), upper-cased."""
    value = optional(params, "country") or "US"
    if not _COUNTRY.fullmatch(value):
        raise InvalidInput("country", f"{value!r} is not an ISO 3166-1 alpha-2 country code")
    return value.upper()


def parse_number_fragment(params: Params, name: str = "number") -> str | None:
    """What a number search matches (Twilio's Contains): up to 16 digits, letters (keypad digits) or '*'."""
    fragment = optional(params, name)
    if fragment is not None and not _FRAGMENT.fullmatch(fragment):
        raise InvalidInput(name, "use up to 16 digits, letters or '*'")
    return fragment


# ---- templates ---------------------------------------------------------------------------------


def placeholders(template: str) -> list[str]:
    """Names used as ``{{name}}`` in *template*, first occurrence order, without duplicates."""
    return list(dict.fromkeys(m.group(1) for m in _PLACEHOLDER.finditer(template)))


def _text(value: Any) -> str | None:
    """A substitution value as text: strings as they are, numbers and booleans in JSON form."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return orjson.dumps(value).decode()
    return None


def render_template(template: str, values: Mapping[str, Any], *, param: str = "recipients", who: str = "") -> str:
    """Replace every ``{{name}}`` with values[name]; a missing (or non-scalar) value is an error."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise InvalidInput(param, f"{who or 'a recipient'} has no value for placeholder {{{{{name}}}}}")
        text = _text(values[name])
        if text is None:
            raise InvalidInput(param, f"{who or 'a recipient'}: value for {{{{{name}}}}} must be a string or number")
        return text

    return _PLACEHOLDER.sub(substitute, template)


def parse_recipients(raw: str, *, limit: int = MAX_RECIPIENTS) -> dict[str, dict[str, Any]]:
    """The ``recipients`` JSON object: phone number -> object of substitutions."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("recipients", f"is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("recipients", "must be a JSON object mapping phone numbers to substitution objects")
    if not doc:
        raise InvalidInput("recipients", "must name at least one phone number")
    if len(doc) > limit:
        raise InvalidInput("recipients", f"at most {limit} phone numbers per call, got {len(doc)}")
    result: dict[str, dict[str, Any]] = {}
    for phone, values in doc.items():
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise InvalidInput("recipients", f"the value for {phone!r} must be a JSON object")
        result[phone] = values
    return result


# ---- keywords ----------------------------------------------------------------------------------


def normalize_keyword(raw: str) -> str:
    """A keyword as stored: runs of whitespace become one space, none at the ends."""
    return " ".join(raw.split())


def keyword_errors(keyword: str) -> list[str]:
    """Format problems of a (normalised) keyword; empty when it is acceptable.

    Opt-out keywords also reserve everything that starts with them and a space, because the
    opt-out module ignores trailing text ("STOP please" opts out).
    """
    if not _KEYWORD.fullmatch(keyword):
        return [
            f"keyword {keyword!r} is invalid: use 1-32 letters, digits, spaces, '_' or '-', "
            "starting with a letter or digit"
        ]
    upper = keyword.upper()
    if upper in RESERVED_KEYWORDS:
        return [f"keyword {keyword!r} is reserved for opt-out, opt-in and help messages"]
    for word in OPT_OUT_KEYWORDS:
        if upper.startswith(word + " "):
            return [f"keyword {keyword!r} starts with the opt-out keyword {word!r} and could never be reached"]
    return []


def parse_tags(params: Params, name: str = "auto_subscribe_tags") -> tuple[str, ...]:
    """Comma-separated tags (order kept, duplicates dropped)."""
    value = optional(params, name)
    if value is None:
        return ()
    tags = tuple(dict.fromkeys(split_csv(value)))
    if len(tags) > MAX_TAGS:
        raise InvalidInput(name, f"at most {MAX_TAGS} tags")
    for tag in tags:
        if len(tag) > MAX_TAG_NAME_CHARS:
            raise InvalidInput(name, f"tag {tag[:20]!r}… is longer than {MAX_TAG_NAME_CHARS} characters")
    return tags
