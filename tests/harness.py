"""Test harness: run the real engine (worker + webhooks) against a real fake carrier on loopback."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import asyncpg

from engine.app import Runtime, run_engine
from engine.config import Settings
from engine.providers.twilio import twilio_signature
from engine.store import admin
from engine.store.database import Database
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, FakeCarrier

FINAL = ("delivered", "undelivered", "failed", "suppressed", "canceled", "unknown")


@dataclass
class Running:
    runtime: Runtime
    stop: asyncio.Event
    task: asyncio.Task[None]


async def setup_app(
    pool: asyncpg.Pool, carrier_url: str, *, name: str = "lib", dids: int = 10, limit_per_min: int = 60,
    area: str = "646",
) -> list[str]:
    """An app with a fake-carrier provider and *dids* sender numbers; returns the numbers."""
    await admin.create_app(pool, name)
    await admin.add_provider(
        pool, name, kind="fake", account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN, base_url=carrier_url
    )
    numbers = [f"+1{area}{200 + i // 10000:03d}{i % 10000:04d}" for i in range(dids)]
    await admin.add_dids(pool, name, numbers, limit_per_min=limit_per_min)
    return numbers


@asynccontextmanager
async def engine_running(dsn: str, **overrides: object) -> AsyncIterator[Running]:
    """Start worker + webhook server on a free port; stop and wait on exit."""
    settings = Settings(dsn=dsn, port=0, poll_seconds=0.2, lease_seconds=10.0).override(**overrides)
    db = await Database.connect(dsn, max_size=12)
    stop = asyncio.Event()
    ready: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_engine(settings, stop, db=db, on_ready=ready.set_result))
    try:
        runtime = await asyncio.wait_for(asyncio.shield(ready), 20)
        yield Running(runtime, stop, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await db.close()


async def wait_final(pool: asyncpg.Pool, count: int, timeout: float = 60.0) -> dict[str, int]:
    """Wait until *count* messages are in a final state; returns counts by state."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await pool.fetch("SELECT state, count(*)::int AS n FROM engine_outbound GROUP BY state")
        counts = {r["state"]: r["n"] for r in rows}
        if sum(counts.get(s, 0) for s in FINAL) >= count:
            return counts
        if time.monotonic() > deadline:
            raise AssertionError(f"not final after {timeout}s: {counts}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def carrier(**kwargs: object) -> AsyncIterator[FakeCarrier]:
    fake = FakeCarrier(latency=kwargs.pop("latency", 0.0), seed=1, **kwargs)  # type: ignore[arg-type]
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


_mo_sids = itertools.count(1)


async def send_mo(
    base: str, provider: tuple[int, str], sender: str, to: str, body: str, *, sid: str | None = None,
    signature: str | None = None, headers: dict[str, str] | None = None,
) -> int:
    """Send an MO to the engine's webhook the way Twilio does (signed with the account's token); returns the HTTP
    status the engine answered. *provider*: (provider id, auth token)."""
    path = f"/webhooks/twilio/inbound/{provider[0]}"
    form = {"MessageSid": sid or f"SM{next(_mo_sids):032x}", "AccountSid": "AC" + "0" * 32, "From": sender,
            "To": to, "Body": body, "NumSegments": "1"}
    sig = signature if signature is not None else twilio_signature(provider[1], base + path, form)
    async with aiohttp.ClientSession() as session, session.post(
        base + path, data=form, headers={"X-Twilio-Signature": sig, **(headers or {})}
    ) as resp:
        if resp.status == 200:
            assert resp.content_type == "text/xml" and b"<Response/>" in await resp.read()
        return resp.status


async def provider_of(pool: asyncpg.Pool) -> tuple[int, str]:
    """(id, auth token) of the only carrier account."""
    row = await pool.fetchrow("SELECT id, auth_token FROM engine_provider")
    return row["id"], row["auth_token"]


async def until(pool: asyncpg.Pool, sql: str, *args: object, timeout: float = 20.0) -> object:
    """Poll *sql* until it returns something true; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = await pool.fetchval(sql, *args)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never true: {sql}")
        await asyncio.sleep(0.05)
