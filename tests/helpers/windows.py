"""The sliding-window load of a set of sends: the oracle every pacing check compares against."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence

Send = tuple[float, int]  # (time, segments)


def max_window_load(sends: Sequence[Send], window: float) -> int:
    """Largest segment sum over the windows [s, s + window) starting at each send time (send order irrelevant).

    Any set of sends that fits in some window [a, a + window) also fits in the one starting at its earliest send,
    so this is the maximum over *all* windows.
    """
    ordered = sorted(sends)
    times = [t for t, _ in ordered]
    prefix = [0, *itertools.accumulate(cost for _, cost in ordered)]
    best = 0
    for start in times:
        lo = bisect.bisect_left(times, start)
        hi = bisect.bisect_left(times, start + window)
        best = max(best, prefix[hi] - prefix[lo])
    return best


def max_in_window(times: Iterable[float], window: float) -> int:
    """Most events (one segment each) at *times* within any window of *window* seconds."""
    return max_window_load([(t, 1) for t in times], window)
