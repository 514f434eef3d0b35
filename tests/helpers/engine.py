"""The engine under test in this process: an application on the loopback fake carrier, the fake carrier itself,
and the real engine (HTTP side and/or dispatch worker) started and stopped around a block."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp
import asyncpg

from engine.app import Runtime, run_engine
from engine.config import Settings
from engine.dispatch.worker import Worker
from engine.providers.twilio import twilio_signature
from engine.store import admin
from engine.store import inbound as inbound_store
from engine.store.database import Database
from engine.testing import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, CallbackMode, FakeCarrier


@dataclass(frozen=True, slots=True)
class FakeApp:
    """An application whose carrier account is a fake carrier."""

    app_id: int
    name: str
    api_key: str
    callback_secret: str
    provider_id: int
    numbers: tuple[str, ...]


def did_numbers(count: int, area: str = "646") -> list[str]:
    """*count* distinct sender numbers in *area*: +1 AREA 200 0000, +1 AREA 200 0001, …"""
    return [f"+1{area}{200 + i // 10000:03d}{i % 10000:04d}" for i in range(count)]


async def add_fake_app(
    pool: asyncpg.Pool, carrier_url: str, *, name: str = "lib", numbers: Sequence[str] = (),
    limit_per_min: int = 60, max_per_second: int | None = None,
) -> FakeApp:
    """Create application *name* with a provider account on the fake carrier at *carrier_url* and these DIDs."""
    new = await admin.create_app(pool, name)
    provider_id = await admin.add_provider(
        pool, name, kind="fake", account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN,
        base_url=carrier_url, max_per_second=max_per_second,
    )
    if numbers:
        await admin.add_dids(pool, name, list(numbers), limit_per_min=limit_per_min)
    return FakeApp(new.app_id, name, new.api_key, new.callback_secret, provider_id, tuple(numbers))


async def setup_app(
    pool: asyncpg.Pool, carrier_url: str, *, name: str = "lib", dids: int = 10, limit_per_min: int = 60,
    area: str = "646", max_per_second: int | None = None,
) -> list[str]:
    """An app on the fake carrier with *dids* sender numbers in *area*; returns the numbers."""
    numbers = did_numbers(dids, area)
    await add_fake_app(pool, carrier_url, name=name, numbers=numbers, limit_per_min=limit_per_min,
                       max_per_second=max_per_second)
    return numbers


@asynccontextmanager
async def carrier(
    *, latency: float = 0.0, callbacks: CallbackMode = "all", failure_rate: float = 0.0,
    accounts: Mapping[str, str] | None = None,
) -> AsyncIterator[FakeCarrier]:
    """A fake carrier on a free loopback port (seeded), stopped on exit."""
    fake = FakeCarrier(latency=latency, callbacks=callbacks, failure_rate=failure_rate, seed=1, accounts=accounts)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@dataclass
class Running:
    runtime: Runtime
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def base_url(self) -> str:
        assert self.runtime.base_url is not None, "the engine serves no HTTP"
        return self.runtime.base_url


@asynccontextmanager
async def engine_running(
    dsn: str, *, serve: bool = True, dispatch: bool = True, **overrides: object
) -> AsyncIterator[Running]:
    """Start the real engine (webhooks and API on a free port, and/or the dispatch worker) against *dsn*; on exit
    stop it and wait until it has shut down. Short poll and lease times unless *overrides* say otherwise."""
    settings = Settings(dsn=dsn, port=0, poll_seconds=0.2, lease_seconds=10.0).override(**overrides)
    db = await Database.connect(dsn, max_size=12)
    stop = asyncio.Event()
    ready: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_engine(settings, stop, serve=serve, dispatch=dispatch, db=db, on_ready=ready.set_result)
    )
    try:
        started: list[asyncio.Future[Any]] = [ready, task]
        await asyncio.wait(started, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # it failed to start: its error, not a timeout
        assert ready.done(), "the engine did not start within 30 s"
        yield Running(ready.result(), stop, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
        await db.close()


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
    provider_id = await pool.fetchval("SELECT id FROM engine_provider")
    token = await inbound_store.auth_token(pool, provider_id)  # sealed at rest: opened the one way the engine does
    assert token is not None
    return provider_id, token


class Stoppable(Protocol):
    """A loop that runs until its stop event is set (the dispatch worker, the outbox deliverer)."""

    def run(self, stop: asyncio.Event) -> Coroutine[Any, Any, Any]: ...


S = TypeVar("S", bound=Stoppable)


@asynccontextmanager
async def running(part: S, *, drain_timeout: float) -> AsyncIterator[S]:
    """*part* running in this process until the block ends; then stopped, and waited for while it drains."""
    stop = asyncio.Event()
    task = asyncio.create_task(part.run(stop))
    try:
        yield part
    finally:
        stop.set()
        await asyncio.wait_for(task, drain_timeout)


@asynccontextmanager
async def dispatch_worker(pool: asyncpg.Pool, dsn: str, settings: Settings, **kwargs: Any) -> AsyncIterator[Worker]:
    """The real dispatch worker alone (no HTTP side), in this process with *settings* and its injected parts
    (clocks, carrier day), until the block ends; then stopped and drained."""
    async with running(Worker(pool, dsn, settings, **kwargs), drain_timeout=60) as worker:
        yield worker
