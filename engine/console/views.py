"""What every console page shares: its dependencies, rendering with the page frame, reading parameters, paging."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import aiohttp_jinja2
from aiohttp import web

from engine.config import Settings
from engine.errors import InvalidInput
from engine.phone import to_e164
from engine.store.database import Pool
from engine.store.operators import Operator

__all__ = [
    "CSRF",
    "FORM",
    "NAV",
    "NOTICES",
    "OPERATOR",
    "UPLOADS",
    "Deps",
    "OneTime",
    "cursor_time",
    "form",
    "int_param",
    "operator",
    "phone_param",
    "render",
    "see_other",
]

# What the security middleware leaves on a request for the handlers.
OPERATOR: Final = web.RequestKey("operator", Operator)  # who is logged in
CSRF: Final = web.RequestKey("csrf", str)  # their session's CSRF token (for the forms of the page)
FORM: Final = web.RequestKey("form", dict[str, str])  # the POSTed form, read once

# The forms that upload a file (route name -> its file fields); every other form's files are dropped unread.
UPLOADS: Final = {"jobs-preview": ("csv",)}
# The pages in the navigation bar: (route name, label, path).
NAV: Final = (
    ("overview", "Overview", "/console/"),
    ("messages", "Messages", "/console/messages"),
    ("jobs", "Jobs", "/console/jobs"),
    ("inbound", "Inbound", "/console/inbound"),
    ("apps", "Apps", "/console/apps"),
    ("carrier", "Carrier & numbers", "/console/carrier"),
)
# What a page may say after a redirect (?done=CODE): fixed texts, so a link cannot make the console say anything.
NOTICES: Final = {
    "saved": "Settings saved.",
    "keyword-added": "Keyword saved.",
    "keyword-removed": "Keyword removed.",
    "retried": "The callback will be attempted again now.",
    "not-dead": "That callback is no longer dead-lettered.",
    "blacklisted": "The phone is blacklisted for that app.",
    "unblacklisted": "The phone is no longer blacklisted for that app.",
    "unchanged": "Nothing changed: it was already so.",
    "bought": "Number bought, pointed at the engine and added.",
    "released": "Number released and removed.",
    "nothing": "Nothing to change.",
    "rotated": "The API key was rotated: the old key no longer works.",
    "job-started": "Job queued: its messages are on their way.",
    "job-paused": "Job paused: its queued messages wait.",
    "job-resumed": "Job resumed.",
    "job-canceled": "Job canceled: its queued messages will not be sent.",
    "resent": "Resent: this is the new message, queued now and linked to the one it repeats.",
}


class OneTime:
    """Secrets shown once on the page a redirect leads to (a new API key), kept in memory a few minutes at most and
    per session: the form's answer stays a redirect (a reload cannot repeat the change) and never carries the
    secret in a URL."""

    def __init__(self, clock: Callable[[], float], ttl: float = 300.0) -> None:
        self.clock = clock
        self.ttl = ttl
        self._held: dict[tuple[str, str], tuple[float, str]] = {}

    def put(self, request: web.Request, what: str, value: str) -> None:
        now = self.clock()
        self._held = {k: v for k, v in self._held.items() if v[0] > now}
        self._held[request.get(CSRF, ""), what] = (now + self.ttl, value)

    def take(self, request: web.Request, what: str) -> str | None:
        held = self._held.pop((request.get(CSRF, ""), what), None)
        return held[1] if held is not None and held[0] > self.clock() else None


@dataclass
class Deps:
    """What the pages use. `settings` is replaced when the server learns its real port (port 0)."""

    pool: Pool
    settings: Settings
    forget_keys: Callable[[], None] = field(default=lambda: None)
    once: OneTime = field(default_factory=lambda: OneTime(time.monotonic))


async def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200,
                 nav: str | None = None) -> web.Response:
    """*template* in the page frame: the operator, the CSRF token, the navigation, a notice from ?done=."""
    frame = {
        "operator": request.get(OPERATOR),
        "csrf": request.get(CSRF, ""),
        "nav": NAV,
        "active": nav,
        "notice": NOTICES.get(request.query.get("done", "")),
        "error": None,  # a page's own error, when it has one
    }
    return aiohttp_jinja2.render_template(template, request, frame | context, status=status)


def form(request: web.Request) -> dict[str, str]:
    """The POSTed form (read and CSRF-checked by the security middleware)."""
    fields: dict[str, str] = request.get(FORM, {})
    return fields


def operator(request: web.Request) -> Operator:
    """Who made the request (every route but the login page has one)."""
    return request[OPERATOR]


def see_other(request: web.Request, location: str) -> web.StreamResponse:
    """Post/redirect/get: a form's answer is a redirect, so reloading the page does not repeat the change (an htmx
    request, e.g. a button asking for confirmation first, is told where to go with HX-Redirect)."""
    if request.headers.get("HX-Request"):
        return web.Response(status=200, headers={"HX-Redirect": location})
    return web.HTTPSeeOther(location)


def int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPBadRequest(text=f"{name}: expected a whole number")
    return int(raw)


def cursor_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name, "").strip()
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: expected an ISO 8601 time") from None


def phone_param(raw: str, *, name: str = "phone") -> str:
    """An E.164 phone from what an operator typed; InvalidInput naming the field otherwise."""
    e164 = to_e164(raw)
    if e164 is None:
        raise InvalidInput(name, f"{raw!r} is not a valid phone number")
    return e164
