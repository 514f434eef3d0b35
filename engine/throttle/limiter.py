"""Per-DID pacing: a GCRA token bucket plus an exact sliding-window ledger, counted in segments.

The bucket spreads sends evenly (limit/min, `burst` at once); the ledger guarantees the carrier's
rule exactly: no DID sends more than `limit` segments in any window of `window` seconds, even when
multi-segment messages follow single ones (which a bucket alone would let overflow by cost-1).
Pure code: times are plain floats from an injected clock.
"""

from __future__ import annotations

from collections import deque
from typing import Any, cast

DEFAULT_WINDOW = 60.0
# Extra seconds added to the ledger window to absorb jitter between our clock and the carrier's
# accept time (event-loop lag, loopback/network latency). Costs < 0.5 % of throughput.
DEFAULT_GUARD = 0.2

# One shared empty tuple standing in for an empty deque that is only read (len, truth, iteration, [0]) until its
# owner swaps in a real deque on the first append: an empty deque is ~600 bytes, and with 100,000 mostly idle
# DIDs the per-DID ledgers and queues were most of the scheduler's memory. Used for the ledger of a DID that
# never sent (record() swaps) and for the scheduler's per-DID queues (push() swaps).
EMPTY: deque[Any] = cast("deque[Any]", ())


class DidLimiter:
    """Pacing state of one sender number."""

    __slots__ = ("burst", "in_window", "interval", "ledger", "limit", "tat", "tolerance", "window")

    def __init__(
        self,
        limit_per_window: int,
        *,
        burst: int = 1,
        window: float = DEFAULT_WINDOW,
        guard: float = DEFAULT_GUARD,
    ) -> None:
        if limit_per_window < 1:
            raise ValueError("limit_per_window must be >= 1")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self.limit = limit_per_window
        self.burst = min(burst, limit_per_window)
        self.interval = window / limit_per_window  # seconds per segment
        self.tolerance = (self.burst - 1) * self.interval
        self.window = window + guard
        self.tat = float("-inf")  # theoretical arrival time of the next segment (GCRA)
        self.ledger: deque[tuple[float, int]] = EMPTY  # (time, segments) still inside the window, in time order
        self.in_window = 0  # sum of segments in the ledger

    def _prune(self, now: float) -> None:
        """Forget sends that can no longer share a window with anything at or after *now*."""
        # Same arithmetic as ready_at's `sent_at + window`: `sent_at <= now - window` can differ by an ulp and
        # keep a send in the ledger at the very moment ready_at declared it gone.
        ledger = self.ledger
        window = self.window
        while ledger and ledger[0][0] + window <= now:
            self.in_window -= ledger.popleft()[1]

    def ready_at(self, cost: int, now: float) -> float:
        """Earliest time >= now at which a send of *cost* segments keeps every limit."""
        self._prune(now)
        t = self.tat - self.tolerance
        if t < now:
            t = now
        excess = self.in_window + cost - self.limit
        if excess <= 0:
            return t
        # Enough old segments must leave the window first.
        dropped = 0
        for sent_at, segs in self.ledger:
            dropped += segs
            if dropped >= excess:
                return max(t, sent_at + self.window)
        # cost alone exceeds the limit: only possible with an empty ledger (callers reject such costs).
        return max(t, self.ledger[-1][0] + self.window) if self.ledger else t

    def record(self, cost: int, at: float) -> None:
        """Account a send of *cost* segments made at time *at*."""
        base = self.tat if self.tat > at else at
        self.tat = base + cost * self.interval
        ledger = self.ledger
        if ledger is EMPTY:
            ledger = self.ledger = deque()
        ledger.append((at, cost))
        self.in_window += cost

    def restamp(self, decided_at: float, actual: float, cost: int | None = None, *, spacing: bool = True) -> None:
        """A send of *cost* segments decided at *decided_at* really left at *actual* (later): move it in the ledger.

        Keeps the window exact when a send is delayed between decision and wire (e.g. a slow
        database write before the request). Pass *cost*: sends of different sizes decided at the same
        instant (a burst) are told apart only by it; without it, some send stamped *decided_at* moves.
        spacing=False moves only the ledger entry, not the bucket: used to push the entry to the
        time the carrier's reply came back, an upper bound on when the carrier counted the send.
        """
        if actual <= decided_at:
            return
        ledger = self.ledger
        for i in range(len(ledger) - 1, -1, -1):
            t, segs = ledger[i]
            if t < decided_at:
                return
            if t != decided_at or (cost is not None and segs != cost):
                continue
            end = actual + segs * self.interval
            if spacing and end > self.tat:
                self.tat = end
            # Pruning needs time order: the moved entry slides past the later entries it overtook (the
            # DID's other sends in flight, a few), instead of re-sorting the whole window.
            last = len(ledger) - 1
            while i < last and ledger[i + 1][0] < actual:
                ledger[i] = ledger[i + 1]
                i += 1
            ledger[i] = (actual, segs)
            return

    def window_count(self, now: float) -> int:
        """Segments sent within the window ending at *now* (for metrics and tests)."""
        self._prune(now)
        return self.in_window
