"""Median latency of `engine.segment.analyze`, the per-message cost on the dispatch hot path.

Targets: a 160-character GSM body under 10 µs and a 1,000-character mixed body under 50 µs.
"Mixed" is the slow GSM-7 path: ASCII with non-ASCII GSM letters (Ä, Ω, é…) and plenty of
extension characters ({ } [ ] | ~ ^ € \\), 1,100 septets over eight segments.  For information
(no target) it also times a 1,000-character UCS-2 body dense with grapheme clusters (accents,
skin tones, flags, a ZWJ family, Devanagari), where segment ends must be found between clusters.
Each is reported against a per-character baseline in the same run: the straightforward way, in
the shape of Twilio's calculator (cut into characters or clusters, then fill segments one at a
time), with the same rules.  Run it with `python -m benchmarks.bench_segment`; it prints one JSON
object.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from functools import partial

from engine.segment import GSM7_BASIC, GSM7_EXTENSION, analyze
from engine.segment.graphemes import clusters

_GSM_160 = ("Hi Sam, your appointment is confirmed for Tue 14 May at 10:30. Reply C to cancel. " * 2)[:160]
_MIXED_1000 = (
    "Grüße {name}: order [#42] costs €9.99 | ÄÖÜ ~ Ωmega ^_^ \\o/ ok. Ça va? é è ù ì ò Δ Φ Γ Λ Π Ψ Σ Θ Ξ. " * 12
)[:1000]
_UCS2_1000 = ("Привет, Zoë! Café crème 👍🏽 at 9, 🇫🇷 vs 🇮🇹 — 👨\u200d👩\u200d👧 नमस्ते e\u0301 ok. " * 20)[:1000]

_WARMUP = 2_000
_RUNS = 30_000


def _median_us(call: Callable[[], object], runs: int = _RUNS) -> float:
    """Median wall time of one call, in microseconds, over many individually timed runs."""
    for _ in range(_WARMUP):
        call()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(runs):
        began = clock()
        call()
        samples.append(clock() - began)
    return round(statistics.median(samples) / 1000, 3)


def naive_segments(body: str) -> tuple[str, int]:
    """Baseline: the calculator's way, one character (GSM-7) or grapheme cluster (UCS-2) at a time."""
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
        units = [len(cluster.encode("utf-16-le", "surrogatepass")) // 2 for cluster in clusters(body)]
    single, concat = (160, 153) if gsm else (70, 67)
    first: list[int] = []  # what the first segment holds, until it gets its header
    used = [0]  # units per segment
    for u in units:
        if (single if len(used) == 1 else concat) - used[-1] < u:
            moved = 0
            if len(used) == 1:  # the first segment gets its header: give back what no longer fits
                while used[0] > concat:
                    given = first.pop()
                    used[0] -= given
                    moved += given
            used.append(moved)
        elif len(used) == 1:
            first.append(u)
        used[-1] += u
    return ("GSM-7" if gsm else "UCS-2"), len(used)


def run() -> dict[str, float]:
    """Measure the targets and the UCS-2 figure, each with its baseline in the same run; medians in µs."""
    bodies = {"160_gsm": (_GSM_160, 160, "GSM-7"), "1000_mixed": (_MIXED_1000, 1000, "GSM-7"),
              "1000_ucs2_clusters": (_UCS2_1000, 1000, "UCS-2")}
    for body, size, encoding in bodies.values():
        info = analyze(body)
        if len(body) != size or info.encoding != encoding:
            raise RuntimeError(f"benchmark body of {size} characters is not what it claims")
        if naive_segments(body) != (info.encoding, info.segments):
            raise RuntimeError("baseline disagrees with analyze(): the comparison would be meaningless")
    result: dict[str, float] = {}
    for name, (body, _, _) in bodies.items():
        runs = _RUNS if name != "1000_ucs2_clusters" else _RUNS // 10
        ours = _median_us(partial(analyze, body), runs)
        base = _median_us(partial(naive_segments, body), runs)
        result[f"analyze_{name}_us_median"] = ours
        result[f"baseline_{name}_us_median"] = base
        result[f"speedup_{name}"] = round(base / ours, 2)
    return result


def main() -> None:
    """Print the medians as one JSON object (for CI and the `bench` command to collect)."""
    print(json.dumps(run()))


if __name__ == "__main__":
    main()
