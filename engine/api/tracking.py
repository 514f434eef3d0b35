"""The tracking calls of the HTTP API: ``messages`` (the list, filtered and paged), ``message`` (one message with its
status timeline) and ``resend``. Plugged into :class:`engine.api.carousel.CarouselApi` like its own calls (same
authentication, errors and GET/POST forms); an application sees only its own messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from engine.api import params as pp
from engine.api.dates import DateParseError, parse_when
from engine.errors import Conflict, InvalidInput, NotFound
from engine.phone import to_e164
from engine.policy.lifetime import MAX_TYPE_CHARS
from engine.store import tracking as store
from engine.store.carousel import ApiApp
from engine.store.database import Pool

__all__ = ["TrackingApi", "parse_filter"]

Reply = dict[str, Any]


def _when(p: pp.Params, name: str, now: datetime) -> datetime | None:
    value = pp.optional(p, name)
    if value is None:
        return None
    try:
        return parse_when(value, now)
    except DateParseError as exc:
        raise InvalidInput(name, str(exc)) from None


def parse_phone(p: pp.Params, name: str = "phone_number") -> str | None:
    """One phone number in E.164, or None when absent; InvalidInput when it cannot be understood."""
    raw = pp.optional(p, name)
    if raw is None:
        return None
    phone = to_e164(raw)
    if phone is None:
        raise InvalidInput(name, f"{raw[:40]!r} is not a valid phone number")
    return phone


def parse_filter(p: pp.Params, now: datetime) -> store.MessageFilter:
    """The list's filters: ``phone_number``, ``status`` (codes and/or states), ``type``, ``tag``, ``job_id``,
    ``since`` (inclusive) and ``until`` (exclusive), dates parsed like ``on``."""
    status = pp.optional(p, "status")
    label = pp.optional(p, "type")
    if label is not None and len(label) > MAX_TYPE_CHARS:
        raise InvalidInput("type", f"at most {MAX_TYPE_CHARS} characters")
    job = pp.optional(p, "job_id")
    since, until = _when(p, "since", now), _when(p, "until", now)
    if since is not None and until is not None and since >= until:
        raise InvalidInput("until", "must be after since")
    return store.MessageFilter(
        phone=parse_phone(p),
        states=() if status is None else store.states_for(status),
        type=label,
        tag=pp.validate_tag(p),
        job_id=None if job is None else store.parse_message_id(job, "job_id"),
        since=since,
        until=until,
    )


class TrackingApi:
    """Handlers of the tracking calls; ``calls`` maps each call name to its handler."""

    def __init__(self, pool: Pool, clock: Callable[[], datetime]) -> None:
        self.pool = pool
        self.clock = clock
        self.calls: dict[str, Callable[[ApiApp, pp.Params], Awaitable[Reply]]] = {
            "messages": self.messages,
            "message": self.message,
            "resend": self.resend,
        }

    async def messages(self, app: ApiApp, p: pp.Params) -> Reply:
        flt = parse_filter(p, self.clock())
        limit = pp.parse_int(p, "limit", store.DEFAULT_LIMIT, low=1, high=store.MAX_LIMIT)
        page = await store.list_messages(self.pool, [app.id], flt, limit=limit, cursor=pp.optional(p, "cursor"))
        return {"messages": [m.as_json() for m in page.messages], "next_cursor": page.next_cursor}

    async def message(self, app: ApiApp, p: pp.Params) -> Reply:
        message_id = store.parse_message_id(p.get("message_id"))
        detail = await store.message_detail(self.pool, message_id, app.id)
        if detail is None:
            raise NotFound(f"message_id: no message {message_id} of this application")
        return detail.as_json()

    async def resend(self, app: ApiApp, p: pp.Params) -> Reply:
        message_id = store.parse_message_id(p.get("message_id"))
        phone = parse_phone(p)
        result = await store.resend(self.pool, message_id, now=self.clock(), app_id=app.id, phone=phone)
        if isinstance(result, store.Refused):
            if result.reason == "not_found":
                raise NotFound(f"message_id: {result.detail}")
            raise Conflict(f"not resent: {result.detail}", reason=result.reason)
        return {"message_id": str(result.message_id)}
