"""Jobs end to end, as operators run them: `engine send` (a 100,000-row CSV through the engine and the fake carrier,
validation by line, --skip-invalid) and `engine job` (list, status, pause, resume, cancel mid-job). Real processes,
a real database and the fake carrier over HTTP."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest

from engine.phone import to_e164
from engine.submit import submit
from tests.helpers.database import state_counts
from tests.helpers.engine import carrier, engine_running, setup_app
from tests.helpers.polling import wait_until
from tests.helpers.processes import Procs, carrier_records, free_port, processes, run_command, start_carrier

pytestmark = pytest.mark.system

TEMPLATE = "Hi {{name}}, your hold #{{n}} is ready at {{branch}} Library until Friday."


def write_csv(path: Path, rows: int, *, seed: int = 5) -> dict[str, str]:
    """A members CSV (phone;name;n;branch, numbers written as people write them); phone E.164 -> its body."""
    rng = random.Random(seed)
    expected: dict[str, str] = {}
    with path.open("w", encoding="utf-8") as f:
        f.write("phone;name;n;branch\n")
        while len(expected) < rows:
            area, exchange, line = rng.choice(["212", "312", "415", "617", "718"]), rng.randint(200, 999), \
                rng.randint(0, 9999)
            e164 = f"+1{area}{exchange}{line:04d}"
            if e164 in expected or to_e164(e164) is None:
                continue
            name = rng.choice(["Alex", "Sam", "Maria", "Jordan", "Priya", "Chen", "Zoë"])
            written = rng.choice([e164, f"({area}) {exchange}-{line:04d}", f"{area}{exchange}{line:04d}"])
            f.write(f"{written};{name};{len(expected)};Main\n")
            expected[e164] = f"Hi {name}, your hold #{len(expected)} is ready at Main Library until Friday."
    return expected


async def _engine_run(procs: Procs, port: int) -> None:
    """`engine run` in its own process, once it answers /healthz."""
    await procs.spawn("run", "--port", str(port))

    async def healthy() -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await wait_until(healthy, timeout=60, interval=0.2, what="engine run to answer /healthz")


@pytest.mark.timeout(900)
async def test_a_100000_row_csv_job_end_to_end(pool: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    expected = write_csv(tmp_path / "members.csv", 100_000)
    port = free_port()
    async with processes(db_dsn, ENGINE_POLL_SECONDS="0.2", ENGINE_PUBLIC_URL=f"http://127.0.0.1:{port}",
                         ENGINE_LOG_LEVEL="WARNING") as procs:
        carrier_url = await start_carrier(procs, "--callbacks", "final", "--latency", "0")
        await setup_app(pool, carrier_url, dids=100, limit_per_min=600_000)  # many DIDs, high limits
        await _engine_run(procs, port)
        done = await run_command(db_dsn, "send", "--app", "lib", "--csv", str(tmp_path / "members.csv"),
                                 "--template", TEMPLATE, "--type", "reminder", "--json", timeout=840)
        assert done.returncode == 0, done.stderr[-2000:]
        result = orjson.loads(done.stdout)
        records = await carrier_records(carrier_url)
    # The progress was reported while it ran (stderr is not a terminal: a line every few seconds, and the last).
    progress = [line for line in done.stderr.splitlines() if line.startswith(f"job {result['job_id']}")]
    assert progress[0].startswith(f"job {result['job_id']}: 100,000 messages queued for lib from members.csv")
    assert any("final · queued" in line for line in progress[1:-1]), done.stderr[-2000:]
    assert "100,000/100,000 final" in progress[-1] and "delivered 100,000" in progress[-1]
    # All final; the job's counts are the database's and the carrier's.
    assert result["state"] == "done" and result["finished_at"] is not None
    assert result["total"] == result["messages"] == result["recipients"] == 100_000 and result["skipped"] == []
    assert result["counts"]["delivered"] == result["final"] == 100_000
    assert await state_counts(pool) == {"delivered": 100_000}
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE job_id = $1 AND type = "
                               "'reminder'", int(result["job_id"])) == 100_000
    assert len(records) == 100_000
    assert {r["to"]: r["body"] for r in records} == expected  # each row's message, to its number, once
    assert Counter(r["final_status"] for r in records) == {"delivered": 100_000}


async def test_send_reports_invalid_lines_and_queues_nothing(pool: asyncpg.Pool, db_dsn: str, tmp_path: Path
                                                             ) -> None:
    await setup_app(pool, "http://127.0.0.1:9", dids=1)
    path = tmp_path / "list.csv"
    path.write_text("phone,name,n,branch\n2125550100,Al,1,Main\n12,Bo,2,Main\n2125550102,,3,Main\n"
                    "2125550103,Di,4,Main\n", encoding="utf-8")
    args = ("send", "--app", "lib", "--csv", str(path), "--template", TEMPLATE)
    failed = await run_command(db_dsn, *args)
    assert failed.returncode == 2
    assert "2 of 4 rows of list.csv cannot be sent; nothing was queued" in failed.stderr
    assert "line 3: '12' is not a valid phone number" in failed.stderr
    assert "line 4: no value for {{name}}" in failed.stderr
    as_json = await run_command(db_dsn, *args, "--json")
    assert as_json.returncode == 2
    assert [(i["line"], i["phone"]) for i in orjson.loads(as_json.stdout)["invalid"]] == [(3, "12"), (4, "2125550102")]
    assert await pool.fetchval("SELECT count(*) FROM engine_job") == 0
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound") == 0
    for flags, flag in ((["--valid-for", "soon"], "--valid-for"), (["--on", "someday"], "--on"),
                        (["--template", "Hi {{nobody}}"], "--csv"), (["--phone-column", "mobile"], "--csv")):
        bad = await run_command(db_dsn, *args, *flags)
        assert bad.returncode == 2 and f"error: {flag}:" in bad.stderr, (flags, bad.stderr)
    missing = await run_command(db_dsn, "send", "--app", "nosuch", "--csv", str(path), "--template", "x", "--json")
    assert missing.returncode == 2 and "nosuch" in missing.stderr
    assert await pool.fetchval("SELECT count(*) FROM engine_outbound") == 0


async def test_skip_invalid_sends_the_rest_and_reports_the_skipped(pool: asyncpg.Pool, db_dsn: str, tmp_path: Path
                                                                   ) -> None:
    await setup_app(pool, "http://127.0.0.1:9", dids=1)
    path = tmp_path / "list.csv"
    path.write_text("phone,name,n,branch\n2125550100,Al,1,Main\n12,Bo,2,Main\n2125550102,,3,Main\n"
                    "2125550103,Di,4,Main\n", encoding="utf-8")
    done = await run_command(db_dsn, "send", "--app", "lib", "--csv", str(path), "--template", TEMPLATE,
                             "--skip-invalid", "--detach", "--json", "--on", "2099-01-02 09:00 EST", "--tag", "holds",
                             "--category", "marketing", "--valid-for", "2h", "--type", "reminder")
    assert done.returncode == 0, done.stderr
    result = orjson.loads(done.stdout)
    assert [s["line"] for s in result["skipped"]] == [3, 4]
    assert (result["recipients"], result["state"], result["source"], result["name"]) == (
        2, "running", "csv", "list.csv")
    rows = await pool.fetch("SELECT recipient, tag, category, type, send_at, due_at, expires_at - send_at AS life "
                            "FROM engine_outbound WHERE job_id = $1 ORDER BY id", int(result["job_id"]))
    assert [r["recipient"] for r in rows] == ["+12125550100", "+12125550103"]
    assert {(r["tag"], r["category"], r["type"], str(r["send_at"]), str(r["life"])) for r in rows} == {
        ("holds", "marketing", "reminder", "2099-01-02 14:00:00+00:00", "2:00:00")}


@pytest.mark.timeout(300)
async def test_pause_resume_and_cancel_a_running_job(pool: asyncpg.Pool, db_dsn: str, tmp_path: Path) -> None:
    write_csv(tmp_path / "members.csv", 400, seed=9)
    async with carrier(callbacks="final") as fake:
        await setup_app(pool, fake.base_url or "", dids=2, limit_per_min=1200)  # 40 messages a second
        # A short horizon keeps few claimed messages in memory: those may still go out after a pause.
        async with engine_running(db_dsn, horizon_seconds=0.5, batch_size=20):
            sent = await run_command(db_dsn, "send", "--app", "lib", "--csv", str(tmp_path / "members.csv"),
                                     "--template", TEMPLATE, "--detach", "--json")
            assert sent.returncode == 0, sent.stderr
            job_id = orjson.loads(sent.stdout)["job_id"]

            def of_job() -> int:
                return sum(r.body.startswith("Hi ") for r in fake.records)

            await wait_until(lambda: of_job() >= 40, timeout=60, what="the job to be sending")
            paused = await run_command(db_dsn, "job", "pause", job_id)
            assert paused.returncode == 0 and f"job {job_id} is paused" in paused.stdout, paused.stderr

            async def settled() -> bool:  # what the worker held when the job paused has gone out
                return not await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE job_id = $1 "
                                               "AND state IN ('claimed', 'sending')", int(job_id))

            await wait_until(settled, timeout=30, what="in-flight messages to settle")
            before = of_job()
            # The worker keeps working (another message goes out) but takes nothing more of the paused job.
            await submit(pool, "lib", "+13472643707", "marker")
            await wait_until(lambda: any(r.body == "marker" for r in fake.records), timeout=30, what="the marker")
            assert of_job() == before < 400
            status = await run_command(db_dsn, "job", "status", job_id, "--json")
            report = orjson.loads(status.stdout)
            assert report["state"] == "paused" and report["eta_seconds"] is None
            assert report["counts"]["queued"] == 400 - before
            assert await pool.fetchval("SELECT count(*) FROM engine_outbound WHERE job_id = $1 AND "
                                       "state = 'queued' AND due_at <> 'infinity'", int(job_id)) == 0

            resumed = await run_command(db_dsn, "job", "resume", job_id)
            assert resumed.returncode == 0 and "is running" in resumed.stdout
            await wait_until(lambda: of_job() >= before + 40, timeout=60, what="the job to go on")
            canceled = await run_command(db_dsn, "job", "cancel", job_id, "--json")
            assert canceled.returncode == 0 and orjson.loads(canceled.stdout)["state"] == "canceled"

            async def finished() -> dict[str, Any] | None:
                shown: dict[str, Any] = orjson.loads(
                    (await run_command(db_dsn, "job", "status", job_id, "--json")).stdout)
                return shown if shown["finished_at"] is not None else None

            final = await wait_until(finished, timeout=60, interval=0.5, what="the canceled job to finish")
            table = await run_command(db_dsn, "job", "status", job_id)
            listed = await run_command(db_dsn, "job", "list", "--json")
    assert final is not None
    counts = final["counts"]
    assert final["state"] == "canceled" and counts["canceled"] > 0
    assert counts["delivered"] + counts["canceled"] == 400  # every message either went or was canceled
    assert counts["delivered"] == of_job()  # … and what went is what the carrier got
    assert table.returncode == 0 and "canceled" in table.stdout and "delivered" in table.stdout
    assert [(j["job_id"], j["state"], j["open"]) for j in orjson.loads(listed.stdout)] == [(job_id, "canceled", 0)]
    wrong = await run_command(db_dsn, "job", "resume", job_id)
    assert wrong.returncode == 2 and "canceled" in wrong.stderr


async def test_the_jobs_benchmark_queues_every_row(server_dsn: str) -> None:
    from benchmarks.bench_jobs import csv_round

    figures = await csv_round(server_dsn, 500)  # it checks every row was queued, by the command and in process
    assert figures["rows_per_s"] > 0 and figures["copy_rows_per_s"] > 0
    assert figures["read_s"] + figures["validate_s"] + figures["copy_s"] == pytest.approx(figures["total_s"], abs=0.03)
