"""Composition root: wires the database, the HTTP server (webhooks, API, health, the console) and the dispatch worker.

The only module that builds concrete adapters and hands them to the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from engine.api.carousel import CarouselApi
from engine.api.health import HealthApi
from engine.api.jobs import finish_jobs_loop
from engine.callbacks.outbox import OutboxDeliverer
from engine.config import Settings
from engine.console import Console
from engine.console.server import MOUNT as CONSOLE_MOUNT
from engine.dispatch.worker import Worker
from engine.httpserver.bad_requests import BadRequestLog
from engine.inbound.mo import MoIntake
from engine.inbound.processor import MoProcessor
from engine.inbound.status import StatusIntake
from engine.metrics import Metrics
from engine.runtime.tasks import TaskGroup
from engine.store.database import Database

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What a running engine exposes to its caller (the demo, tests)."""

    db: Database
    base_url: str | None = None
    worker: Worker | None = None
    intake: StatusIntake | None = None
    metrics: Metrics = field(default_factory=Metrics)
    extras: dict[str, object] = field(default_factory=dict)


async def start_http(
    settings: Settings, routes: list[web.RouteDef], metrics: Metrics | None = None,
    subapps: Mapping[str, web.Application] | None = None,
) -> tuple[web.AppRunner, str]:
    """Serve *routes* (and *subapps* under their prefixes) on settings.host:port; returns the runner and base URL.

    Malformed requests aiohttp refuses are counted in *metrics* and logged at WARNING at most once per
    peer per minute (:mod:`engine.httpserver.bad_requests`), not at ERROR with a traceback each.
    """
    app = web.Application(client_max_size=1024 * 1024)  # send_messages carries up to 1,000 recipients
    app.add_routes(routes)
    for prefix, subapp in (subapps or {}).items():
        app.add_subapp(prefix, subapp)
    bad_requests = BadRequestLog((metrics or Metrics()).http_bad_requests)
    runner = web.AppRunner(app, access_log=None, logger=bad_requests)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def run_engine(
    settings: Settings,
    stop: asyncio.Event,
    *,
    serve: bool = True,
    dispatch: bool = True,
    db: Database | None = None,
    on_ready: Callable[[Runtime], None] | None = None,
) -> None:
    """Run the HTTP side and/or the worker until *stop* is set, then shut down cleanly."""
    own_db = db is None
    database = db or await Database.open(settings, max_size=12)
    runtime = Runtime(database)
    runner: web.AppRunner | None = None
    try:
        async with TaskGroup("engine") as tasks:
            outbox_task = None
            if serve:
                intake = StatusIntake(database.pool, settings.callback_base, runtime.metrics,
                                      read_timeout=settings.read_timeout)
                mo_intake = MoIntake(database.pool, settings.callback_base, read_timeout=settings.read_timeout)
                api = CarouselApi(database.pool, settings)
                console = Console(database.pool, settings, forget_keys=api.forget_keys)
                routes = (
                    intake.routes()
                    + mo_intake.routes()
                    + api.routes()
                    + HealthApi(database.pool, runtime.metrics).routes()
                    + console.routes()
                )
                runner, runtime.base_url = await start_http(settings, routes, runtime.metrics,
                                                            {CONSOLE_MOUNT: console.app()})
                if not settings.public_url:
                    # Port 0 picks a free port: the callback URLs must carry the real one.
                    settings = settings.override(public_url=runtime.base_url)
                    intake.public_base = runtime.base_url
                    mo_intake.public_base = runtime.base_url
                    api.settings = settings  # add_did points the numbers it buys at this base
                    console.settings = settings  # and so does the console's Buy
                runtime.intake = intake
                runtime.extras["console"] = console
                tasks.spawn(intake.writer.run(), name="status-writer")
                tasks.spawn(api.watch_keys(database.dsn), name="api-keys")
                log.info("HTTP listening on %s", runtime.base_url)
                # Callbacks to applications: their own task, their own HTTP session; never blocks sending.
                deliverer = OutboxDeliverer(database.pool, dsn=database.dsn)
                runtime.extras["outbox"] = deliverer
                outbox_task = tasks.spawn(deliverer.run(stop), name="outbox")
            worker_task = None
            if dispatch:
                runtime.worker = Worker(database.pool, database.dsn, settings, metrics=runtime.metrics)
                worker_task = tasks.spawn(runtime.worker.run(stop), name="worker")
                # MOs are handled by workers too (in per-phone order, each in one transaction).
                processor = MoProcessor(database.pool, database.dsn, runtime.worker.worker_id,
                                        lease_seconds=settings.lease_seconds, poll_seconds=settings.poll_seconds)
                runtime.extras["inbound"] = processor
                tasks.spawn(processor.run(stop), name="inbound")
            # Jobs none of whose messages may still change become 'done' (also whenever their status is read).
            tasks.spawn_resilient(lambda: finish_jobs_loop(database.pool, stop), name="jobs")
            if on_ready is not None:
                on_ready(runtime)
            await stop.wait()
            if worker_task is not None:
                await asyncio.wait([worker_task], timeout=settings.drain_seconds + 15)
            if runtime.intake is not None:
                await runtime.intake.writer.drain()
            if outbox_task is not None:
                await asyncio.wait([outbox_task], timeout=30)
    finally:
        if runner is not None:
            await runner.cleanup()
        if own_db:
            await database.close()
