"""Median latency of `engine.segment.analyze`, the per-message cost on the dispatch hot path.

Targets: a 160-character GSM body under 10 µs and a 1,000-character mixed body under 50 µs.
"Mixed" is the slow GSM-7 path: ASCII with non-ASCII GSM letters (Ä, Ω, é…) and plenty of
extension characters ({ } [ ] | ~ ^ € \\), 1,100 septets over eight segments.  Run it with
`python -m benchmarks.bench_segment`; it prints one JSON object.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

from engine.segment import analyze

_GSM_160 = ("Hi Sam, your appointment is confirmed for Tue 14 May at 10:30. Reply C to cancel. " * 2)[:160]
_MIXED_1000 = (
    "Grüße {name}: order [#42] costs €9.99 | ÄÖÜ ~ Ωmega ^_^ \\o/ ok. Ça va? é è ù ì ò Δ Φ Γ Λ Π Ψ Σ Θ Ξ. " * 12
)[:1000]

_WARMUP = 2_000
_RUNS = 30_000


def _median_us(call: Callable[[], object]) -> float:
    """Median wall time of one call, in microseconds, over many individually timed runs."""
    for _ in range(_WARMUP):
        call()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(_RUNS):
        began = clock()
        call()
        samples.append(clock() - began)
    return round(statistics.median(samples) / 1000, 3)


def run() -> dict[str, float]:
    """Measure both targets and return their medians in microseconds."""
    for body, size in ((_GSM_160, 160), (_MIXED_1000, 1000)):
        if len(body) != size or analyze(body).encoding != "GSM-7":
            raise RuntimeError(f"benchmark body of {size} characters is not what it claims")
    return {
        "analyze_160_gsm_us_median": _median_us(lambda: analyze(_GSM_160)),
        "analyze_1000_mixed_us_median": _median_us(lambda: analyze(_MIXED_1000)),
    }


def main() -> None:
    """Print the medians as one JSON object (for CI and the `bench` command to collect)."""
    print(json.dumps(run()))


if __name__ == "__main__":
    main()
