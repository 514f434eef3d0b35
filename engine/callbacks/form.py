"""The form an application receives: one application/x-www-form-urlencoded POST per event.

Pure. Every callback carries `type`, `app_id`, `event_id` (the idempotency key: the same on every
retry of one event) and the event's own fields (see `engine.events`). Values are strings; booleans
are "true"/"false"; lists are comma-separated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import urlencode

import orjson

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
