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

from engine.httpserver.forms import UnreadableBody, read_form
from engine.providers.twilio import INBOUND_WEBHOOK_PATH, validate_twilio_signature
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
        self.read_timeout = read_timeout
        self.public_base = public_base.rstrip("/")
        self.tokens: dict[int, str] = {}
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.post(INBOUND_WEBHOOK_PATH, self.handle)]

    async def _token(self, provider_id: int) -> str | None:
        token = self.tokens.get(provider_id)
        if token is None:
            token = await store.auth_token(self.pool, provider_id)
            if token is not None:
                self.tokens[provider_id] = token
        return token

    async def handle(self, request: web.Request) -> web.Response:
        raw_id = request.match_info["provider_id"]
        if not _ID.fullmatch(raw_id):
            raise web.HTTPNotFound()
        provider_id = int(raw_id)
        try:
            params = await read_form(request, timeout=self.read_timeout)
        except UnreadableBody as exc:
            reply = web.Response(status=exc.status, text=exc.message)
            reply.force_close()  # the rest of the body was not read: this connection cannot carry another request
            return reply
        token = await self._token(provider_id)
        signature = request.headers.get("X-Twilio-Signature", "")
        if token is None or not validate_twilio_signature(token, self.public_base + request.path_qs, params, signature):
            self.rejected += 1
            raise web.HTTPForbidden(text="invalid signature")
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
