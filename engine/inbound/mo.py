"""The MO webhook: `POST /webhooks/twilio/inbound/{provider_id}`, Twilio's inbound form, signature checked.

The message is stored in Postgres before the answer (empty TwiML, at once), so an MO is never lost and a
slow application never slows the carrier; workers handle it (engine/inbound/processor.py). A retry of the
same MessageSid (or the same `I-Twilio-Idempotency-Token`) is stored once: the answer is the same 200.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from aiohttp import web

from engine.inbound.signed import SignedForms
from engine.providers.twilio import INBOUND_WEBHOOK_PATH
from engine.store import inbound as store
from engine.store.database import Pool

__all__ = ["MoIntake"]

log = logging.getLogger(__name__)

EMPTY_TWIML: Final = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
_ID: Final = re.compile(r"[0-9]{1,18}", re.ASCII)
_SID: Final = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)
_PHONE: Final = re.compile(r"\+?[0-9A-Za-z]{2,20}", re.ASCII)
MAX_BODY: Final = 10_000


class MoIntake:
    """Receives MOs from the carrier and stores them durably."""

    def __init__(self, pool: Pool, public_base: str, *, read_timeout: float = 30.0) -> None:
        self.pool = pool
        self.forms = SignedForms(pool, public_base, read_timeout=read_timeout)
        self.stored = 0
        self.duplicates = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.post(INBOUND_WEBHOOK_PATH, self.handle)]

    @property
    def public_base(self) -> str:
        return self.forms.public_base

    @public_base.setter
    def public_base(self, value: str) -> None:
        self.forms.public_base = value.rstrip("/")

    async def handle(self, request: web.Request) -> web.Response:
        raw_id = request.match_info["provider_id"]
        if not _ID.fullmatch(raw_id):
            raise web.HTTPNotFound()
        provider_id = int(raw_id)
        params = await self.forms.read(request, provider_id)
        if isinstance(params, web.Response):
            return params
        sid, sender, to = params.get("MessageSid", ""), params.get("From", ""), params.get("To", "")
        body = params.get("Body", "")
        if not _SID.fullmatch(sid) or not _PHONE.fullmatch(sender) or not _PHONE.fullmatch(to):
            raise web.HTTPBadRequest(text="MessageSid, From and To are required")
        if len(body) > MAX_BODY or any("\x00" in value for value in params.values()):
            raise web.HTTPBadRequest(text="not a text message (too long, or NUL characters)")
        idempotency = request.headers.get("I-Twilio-Idempotency-Token") or None
        if await store.store_mo(self.pool, provider_id, params, idempotency) is None:
            self.duplicates += 1
        else:
            self.stored += 1
        return web.Response(body=EMPTY_TWIML, content_type="text/xml")
