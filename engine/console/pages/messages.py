"""Messages: the tracking list (filters, keyset pages), one message with its status timeline, and resending it,
to a corrected number when the operator gives one.

Nothing here is the console's own: the filters are read by the API's :func:`engine.api.tracking.parse_filter`
(the same rules and messages as ``GET /api/messages`` and ``engine messages list``), and the list, a message's
detail and the resend are :mod:`engine.store.tracking`'s, whose list statements read one index in order (a page
costs the same at any depth of a ten-million-message table). The console sees every application (an operator is
not an application), so a message is found by id alone and the list may be narrowed to one application.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from engine.api.tracking import parse_filter
from engine.console.views import Deps, form, operator, phone_param, render, see_other
from engine.errors import InvalidInput
from engine.store import tracking
from engine.store.tracking_queries import STATES

__all__ = ["PAGE", "STATUS_CHOICES", "MessagePages"]

log = logging.getLogger(__name__)

PAGE: Final = 50  # messages on a page of the list
# The filter form's fields -> the API parameters parse_filter reads (an error is said with the form's name).
_FIELDS: Final = {"phone": "phone_number", "status": "status", "type": "type", "tag": "tag", "job_id": "job_id",
                  "since": "since", "until": "until"}
_PARAMS: Final = {api: name for name, api in _FIELDS.items()}
_TYPED: Final = (*_FIELDS, "app", "cursor")
_LIST: Final = "/console/messages"
# The status filter's choices: the Carousel codes, then each state (the API takes either, or a comma list).
STATUS_CHOICES: Final = (
    ("", "any"), ("0", "0 · pending"), ("4", "4 · at the carrier"), ("1", "1 · delivered"), ("2", "2 · failed"),
    *((state, state) for state in sorted(STATES)),
)


def _said_as(exc: InvalidInput, names: dict[str, str]) -> str:
    """The API's parameter error, naming the console's field instead."""
    name = names.get(exc.param, exc.param)
    return f"{name}: {str(exc).removeprefix(exc.param + ': ')}"


def _event(e: tracking.Event) -> str:
    kind: str = e.as_json()["event"]  # created, engine, carrier (a step the carrier reported), callback (no change)
    return kind


class MessagePages:
    def __init__(self, deps: Deps, now: Callable[[], datetime]) -> None:
        self.deps = deps
        self.now = now  # the wall clock: relative filter dates ("today") and a resend's expiry check

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/messages", self.messages, name="messages"),
            web.get("/message", self.find, name="message-find"),
            web.get(r"/message/{message_id:\d{1,19}}", self.message, name="message"),
            web.get(r"/message/{message_id:\d{1,19}}/live", self.message_live, name="message-live"),
            web.post(r"/message/{message_id:\d{1,19}}/resend", self.resend, name="message-resend"),
        ]

    # -- the list ------------------------------------------------------------------------------------------------

    async def messages(self, request: web.Request, *, error: str | None = None, status: int = 200) -> web.Response:
        typed = {name: request.query.get(name, "").strip() for name in _TYPED}
        names = await tracking.apps(self.deps.pool)
        page = tracking.Page([], None)
        if error is None:
            try:
                flt = parse_filter({_FIELDS[k]: v for k, v in typed.items() if k in _FIELDS and v}, self.now())
                app_ids = [i for i, n in names.items() if not typed["app"] or n == typed["app"]]
                if not app_ids and typed["app"]:
                    raise InvalidInput("app", f"no application named {typed['app'][:40]!r}")
                page = await tracking.list_messages(self.deps.pool, app_ids, flt, limit=PAGE,
                                                    cursor=typed["cursor"] or None)
            except InvalidInput as exc:
                error, status = _said_as(exc, _PARAMS), 400
        kept = {k: v for k, v in typed.items() if v and k != "cursor"}
        return await render(request, "messages.html", {
            "typed": typed, "apps": sorted(names.values()), "several": len(names) > 1, "page": page,
            "names": names, "statuses": STATUS_CHOICES, "error": error,
            "newest": _LIST + ("?" + urlencode(kept) if kept else "") if typed["cursor"] else None,
            "older": _LIST + "?" + urlencode(kept | {"cursor": page.next_cursor}) if page.next_cursor else None,
        }, nav="messages", status=status)

    async def find(self, request: web.Request) -> web.StreamResponse:
        """The list's "open by id" box."""
        try:
            message_id = tracking.parse_message_id(request.query.get("message_id"))
        except InvalidInput as exc:
            return await self.messages(request, error=str(exc), status=400)
        raise web.HTTPFound(f"/console/message/{message_id}")

    # -- one message -----------------------------------------------------------------------------------------------

    async def _detail(self, request: web.Request) -> tracking.MessageDetail | None:
        try:
            message_id = tracking.parse_message_id(request.match_info["message_id"])
        except InvalidInput:
            return None
        return await tracking.message_detail(self.deps.pool, message_id)

    @staticmethod
    def _live(detail: tracking.MessageDetail) -> dict[str, Any]:
        return {"d": detail, "m": detail.message, "events": [(e, _event(e)) for e in detail.timeline]}

    async def _missing(self, request: web.Request) -> web.Response:
        return await render(request, "error.html", {
            "message": f"There is no message {request.match_info['message_id']}.", "status": 404,
        }, nav="messages", status=404)

    async def message(self, request: web.Request, *, error: str | None = None, status: int = 200,
                      phone: str = "") -> web.Response:
        detail = await self._detail(request)
        if detail is None:
            return await self._missing(request)
        return await render(request, "message.html", self._live(detail) | {
            "error": error, "phone": phone,
        }, nav="messages", status=status)

    async def message_live(self, request: web.Request) -> web.Response:
        """The part of the page that changes while the message travels (htmx, until it is final)."""
        detail = await self._detail(request)
        if detail is None:
            raise web.HTTPNotFound(text="no such message")
        return await render(request, "_message_live.html", self._live(detail))

    # -- resend ----------------------------------------------------------------------------------------------------

    async def resend(self, request: web.Request) -> web.StreamResponse:
        """Queue the message again (to the corrected phone when one is given), by the API's rules; the answer leads
        to the new message's page. A bad phone or a refusal is said on the message's page and queues nothing."""
        raw = form(request).get("phone", "").strip()
        try:
            message_id = tracking.parse_message_id(request.match_info["message_id"])
            phone = phone_param(raw) if raw else None
        except InvalidInput as exc:
            return await self.message(request, error=str(exc), status=400, phone=raw)
        result = await tracking.resend(self.deps.pool, message_id, now=self.now(), phone=phone)
        if isinstance(result, tracking.Refused):
            if result.reason == "not_found":
                return await self._missing(request)
            return await self.message(request, error=f"Not resent ({result.reason.replace('_', ' ')}): "
                                      f"{result.detail}.", status=409, phone=raw)
        log.info("console: %s resent message %d as message %d%s", operator(request).name, message_id,
                 result.message_id, " to a corrected number" if phone else "")
        return see_other(request, f"/console/message/{result.message_id}?done=resent")
