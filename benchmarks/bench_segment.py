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

from engine.segment import GSM7_BASIC, GSM7_EXTENSION, analyze

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


def naive_segments(body: str) -> tuple[str, int]:
    """Baseline: the straightforward per-character way (the shape of Twilio's calculator), same rules."""
    units: list[int] = []
    gsm = True
    for ch in body:
        if ch in GSM7_EXTENSION:
            units.append(2)
        elif ch in GSM7_BASIC:
            units.append(1)
        else:
            gsm = False
            break
    if not gsm:
        units = [2 if ord(ch) > 0xFFFF else 1 for ch in body]
    single, concat = (160, 153) if gsm else (70, 67)
    total = sum(units)
    if total <= single:
        return ("GSM-7" if gsm else "UCS-2"), 1
    segments, used = 1, 0
    for u in units:
        if used + u > concat:
            segments, used = segments + 1, 0
        used += u
    return ("GSM-7" if gsm else "UCS-2"), segments


def run() -> dict[str, float]:
    """Measure both targets (and the per-character baseline in the same run); medians in µs."""
    for body, size in ((_GSM_160, 160), (_MIXED_1000, 1000)):
        info = analyze(body)
        if len(body) != size or info.encoding != "GSM-7":
            raise RuntimeError(f"benchmark body of {size} characters is not what it claims")
        if naive_segments(body) != (info.encoding, info.segments):
            raise RuntimeError("baseline disagrees with analyze(): the comparison would be meaningless")
    ours_160 = _median_us(lambda: analyze(_GSM_160))
    ours_1000 = _median_us(lambda: analyze(_MIXED_1000))
    base_160 = _median_us(lambda: naive_segments(_GSM_160))
    base_1000 = _median_us(lambda: naive_segments(_MIXED_1000))
    return {
        "analyze_160_gsm_us_median": ours_160,
        "analyze_1000_mixed_us_median": ours_1000,
        "baseline_160_gsm_us_median": base_160,
        "baseline_1000_mixed_us_median": base_1000,
        "speedup_160": round(base_160 / ours_160, 2),
        "speedup_1000": round(base_1000 / ours_1000, 2),
    }


def main() -> None:
    """Print the medians as one JSON object (for CI and the `bench` command to collect)."""
    print(json.dumps(run()))


if __name__ == "__main__":
    main()
