"""The pure scheduler alone (`engine.throttle.Scheduler`): µs per decision and peak RSS.

D DIDs at 60/min in one pool; a simulated clock. Each step chooses a DID and pushes 1,000 messages,
advances the clock by the time the pool needs for them, and pops what is due; a decision is one
message through choose + push + pop_due. Run it in its own process (`python -m benchmarks.bench_throttle
--dids N --decisions N`) so `ru_maxrss` is the scheduler's peak, not the caller's.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Sequence
from typing import Any

from engine.throttle import scheduler as sched_mod

STEP = 1000


def _rss_mb() -> float:
    """Peak RSS of this process in MB: VmHWM, else ru_maxrss (which Linux carries over an exec from the parent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return _maxrss_mb()


def _maxrss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def run(dids: int = 100_000, decisions: int = 1_000_000, limit_per_min: int = 60) -> dict[str, Any]:
    """Build a scheduler of *dids* DIDs, take *decisions* decisions; µs per decision and peak RSS."""
    rss_before = _rss_mb()
    scheduler: sched_mod.Scheduler[int] = sched_mod.Scheduler()
    for d in range(dids):
        scheduler.set_did(d, 1, limit_per_min)
    rss_built = _rss_mb()
    per_second = dids * limit_per_min / 60.0
    now = 1_000.0
    pushed = popped = 0
    began = time.perf_counter()
    while popped < decisions:
        batch = min(STEP, decisions - pushed)
        for i in range(batch):
            scheduler.push(scheduler.choose(1, now), 1, pushed + i, now)
        pushed += batch
        now += STEP / per_second
        popped += len(scheduler.pop_due(now))
    elapsed = time.perf_counter() - began
    return {
        "dids": dids,
        "decisions": popped,
        "us_per_decision": round(elapsed / popped * 1e6, 3),
        "decisions_per_s": round(popped / elapsed),
        "peak_rss_mb": _rss_mb(),
        "ru_maxrss_mb": _maxrss_mb(),
        "rss_before_mb": rss_before,
        "rss_after_build_mb": rss_built,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_throttle")
    parser.add_argument("--dids", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.dids, args.decisions)))


if __name__ == "__main__":
    main()
