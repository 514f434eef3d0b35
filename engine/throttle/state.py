"""The scheduler's state (pure): one DID's pacing and queue, a gate shared by many DIDs, one send decision."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from engine.throttle.limiter import EMPTY, DidLimiter

__all__ = [
    "ACCOUNT_GUARD",
    "ACCOUNT_WINDOW",
    "INF",
    "NO_QUEUE",
    "UNCAPPED",
    "Decision",
    "DidState",
    "Gate",
    "T",
    "UnknownPool",
]

T = TypeVar("T")

INF = float("inf")

NO_QUEUE = EMPTY  # the queue of a DID with nothing queued yet; push() swaps in a real deque

ACCOUNT_WINDOW = 1.0  # provider-account limits are per second
ACCOUNT_GUARD = 0.01  # the scheduler's guard, capped: 0.2 s on a 1 s window would cost 17 % of throughput
UNCAPPED = 1 << 62  # the daily count of a brand that has no cap (only the carrier's 30023 can hold it)


class UnknownPool(LookupError):
    """No enabled DID exists for the pool a message needs."""


@dataclass(slots=True, eq=False)
class Gate:
    """A limit shared by many DIDs (a pool or a provider account), with the DIDs waiting for it."""

    kind: str  # "pool", "campaign" or "account"
    key: int  # pool, campaign or account id
    limiter: DidLimiter
    parked: deque[int] = field(default_factory=deque)  # DIDs ready for their own limit, waiting for this one
    entry: int | None = None  # seq of this gate's live entry in the due heap (older entries are stale)
    entry_at: float = INF  # time of that entry
    holder: int | None = None  # DID it let through that now waits at its next gate: the next token is its own


@dataclass(slots=True)
class DidState(Generic[T]):
    """Scheduler-side state of one DID."""

    did_id: int
    pool_id: int
    limiter: DidLimiter
    enabled: bool = True
    # (cost, payload); NO_QUEUE until its first message (push swaps in a real deque)
    queue: deque[tuple[int, T]] = NO_QUEUE
    queued_cost: int = 0
    urgent: int = 0  # the first `urgent` queue entries are urgent (transactional, replies): they go first
    urgent_cost: int = 0
    reserved_until: float = INF * -1  # end of work this DID was promised but left in the database
    scheduled: bool = False  # has an entry in the due heap
    pool_key: float = INF * -1  # the key of its entry in the pool's busy heap; -inf: in the pool's idle FIFO
    account_id: int | None = None  # provider account whose limit it shares, if any
    campaign_id: int | None = None  # 10DLC campaign whose throughput it shares, if any
    brand_id: int | None = None  # brand whose daily cap it counts against, if any
    parked: Gate | None = None  # the gate whose FIFO holds it (then it has no due-heap entry)
    holds: Gate | None = None  # the gate that released it and waits for it (Gate.holder)

    def busy_until(self, now: float) -> float:
        """Projected time at which this DID has sent everything queued on it in memory."""
        base = self.limiter.tat if self.limiter.tat > now else now
        return base + self.queued_cost * self.limiter.interval

    def urgent_until(self, now: float) -> float:
        """Projected time at which this DID has sent the urgent work queued on it (an urgent message queues
        behind that only)."""
        base = self.limiter.tat if self.limiter.tat > now else now
        return base + self.urgent_cost * self.limiter.interval

    def load(self, now: float) -> float:
        """Projected time at which this DID has sent everything promised to it (memory + reserved).

        busy_until() written out: choose() calls this for every message.
        """
        limiter = self.limiter
        tat = limiter.tat
        busy = (tat if tat > now else now) + self.queued_cost * limiter.interval
        return busy if busy > self.reserved_until else self.reserved_until


class Decision(NamedTuple, Generic[T]):
    """Send *payload* through *did_id* now; *decided_at* identifies the send for `confirm`.

    A named tuple, not a frozen dataclass: one is built per send, and this is twice as fast to build.
    """

    did_id: int
    cost: int
    payload: T
    decided_at: float
