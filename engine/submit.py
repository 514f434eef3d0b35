"""The Python door into the queue: `submit()` and `submit_many()`.

Same table and semantics as the SQL function `engine_submit(...)`; one round trip per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from engine.errors import InvalidInput
from engine.phone import to_e164
from engine.policy.lifetime import CATEGORIES, MAX_TYPE_CHARS, MAX_VALID_FOR, DurationError, expiry, parse_duration
from engine.store import outbound
from engine.store.admin import get_app
from engine.store.database import Pool


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to submit. *on* is when to send (timezone-aware; None = now).

    *type* is a free label (registration, reminder, …); *category* ``transactional`` (default) or ``marketing``
    (only to subscribers, inside the recipient's quiet hours); *valid_for* (a timedelta or text such as ``"2h"``,
    from when it is due) and/or *expires_at* (aware) end its lifetime, the earlier winning. Without either, the
    application's default lifetime applies.
    """

    recipient: str
    body: str
    tag: str | None = None
    on: datetime | None = None
    type: str | None = None
    category: str = "transactional"
    valid_for: timedelta | str | None = None
    expires_at: datetime | None = None


def _valid_for(value: timedelta | str | None, where: str) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except DurationError as exc:
            raise InvalidInput(where, str(exc)) from None
    if value <= timedelta(0) or value > MAX_VALID_FOR:
        raise InvalidInput(where, "must be longer than zero and at most 365 days")
    return value


def _message(i: int, m: Outgoing, now: datetime) -> outbound.NewMessage:
    """Validate one message (every error names the field, as messages[i].field)."""
    e164 = to_e164(m.recipient)
    if e164 is None:
        raise InvalidInput(f"messages[{i}].recipient", f"{m.recipient!r} is not a valid phone number")
    if m.on is not None and m.on.tzinfo is None:
        raise InvalidInput(f"messages[{i}].on", "must be timezone-aware")
    label = m.type.strip() if m.type is not None else None
    if label is not None and not 1 <= len(label) <= MAX_TYPE_CHARS:
        raise InvalidInput(f"messages[{i}].type", f"must be 1-{MAX_TYPE_CHARS} characters")
    if m.category not in CATEGORIES:
        raise InvalidInput(f"messages[{i}].category", "must be transactional or marketing")
    valid_for = _valid_for(m.valid_for, f"messages[{i}].valid_for")
    due = m.on or now
    if m.expires_at is not None:
        where = f"messages[{i}].expires_at"
        if m.expires_at.tzinfo is None:
            raise InvalidInput(where, "must be timezone-aware")
        if m.expires_at <= now:
            raise InvalidInput(where, "is already past")
        if m.expires_at <= due:
            raise InvalidInput(where, "is not after the time the message is due (on)")
    return outbound.NewMessage(e164, m.body, m.tag, m.on, label, m.category, expiry(due, valid_for, m.expires_at))


async def submit_many(pool: Pool, app: str, messages: Iterable[Outgoing], *, now: datetime | None = None) -> list[int]:
    """Queue *messages* for *app* in one statement; returns their ids in order.

    Every message is validated first: one invalid field rejects the whole batch, nothing queued. *now* (default:
    the current time) is what "already past" is judged against.
    """
    moment = now or datetime.now(UTC)
    rows = [_message(i, m, moment) for i, m in enumerate(messages)]
    if not rows:
        return []
    app_row = await get_app(pool, app)
    return await outbound.queue(pool, app_row.id, rows)


async def submit(
    pool: Pool, app: str, recipient: str, body: str, *, tag: str | None = None, on: datetime | None = None,
    type: str | None = None, category: str = "transactional", valid_for: timedelta | str | None = None,
    expires_at: datetime | None = None,
) -> int:
    """Queue one message; returns its id."""
    (message_id,) = await submit_many(
        pool, app, [Outgoing(recipient, body, tag, on, type, category, valid_for, expires_at)]
    )
    return message_id
