"""The console's door over real HTTP: logins (and their throttle, on an injected clock), sessions kept server-side
by hash, CSRF on every change, every route behind the login, the cookie's attributes and the security headers."""

from __future__ import annotations

import hashlib

import aiohttp
import asyncpg
import pytest

from engine.config import Settings
from tests.helpers.console import (
    OPERATOR,
    PASSWORD,
    add_operator,
    browser_session,
    console_server,
    csrf_token,
    logged_in,
    login,
)

# Every page and JSON endpoint of the console (GET), and every change (POST); none answers without a session.
PAGES = ["/console/", "/console/overview/live", "/console/inbound", "/console/inbound/phone?phone=%2B16465550100",
         "/console/inbound/consent", "/console/inbound/blacklist", "/console/apps", "/console/apps/lib",
         "/console/carrier", "/console/carrier/lib-smsc", "/console/messages?phone=%2B16465550100",
         "/console/message?message_id=1", "/console/message/1", "/console/message/1/live", "/console/jobs",
         "/console/jobs/live", "/console/jobs/1", "/console/jobs/1/live"]
CHANGES = ["/console/logout", "/console/inbound/blacklist", "/console/apps/lib/settings", "/console/apps/lib/keywords",
           "/console/apps/lib/keywords/remove", "/console/apps/lib/rotate-key", "/console/apps/lib/dead-letters/retry",
           "/console/segments?field=help_text", "/console/carrier/lib-smsc/test", "/console/carrier/lib-smsc/search",
           "/console/carrier/lib-smsc/buy", "/console/carrier/lib-smsc/release", "/console/message/1/resend",
           "/console/jobs/preview", "/console/jobs/start", "/console/jobs/1/pause"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_anonymous_requests_are_refused(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO engine_app (name) VALUES ('lib')")
    async with console_server(pool) as served, browser_session() as session:
        for path in PAGES:
            async with session.get(served.base + path, allow_redirects=False) as resp:
                assert resp.status == 302, path
                assert resp.headers["Location"].startswith("/console/login?next=/console/"), path
            async with session.get(served.base + path, headers={"HX-Request": "true"}, allow_redirects=False) as resp:
                assert resp.status == 401 and resp.headers["HX-Redirect"] == "/console/login", path
        async with session.get(served.base + "/console/api/overview.json") as resp:
            assert resp.status == 401 and await resp.json() == {"error": "login required"}
        for path in CHANGES:
            async with session.post(served.base + path, data={"csrf_token": "x"}, allow_redirects=False) as resp:
                assert resp.status == 401, path
        # /console without its slash leads to the console; the login page and static files need no session.
        async with session.get(served.base + "/console", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/console/"
        async with session.get(served.base + "/console/static/console.css") as resp:
            assert resp.status == 200
    assert await pool.fetchval("SELECT count(*) FROM engine_app WHERE api_key_hash IS NOT NULL") == 0


async def test_login_sets_a_strict_httponly_cookie_whose_token_is_stored_only_hashed(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    async with console_server(pool) as served, browser_session() as session:
        resp = await login(session, served.base, next_page="/console/apps")
        assert resp.status == 303 and resp.headers["Location"] == "/console/apps"
        cookie = resp.cookies["engine_console"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console/"
        assert not cookie["secure"]  # plain http, no https public URL: 'auto' leaves it off
        token = cookie.value
        stored = await pool.fetchval("SELECT id_hash FROM engine_console_session")
        assert stored == hashlib.sha256(token.encode()).hexdigest() and token not in stored
        async with session.get(served.base + "/console/apps") as page:
            assert page.status == 200 and OPERATOR in await page.text()
            for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"):
                assert header in page.headers
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
            assert page.headers["Cache-Control"] == "no-store"
        assert await pool.fetchval("SELECT last_login_at IS NOT NULL FROM engine_operator") is True


@pytest.mark.parametrize(("setting", "public_url", "secure"), [
    ("yes", None, True), ("auto", "https://sms.example.org", True), ("auto", None, False),
    ("no", "https://x.org", False),
])
async def test_secure_cookie_when_configured_or_behind_https(
    pool: asyncpg.Pool, setting: str, public_url: str | None, secure: bool
) -> None:
    settings = Settings(console_secure_cookie=setting, public_url=public_url)
    async with console_server(pool, settings=settings) as served, browser_session() as session, \
            session.get(served.base + "/console/login") as page:
        # (A Secure cookie is not sent back over plain http: the login form's own cookie shows the attribute.)
        assert bool(page.cookies["engine_console_login"]["secure"]) is secure


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/console/", "/console//evil.example",
                                    "/elsewhere", "/console/login"])
async def test_login_never_redirects_off_the_console(pool: asyncpg.Pool, target: str) -> None:
    await add_operator(pool)
    async with console_server(pool) as served, browser_session() as session:
        resp = await login(session, served.base, next_page=target)
        assert resp.status == 303 and resp.headers["Location"] == "/console/"


async def test_wrong_password_unknown_name_and_forged_login_form_are_refused(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    async with console_server(pool) as served, browser_session() as session:
        for name, password in ((OPERATOR, "wrong password!"), ("nobody", PASSWORD), (OPERATOR, "")):
            resp = await login(session, served.base, name, password)
            assert resp.status == 401 and "engine_console" not in resp.cookies
        # The login form's own token (double-submit cookie) is required too.
        form = {"name": OPERATOR, "password": PASSWORD, "csrf_token": "forged"}
        async with session.post(served.base + "/console/login", data=form, allow_redirects=False) as resp:
            assert resp.status == 403 and "engine_console" not in resp.cookies
    assert await pool.fetchval("SELECT count(*) FROM engine_console_session") == 0


async def test_every_change_needs_the_sessions_csrf_token(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    await pool.execute("INSERT INTO engine_app (name) VALUES ('lib')")
    async with console_server(pool) as served:
        session, token = await logged_in(served.base)
        other, other_token = await logged_in(served.base)  # a second session: its token is not this one's
        assert other_token != token
        async with session, other:
            for path in CHANGES:
                for headers, data in (({}, {}), ({}, {"csrf_token": other_token}),
                                      ({"X-CSRF-Token": "0" * 64}, {}), ({"HX-Request": "true"}, {})):
                    async with session.post(served.base + path, data=data, headers=headers,
                                            allow_redirects=False) as resp:
                        assert resp.status == 403, (path, headers, data)
            # Nothing changed: the app kept no key, the session still works.
            assert await pool.fetchval("SELECT api_key_hash FROM engine_app") is None
            async with session.post(served.base + "/console/segments?field=help_text", data={"help_text": "hi"},
                                    headers={"X-CSRF-Token": token}) as resp:
                assert resp.status == 200 and "1 segment" in await resp.text()
            async with session.post(served.base + "/console/apps/lib/rotate-key", data={"csrf_token": token}) as resp:
                assert resp.status == 200 and 'id="new-api-key"' in await resp.text()  # (after the redirect)
            async with session.get(served.base + "/console/apps/lib") as resp:
                assert 'id="new-api-key"' not in await resp.text()  # shown once
            assert await pool.fetchval("SELECT api_key_hash FROM engine_app") is not None


async def test_logout_expiry_idleness_and_a_new_password_end_sessions(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    async with console_server(pool) as served:

        async def status(session: aiohttp.ClientSession) -> int:
            async with session.get(served.base + "/console/apps", allow_redirects=False) as resp:
                return resp.status

        session, token = await logged_in(served.base)
        async with session:
            async with session.post(served.base + "/console/logout", data={"csrf_token": token},
                                    allow_redirects=False) as resp:
                assert resp.status == 303
            assert await pool.fetchval("SELECT count(*) FROM engine_console_session") == 0
            assert await status(session) == 302
        for ending in ("UPDATE engine_console_session SET expires_at = now() - interval '1 second'",
                       "UPDATE engine_console_session SET seen_at = now() - interval '3 hours'"):
            session, _ = await logged_in(served.base)
            async with session:
                assert await status(session) == 200
                await pool.execute(ending)
                assert await status(session) == 302, ending
        session, _ = await logged_in(served.base)
        async with session:
            from engine.console.passwords import hash_password
            from engine.store import operators

            await operators.set_password(pool, OPERATOR, hash_password("a brand new password"))
            assert await status(session) == 302


async def test_failed_logins_are_limited_per_name_and_per_address(pool: asyncpg.Pool) -> None:
    clock = Clock()
    await add_operator(pool)
    await add_operator(pool, "second", PASSWORD)
    async with console_server(pool, clock=clock) as served, browser_session() as session:
        for _ in range(5):
            assert (await login(session, served.base, OPERATOR, "wrong password!")).status == 401
        # Now even the right password is not checked for that name …
        assert (await login(session, served.base, OPERATOR, PASSWORD)).status == 429
        # … while another name still logs in (5 failures are under the address's limit of 20).
        assert (await login(session, served.base, "second", PASSWORD)).status == 303
        clock.now += 15 * 60 - 1
        assert (await login(session, served.base, OPERATOR, PASSWORD)).status == 429
        clock.now += 1
        assert (await login(session, served.base, OPERATOR, PASSWORD)).status == 303
        # One address guessing across many names: 20 failures close the door for every name from it.
        for i in range(20):
            assert (await login(session, served.base, f"guess{i}", "wrong password!")).status == 401
        assert (await login(session, served.base, "second", PASSWORD)).status == 429
        clock.now += 15 * 60
        assert (await login(session, served.base, "second", PASSWORD)).status == 303


async def test_a_page_shows_its_token_and_the_token_differs_per_session(pool: asyncpg.Pool) -> None:
    await add_operator(pool)
    async with console_server(pool) as served:
        first, token = await logged_in(served.base)
        async with first, first.get(served.base + "/console/") as page:
            html = await page.text()
            assert csrf_token(html) == token and f'"X-CSRF-Token": "{token}"' in html
