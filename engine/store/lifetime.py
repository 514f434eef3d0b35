"""Message lifetime, quiet hours and retention in the database: holds, the expiry sweep, recipients' time zones
and the purge (the SQL is in :mod:`engine.store.lifetime_queries`).

Every function is short transactions only: the sweep and the purge work in small batches that skip locked rows,
so they never make the send path wait.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from engine.errors import InvalidInput, NotFound
from engine.store import lifetime_queries as lq
from engine.store.database import Pool

__all__ = [
    "Progress",
    "PurgeReport",
    "contact_zone",
    "expire_queued",
    "hold",
    "purge",
    "set_contact_zone",
]


async def hold(pool: Pool, worker_id: str, holds: Sequence[tuple[int, float]]) -> None:
    """Claimed messages (id, seconds) back to the queue, each due again after its delay (quiet hours)."""
    if holds:
        await pool.execute(lq.HOLD_QUIET, [i for i, _ in holds], [max(0.0, d) for _, d in holds], worker_id)


async def expire_queued(pool: Pool, now: datetime, *, limit: int = 1000) -> int:
    """One round of the expiry sweep at *now*: queued messages past their lifetime end 'expired' (with their
    delivery reports); returns how many. Call again while it returns a full round."""
    return int(await pool.fetchval(lq.EXPIRE_QUEUED, now, limit))


# ---- recipients' time zones ----------------------------------------------------------------------------------


async def set_contact_zone(pool: Pool, app_id: int, phone: str, time_zone: str | None) -> None:
    """Store (or, with None, forget) the time zone the application knows for *phone* (E.164, zone validated)."""
    if time_zone is None:
        await pool.execute(lq.CLEAR_CONTACT_ZONE, app_id, phone)
    else:
        await pool.execute(lq.SET_CONTACT_ZONE, app_id, phone, time_zone)


async def contact_zone(pool: Pool, app_id: int, phone: str) -> str | None:
    value = await pool.fetchval(lq.CONTACT_ZONE, app_id, phone)
    return None if value is None else str(value)


# ---- retention -------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class PurgeReport:
    """What a purge removed (or, in a dry run, would remove)."""

    dry_run: bool
    older_than: str | None  # the --older-than given for every app, or None: each app's retention
    apps: dict[str, str] = field(default_factory=dict)  # app name -> the retention applied
    messages: int = 0  # final messages, their parts and (by cascade) what hangs off them
    callback_events: int = 0  # delivered callback events
    batches: int = 0  # transactions used

    def as_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run, "older_than": self.older_than, "apps": self.apps,
            "messages": self.messages, "callback_events": self.callback_events, "batches": self.batches,
        }


Progress = Callable[[PurgeReport], Awaitable[None] | None]


async def purge(
    pool: Pool,
    now: datetime,
    *,
    app: str | None = None,
    older_than: str | None = None,
    batch: int = 1000,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PurgeReport:
    """Delete final messages and delivered callback events older than their app's retention (or *older_than*, an
    interval's text such as ``'90 days'``, for every app), *batch* rows looked at per transaction.

    *app* limits it to one application (NotFound if there is none). *progress* is called after each batch.
    """
    if batch < 1 or batch > 100_000:
        raise InvalidInput("--batch", "must be between 1 and 100000")
    app_id = None
    if app is not None:
        app_id = await pool.fetchval(lq.APP_ID, app)
        if app_id is None:
            raise NotFound(f"no application named {app!r}")
    scope = await pool.fetch(lq.PURGE_SCOPE, app_id, older_than, now)
    report = PurgeReport(dry_run, older_than, {r["name"]: older_than or r["retention"] for r in scope})
    if not scope:
        return report
    ids = [r["id"] for r in scope]
    cutoffs = [r["cutoff"] for r in scope]
    youngest = max(cutoffs)
    for sql, counter in ((lq.PURGE_MESSAGES, "messages"), (lq.PURGE_EVENTS, "callback_events")):
        cursor = 0
        while True:
            row = await pool.fetchrow(sql, cursor, batch, ids, cutoffs, dry_run)
            report.batches += 1
            if row is None or row["last_id"] is None:
                break
            setattr(report, counter, getattr(report, counter) + (row["matched"] if dry_run else row["deleted"]))
            cursor = row["last_id"]
            if progress is not None:
                result = progress(report)
                if result is not None:
                    await result
            if row["oldest"] >= youngest:
                break  # this whole batch is younger than every cutoff: so is what follows (ids grow with time)
    return report

