"""The operator console under test: served alone over loopback (with an injected clock for its login throttle), an
operator to log in as, and logging in with an aiohttp session as a browser would (the login form's token first)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import aiohttp
import asyncpg
from aiohttp import web

from engine.app import start_http
from engine.config import Settings
from engine.console import Console
from engine.console.passwords import hash_password
from engine.console.server import MOUNT
from engine.runtime.clock import Clock
from engine.store import operators

OPERATOR: Final = "ops"
PASSWORD: Final = "correct horse battery"
_TOKEN: Final = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Served:
    console: Console
    base: str  # http://127.0.0.1:PORT

    @property
    def url(self) -> str:
        return self.base + MOUNT + "/"


@asynccontextmanager
async def console_server(
    pool: asyncpg.Pool, *, clock: Clock = time.monotonic, settings: Settings | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AsyncIterator[Served]:
    """The console alone on a free loopback port (real HTTP), as `engine serve` mounts it; *now* its wall clock."""
    settings = settings or Settings(port=0)
    console = Console(pool, settings, clock=clock, now=now)
    runner: web.AppRunner
    runner, base = await start_http(settings.override(port=0), console.routes(), None, {MOUNT: console.app()})
    try:
        yield Served(console, base)
    finally:
        await runner.cleanup()


async def add_operator(pool: asyncpg.Pool, name: str = OPERATOR, password: str = PASSWORD) -> int:
    return await operators.create_operator(pool, name, hash_password(password))


def browser_session() -> aiohttp.ClientSession:
    """A client that keeps cookies for 127.0.0.1 (aiohttp's default jar ignores IP hosts) and follows nothing."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def csrf_token(html: str) -> str:
    found = _TOKEN.search(html)
    assert found is not None, "no csrf_token field on the page"
    return found.group(1)


async def login(session: aiohttp.ClientSession, base: str, name: str = OPERATOR, password: str = PASSWORD,
                *, next_page: str = "") -> aiohttp.ClientResponse:
    """Open the login page (its form token and cookie), post the form; the answer, not followed."""
    async with session.get(base + "/console/login") as page:
        token = csrf_token(await page.text())
    form = {"name": name, "password": password, "csrf_token": token, "next": next_page}
    async with session.post(base + "/console/login", data=form, allow_redirects=False) as resp:
        await resp.read()
        return resp


async def logged_in(base: str) -> tuple[aiohttp.ClientSession, str]:
    """A session logged in as the operator, and its CSRF token (read from a page)."""
    session = browser_session()
    resp = await login(session, base)
    assert resp.status == 303, resp.status
    async with session.get(base + "/console/apps") as page:
        assert page.status == 200
        return session, csrf_token(await page.text())
