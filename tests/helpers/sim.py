"""A simulator that drives the pure Scheduler through time on an injected clock, in event order.

Time only moves forward; between two external events it jumps to next_due() and calls pop_due() there, the way
the dispatcher drives the scheduler.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.throttle.scheduler import Decision, Scheduler


@dataclass
class Sent:
    """One decision as the simulation saw it."""

    decision: Decision[int]
    limit: int  # the DID's limit when it was decided
    actual: float  # when it really left (decided_at + the simulated delay)


@dataclass
class Sim:
    """Drives a Scheduler[int] (payloads are sequence numbers) through time, in event order.

    Each decision "really leaves" *delay* seconds after it was decided (cycling through *delays*); the
    scheduler is told through confirm() at that moment, before any decision due at the same time.
    """

    sched: Scheduler[int]
    delays: Sequence[float] = (0.0,)
    now: float = 0.0
    sent: list[Sent] = field(default_factory=list)
    confirms: list[tuple[float, int]] = field(default_factory=list)  # (actual time, index into sent)

    def step_to(self, until: float, pop_limit: int | None = None) -> None:
        """Run every decision and confirmation due up to and including *until*; then the clock reads *until*."""
        for _ in range(10**7):
            nxt = self.sched.next_due()
            due = math.inf if nxt is None else max(nxt, self.now)
            confirm_at = self.confirms[0][0] if self.confirms else math.inf
            if min(due, confirm_at) > until or due == confirm_at == math.inf:
                break
            if confirm_at <= due:
                self.now = max(self.now, confirm_at)
                _, index = heapq.heappop(self.confirms)
                self.sched.confirm(self.sent[index].decision, self.sent[index].actual)
                continue
            self.now = due
            for d in self.sched.pop_due(self.now, pop_limit):
                assert d.decided_at == self.now
                state = self.sched.dids[d.did_id]
                assert state.enabled, "a disabled DID sent"
                actual = self.now + self.delays[len(self.sent) % len(self.delays)]
                heapq.heappush(self.confirms, (actual, len(self.sent)))
                self.sent.append(Sent(d, state.limiter.limit, actual))
        else:
            raise AssertionError("the scheduler did not make progress")
        if until != math.inf:
            self.now = max(self.now, until)

    def drain(self) -> None:
        self.step_to(math.inf)
        assert self.sched.next_due() is None
        assert self.sched.queued == 0

    def by_did(self) -> dict[int, list[Sent]]:
        out: dict[int, list[Sent]] = defaultdict(list)
        for s in self.sent:
            out[s.decision.did_id].append(s)
        return out

