"""The console's door: logging in and out, server-side sessions, CSRF tokens, security headers.

- A session is a random token in an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` per
  ENGINE_CONSOLE_SECURE_COOKIE); the database keeps only its sha256, with an absolute expiry and an idle limit.
- Every request that is not a GET/HEAD (forms and htmx calls alike) carries the session's CSRF token, in the
  ``csrf_token`` field or the ``X-CSRF-Token`` header; the token is an HMAC of the session token, so it is never
  stored and is worthless without the cookie. The login form itself is protected by a double-submit token.
- Every route but the login page and the static files needs a session: a page without one redirects to the
  login page, an htmx or JSON request gets 401.
- Failed logins are limited per name and per client address (:class:`engine.policy.logins.LoginThrottle`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import quote

from aiohttp import web

from engine.api.jobs import MAX_UPLOAD_BYTES
from engine.config import Settings
from engine.console import passwords
from engine.console.views import CSRF, FORM, OPERATOR, UPLOADS, render
from engine.httpserver.forms import UnreadableBody, read_form
from engine.policy.logins import LoginThrottle
from engine.store import operators
from engine.store.database import Pool

__all__ = ["COOKIE", "SESSION_IDLE_SECONDS", "SESSION_SECONDS", "Guard", "csrf_for", "token_hash"]

log = logging.getLogger(__name__)

COOKIE: Final = "engine_console"
LOGIN_COOKIE: Final = "engine_console_login"
SESSION_SECONDS: Final = 12 * 3600.0  # a login lasts a working day at most …
SESSION_IDLE_SECONDS: Final = 2 * 3600.0  # … and ends after two idle hours
PREFIX: Final = "/console/"
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
_PUBLIC: Final = ("login", "login-submit", "static")  # the only routes reachable without a session (by route name)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_hash(token: str) -> str:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_for(token: str) -> str:
    """The CSRF token of the session whose cookie holds *token*."""
    return hmac.new(token.encode(), b"engine console csrf v1", hashlib.sha256).hexdigest()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def safe_next(raw: str | None) -> str:
    """Where to go after logging in: a console path only (never another site)."""
    if raw and raw.startswith(PREFIX) and "//" not in raw and "\\" not in raw and not raw.startswith(PREFIX + "login"):
        return raw
    return PREFIX


def wants_json(request: web.Request) -> bool:
    return request.path.startswith(PREFIX + "api/") or "application/json" in request.headers.get("Accept", "")


class Guard:
    """Sessions, logins and the middleware every console request passes through."""

    def __init__(self, pool: Pool, settings: Settings, throttle: LoginThrottle) -> None:
        self.pool = pool
        self.settings = settings
        self.throttle = throttle

    # ---- cookies --------------------------------------------------------------------------------

    def _secure(self, request: web.Request) -> bool:
        mode = self.settings.console_secure_cookie
        if mode != "auto":
            return mode == "yes"
        return request.secure or (self.settings.public_url or "").startswith("https://")

    def _set_cookie(self, request: web.Request, response: web.StreamResponse, name: str, value: str,
                    max_age: float | None) -> None:
        response.set_cookie(name, value, path=PREFIX, httponly=True, samesite="Strict", secure=self._secure(request),
                            max_age=None if max_age is None else int(max_age))

    # ---- the middleware ---------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await self._guarded(request, handler)
        except web.HTTPException as exc:  # redirects and errors get the headers too
            response = exc
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith(PREFIX + "static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        if isinstance(response, web.HTTPException):
            raise response
        return response

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.name
        if route in _PUBLIC:
            return await handler(request)
        token = request.cookies.get(COOKIE)
        operator = None
        if token:
            operator = await operators.session_operator(self.pool, token_hash(token), SESSION_IDLE_SECONDS)
        if operator is None or token is None:
            return self._anonymous(request)
        request[OPERATOR] = operator
        request[CSRF] = csrf_for(token)
        if request.method not in SAFE_METHODS:
            form = await self._form(request)
            if not _same(form.get("csrf_token") or request.headers.get("X-CSRF-Token"), request[CSRF]):
                log.warning("console: %s %s by %s refused: missing or wrong CSRF token",
                            request.method, request.path, operator.name)
                return await self._refused(request, 403, "This request was refused: its CSRF token is missing or "
                                                         "wrong. Reload the page and try again.")
        return await handler(request)

    async def _form(self, request: web.Request) -> dict[str, str]:
        """The request's form, read once (handlers find it under FORM)."""
        if FORM not in request:
            try:
                uploads = UPLOADS.get(request.match_info.route.name or "", ())
                reading = request.clone(client_max_size=MAX_UPLOAD_BYTES) if uploads else request
                request[FORM] = await read_form(reading, timeout=self.settings.read_timeout, uploads=uploads) \
                    if request.body_exists else {}
            except UnreadableBody as exc:
                raise web.HTTPBadRequest(text=exc.message) from None
        return request[FORM]

    def _anonymous(self, request: web.Request) -> web.StreamResponse:
        if wants_json(request):
            return web.json_response({"error": "login required"}, status=401)
        if request.headers.get("HX-Request") or request.method not in SAFE_METHODS:
            response = web.Response(status=401, text="login required")
            response.headers["HX-Redirect"] = PREFIX + "login"
            return response
        target = request.path_qs
        raise web.HTTPFound(PREFIX + "login?next=" + quote(target, safe="/"))

    async def _refused(self, request: web.Request, status: int, message: str) -> web.StreamResponse:
        if wants_json(request):
            return web.json_response({"error": message}, status=status)
        if request.headers.get("HX-Request"):
            return web.Response(status=status, text=message)
        return await render(request, "error.html", {"message": message, "status": status}, status=status)

    # ---- login and logout -----------------------------------------------------------------------------

    async def _login_page(self, request: web.Request, *, status: int = 200, error: str | None = None,
                          name: str = "", next_page: str | None = None) -> web.Response:
        login_token = secrets.token_urlsafe(24)
        response = await render(request, "login.html", {
            "login_token": login_token, "error": error, "name": name,
            "next": safe_next(next_page or request.query.get("next"))}, status=status)
        self._set_cookie(request, response, LOGIN_COOKIE, login_token, max_age=3600)
        return response

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        return await self._login_page(request)

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await self._form(request)
        name = form.get("name", "").strip()
        password = form.get("password", "")
        if not _same(form.get("csrf_token"), request.cookies.get(LOGIN_COOKIE, "") or "\x00"):
            return await self._login_page(request, status=403, name=name, next_page=form.get("next"),
                                          error="The login form had expired or was not this site's: try again.")
        address = request.remote or "unknown"
        wait = self.throttle.retry_after(name, address)
        if wait > 0:
            log.warning("console: login for %r from %s refused: too many failed attempts", name, address)
            minutes = max(1, round(wait / 60))
            return await self._login_page(request, status=429, name=name, next_page=form.get("next"),
                                          error=f"Too many failed logins: try again in {minutes} minute(s).")
        facts = await operators.login_facts(self.pool, name) if name else None
        ok = await asyncio.to_thread(passwords.verify_password, facts.password_hash if facts else None, password)
        if not ok or facts is None:
            self.throttle.failed(name, address)
            log.warning("console: failed login for %r from %s", name, address)
            return await self._login_page(request, status=401, name=name, next_page=form.get("next"),
                                          error="Wrong name or password.")
        self.throttle.succeeded(name, address)
        if passwords.needs_rehash(facts.password_hash):
            await operators.upgrade_hash(self.pool, facts.id, await asyncio.to_thread(passwords.hash_password,
                                                                                          password))
        token = secrets.token_urlsafe(32)  # a new session id on every login: no fixation
        await operators.open_session(self.pool, facts.id, token_hash(token), SESSION_SECONDS)
        log.info("console: %s logged in from %s", facts.name, address)
        response = web.HTTPSeeOther(safe_next(form.get("next")))
        self._set_cookie(request, response, COOKIE, token, max_age=SESSION_SECONDS)
        response.del_cookie(LOGIN_COOKIE, path=PREFIX)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        token = request.cookies.get(COOKIE)
        if token:
            await operators.end_session(self.pool, token_hash(token))
        response = web.HTTPSeeOther(PREFIX + "login")
        response.del_cookie(COOKIE, path=PREFIX)
        return response
