"""The same work done without the engine: one PgQueuer job per message plus a plain webhook server.

- worker (`python -m benchmarks.bench_baseline worker …`): a PgQueuer entrypoint per message that POSTs
  the Twilio form (basic auth, From = a DID round-robin, StatusCallback to the webhook) to the fake
  carrier with aiohttp, then writes the carrier's sid and 'sent' to its row (one UPDATE);
- webhook (`python -m benchmarks.bench_baseline webhook …`): aiohttp, checks X-Twilio-Signature and
  writes each status callback to the row (one UPDATE per callback).

Same carrier, same PostgreSQL server (table `baseline_messages`), same messages as the engine round;
`baseline_round()` runs both in their own processes and measures the same figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiohttp import web

from benchmarks import harness as h
from benchmarks.bench_e2e import CHUNK, Round, carrier_figures, round_figures
from engine.providers.twilio import API_VERSION, twilio_signature
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

ENTRYPOINT = "send_sms"
KIND = "pgqueuer"
BATCH_SIZE = 50
MAX_CONCURRENT = 256  # like the engine's ENGINE_MAX_IN_FLIGHT default

SCHEMA = """
CREATE TABLE baseline_messages (
    id         bigserial PRIMARY KEY,
    recipient  text NOT NULL,
    body       text NOT NULL,
    sender     text,
    sid        text,
    status     text NOT NULL DEFAULT 'queued',
    error_code integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    final_at   timestamptz
);
"""
_FINAL_SQL = "SELECT count(*) FROM baseline_messages WHERE final_at IS NOT NULL"
_FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed"})


# ---- the baseline's own processes ----------------------------------------------------------------


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def worker_main(dsn: str, carrier_url: str, webhook_url: str, dids: Sequence[str]) -> None:
    """PgQueuer consumer: one job = one POST to the carrier + one UPDATE."""
    from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
    conn = await asyncpg.connect(dsn)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_CONCURRENT))
    qm = QueueManager(Queries(AsyncpgDriver(conn)))
    senders = itertools.cycle(dids)
    url = f"{carrier_url}/{API_VERSION}/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json"
    auth = aiohttp.BasicAuth(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)

    @qm.entrypoint(ENTRYPOINT)
    async def send_sms(job: Job) -> None:
        assert job.payload is not None
        msg = orjson.loads(job.payload)
        sender = next(senders)
        form = {"To": msg["to"], "From": sender, "Body": msg["body"],
                "StatusCallback": f"{webhook_url}/status/{msg['id']}"}
        async with session.post(url, data=form, auth=auth) as resp:
            doc = orjson.loads(await resp.read())
        if resp.status >= 400:
            await pool.execute(
                "UPDATE baseline_messages SET status = 'failed', error_code = $2, final_at = now() WHERE id = $1",
                msg["id"], doc.get("code"),
            )
            return
        # The final callback may already have landed (the carrier calls back at once): keep it.
        await pool.execute(
            "UPDATE baseline_messages SET sid = $2, sender = $3, sent_at = now(), "
            "status = CASE WHEN final_at IS NULL THEN 'sent' ELSE status END WHERE id = $1",
            msg["id"], doc["sid"], sender,
        )

    stop = asyncio.Event()
    _stop_on_signals(stop)

    async def shutdown() -> None:
        await stop.wait()
        qm.shutdown.set()

    stopper = asyncio.create_task(shutdown())
    print("baseline worker listening on pgqueuer", flush=True)
    try:
        await qm.run(batch_size=BATCH_SIZE, max_concurrent_tasks=MAX_CONCURRENT)
    finally:
        stopper.cancel()
        await session.close()
        await conn.close()
        await pool.close()


async def webhook_main(dsn: str, port: int) -> None:
    """Status callbacks: verify the signature, one UPDATE per callback."""
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)

    async def status(request: web.Request) -> web.Response:
        params = dict(await request.post())
        form = {k: str(v) for k, v in params.items()}
        expected = twilio_signature(DEFAULT_AUTH_TOKEN, str(request.url), form)
        if request.headers.get("X-Twilio-Signature") != expected:
            return web.Response(status=403)
        state = form.get("MessageStatus", "")
        code = int(form["ErrorCode"]) if form.get("ErrorCode") else None
        final = state in _FINAL_STATUSES
        await pool.execute(
            "UPDATE baseline_messages SET status = $2, error_code = $3, "
            "final_at = CASE WHEN $4 THEN now() ELSE final_at END WHERE id = $1",
            int(request.match_info["id"]), state, code, final,
        )
        return web.Response(status=204)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.add_routes([web.post("/status/{id}", status), web.get("/healthz", healthz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    _stop_on_signals(stop)
    print(f"baseline webhook listening on http://127.0.0.1:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await pool.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_baseline")
    sub = parser.add_subparsers(dest="role", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--dsn", required=True)
    w.add_argument("--carrier", required=True)
    w.add_argument("--webhook", required=True)
    w.add_argument("--dids", type=int, default=100)
    k = sub.add_parser("webhook")
    k.add_argument("--dsn", required=True)
    k.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop

        run: Any = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    if args.role == "worker":
        run(worker_main(args.dsn, args.carrier, args.webhook, h.did_numbers(args.dids)))
    else:
        run(webhook_main(args.dsn, args.port))


# ---- the round -----------------------------------------------------------------------------------


async def _enqueue(conn: asyncpg.Connection, job: list[tuple[str, str]]) -> None:
    from pgqueuer import AsyncpgDriver, Queries

    queries = Queries(AsyncpgDriver(conn))
    for i in range(0, len(job), CHUNK):
        chunk = job[i : i + CHUNK]
        async with conn.transaction():
            ids = await conn.fetch(
                "INSERT INTO baseline_messages (recipient, body) "
                "SELECT r, b FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(r, b, n) ORDER BY n "
                "RETURNING id",
                [to for to, _ in chunk], [body for _, body in chunk],
            )
        payloads: list[bytes | None] = [
            orjson.dumps({"id": row["id"], "to": to, "body": body})
            for row, (to, body) in zip(ids, chunk, strict=True)
        ]
        await queries.enqueue([ENTRYPOINT] * len(chunk), payloads, [0] * len(chunk))


async def baseline_round(server_dsn: str, *, messages: int, dids: int = 100, timeout: float | None = None,
                         carrier: str = "lean") -> Round:
    """The baseline's worker and webhook processes against a fresh database and a fresh carrier."""
    from pgqueuer import AsyncpgDriver, Queries

    timeout = timeout if timeout is not None else max(120.0, messages / 50)
    pg_pid = await h.postgres_pid(server_dsn)
    async with h.fresh_database(server_dsn, "bench_baseline") as dsn, h.children() as kids:
        conn = await asyncpg.connect(dsn)
        try:
            await Queries(AsyncpgDriver(conn)).install()
            await conn.execute(SCHEMA)
            carrier_url = await h.start_carrier(kids, carrier)
            port = h.free_port()
            webhook = await kids.spawn(
                ["-m", "benchmarks.bench_baseline", "webhook", "--dsn", dsn, "--port", str(port)]
            )
            webhook_url = await h.read_url_line(webhook, "baseline webhook")
            worker = await kids.spawn(
                ["-m", "benchmarks.bench_baseline", "worker", "--dsn", dsn, "--carrier", carrier_url,
                 "--webhook", webhook_url, "--dids", str(dids)]
            )
            await h.read_url_line(worker, "baseline worker")
            await asyncio.sleep(0.5)  # let PgQueuer finish verifying its schema and LISTEN
            pids = [worker.pid, webhook.pid]

            job = h.recipients(messages)
            carrier_pid = kids.procs[0].pid  # the fake carrier, started first: shared cost, not ours
            cpu0 = h.cpu_seconds(pids)
            carrier_cpu0 = h.cpu_seconds([carrier_pid])
            pg_cpu0 = h.tree_cpu(pg_pid)
            t0 = time.time()
            await _enqueue(conn, job)
            submit_s = time.time() - t0
            await h.wait_all_final(conn, _FINAL_SQL, messages, kids.procs, timeout)
            cpu1 = h.cpu_seconds(pids)
            carrier_cpu = h.cpu_seconds([carrier_pid]) - carrier_cpu0
            pg_cpu = h.tree_cpu_delta(pg_cpu0, h.tree_cpu(pg_pid))
            t_end: float = await conn.fetchval(
                "SELECT extract(epoch FROM max(final_at))::float8 FROM baseline_messages"
            )
            rows = await conn.fetch(
                "SELECT sid, extract(epoch FROM created_at)::float8 AS t, status FROM baseline_messages"
            )
            seen, records = await carrier_figures(carrier_url)
        finally:
            await conn.close()
    figures = {
        "kind": KIND,
        "carrier": carrier,
        **round_figures(
            messages, [r["status"] for r in rows], _FINAL_STATUSES, rows, records, seen,
            submit_s=submit_s, t0=t0, t_end=t_end, cpu_s=cpu1 - cpu0, carrier_cpu_s=carrier_cpu,
            postgres_cpu_s=pg_cpu,
        ),
    }
    return Round(figures, records)


if __name__ == "__main__":
    main()
