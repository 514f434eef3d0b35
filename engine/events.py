"""Callback events: their types and the fields each carries (as the Carousel seed names them).

Pure, and below every stage: the store writes events, the dispatch stages and the inbound chain
build them, the callbacks package delivers them (`engine.callbacks.form` encodes the POST). Values
are strings; booleans are "true"/"false"; lists are comma-separated.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

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


# ---- payload builders (what each event carries; see README "Callbacks") -------------------------

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
