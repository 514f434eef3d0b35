"""The console's aiohttp sub-application: templates, static files, the security middleware and every page."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import aiohttp_jinja2
import jinja2
from aiohttp import web

from engine.config import Settings
from engine.console.pages.apps import AppPages
from engine.console.pages.carrier import CarrierPages
from engine.console.pages.inbound import InboundPages
from engine.console.pages.jobs import JobPages
from engine.console.pages.messages import MessagePages
from engine.console.pages.overview import OverviewPages
from engine.console.security import Guard
from engine.console.views import Deps
from engine.policy.logins import LoginThrottle
from engine.runtime.clock import Clock
from engine.store.database import Pool

__all__ = ["MOUNT", "Console"]

MOUNT: Final = "/console"
HERE: Final = Path(__file__).parent


def _when(value: object, ms: bool = False) -> str:
    """A time as the console shows it: UTC, to the second (or the millisecond: a message's timeline)."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo is not None else value
        return utc.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if ms else utc.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def _wall() -> datetime:
    return datetime.now(UTC)


class Console:
    """Build with the pool and settings; ``app()`` is the sub-application, ``routes()`` what the main app adds."""

    def __init__(self, pool: Pool, settings: Settings, *, clock: Clock = time.monotonic,
                 forget_keys: Callable[[], None] = lambda: None, now: Callable[[], datetime] = _wall) -> None:
        self.deps = Deps(pool, settings, forget_keys)
        self.clock = clock
        self.now = now  # the wall clock (UTC): dates typed relative to today, a resend's expiry check
        self.guard = Guard(pool, settings, LoginThrottle(clock))

    @property
    def settings(self) -> Settings:
        return self.deps.settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        """The server's real address is known only once it listens (port 0): the pages and the guard follow."""
        self.deps.settings = value
        self.guard.settings = value

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.guard.middleware])
        env = aiohttp_jinja2.setup(
            app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=jinja2.select_autoescape(),
            undefined=jinja2.StrictUndefined, default_helpers=False,
        )
        env.filters["when"] = _when
        app.router.add_get("/login", self.guard.login_form, name="login")
        app.router.add_post("/login", self.guard.login, name="login-submit")
        app.router.add_post("/logout", self.guard.logout, name="logout")
        app.router.add_static("/static/", HERE / "static", name="static")
        app.add_routes(OverviewPages(self.deps, self.clock).routes())
        app.add_routes(MessagePages(self.deps, self.now).routes())
        app.add_routes(JobPages(self.deps, self.clock).routes())
        for pages in (InboundPages, AppPages, CarrierPages):
            app.add_routes(pages(self.deps).routes())
        return app

    @staticmethod
    async def _to_console(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(MOUNT + "/")

    def routes(self) -> list[web.RouteDef]:
        """For the main application: /console without its slash."""
        return [web.get(MOUNT, self._to_console)]
