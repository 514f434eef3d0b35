"""latency: what a transactional sender feels at light load — one message every 50 ms for 30 s, per door.

One fresh database, the lean carrier and `engine run` in their own processes, and the app's gateway (an aiohttp
server in this process that records when each delivery report arrives). The engine starts idle; then, for each
door in turn, a message is submitted every *interval* seconds on a fixed schedule for *seconds* seconds:

- sql: ``SELECT engine_submit(app, phone, body)`` on one connection (the SQL door);
- api: ``POST /api/send_message`` (api_key, phone_number, body) on one kept-alive HTTP connection.

For every message: submit → carrier request (the carrier's own accept time for the message's sid minus the
wall-clock time the submit call started, in this process: the same machine's clock) and submit → delivery report
(when the final report, ``final=true``, reached the gateway). p50/p99/max per door, with the engine's and the
carrier's CPU per message over the door's window (at this load mostly the idle loops' cost).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from benchmarks import harness as h
from benchmarks.bench_e2e import APP
from engine.store import admin
from engine.store.database import Database
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

DOORS = ("sql", "api")
BODY = "Your hold is ready at Main Library until Friday. Code {n}."


class ReportGateway:
    """The app's gateway: answers 200 to every callback and notes when each final delivery report arrived."""

    def __init__(self) -> None:
        self.final_at: dict[int, float] = {}
        self.reports = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        at = time.time()
        if form.get("type") == "delivery_report":
            self.reports += 1
            if form.get("final") == "true":
                self.final_at.setdefault(int(str(form["message_id"])), at)
        return web.Response(text="OK")

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/callbacks", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/callbacks"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def spread_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {"p50": round(h.percentile(ms, 50), 1), "p99": round(h.percentile(ms, 99), 1),
            "max": round(max(ms, default=0.0), 1)}


async def _drive(door: str, *, interval: float, seconds: float, conn: asyncpg.Connection,
                 http: aiohttp.ClientSession, api_url: str, api_key: str, offset: int) -> dict[int, float]:
    """Submit one message per *interval* for *seconds* through *door*; message id -> submit start (epoch s)."""
    submitted: dict[int, float] = {}
    count = int(seconds / interval)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    for k in range(count):
        delay = start + k * interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        n = offset + k
        phone = f"+1212{3000000 + n}"
        t = time.time()
        if door == "sql":
            message_id = int(await conn.fetchval("SELECT engine_submit($1, $2, $3)", APP, phone,
                                                 BODY.format(n=n)))
        else:
            form = {"api_key": api_key, "phone_number": phone, "body": BODY.format(n=n)}
            async with http.post(f"{api_url}/api/send_message", data=form) as resp:
                doc = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"send_message answered {resp.status}: {doc}")
            message_id = int(doc["message_ids"])
        submitted[message_id] = t
    return submitted


async def latency(server_dsn: str, *, interval: float = 0.05, seconds: float = 30.0, carrier: str = "lean",
                  doors: tuple[str, ...] = DOORS, dids: int = 100, settle_timeout: float = 60.0) -> dict[str, Any]:
    out: dict[str, Any] = {"interval_ms": round(interval * 1000, 1), "seconds": seconds, "carrier": carrier,
                           "dids": dids, "doors": {}}
    gateway = ReportGateway()
    await gateway.start()
    try:
        async with h.fresh_database(server_dsn, "bench_latency") as dsn, h.children() as kids:
            db = await Database.connect(dsn, min_size=1, max_size=2)  # migrates
            try:
                carrier_url = await h.start_carrier(kids, carrier)
                app = await admin.create_app(db.pool, APP, gateway.url)
                await admin.add_provider(db.pool, APP, kind="fake", account_sid=DEFAULT_ACCOUNT_SID,
                                         auth_token=DEFAULT_AUTH_TOKEN, base_url=carrier_url)
                await admin.add_dids(db.pool, APP, h.did_numbers(dids), limit_per_min=600_000)
                engine = await h.spawn_engine(kids, dsn)
                carrier_pid = kids.procs[0].pid
                conn = await asyncpg.connect(dsn)
                try:
                    async with aiohttp.ClientSession() as http:
                        await asyncio.sleep(1.0)  # let the engine settle into idle
                        offset = 0
                        for door in doors:
                            h.log(f"  latency via {door}: one message every {interval * 1000:g} ms for {seconds:g} s")
                            cpu0, c0 = engine.cpu(), h.cpu_seconds([carrier_pid])
                            submitted = await _drive(door, interval=interval, seconds=seconds, conn=conn, http=http,
                                                     api_url=engine.base_url, api_key=app.api_key, offset=offset)
                            offset += len(submitted)
                            deadline = time.monotonic() + settle_timeout
                            while (any(i not in gateway.final_at for i in submitted)
                                   and time.monotonic() < deadline):
                                await asyncio.sleep(0.05)
                            cpu1, c1 = engine.cpu(), h.cpu_seconds([carrier_pid])
                            rows = await conn.fetch(
                                "SELECT id, provider_message_id AS sid FROM engine_outbound WHERE id = ANY($1)",
                                list(submitted))
                            records = await h.carrier_get(carrier_url, "messages")
                            accepted = {r["sid"]: r["t"] for r in records}
                            to_carrier = [accepted[r["sid"]] - submitted[r["id"]] for r in rows if r["sid"] in accepted]
                            to_report = [gateway.final_at[i] - t for i, t in submitted.items() if i in gateway.final_at]
                            n = len(submitted)
                            out["doors"][door] = {
                                "messages": n,
                                "reached_carrier": len(to_carrier),
                                "final_reports": len(to_report),
                                "submit_to_carrier_ms": spread_ms(to_carrier),
                                "submit_to_report_ms": spread_ms(to_report),
                                "engine_cpu_us_per_msg": round((h.tree_cpu_delta(cpu0, cpu1) or 0.0) / n * 1e6, 1),
                                "carrier_cpu_us_per_msg": round((c1 - c0) / n * 1e6, 1),
                            }
                            f = out["doors"][door]
                            h.log(f"    → carrier p50 {f['submit_to_carrier_ms']['p50']} ms, p99 "
                                  f"{f['submit_to_carrier_ms']['p99']} ms; → report p50 "
                                  f"{f['submit_to_report_ms']['p50']} ms, p99 {f['submit_to_report_ms']['p99']} ms")
                finally:
                    await conn.close()
                await engine.stop()
            finally:
                await db.close()
    finally:
        await gateway.stop()
    return out
