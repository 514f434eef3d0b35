"""jobs: a CSV of N rows (100,000 by default) to all queued.

Each round, in a fresh database with the app already made: `engine send --app bench --csv FILE --template … --detach
--json` runs in its own process, and its wall time (interpreter start to exit: reading the file, checking and
rendering every row, the job and its messages COPYed in one transaction) is the figure, with rows/s. Then, in a
second fresh database, the same functions run in this process, timed apart: reading the CSV, checking and rendering
every row, and the COPY transaction. Nothing is sent (no engine runs).
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks import harness as h
from engine.api import recipients as rc
from engine.policy.admission import BodyLimits
from engine.store import admin, jobs
from engine.store.carousel import app_by_name
from engine.store.database import Database

APP = "bench"
TEMPLATE = "Hi {{name}}, your hold #{{n}} is ready at {{branch}} Library until Friday. Reply STOP to opt out."


def write_csv(path: Path, rows: int, seed: int = 5) -> None:
    """*rows* distinct valid US numbers, written as people write them, with a name, a number and a branch."""
    rng = random.Random(seed)
    areas = ["212", "312", "415", "617", "646", "718", "202", "303", "404", "512"]
    names = ["Alex", "Sam", "Maria", "Jordan", "Priya", "Chen", "Fatima", "Lucas", "Ava", "Noah"]
    branches = ["Main", "Eastside", "Riverside", "Northgate", "Oak Park"]
    seen: set[str] = set()
    with path.open("w", encoding="utf-8") as f:
        f.write("phone,name,n,branch\n")
        while len(seen) < rows:
            area, exchange, line = rng.choice(areas), rng.randint(200, 999), rng.randint(0, 9999)
            number = f"{area}{exchange}{line:04d}"
            if number in seen:
                continue
            seen.add(number)
            written = rng.choice([f"+1{number}", f"({area}) {exchange}-{line:04d}", number])
            f.write(f"{written},{rng.choice(names)},{len(seen)},{rng.choice(branches)}\n")


async def _command(dsn: str, path: Path, rows: int) -> float:
    """Wall time of `engine send … --detach --json` in its own process; checks that every row was queued."""
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "send", "--app", APP, "--csv", str(path), "--template", TEMPLATE,
        "--detach", "--json", env={**os.environ, "ENGINE_DSN": dsn, "ENGINE_LOG_LEVEL": "WARNING"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"engine send exited with {proc.returncode}: {err.decode()[-2000:]}")
    result = orjson.loads(out)
    if result["messages"] != rows or result["counts"]["queued"] != rows:
        raise RuntimeError(f"engine send queued {result['messages']} of {rows} rows")
    return elapsed


async def _in_process(dsn: str, path: Path, rows: int) -> dict[str, float]:
    """The same steps in this process, timed apart."""
    db = await Database.connect(dsn, min_size=1, max_size=2)
    try:
        await admin.create_app(db.pool, APP)
        app = await app_by_name(db.pool, APP)
        t0 = time.perf_counter()
        parsed = rc.read_csv(rc.decode(path.read_bytes(), "--csv"), TEMPLATE)
        t1 = time.perf_counter()
        plan = rc.plan_job(TEMPLATE, parsed, app.rules, BodyLimits())
        t2 = time.perf_counter()
        created = await jobs.create_job(db.pool, app.id, jobs.JobSpec("csv", path.name, TEMPLATE),
                                        [jobs.JobMessage(m.recipient, m.parts) for m in plan.messages])
        t3 = time.perf_counter()
        if created.messages != rows:
            raise RuntimeError(f"queued {created.messages} of {rows} rows")
    finally:
        await db.close()
    return {"read_s": t1 - t0, "validate_s": t2 - t1, "copy_s": t3 - t2, "total_s": t3 - t0}


async def csv_round(server_dsn: str, rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="engine-bench-csv-") as tmp:
        path = Path(tmp) / "members.csv"
        write_csv(path, rows)
        async with h.fresh_database(server_dsn, "bench_csv") as dsn:
            db = await Database.connect(dsn, min_size=1, max_size=2)  # migrates
            try:
                await admin.create_app(db.pool, APP)
            finally:
                await db.close()
            command_s = await _command(dsn, path, rows)
        async with h.fresh_database(server_dsn, "bench_csv") as dsn:
            split = await _in_process(dsn, path, rows)
    return {"command_s": round(command_s, 2), "rows_per_s": round(rows / command_s),
            **{k: round(v, 2) for k, v in split.items()},
            "copy_rows_per_s": round(rows / split["copy_s"]), "in_process_rows_per_s": round(rows / split["total_s"])}


async def csv_to_queued(server_dsn: str, rows: int, rounds: int) -> dict[str, Any]:
    """Rounds of :func:`csv_round`; medians and the rounds."""
    results = []
    for i in range(rounds):
        h.log(f"jobs: round {i + 1}/{rounds}, a {rows:,}-row CSV to all queued")
        r = await csv_round(server_dsn, rows)
        h.log(f"  engine send: {r['command_s']} s ({r['rows_per_s']} rows/s); read {r['read_s']} s, "
              f"validate {r['validate_s']} s, COPY {r['copy_s']} s")
        results.append(r)
    median = {k: round(statistics.median(r[k] for r in results), 2) for k in results[0]}
    return {"rows": rows, "command": "engine send --app bench --csv members.csv --template … --detach --json",
            "median": median, "rounds": results}
