"""Before/after on one machine: alternate rounds of several source trees of the engine (and the PgQueuer baseline).

    python -m benchmarks.ab --messages 20000 --rounds 4 before=/tmp/before after=. pgq
    python -m benchmarks.ab --latency 30 --rounds 2 before=/tmp/before after=.

Each NAME=DIR is a checkout of the engine (e.g. ``git archive <commit> | tar -x -C /tmp/before``); its rounds run
``python -m engine`` from DIR (the working directory comes first on ``sys.path``), while this process (the harness,
the carrier, the database) is the current tree's. ``pgq`` is the PgQueuer baseline. Rounds are alternated
(A B A B …) on one embedded PostgreSQL so the machine's drift hits every side alike; one JSON line per round on
stdout, then the medians. ``--latency S`` runs the latency scenario (S seconds per door) instead of e2e rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvloop
from cryptography.fernet import Fernet

from benchmarks import harness as h
from benchmarks.bench_baseline import baseline_round
from benchmarks.bench_e2e import engine_round
from benchmarks.bench_latency import latency

FIGURES = ("msgs_per_s", "cpu_us_per_msg", "carrier_cpu_us_per_msg", "postgres_cpu_us_per_msg")


@contextlib.contextmanager
def tree(path: str | None) -> Iterator[None]:
    """Child processes started inside run the engine of *path* (None: the current tree)."""
    if path is None:
        yield
        return
    here = os.getcwd()
    os.environ["PYTHONPATH"] = str(Path(path).resolve())
    os.chdir(path)
    try:
        yield
    finally:
        os.environ.pop("PYTHONPATH", None)
        os.chdir(here)


async def run(sides: list[tuple[str, str | None]], *, messages: int, rounds: int, latency_s: float | None,
              carrier: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in sides}
    async with h.postgres_server(None) as server:
        for i in range(rounds):
            for name, path in sides:
                row: dict[str, Any] = {"side": name, "round": i}
                if latency_s is not None:
                    with tree(path):
                        doors = (await latency(server, seconds=latency_s, carrier=carrier))["doors"]
                    row |= {door: {"to_carrier_ms": f["submit_to_carrier_ms"], "to_report_ms": f["submit_to_report_ms"]}
                            for door, f in doors.items()}
                elif name == "pgq":
                    row |= {k: (await baseline_round(server, messages=messages, carrier=carrier)).figures[k]
                            for k in FIGURES}
                else:
                    with tree(path):
                        figures = (await engine_round(server, messages=messages, carrier=carrier)).figures
                    row |= {k: figures[k] for k in FIGURES}
                row["load_average_1m"] = round(os.getloadavg()[0], 2)
                out[name].append(row)
                print(json.dumps(row), flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n")[0])
    parser.add_argument("sides", nargs="+", help="NAME=DIR (a source tree of the engine) or pgq (the baseline)")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, help="run the latency scenario, this many seconds per door")
    parser.add_argument("--carrier", choices=h.CARRIERS, default="lean")
    args = parser.parse_args(argv)
    sides: list[tuple[str, str | None]] = []
    for spec in args.sides:
        name, _, path = spec.partition("=")
        if name != "pgq" and not (Path(path) / "engine" / "__main__.py").is_file():
            parser.error(f"{spec!r}: not NAME=DIR with DIR a source tree of the engine")
        sides.append((name, path or None))
    # Every tree's processes must open the carrier tokens this process seals (each tree's own key file would not).
    os.environ.setdefault("ENGINE_SECRET_KEY", Fernet.generate_key().decode())

    result = uvloop.run(run(sides, messages=args.messages, rounds=args.rounds, latency_s=args.latency,
                            carrier=args.carrier))
    if args.latency is None:
        for name, rows in result.items():
            medians = {k: statistics.median(r[k] for r in rows if r[k] is not None) for k in FIGURES
                       if any(r[k] is not None for r in rows)}
            print(json.dumps({"side": name, "medians": medians}), file=sys.stderr)


if __name__ == "__main__":
    main()
