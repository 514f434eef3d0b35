"""How many console logins may fail before the door closes for a while (pure; time from an injected clock).

Failures are counted per operator name (a guessed password for one account) and per client address (one
client guessing across many names), each over a sliding window. While a name or an address has used up its
failures, further attempts are refused without checking the password at all (no slow hash for an attacker to
make us compute, and no answer to learn from) until the oldest failure in the window has aged out. A successful
login clears its name's failures, not its address's (an attacker holding one account must not reset the count
they run up against the others).

The record lives in the serving process's memory and is bounded: the oldest keys are forgotten first when it is
full, so a flood of made-up names cannot grow it without limit.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final

from engine.runtime.clock import Clock

__all__ = ["LoginThrottle"]

DEFAULT_MAX_KEYS: Final = 10_000


@dataclass
class LoginThrottle:
    """Sliding-window failure counts per name and per address."""

    clock: Clock
    per_name: int = 5  # failed logins for one name …
    per_address: int = 20  # … or from one address …
    window: float = 15 * 60.0  # … within this many seconds close the door until the oldest ages out
    max_keys: int = DEFAULT_MAX_KEYS
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        if self.per_name < 1 or self.per_address < 1 or self.window <= 0 or self.max_keys < 2:
            raise ValueError("per_name, per_address >= 1, window > 0 and max_keys >= 2 are required")

    @staticmethod
    def _keys(name: str, address: str) -> tuple[str, str]:
        return "name:" + name.strip().lower(), "addr:" + address

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def _wait(self, key: str, limit: int, now: float) -> float:
        times = self._recent(key, now)
        if len(times) < limit:
            return 0.0
        return times[-limit] + self.window - now

    def retry_after(self, name: str, address: str) -> float:
        """0 when an attempt for *name* from *address* may be checked now, else the seconds until it may."""
        now = self.clock()
        by_name, by_address = self._keys(name, address)
        return max(self._wait(by_name, self.per_name, now), self._wait(by_address, self.per_address, now))

    def failed(self, name: str, address: str) -> None:
        """Count a wrong password (or an unknown name) for *name* and *address*."""
        now = self.clock()
        for key, limit in zip(self._keys(name, address), (self.per_name, self.per_address), strict=True):
            times = self._recent(key, now)
            times.append(now)
            while len(times) > limit:  # only the last *limit* matter for the decision
                times.popleft()
            self._failures[key] = times
            self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, name: str, address: str) -> None:
        """A correct password: the name's failures are forgiven."""
        self._failures.pop(self._keys(name, address)[0], None)

    def __len__(self) -> int:
        return len(self._failures)
