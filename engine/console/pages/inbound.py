"""Inbound: conversations by phone (MOs and what was sent back, in order), the opt-out/opt-in record, and the
blacklist (search, and adding or removing a phone by hand with a reason, recorded with the operator's name)."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from engine.console.views import Deps, cursor_time, form, int_param, operator, phone_param, render, see_other
from engine.errors import EngineError, InvalidInput
from engine.store import admin
from engine.store import console as store

__all__ = ["InboundPages"]

PAGE: Final = 50
MAX_NOTE: Final = 500


def _prefix(raw: str) -> str:
    """A phone search: '+' and digits only (what E.164 numbers are made of), '+' added when missing."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    return "+" + digits if digits else ""


class InboundPages:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/inbound", self.conversations, name="inbound"),
            web.get("/inbound/phone", self.phone, name="inbound-phone"),
            web.get("/inbound/consent", self.consent, name="inbound-consent"),
            web.get("/inbound/blacklist", self.blacklist, name="inbound-blacklist"),
            web.post("/inbound/blacklist", self.change_blacklist, name="inbound-blacklist-change"),
        ]

    async def conversations(self, request: web.Request) -> web.Response:
        rows, cursor = await store.recent_conversations(self.deps.pool, before=int_param(request, "before"),
                                                        limit=PAGE)
        return await render(request, "inbound.html", {"tab": "conversations", "conversations": rows,
                                                      "cursor": cursor}, nav="inbound")

    async def phone(self, request: web.Request) -> web.Response:
        raw = request.query.get("phone", "")
        try:
            phone = phone_param(raw)
        except InvalidInput as exc:
            return await render(request, "inbound.html", {"tab": "conversations", "conversations": [],
                                                          "cursor": None, "error": str(exc)}, nav="inbound",
                                status=400)
        items, cursor = await store.conversation(self.deps.pool, phone, before=cursor_time(request, "before"),
                                                 limit=PAGE)
        consent, _ = await store.consent_events(self.deps.pool, phone=phone, before=None, limit=20)
        listed = await store.blacklist_page(self.deps.pool, prefix=phone, after=None, limit=PAGE)
        listed = [r for r in listed if r["phone"] == phone]
        apps = await admin.list_apps(self.deps.pool)
        return await render(request, "conversation.html", {
            "phone": phone, "items": list(reversed(items)), "cursor": cursor, "consent": consent,
            "blacklisted": listed, "apps": apps,
        }, nav="inbound")

    async def consent(self, request: web.Request) -> web.Response:
        raw = request.query.get("phone", "").strip()
        error = None
        phone = None
        if raw:
            try:
                phone = phone_param(raw)
            except InvalidInput as exc:
                error = str(exc)
        rows, cursor = ([], None) if error else await store.consent_events(
            self.deps.pool, phone=phone, before=int_param(request, "before"), limit=PAGE)
        return await render(request, "inbound.html", {"tab": "consent", "events": rows, "cursor": cursor,
                                                      "phone": raw, "error": error},
                            nav="inbound", status=400 if error else 200)

    async def blacklist(self, request: web.Request, *, error: str | None = None, status: int = 200,
                        typed: dict[str, str] | None = None) -> web.Response:
        query = request.query.get("q", "").strip()
        prefix = _prefix(query)
        before = None
        at = cursor_time(request, "before")
        if at is not None:
            before = (at, int_param(request, "before_app") or 0, request.query.get("before_phone", ""))
        rows = await store.blacklist_page(self.deps.pool, prefix=prefix or None,
                                          after=request.query.get("after") or None, limit=PAGE, before=before)
        more = None
        if len(rows) == PAGE:
            last = rows[-1]
            if prefix:
                more = urlencode({"q": query, "after": last["phone"]})
            else:
                more = urlencode({"before": last["created_at"].isoformat(), "before_app": last["app_id"],
                                  "before_phone": last["phone"]})
        apps = await admin.list_apps(self.deps.pool)
        return await render(request, "inbound.html", {
            "tab": "blacklist", "rows": rows, "q": query, "more": more, "apps": apps, "error": error,
            "typed": typed or {},
        }, nav="inbound", status=status)

    async def change_blacklist(self, request: web.Request) -> web.StreamResponse:
        fields = form(request)
        action = fields.get("action", "")
        try:
            if action not in ("add", "remove"):
                raise InvalidInput("action", "must be add or remove")
            phone = phone_param(fields.get("phone", ""))
            app = await admin.get_app(self.deps.pool, fields.get("app", ""))
            note = fields.get("note", "").strip()
            if not note:
                raise InvalidInput("reason", "say why (it is kept in the opt-out record)")
            if len(note) > MAX_NOTE:
                raise InvalidInput("reason", f"at most {MAX_NOTE} characters")
        except EngineError as exc:
            return await self.blacklist(request, error=str(exc), status=400, typed=fields)
        changed = await store.change_blacklist(self.deps.pool, app.id, phone, add=action == "add",
                                               operator=operator(request).name, note=note)
        done = ("blacklisted" if action == "add" else "unblacklisted") if changed else "unchanged"
        back = fields.get("back") == "phone"
        where = "/console/inbound/phone?" if back else "/console/inbound/blacklist?"
        return see_other(request, where + urlencode({"phone": phone} if back else {"q": phone}) + f"&done={done}")
