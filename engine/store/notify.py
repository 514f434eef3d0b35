"""LISTEN/NOTIFY: the channels the schema's triggers notify, and listeners that survive a dropped connection.

The reconnecting loop is generic (`engine.runtime.listen.Listener`); this module supplies the part that
talks to PostgreSQL: a dedicated connection (LISTEN cannot share a pooled one) with a listener on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

import asyncpg

from engine.runtime.listen import Listener, Subscription
from engine.store.database import DB_ERRORS

NEW_MESSAGES: Final = "engine_outbound"  # a statement inserted queued rows (one NOTIFY per statement)
OUTBOX: Final = "engine_outbox"  # a statement inserted callback events
NEW_MOS: Final = "engine_inbound"  # the MO webhook stored a message
API_KEYS: Final = "engine_api_keys"  # an application's API key was rotated: cached keys are stale


async def subscribe(dsn: str, channel: str, on_notify: Callable[[], None]) -> Subscription:
    """A new connection to *dsn* listening on *channel*; *on_notify* runs on every notification."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.add_listener(channel, lambda *_: on_notify())
    except BaseException:
        conn.terminate()
        raise
    subscription: Subscription = conn
    return subscription


def listener(dsn: str, channel: str, wake: asyncio.Event, *, name: str, retry_delay: float = 1.0) -> Listener:
    """A `Listener` on *channel* that sets *wake* on every notification and reconnects when the connection drops."""

    async def open_subscription(on_notify: Callable[[], None]) -> Subscription:
        return await subscribe(dsn, channel, on_notify)

    return Listener(open_subscription, wake, name=name, errors=DB_ERRORS, retry_delay=retry_delay)
