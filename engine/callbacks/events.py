"""Callback events: their types, their fields (as the Carousel seed names them) and the form POSTed.

Pure. Every callback is an application/x-www-form-urlencoded POST with `type`, `app_id`, `event_id`
(the idempotency key: the same on every retry of one event) and the event's own fields. Values are
strings; booleans are "true"/"false"; lists are comma-separated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import urlencode

import orjson

DELIVERY_REPORT: Final = "delivery_report"
INCOMING_MESSAGE: Final = "incoming_message"
SESSION_CLOSED: Final = "session_closed"
PHONE_BLACKLISTED: Final = "phone_blacklisted"
PHONE_UNBLACKLISTED: Final = "phone_unblacklisted"
AUTO_REPLY_LOOP: Final = "auto_reply_loop"
NO_UNICODE_SUPPORT: Final = "no_unicode_support"
INVALID_CHARACTERS: Final = "invalid_characters"

EVENT_TYPES: Final = frozenset({
    DELIVERY_REPORT, INCOMING_MESSAGE, SESSION_CLOSED, PHONE_BLACKLISTED, PHONE_UNBLACKLISTED,
    AUTO_REPLY_LOOP, NO_UNICODE_SUPPORT, INVALID_CHARACTERS,
})
ENVELOPE: Final = ("type", "app_id", "event_id")


def field_text(value: object) -> str | None:
    """A payload value as the form carries it; None means "leave the field out"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return orjson.dumps(value).decode()


def form_fields(event_type: str, app_id: int, event_id: str, payload: Mapping[str, object]) -> list[tuple[str, str]]:
    """The (name, value) pairs of one callback: envelope first, then the payload fields sorted by name."""
    fields = [("type", event_type), ("app_id", str(app_id)), ("event_id", event_id)]
    for name in sorted(payload):
        if name in ENVELOPE:
            continue
        text = field_text(payload[name])
        if text is not None:
            fields.append((name, text))
    return fields


def encode_form(event_type: str, app_id: int, event_id: str, payload: Mapping[str, object]) -> bytes:
    """The raw request body (what the signature covers)."""
    return urlencode(form_fields(event_type, app_id, event_id, payload)).encode()


# ---- payload builders (what each event carries; see README "Callbacks") -------------------------

def delivery_report(message_id: int, status: int, final: bool, error_code: int | None = None) -> dict[str, str]:
    payload = {"message_id": str(message_id), "status": str(status), "final": "true" if final else "false"}
    if error_code is not None and status == 2:
        payload["error_code"] = str(error_code)
    return payload


def incoming_message(
    phone_number: str, body: str, sent_at: str, *, tag: str | None = None,
    auto_subscribe: bool = False, auto_responded: bool = False,
) -> dict[str, str]:
    payload = {"phone_number": phone_number, "body": body, "sent_at": sent_at,
               "auto_subscribe": "true" if auto_subscribe else "false",
               "auto_responded": "true" if auto_responded else "false"}
    if tag is not None:
        payload["tag"] = tag
    return payload


def session_closed(phone_numbers: Iterable[str]) -> dict[str, str]:
    return {"phone_numbers": ",".join(phone_numbers)}


def phone_event(phone_number: str) -> dict[str, str]:
    """phone_blacklisted, phone_unblacklisted and auto_reply_loop carry just the phone number."""
    return {"phone_number": phone_number}


def no_unicode_support(destination: str, message: str) -> dict[str, str]:
    return {"destination": destination, "message": message}


def invalid_characters(characters: Iterable[str]) -> dict[str, str]:
    return {"characters": ",".join(characters)}
