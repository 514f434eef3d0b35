"""Per-provider-account gate: a circuit breaker for 5xx/timeouts plus an account-wide 429 pause.

Pure: times are plain floats from the caller's clock. The worker asks `allow(now)` before each send;
when it says no, the message waits until `reopen_at()` instead of hammering a sick carrier.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

BreakerState = Literal["closed", "open", "half-open"]


@dataclass(slots=True)
class ProviderGate:
    """Opens after `threshold` failures within `window` seconds (and more failures than successes);
    stays open `open_seconds` (growing ×`growth` while probes keep failing, up to `max_open_seconds`), then lets
    one probe through; a successful probe closes it. A 429 pauses the whole account until its
    Retry-After, independently of the breaker."""

    threshold: int = 20
    window: float = 10.0
    open_seconds: float = 1.0
    max_open_seconds: float = 30.0
    growth: float = 1.5
    state: BreakerState = "closed"
    open_until: float = float("-inf")
    paused_until: float = float("-inf")
    probe_in_flight: bool = False
    current_open: float = 0.0
    failures: deque[float] = field(default_factory=deque)
    successes: deque[float] = field(default_factory=deque)

    def reopen_at(self) -> float:
        """Earliest time a send may be tried again."""
        blocked = self.open_until if self.state != "closed" else float("-inf")
        return max(blocked, self.paused_until)

    def allow(self, now: float) -> bool:
        """May a request go out now? In half-open, only one probe at a time."""
        if now < self.paused_until:
            return False
        if self.state == "closed":
            return True
        if self.state == "open":
            if now < self.open_until:
                return False
            self.state = "half-open"
        if self.probe_in_flight:
            return False
        self.probe_in_flight = True
        return True

    def pause(self, until: float) -> None:
        """The account was rate limited (429): nothing goes out before *until*."""
        self.paused_until = max(self.paused_until, until)

    def record(self, ok: bool, now: float) -> None:
        """Account the outcome of a request that was allowed: ok, or a carrier fault (5xx/timeout)."""
        if self.state == "half-open":
            self.probe_in_flight = False
            if ok:
                self.state = "closed"
                self.current_open = 0.0
                self.failures.clear()
            else:
                self._open(now)
            return
        horizon = now - self.window
        for q in (self.failures, self.successes):
            while q and q[0] <= horizon:
                q.popleft()
        (self.successes if ok else self.failures).append(now)
        if len(self.failures) >= self.threshold and len(self.failures) > len(self.successes):
            self._open(now)

    def _open(self, now: float) -> None:
        self.current_open = min(self.max_open_seconds, max(self.open_seconds, self.current_open * self.growth))
        self.state = "open"
        self.open_until = now + self.current_open
        self.failures.clear()
        self.successes.clear()
