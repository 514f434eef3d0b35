"""What a job's status says (pure): its messages counted by state, by Carousel status and in the few groups a
progress bar shows, its rate and its ETA. `job_status` answers it, `engine job status` and `engine send` print it.

counts (they add up to the job's total): ``queued`` waiting (queued, or claimed by a worker), ``sending`` in a
request to the carrier, ``sent`` at the carrier without a final report yet, ``delivered``, ``failed`` (failed or
undelivered), ``unknown`` (a send cut off mid-request), ``canceled``, ``expired``, ``suppressed`` (duplicates).
``rate``: messages handed to the carrier per second over the last minute (less while the job is younger).
``eta_seconds``: until the last message is handed to the carrier, from the observed rate, never faster than the
app's DID capacity (its DIDs' limits, capped by the SMSC's and the account's) and, before anything was sent,
from that capacity; plus the wait for a job scheduled later. None when the job is paused (or nothing can say).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from engine.store.jobs import Job, JobSnapshot

__all__ = ["COUNTS", "FINAL_STATES", "counts", "eta_seconds", "job_fields", "job_report"]

COUNTS: Final = ("queued", "sending", "sent", "delivered", "failed", "unknown", "canceled", "expired", "suppressed")
_GROUP: Final = {"queued": "queued", "claimed": "queued", "sending": "sending", "sent": "sent",
                 "delivered": "delivered", "failed": "failed", "undelivered": "failed", "unknown": "unknown",
                 "canceled": "canceled", "expired": "expired", "suppressed": "suppressed"}
FINAL_STATES: Final = frozenset({"delivered", "failed", "undelivered", "unknown", "canceled", "expired",
                                 "suppressed"})
# The Carousel status (0 pending, 1 delivered, 2 failed, 4 at the carrier) of a message in each state.
_STATUS: Final = {"queued": 0, "claimed": 0, "sending": 0, "unknown": 0, "sent": 4, "delivered": 1}


def counts(by_state: dict[str, int]) -> dict[str, int]:
    """The job's messages in the progress groups (every group present, zeros included)."""
    out = dict.fromkeys(COUNTS, 0)
    for state, n in by_state.items():
        out[_GROUP.get(state, "failed")] += n
    return out


def by_status(by_state: dict[str, int]) -> dict[str, int]:
    out = {"0": 0, "1": 0, "2": 0, "4": 0}
    for state, n in by_state.items():
        out[str(_STATUS.get(state, 2))] += n
    return out


def eta_seconds(remaining: int, rate: float, capacity: float | None, *, running: bool, wait: float = 0.0
                ) -> float | None:
    """Seconds until *remaining* messages are handed to the carrier at the observed *rate* (per second), never
    faster than *capacity* (None: unknown); at *capacity* while nothing was sent yet; plus *wait*."""
    if remaining <= 0:
        return 0.0
    if not running:
        return None
    speed = rate if rate > 0 else (capacity or 0.0)
    if capacity is not None and capacity > 0:
        speed = min(speed, capacity)
    if speed <= 0:
        return None
    return round(max(0.0, wait) + remaining / speed, 1)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_fields(job: Job) -> dict[str, Any]:
    """The job itself, as the API and `engine job` show it (ids as strings, as every Carousel id is)."""
    return {
        "job_id": str(job.id), "app": job.app, "name": job.name, "source": job.source, "state": job.state,
        "total": job.total, "type": job.type, "category": job.category, "tag": job.tag,
        "send_at": _iso(job.send_at), "created_at": _iso(job.created_at), "finished_at": _iso(job.finished_at),
    }


def job_report(snap: JobSnapshot) -> dict[str, Any]:
    """Everything `job_status` answers about a job."""
    grouped = counts(snap.by_state)
    rate = round(snap.recent_sends / snap.window, 1) if snap.window > 0 else 0.0
    wait = 0.0 if snap.job.send_at is None else (snap.job.send_at - snap.now).total_seconds()
    remaining = grouped["queued"] + grouped["sending"]
    return {
        **job_fields(snap.job),
        "counts": grouped,
        "by_state": dict(sorted(snap.by_state.items())),
        "by_status": by_status(snap.by_state),
        "final": sum(n for s, n in snap.by_state.items() if s in FINAL_STATES),
        "rate": rate,
        "capacity_per_s": None if snap.capacity_per_s is None else round(snap.capacity_per_s, 1),
        "eta_seconds": eta_seconds(remaining, rate, snap.capacity_per_s, running=snap.job.state == "running",
                                   wait=wait),
    }
