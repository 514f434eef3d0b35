"""What the fake carrier saw: the messages it accepted, its counters, and the sliding-window maximum over them.

:func:`max_per_sender_in_window` is how tests and benchmarks prove per-DID pacing from the carrier's side:
the most messages any one From number sent within any window of the given length.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["AcceptedRecord", "Ledger", "max_per_sender_by_sender", "max_per_sender_in_window"]


@dataclass(frozen=True, slots=True)
class AcceptedRecord:
    """One message the fake accepted, with the final status it was destined for."""

    t: float  # wall clock (time.time()) at accept
    sid: str
    from_: str | None
    to: str
    body: str
    messaging_service_sid: str | None
    status_callback: str | None
    final_status: str
    error_code: int | None = None
    validity_period: int | None = None  # the ValidityPeriod the sender gave (seconds), if any


@dataclass(slots=True)
class Ledger:
    """Accepted messages and counters since the carrier started or was last reset; every part writes here."""

    records: list[AcceptedRecord] = field(default_factory=list)
    accepted: int = 0
    rejected: int = 0
    callbacks_sent: int = 0
    callbacks_failed: int = 0

    def reset(self) -> None:
        """Forget records and counters (the same list object is emptied: callers may hold it)."""
        self.records.clear()
        self.accepted = self.rejected = self.callbacks_sent = self.callbacks_failed = 0

    def stats(self) -> dict[str, int]:
        """The counters, as ``/_fake/stats`` serves them."""
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "callbacks_sent": self.callbacks_sent,
            "callbacks_failed": self.callbacks_failed,
        }


def max_per_sender_by_sender(records: Iterable[AcceptedRecord], window: float = 60.0) -> dict[str, int]:
    """Per From number, the most messages it sent in any half-open window [a, a+window).

    Two sends at t1 <= t2 share a window iff t2 - t1 < window. Records without a From are skipped.
    Sort then two pointers per sender: O(n log n), which is what proves the 60/min pacing holds.
    """
    times: defaultdict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.from_ is not None:
            times[record.from_].append(record.t)
    result: dict[str, int] = {}
    for sender, ts in times.items():
        ts.sort()
        best = 0
        left = 0
        for right, t in enumerate(ts):
            while t - ts[left] >= window:
                left += 1
            best = max(best, right - left + 1)
        result[sender] = best
    return result


def max_per_sender_in_window(records: Iterable[AcceptedRecord], window: float = 60.0) -> int:
    """The highest count any single From sent in any window of ``window`` seconds (0 if none)."""
    return max(max_per_sender_by_sender(records, window).values(), default=0)
