"""Garbage-collector settings for long-running engine processes (`engine run|serve|worker`, the fake carrier).

Nearly everything the hot path allocates (requests, responses, records, futures) is acyclic and freed by
reference counting the moment it is done with; the cyclic collector only re-scans it. At CPython's default
threshold (a young collection every 700 net allocations) and with many objects alive (the scheduler's DIDs,
the messages held ahead of each DID's pace), collections took ~19 % of an engine process's CPU in the e2e
benchmark (measured with gc.callbacks: 1.38 s of 7.18 s for 30,000 messages). So: everything imported or built
at start-up is frozen out of the collector's sight, and young collections run every GEN0 allocations.
Cycles are still collected, only in larger, rarer batches.
"""

from __future__ import annotations

import gc

GEN0 = 50_000  # CPython's default is 700


def tune(gen0: int = GEN0) -> tuple[int, int, int]:
    """Freeze what exists now (modules, classes, settings) and raise the young-generation threshold.

    Returns the thresholds in force afterwards. Call once, after start-up imports, before the hot loop.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, gen2)
    return gc.get_threshold()
