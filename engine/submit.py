"""The Python door into the queue: `submit()` and `submit_many()`.

Same table and semantics as the SQL function `engine_submit(...)`; one round trip per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from engine.errors import InvalidInput
from engine.phone import to_e164
from engine.store import outbound
from engine.store.admin import get_app
from engine.store.database import Pool


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to submit. *on* is when to send (timezone-aware; None = now)."""

    recipient: str
    body: str
    tag: str | None = None
    on: datetime | None = None


async def submit_many(pool: Pool, app: str, messages: Iterable[Outgoing]) -> list[int]:
    """Queue *messages* for *app* in one statement; returns their ids in order.

    Every recipient is validated first: one invalid number rejects the whole batch, nothing queued.
    """
    items = list(messages)
    rows: list[outbound.NewMessage] = []
    for i, m in enumerate(items):
        e164 = to_e164(m.recipient)
        if e164 is None:
            raise InvalidInput(f"messages[{i}].recipient", f"{m.recipient!r} is not a valid phone number")
        if m.on is not None and m.on.tzinfo is None:
            raise InvalidInput(f"messages[{i}].on", "must be timezone-aware")
        rows.append(outbound.NewMessage(e164, m.body, m.tag, m.on))
    if not rows:
        return []
    app_row = await get_app(pool, app)
    return await outbound.queue(pool, app_row.id, rows)


async def submit(
    pool: Pool, app: str, recipient: str, body: str, *, tag: str | None = None, on: datetime | None = None
) -> int:
    """Queue one message; returns its id."""
    (message_id,) = await submit_many(pool, app, [Outgoing(recipient, body, tag, on)])
    return message_id
