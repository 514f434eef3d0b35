"""The fake carrier's own endpoints under ``/_fake/``, for driving it from another process (no auth).

``POST /_fake/faults`` injects a failure (``status``, ``count``, ``retry_after``, ``code``) or a hang
(``hang`` seconds, ``count``); ``GET /_fake/messages`` lists accepted messages; ``GET /_fake/stats``
the counters; ``POST /_fake/reset`` forgets records, counters and pending faults; ``POST /_fake/inbound``
(form ``From``, ``To``, ``Body``, optional ``MessageSid`` to re-send one) texts a number: a signed Twilio
inbound webhook to its SmsUrl, answered ``{"message_sid", "status"}`` with the receiver's HTTP status;
``POST /_fake/services`` (JSON ``sid``, ``senders``, optional ``account``) creates a Messaging Service's sender pool.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import orjson
from aiohttp import web

from engine.testing.faults import Faults
from engine.testing.inbound import InboundSender, NoSmsUrl
from engine.testing.records import Ledger
from engine.testing.wire import json_reply, read_form

__all__ = ["ControlApi"]

_OK = {"ok": True}
_MESSAGE_SID: Final = re.compile(r"[A-Za-z0-9]{2,64}", re.ASCII)


def _phone(value: str) -> str:
    """A number as given, except that an unescaped '+' (``curl -d To=+1646…``, which a form reads as a space)
    is put back."""
    return "+" + value[1:] if value[:1] == " " and value[1:].isdigit() else value


class ControlApi:
    """Handlers for ``/_fake/...`` over the carrier's ledger and faults; *reset* is the carrier's own."""

    def __init__(
        self, ledger: Ledger, faults: Faults, reset: Callable[[], None], inbound: InboundSender,
        add_service: Callable[[str, list[str], str | None], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.faults = faults
        self.reset = reset
        self.inbound = inbound
        self.add_service = add_service

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_fake/faults", self.post_faults),
            web.get("/_fake/messages", self.get_messages),
            web.get("/_fake/stats", self.get_stats),
            web.post("/_fake/reset", self.post_reset),
            web.post("/_fake/inbound", self.post_inbound),
            web.post("/_fake/services", self.post_services),
        ]

    async def post_services(self, request: web.Request) -> web.Response:
        """A Messaging Service with its sender pool: JSON ``{"sid": "MG…", "senders": [...], "account": "AC…"?}``."""
        try:
            doc: Any = orjson.loads(await request.read())
            if not isinstance(doc, dict) or not isinstance(doc.get("sid"), str):
                raise ValueError("expected {\"sid\": \"MG…\", \"senders\": [...]}")
            senders = doc.get("senders", [])
            if not isinstance(senders, list) or not all(isinstance(x, str) for x in senders):
                raise ValueError("senders must be a list of strings")
            account = doc.get("account")
            assert self.add_service is not None
            self.add_service(doc["sid"], senders, account if isinstance(account, str) else None)
        except (ValueError, KeyError, TypeError) as exc:
            return json_reply({"error": str(exc)}, 400)
        return json_reply(_OK)

    async def post_faults(self, request: web.Request) -> web.Response:
        try:
            doc: Any = orjson.loads(await request.read())
            if not isinstance(doc, dict):
                raise ValueError("expected a JSON object")
            count = int(doc.get("count", 1))
            if "hang" in doc:
                self.faults.hang(count, float(doc["hang"]))
            else:
                retry_after = doc.get("retry_after")
                code = doc.get("code")
                self.faults.inject(
                    int(doc["status"]),
                    count,
                    retry_after=float(retry_after) if retry_after is not None else None,
                    code=int(code) if code is not None else None,
                )
        except (ValueError, KeyError, TypeError) as exc:
            return json_reply({"error": str(exc)}, 400)
        return json_reply(_OK)

    async def get_messages(self, request: web.Request) -> web.Response:
        return json_reply([
            {
                "t": r.t,
                "sid": r.sid,
                "from": r.from_,
                "to": r.to,
                "body": r.body,
                "final_status": r.final_status,
                "error_code": r.error_code,
                "validity_period": r.validity_period,
            }
            for r in self.ledger.records
        ])

    async def get_stats(self, request: web.Request) -> web.Response:
        return json_reply(self.ledger.stats())

    async def post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return json_reply(_OK)

    async def post_inbound(self, request: web.Request) -> web.Response:
        """Text ``To`` from ``From``: 200 ``{"message_sid", "status"}`` (the receiver's HTTP status), 404 when
        ``To`` has no SmsUrl, 502 (``status`` null, ``error``) when its SmsUrl could not be reached."""
        form = await read_form(request)
        sender, to, body = _phone(form.get("From", "")), _phone(form.get("To", "")), form.get("Body", "")
        if not sender or not to:
            return json_reply({"error": "From and To are required"}, 400)
        sid = form.get("MessageSid") or None
        if sid is not None and not _MESSAGE_SID.fullmatch(sid):
            return json_reply({"error": "MessageSid must be 2-64 letters or digits"}, 400)
        try:
            delivery = await self.inbound.send(sender, to, body, message_sid=sid)
        except NoSmsUrl as exc:
            return json_reply({"error": str(exc)}, 404)
        if delivery.status is None:
            return json_reply({"message_sid": delivery.message_sid, "status": None, "error": delivery.error}, 502)
        return json_reply({"message_sid": delivery.message_sid, "status": delivery.status})
